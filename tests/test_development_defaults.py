"""A fresh checkout's manage.py works as the README says, and configured deployments keep DEBUG off."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ROOT / "jobsite" / "settings.py"
# A shell's environment with nothing of jobsite's in it.
BARE_ENV = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "DRAMATIQ_BROKER_URL": "stub"}


@pytest.fixture
def fresh_checkout():
    if (ROOT / ".env").exists():
        pytest.skip("this checkout has a .env, so it is not a fresh one")


def run(args, env=None):
    return subprocess.run(args, cwd=ROOT, env=env or BARE_ENV, capture_output=True, text=True, timeout=300)


def test_manage_py_works_with_a_python_that_lacks_django(fresh_checkout):
    # -S leaves site-packages out, as a system python3 without the project's packages would.
    result = run([sys.executable, "-S", "manage.py", "check"])
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_make_manage_runs_any_command(fresh_checkout):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    # -o: take the virtualenv as up to date; this test must never rebuild the one it runs in.
    result = run(["make", "-s", "-o", ".venv/.installed", "manage", "ARGS=check --tag urls"])
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def debug_setting(tmp_path, env: dict, dotenv: str | None = None) -> str:
    """DEBUG (or the error) of the settings file loaded in a checkout at `tmp_path` with `env`."""
    (tmp_path / "jobsite").mkdir(exist_ok=True)
    shutil.copy(SETTINGS, tmp_path / "jobsite" / "settings.py")
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    code = f"import runpy; print(runpy.run_path({str(tmp_path / 'jobsite' / 'settings.py')!r})['DEBUG'])"
    result = subprocess.run([sys.executable, "-c", code], env={**BARE_ENV, **env}, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    return result.stdout.strip() or result.stderr.strip().splitlines()[-1]


def test_debug_is_on_by_default_only_in_an_unconfigured_checkout(tmp_path):
    assert debug_setting(tmp_path, {}) == "True"


@pytest.mark.parametrize(
    ("env", "dotenv", "expected"),
    [
        ({"SECRET_KEY": "k" * 50}, None, "False"),  # a deployment's environment
        (
            {"DEBUG": "0"},
            None,
            "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off.",
        ),
        ({}, "SECRET_KEY=" + "k" * 50 + "\n", "False"),  # a .env without DEBUG
        ({}, "", "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off."),
        ({"DEBUG": "1"}, None, "True"),
        ({}, "DEBUG=1\n", "True"),
    ],
    ids=["secret-key-in-env", "debug-0-in-env", "dotenv-with-key", "empty-dotenv", "debug-1-in-env", "dotenv-debug-1"],
)
def test_any_configuration_keeps_debug_off_unless_it_turns_it_on(tmp_path, env, dotenv, expected):
    assert debug_setting(tmp_path, env, dotenv) == expected
