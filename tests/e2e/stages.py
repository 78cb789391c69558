"""Stage types the end-to-end tests register in their worker processes (JOBSITE_STAGE_MODULES)."""

import re
import time

from pipelines.registry import stage


@stage("e2e_spin_python")
def spin_python(ctx):
    """Burns CPU in pure Python for 60 s, never yielding on its own."""
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return {"spins": n}


@stage("e2e_spin_regex")
def spin_regex(ctx):
    """Holds the GIL inside the regex engine: catastrophic backtracking on 30+ characters."""
    return {"matched": bool(re.match(r"(a|aa)*b", "a" * 60))}
