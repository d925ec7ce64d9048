"""The SQLite backup and restore that README's "Backups" paragraph gives, on a live database.

The database is in WAL mode (db.make_engine) and another process keeps writing while the
backup runs: recent commits live in campaign.sqlite3-wal, so a copy of the database file
alone misses them, and `sqlite3 ... "VACUUM INTO ..."` has them all in one file.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign import db

SQLITE3 = shutil.which("sqlite3")
pytestmark = pytest.mark.skipif(SQLITE3 is None, reason="the sqlite3 command is not installed")

# Commits a row every few milliseconds, and never checkpoints: the rows stay in the -wal file.
WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("PRAGMA busy_timeout=30000")
conn.execute("PRAGMA wal_autocheckpoint=0")
print("ready", flush=True)
while True:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO backup_probe (note) VALUES ('signed')")
    conn.execute("COMMIT")
    time.sleep(0.002)
"""


def count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM backup_probe").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """The process writing to the live database (the `live` fixture starts it)."""
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "campaign.sqlite3")],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield process
        finally:
            process.kill()


@pytest.fixture
def live(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The app's database, migrated, in WAL mode, with a process writing to it."""
    path = tmp_path / "campaign.sqlite3"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE backup_probe (id INTEGER PRIMARY KEY, note TEXT)")
    engine.dispose()
    process: subprocess.Popen[str] = request.getfixturevalue("writer")
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 10
    while count(path) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    return path


def sqlite3_command(database: Path, command: str) -> None:
    assert SQLITE3 is not None
    done = subprocess.run(
        [SQLITE3, str(database), command], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def check_copy(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # One file: no -wal beside it is needed to read it.
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()


def test_a_copy_of_the_database_file_alone_misses_recent_signatures(
    live: Path, tmp_path: Path
) -> None:
    committed = count(live)
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(live, copy)
    assert (live.parent / "campaign.sqlite3-wal").stat().st_size > 0
    assert count(copy) < committed


def test_vacuum_into_backs_up_a_live_database(live: Path, tmp_path: Path) -> None:
    committed = count(live)
    backup = tmp_path / "backups" / "campaign-2026-12-01.sqlite3"
    backup.parent.mkdir()
    sqlite3_command(live, f"VACUUM INTO '{backup}'")
    check_copy(backup)
    assert count(backup) >= committed
    time.sleep(0.1)
    assert count(live) > count(backup)  # the site wrote on meanwhile


def test_dot_backup_backs_up_a_small_live_database(live: Path, tmp_path: Path) -> None:
    committed = count(live)
    backup = tmp_path / "campaign.backup.sqlite3"
    sqlite3_command(live, f".backup {backup}")
    conn = sqlite3.connect(backup)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert count(backup) >= committed


def test_a_backup_restored_as_the_readme_says_serves(
    live: Path, tmp_path: Path, writer: subprocess.Popen[str]
) -> None:
    backup = tmp_path / "campaign-backup.sqlite3"
    sqlite3_command(live, f"VACUUM INTO '{backup}'")
    saved = count(backup)
    writer.kill()  # killed, not stopped: its -wal file stays, as after a crash
    writer.wait()
    # SQLite would replay the old database's -wal and -shm onto the restored file: they go,
    # then the backup is put in place.
    wal = live.parent / "campaign.sqlite3-wal"
    assert wal.exists()
    for leftover in (wal, live.parent / "campaign.sqlite3-shm"):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(backup, live)
    live.chmod(0o600)
    url = f"sqlite:///{live}"
    db.upgrade(url)  # `campaign db upgrade`: nothing to do at the same revision
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM backup_probe").scalar() == saved
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
