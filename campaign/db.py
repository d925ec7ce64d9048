"""Engine and session per app; the declarative Base with a naming convention."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, NamedTuple, cast

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InvalidRequestError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime, stored naive-UTC on SQLite and timestamptz elsewhere."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        """Store UTC; refuse naive datetimes, which hide their zone."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        """Read back as aware UTC whatever the backend returned."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base for every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime()}


# Requests that only read begin SQLite transactions DEFERRED: a WAL reader takes no lock and
# never waits for, nor blocks, the signers. Everything else (POSTs, the CLI, the mail sender)
# begins IMMEDIATE, because a deferred transaction that reads and then writes fails at once
# ("database is locked") when another writer committed in between.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# GET endpoints that write after reading (the export's audit entry) keep IMMEDIATE.
WRITING_GET_ENDPOINTS = frozenset({"admin.export_csv"})
# How long a SQLite writer waits for its turn before "database is locked" (a 503).
SQLITE_BUSY_SECONDS = 30.0
_deferred: ContextVar[bool | None] = ContextVar("campaign_sqlite_deferred", default=None)


def _begin_deferred() -> bool:
    """Whether the SQLite transaction about to begin may be DEFERRED (read-only work)."""
    chosen = _deferred.get()
    if chosen is not None:
        return chosen
    return (
        has_request_context()
        and request.method in READ_METHODS
        and request.endpoint not in WRITING_GET_ENDPOINTS
    )


@contextmanager
def reading() -> Iterator[None]:
    """SQLite transactions begun inside are DEFERRED: for the reads of a POST before its writes.

    End such a transaction (commit) before writing: the write must begin its own, IMMEDIATE.
    """
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


class WriterGate:
    """Serialises the SQLite writers of one database file, in this process and across processes.

    SQLite lets one writer in at a time; the others retry in its busy handler, which
    sleeps 1, 2, 5 ... up to 100 ms between tries, so under load the lock sits idle while
    writers sleep and some wait for seconds. Here a writer waits for a thread lock (the
    process's other threads), then for an flock() on a file beside the database (the other
    processes), both handed on as soon as the holder commits or rolls back; SQLite's own
    lock then stays as the safety net for writers that do not pass through the gate.
    """

    # Sleeps between tries of the file lock: short, since only one thread per process tries.
    POLL_MIN = 0.0002
    POLL_MAX = 0.002

    def __init__(self, lock_path: str, timeout: float) -> None:
        self.lock_path = lock_path
        self.timeout = timeout
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        # One descriptor per process: a forked worker must not share its parent's lock.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        """Wait for the turn to write; sqlite3.OperationalError after the busy timeout."""
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError("database is locked (waited for the writer gate)")
        try:
            fd = self._file()
            pause = self.POLL_MIN
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise sqlite3.OperationalError(
                            "database is locked (waited for the writer gate)"
                        ) from None
                time.sleep(pause)
                pause = min(pause * 2, self.POLL_MAX)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        """Hand the turn on (the holder's connection committed or rolled back)."""
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _gated_connection_class(gate: WriterGate) -> type[sqlite3.Connection]:
    """A sqlite3.Connection that passes the gate when it ends a write transaction."""

    class GatedConnection(sqlite3.Connection):
        holds_gate = False

        def enter_write(self) -> None:
            """Take the gate before BEGIN IMMEDIATE."""
            if not self.holds_gate:
                gate.acquire()
                self.holds_gate = True

        def leave_write(self) -> None:
            """Give the gate back, once."""
            if self.holds_gate:
                self.holds_gate = False
                gate.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.leave_write()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.leave_write()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.leave_write()

    return GatedConnection


_Processor = Callable[[Any], Any] | None


class _Plan(NamedTuple):
    """A statement compiled for SQLite: its SQL, its parameters in order, its result types."""

    sql: str
    # (name, value the statement gives, whether the caller must give one, bind processor)
    params: tuple[tuple[str, Any, bool, _Processor], ...]
    results: tuple[_Processor, ...]


