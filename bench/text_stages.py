"""Time per MiB of the text stages (extract_text, text_stats) on hostile and ordinary inputs.

Run by hand, never in CI:

    .venv/bin/python bench/text_stages.py [--size-kib 1024] [--repeat 3]

Each input of tests/pipelines/hostile_text.py (a run of dots, `<a` repeated,
unclosed comments, ...) made a backtracking regex or html.parser take time
quadratic in its length; the stages are now linear, so the figure per MiB
stays flat as the size grows. An ordinary HTML page and plain prose are timed
for comparison. The best of `--repeat` runs is printed.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from pipelines.registry import StageContext  # noqa: E402
from pipelines.stages import extract_text, text_stats  # noqa: E402
from tests.pipelines.hostile_text import HOSTILE_TEXT  # noqa: E402

PAGE = (
    "<html><head><title>News</title><style>p { margin: 0 }</style></head><body>"
    '<div class="story"><h1>Rivers run low</h1><p>Researchers gathered <a href="/s">samples</a> from '
    "several rivers &amp; streams during the spring flood.</p><script>track('view');</script>"
    "<ul><li>Each sample was filtered.</li><li>Two showed far lower levels.</li></ul></div>"
)
PROSE = "The laboratory compared mineral content against readings collected a decade earlier. Why? "
ORDINARY = {
    "ordinary HTML page": lambda size: PAGE * (size // len(PAGE)),
    "ordinary prose": lambda size: PROSE * (size // len(PROSE)),
}


def best_seconds(stage, data, repeat):
    context = StageContext(job_id="bench", input=data, previous=data, outputs={}, params={})
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        stage(context)
        best = min(best, time.perf_counter() - started)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-kib", type=int, default=1024, help="input size (default: the 1 MiB input limit)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_kib * 1024
    print(f"{'input':32} {'extract_text s/MiB':>19} {'text_stats s/MiB':>17}")
    for name, make in {**HOSTILE_TEXT, **ORDINARY}.items():
        text = make(size)[:size]
        mib = len(text) / (1024 * 1024)
        extract = best_seconds(extract_text, {"html": text}, args.repeat) / mib
        stats = best_seconds(text_stats, {"text": text}, args.repeat) / mib
        print(f"{name:32} {extract:19.3f} {stats:17.3f}")


if __name__ == "__main__":
    main()
