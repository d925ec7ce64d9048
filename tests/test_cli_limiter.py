"""Flask-Limiter's `campaign limiter` commands work, as docs/interface.md promises.

Flask-Limiter adds them to the `campaign` command through its package's entry points
(needing its `cli` extra, declared in pyproject.toml), so they are run as a person would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _campaign(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
        "CAMPAIGN_DATABASE_URL": f"sqlite:///{tmp_path}/limiter.sqlite3",
        "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
        "CAMPAIGN_RATELIMIT_STORAGE_URI": "memory://",
    }
    return subprocess.run(
        [sys.executable, "-c", "from campaign.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "shown"),
    [("config", "RATELIMIT_ENABLED"), ("limits", "public.sign: /c/<slug>/sign")],
)
def test_limiter_commands_run(tmp_path: Path, command: str, shown: str) -> None:
    result = _campaign(tmp_path, "limiter", command)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Missing dependencies" not in result.stdout + result.stderr
    assert shown in result.stdout