class Direct:
    """A Core statement that runs on SQLite's own connection, past SQLAlchemy's execution.

    For the statements a signer's request runs while it holds the SQLite writer gate: every
    other writer waits meanwhile, and SQLAlchemy's execution of a cached statement (its
    execution context, parameter and result processing, events) took several times what
    SQLite takes to run it. The statement is compiled by SQLAlchemy, once for each set of
    parameter names, into its SQL, its parameters in order and the type processing of its
    parameters and results, which then run as SQLAlchemy runs them; a driver error is raised
    as SQLAlchemy's (IntegrityError, OperationalError, ...). SQLAlchemy's cursor events and
    SQL echo do not see these statements (sqlite3's trace callback does).

    On other databases, which have no gate, the statement runs through the session's
    connection as usual. Only statements whose values all come from the caller or the
    statement itself: no Python-side column default, no expanding IN list.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[tuple[object, frozenset[str]], _Plan] = {}

    def _plan(self, dialect: Any, names: frozenset[str]) -> _Plan:
        key = (dialect.server_version_info, names)
        plan = self._plans.get(key)
        if plan is None:
            # column_keys: an INSERT names only the columns given, as SQLAlchemy compiles it.
            compiled: Any = cast(ClauseElement, self.statement).compile(
                dialect=dialect, column_keys=sorted(names)
            )
            if (
                compiled.insert_prefetch
                or compiled.update_prefetch
                or "__[POSTCOMPILE_" in compiled.string
            ):
                raise InvalidRequestError(
                    "Direct runs only statements whose values the caller or statement gives"
                )
            params = tuple(
                (
                    name,
                    bind.value,
                    bind.required,
                    bind.type.dialect_impl(dialect).bind_processor(dialect),
                )
                for name in compiled.positiontup
                for bind in (compiled.binds[name],)
            )
            results = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in getattr(self.statement, "exported_columns", ())
            )
            plan = self._plans[key] = _Plan(compiled.string, params, results)
        return plan

    def rows(self, session: Session, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The statement's rows, in the session's transaction (none if it returns none)."""
        conn = session.connection()
        if conn.dialect.name != "sqlite":
            return [tuple(row) for row in conn.execute(self.statement, dict(values))]
        plan = self._plan(conn.dialect, frozenset(values))
        args = []
        for name, given, required, process in plan.params:
            if name in values:
                value = values[name]
            elif required:
                raise InvalidRequestError(f"A value is required for bind parameter {name!r}")
            else:
                value = given
            args.append(value if process is None else process(value))
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            fetched: list[tuple[Any, ...]] = driver.execute(plan.sql, args).fetchall()
        except sqlite3.Error as error:
            raise DBAPIError.instance(
                plan.sql, args, error, sqlite3.Error, hide_parameters=True, dialect=conn.dialect
            ) from error
        if not any(plan.results):
            return fetched
        return [
            tuple(v if p is None else p(v) for v, p in zip(row, plan.results, strict=True))
            for row in fetched
        ]

    def first(self, session: Session, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The statement's first row, or None."""
        rows = self.rows(session, values)
        return rows[0] if rows else None


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def first_line(error: BaseException) -> str:
    """The first line of what the database (driver) said, without SQLAlchemy's additions:
    never the statement's values (a signer's name and address) nor a DETAIL line quoting a
    row, so it may be logged or shown."""
    orig = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def is_sqlite(engine_or_url: Engine | URL | str) -> bool:
    """Whether an engine or URL points at SQLite."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def _create_private(path: str) -> None:
    """Create a new SQLite database file readable by its owner only (0600), as the secret
    key and the mail files are: it holds signers' addresses and organizers' password hashes.
    SQLite gives its -wal and -shm files the database file's permissions. An existing file
    is left as it is."""
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with this project's connection settings for its backend.

    Its errors never carry a statement's values (hide_parameters): they are signers' names
    and addresses, and an error's text reaches logs that erasure cannot reach.
    """
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        # The driver's own transaction handling is turned off so that BEGIN IMMEDIATE
        # below takes the write lock at the start of every writing transaction: a deferred
        # read-then-write transaction fails with "database is locked" under concurrency.
        # Read-only requests begin DEFERRED (see _begin_deferred).
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            _create_private(database)
            gate = WriterGate(f"{database}-writers.lock", SQLITE_BUSY_SECONDS)
            connect_args["factory"] = _gated_connection_class(gate)
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if _begin_deferred():
                conn.exec_driver_sql("BEGIN")
                return
            driver = conn.connection.driver_connection
            enter = getattr(driver, "enter_write", None)
            if enter is not None:
                try:
                    enter()
                except sqlite3.OperationalError as error:
                    # As SQLAlchemy wraps the driver's own "database is locked" (a 503).
                    raise OperationalError("BEGIN IMMEDIATE", None, error) from error
            try:
                # On the driver's own connection, as Direct runs the signer's statements: the
                # gate is held from here on, and SQLAlchemy's execution of a driver statement
                # costs more than the BEGIN itself.
                driver.execute("BEGIN IMMEDIATE")
            except BaseException as error:
                if enter is not None:
                    driver.leave_write()
                if isinstance(error, sqlite3.Error):
                    raise OperationalError("BEGIN IMMEDIATE", None, error) from error
                raise

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def database_url(app: Flask) -> str:
    """The configured database URL, or SQLite in the instance folder."""
    url = app.config.get("DATABASE_URL")
    if url:
        return str(url)
    return f"sqlite:///{app.instance_path}/campaign.sqlite3"


def init_app(app: Flask) -> None:
    """Give the app an engine and a session factory, closed at teardown."""
    engine = make_engine(database_url(app))
    app.extensions["engine"] = engine
    app.extensions["sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_engine() -> Engine:
    """The current app's engine."""
    engine: Engine = current_app.extensions["engine"]
    return engine


def new_session(app: Flask | None = None) -> Session:
    """A fresh session for work outside a request (CLI, mail sender, tests)."""
    factory: sessionmaker[Session] = (app or current_app).extensions["sessionmaker"]
    return factory()


def get_session() -> Session:
    """The one session of this request or app context, created on first use."""
    if "db_session" not in g:
        g.db_session = new_session()
    session: Session = g.db_session
    return session


@contextmanager
def session_scope(app: Flask | None = None) -> Iterator[Session]:
    """A session committed on success and rolled back on any exception."""
    session = new_session(app)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        # Anything the view did not commit is dropped: one unit of work per request.
        session.rollback()
        session.close()


def alembic_config(url: str) -> Any:
    """An Alembic config for this package's migrations against the given database."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option(
        "script_location", os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
    )
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to revision (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)
