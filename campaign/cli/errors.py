"""One clear line for what goes wrong around the database, shared by every `campaign` command.

init_app wraps each command's callback with :func:`one_line`: a database error that a
command does not handle itself ends it with one line on stderr and exit status 1 (click's
ClickException), never a traceback. The line says which of these it is:

- the server cannot be reached (or the SQLite file opened): where, without the password;
- the schema is older than the code (or missing): run `campaign db upgrade`;
- the database refused a value (PostgreSQL takes no NUL character, for one): bad input;
- anything else: the database's own first line.

It also guards standard output while the command runs: a write that fails (a full disk,
``> /dev/full``, a closed descriptor ``>&-``) ends it with "cannot write standard output: ..."
and exit status 1; a reader that leaves early (``| head -1``) ends it quietly with status 141,
as the shell reports a tool killed by SIGPIPE (``cat``, ``yes``).
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from flask import current_app
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from campaign import db, signing

C = TypeVar("C", bound=click.Command)

# What a PostgreSQL URL without a port means.
POSTGRES_PORT = 5432
# The exit status when standard output's reader left: 128 + SIGPIPE, what a shell reports for
# a tool the signal ended (`yes | head -1`), so `set -o pipefail` treats `campaign` alike.
BROKEN_PIPE_STATUS = 141


def where(url: str) -> str:
    """The database's place for a message: host:port/name, or the SQLite file; no password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or "(in memory)"
    host = parsed.host or "localhost"
    port = parsed.port or (POSTGRES_PORT if parsed.get_backend_name() == "postgresql" else None)
    place = f"{host}:{port}" if port else host
    return f"{place}/{parsed.database}" if parsed.database else place


first_line = db.first_line


def _probe(url: str) -> Engine:
    """An engine for one look at the database (no pool; a server gets 10 s to answer)."""
    is_postgres = make_url(url).get_backend_name() == "postgresql"
    connect_args = {"connect_timeout": 10} if is_postgres else {}
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _connection_failure(url: str) -> str | None:
    """Why no connection to the database can be made, or None when one can."""
    engine = _probe(url)
    try:
        with engine.connect():
            return None
    except SQLAlchemyError as error:
        return first_line(error)
    finally:
        engine.dispose()


def revisions(url: str) -> tuple[str | None, str | None]:
    """(the database's migration revision, the code's head); None where unknown."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(db.alembic_config(url)).get_current_head()
    engine = _probe(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision(), head
    except SQLAlchemyError:
        return None, head
    finally:
        engine.dispose()


def describe(error: SQLAlchemyError, url: str) -> str:
    """One line saying what went wrong with the database and what to do."""
    if isinstance(error, DataError):
        return f"the database refused a value as invalid ({first_line(error)}): check the input"
    if isinstance(error, IntegrityError):
        return f"the database refused the change ({first_line(error)})"
    failure = _connection_failure(url)
    if failure is not None:
        if make_url(url).get_backend_name() == "sqlite":
            return f"cannot open the database file {where(url)} ({failure})"
        return f"cannot connect to the database at {where(url)} ({failure})"
    current, head = revisions(url)
    if current != head:
        at = f"at revision {current}" if current else "empty"
        return (
            f"the database is not ready ({at}, the code needs {head}); "
            "run `campaign db upgrade` first"
        )
    return f"database error ({type(getattr(error, 'orig', None) or error).__name__}): " + (
        first_line(error)
    )


def database_error(error: SQLAlchemyError) -> click.ClickException:
    """The ClickException for a database error met in a command (app context needed)."""
    return click.ClickException(describe(error, db.database_url(current_app)))


class OutputError(OSError):
    """A write to standard output failed (its errno and strerror are the system's)."""


def _output_error(error: OSError) -> OutputError:
    return OutputError(error.errno, error.strerror)


class _GuardedStream:
    """Standard output (text, or its binary buffer) whose failing writes are an OutputError;
    everything else is the stream's own."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: Any) -> Any:
        try:
            return self._stream.write(data)
        except OSError as error:
            raise _output_error(error) from None

    def writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            raise _output_error(error) from None

    @property
    def buffer(self) -> _GuardedStream:
        return _GuardedStream(self._stream.buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _ClosedStream:
    """Standard output when the process started without one (``>&-``): every write fails.

    Python leaves sys.stdout None then, and click.echo writes nothing without a word.
    """

    encoding = "utf-8"
    errors = "strict"

    def _closed(self) -> OutputError:
        return OutputError(errno.EBADF, "it is closed")

    def write(self, _data: Any) -> int:
        raise self._closed()

    def writelines(self, _lines: Iterable[Any]) -> None:
        raise self._closed()

    def flush(self) -> None:
        """Nothing was written, so nothing waits."""

    @property
    def buffer(self) -> _ClosedStream:
        return self

    def isatty(self) -> bool:
        return False


@contextmanager
def guarded_stdout() -> Iterator[None]:
    """Standard output whose failures are an OutputError for this block; flushed at its end,
    so that a write still buffered fails here, not in the interpreter's final flush."""
    original = sys.stdout
    if not isinstance(original, _GuardedStream | _ClosedStream):
        sys.stdout = _ClosedStream() if original is None else _GuardedStream(original)
    try:
        yield
        sys.stdout.flush()
    finally:
        sys.stdout = original


def _silence(stream: Any) -> None:
    """Point a failed standard output at /dev/null: what it still buffers goes nowhere,
    and the interpreter's final flush fails no more (no "Exception ignored" after our line)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # no descriptor (a test runner's buffer): nothing flushes at exit
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def output_failure(error: OutputError) -> click.ClickException:
    """The one line for a failed write to standard output, which is silenced first; a reader
    that left early ends the command quietly with BROKEN_PIPE_STATUS instead."""
    _silence(sys.stdout)
    if error.errno == errno.EPIPE:
        raise click.exceptions.Exit(BROKEN_PIPE_STATUS)
    return click.ClickException(f"cannot write standard output: {error.strerror}")


def one_line(command: C) -> C:
    """Make a command end with one line, not a traceback, on a database error it leaves or a
    write to standard output that fails."""
    callback = command.callback
    if callback is None or getattr(callback, "_one_line", False):
        return command

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            with guarded_stdout():
                return callback(*args, **kwargs)
        except SQLAlchemyError as error:
            raise database_error(error) from None
        except OutputError as error:
            raise output_failure(error) from None

    run._one_line = True  # type: ignore[attr-defined]
    command.callback = run
    return command


def codepoint(char: str) -> str:
    """A character as U+XXXX."""
    return f"U+{ord(char):04X}"


class BadValue(click.ClickException):
    """A bad option value, in one line (click's BadParameter adds the usage text)."""

    exit_code = 2


def one_line_value(option: str) -> Callable[[click.Context, click.Parameter, str], str]:
    """A click callback refusing a control character (a line break...) in a one-line value."""

    def check(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        if value is not None:
            found = signing.control_character(value)
            if found is not None:
                raise BadValue(
                    f"{option} holds a control character ({codepoint(value[found])}): "
                    "give it on one line, as plain text"
                )
        return value

    return check
