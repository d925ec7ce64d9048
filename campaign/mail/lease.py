"""The lease that makes one sender in the cluster deliver: an advisory lock or an flock."""

from __future__ import annotations

import fcntl
import os

from flask import Flask
from sqlalchemy import (
    URL,
    Connection,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

# The cluster's PostgreSQL advisory lock for the sender: "campmail" in ASCII.
LEASE_KEY = int.from_bytes(b"campmail", "big")
# TCP keepalives on the lease's connection, at both ends: libpq's, and (set on the
# session, since a pooler may refuse startup options) the server's. A leader whose machine
# dies says nothing: without them the server would keep its session, and the lock, until
# the kernel's keepalive gives up (two hours on Linux); with them it ends the session
# within about 5 + 3 x 2 = 11 s. Likewise a leader cut off from the server notices soon.
_LEASE_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
_LEASE_KEEPALIVES_SQL = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"
)


class _Lease:
    """Leadership of the cluster's mail: one holder at a time. This one: the process alone.

    The base class serves a database no other process shares (SQLite in memory).
    """

    def acquire(self) -> bool:
        """Take the lease if it is free; True when this process holds it."""
        return True

    def check(self) -> bool:
        """Whether this process still holds the lease it took."""
        return True

    def release(self) -> None:
        """Give the lease up (exiting); the next standby sender takes it."""

    def __str__(self) -> str:
        return "a database of this process alone"


class _FileLease(_Lease):
    """An flock on a file beside the SQLite database: the kernel drops it when we die."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Lock the file without waiting; write our pid in it for whoever looks."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        return True

    def check(self) -> bool:
        """An flock lasts while its file stays open: always held."""
        return self._fd is not None

    def release(self) -> None:
        """Close the file, which drops the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __str__(self) -> str:
        return f"flock on {self.path}"


class _PostgresLease(_Lease):
    """A session advisory lock on a connection of its own: the server drops it with the session."""

    def __init__(self, url: URL) -> None:
        # Not pooled: closing the connection must end the session, and the lock with it.
        self._engine = create_engine(url, poolclass=NullPool, connect_args=_LEASE_KEEPALIVES)
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        """Try the advisory lock without waiting."""
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
                self._conn.exec_driver_sql(_LEASE_KEEPALIVES_SQL)
            held = bool(self._conn.scalar(select(func.pg_try_advisory_lock(LEASE_KEY))))
            self._conn.commit()
        except Exception:
            self.release()
            raise
        return held

    def check(self) -> bool:
        """Whether the lock's connection still answers (the lock lives as long as it)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
        except Exception:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Close the connection: the server ends the session and its lock."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:
                conn.invalidate()
        self._engine.dispose()

    def __str__(self) -> str:
        return f"PostgreSQL advisory lock {LEASE_KEY}"


def _lease_for(app: Flask) -> _Lease:
    """The lease that elects one sender among the processes sharing the app's database."""
    url: URL = app.extensions["engine"].url
    backend = url.get_backend_name()
    if backend == "postgresql":
        return _PostgresLease(make_url(app.config.get("MAIL_LEASE_DATABASE_URL") or url))
    database = url.database or ""
    if backend == "sqlite" and database not in ("", ":memory:") and "mode" not in url.query:
        # All processes of one SQLite deployment share the database's folder.
        return _FileLease(os.path.abspath(database) + ".mail-sender.lock")
    return _Lease()
