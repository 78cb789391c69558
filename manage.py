#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path

VENV_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        # Started with a Python that lacks the project's packages (say, `python3 manage.py`):
        # run again with the project's virtualenv, once, when there is one.
        if VENV_PYTHON.exists() and not os.environ.get("JOBSITE_MANAGE_REEXEC"):
            os.environ["JOBSITE_MANAGE_REEXEC"] = "1"
            os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])  # noqa: S606 - our own interpreter, our own argv
        raise ImportError(
            "Django is not installed for this Python. Run `make manage ARGS=check` once to create .venv, "
            'then `.venv/bin/python manage.py ...` or `make manage ARGS="..."`.'
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
