"""A killed `campaign import-csv` leaves nothing behind: no row checker, no lock, no session.

The import checks a large file's rows in a forked process (campaign.imports._checked_chunks).
When the import is killed (SIGKILL, SIGTERM, the OOM killer, `timeout`), that checker must
die with it, and must not keep the import's SQLite writer gate or PostgreSQL connection.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from data_helpers import make_campaign, sign
from flask import Flask
from sqlalchemy import create_engine, text

from campaign.db import new_session

CAMPAIGN = str(Path(sys.executable).parent / "campaign")
ROOT = Path(__file__).resolve().parent.parent
ROWS = 200_000

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="the row checker is forked on Linux with more than one core only",
)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie has ended, whoever reaps it)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] == pid:
                found.append(int(entry))
    return found


def _big_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("name,title,parliament,party,country_code,email,public,comment\r\n")
        for i in range(ROWS):
            out.write(f"Member {i},MP,Parliament {i % 50},Party,SE,m{i}@example.org,yes,\r\n")


@pytest.fixture
def started_import(any_app: Flask, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`campaign import-csv` of a large file, running, with its row checker started.

    Yields the import process and the application name its PostgreSQL sessions carry.
    """
    db = new_session(any_app)
    make_campaign(db, require_confirmation=False)
    db.close()
    path = tmp_path / "big.csv"
    _big_csv(path)
    app_name = f"import-kill-{uuid.uuid4().hex[:10]}"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        CAMPAIGN_DATABASE_URL=any_app.config["DATABASE_URL"],
        CAMPAIGN_INSTANCE_PATH=any_app.instance_path,
        CAMPAIGN_SECRET_KEY="import-kill-test",
        PGAPPNAME=app_name,
    )
    proc = subprocess.Popen(
        [CAMPAIGN, "import-csv", "release", str(path)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    orphans: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (checkers := _children(proc.pid)):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the import never started its row checker"
            time.sleep(0.02)
        orphans.extend(checkers)
        time.sleep(0.5)  # the import is storing its first chunks
        assert proc.poll() is None, "the import ended before it could be killed"
        yield proc, app_name
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
        for pid in orphans:  # what the test started, whatever the outcome
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_import_leaves_no_checker_lock_or_session_behind(
    any_app: Flask, started_import: tuple[subprocess.Popen[bytes], str], signum: int
) -> None:
    proc, app_name = started_import
    checkers = _children(proc.pid)
    assert len(checkers) == 1
    # The checker reads the file only: it holds none of the import's database files,
    # writer gate or server connections.
    held = [
        os.readlink(f"/proc/{checkers[0]}/fd/{fd}") for fd in os.listdir(f"/proc/{checkers[0]}/fd")
    ]
    assert not [
        target for target in held if target.startswith("socket:") or ".sqlite3" in target
    ], held

    proc.send_signal(signum)
    assert proc.wait(timeout=30) == -signum

    deadline = time.monotonic() + 15  # generous on a loaded machine; left alive, it waits forever
    while _alive(checkers[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(checkers[0]), "the row checker outlived the killed import"

    url = any_app.config["DATABASE_URL"]
    if url.startswith("sqlite"):
        # The writer gate is free: no process holds its lock file any more.
        lock_path = url.removeprefix("sqlite:///") + "-writers.lock"
        fd = os.open(lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    else:
        # The server ended the killed import's session: its locks are gone.
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                left = 1
                while left and time.monotonic() < deadline + 30:
                    left = conn.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                        {"n": app_name},
                    ).scalar_one()
                    time.sleep(0.05)
                assert left == 0, "the killed import's session is still open"
                conn.execute(text("SET lock_timeout = '5s'"))
                conn.execute(text("ANALYZE signature"))  # the next import's first lock
        finally:
            engine.dispose()

    # A signer gets through at once, not after the 30 s busy timeout.
    db = new_session(any_app)
    try:
        campaign = make_campaign(db, "after")
        started = time.monotonic()
        sign(db, campaign, "Signer After", "after@example.org")
        assert time.monotonic() - started < 10  # the gate's busy timeout is 30 s
    finally:
        db.close()
