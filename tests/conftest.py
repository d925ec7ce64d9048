"""Fixtures: an app on a fresh SQLite file (and on PostgreSQL when configured), clients, runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from app_helpers import AppFactory, base_config
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from pg_helpers import fresh_database
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from campaign import create_app
from campaign import db as dbmod

if TYPE_CHECKING:
    from test_mail import SmtpServer

POSTGRES_ENV = "CAMPAIGN_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run; skipped only when unset."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    with fresh_database(base) as url:
        dbmod.upgrade(url)
        yield url


def _truncate_postgres(url: str) -> None:
    """Empty every table of the run's database for the next test.

    A test that failed while its session held a transaction open leaves that connection
    behind, with its locks; TRUNCATE would wait for it forever and hang the run instead of
    letting the next test start. Such leftovers are ended first, and a lock still held after
    that fails the TRUNCATE within a minute instead of hanging.
    """
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.execute(text("SET LOCAL lock_timeout = '60s'"))
        tables = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        if names:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def app_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AppFactory]:
    """Build apps on this test's SQLite file (or backend='postgres'), with config overrides."""
    made: list[Flask] = []
    os.environ["CAMPAIGN_INSTANCE_PATH"] = str(tmp_path / "instance")

    def factory(backend: str = "sqlite", **overrides: Any) -> Flask:
        if backend == "postgres":
            url = request.getfixturevalue("postgres_url")
            if not made:
                _truncate_postgres(url)
        else:
            url = f"sqlite:///{tmp_path}/test.sqlite3"
            dbmod.upgrade(url)
        config = base_config(tmp_path / "instance", url)
        config.update(overrides)
        app = create_app(config)
        made.append(app)
        return app

    yield factory
    os.environ.pop("CAMPAIGN_INSTANCE_PATH", None)
    for app in made:
        app.extensions["engine"].dispose()


@pytest.fixture
def app(app_factory: AppFactory) -> Flask:
    """An app on a fresh SQLite database."""
    return app_factory()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each database backend in turn; PostgreSQL only when configured."""
    if request.param == "postgres" and not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return str(request.param)


@pytest.fixture
def any_app(app_factory: AppFactory, backend: str) -> Flask:
    """An app on each backend in turn."""
    return app_factory(backend)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the SQLite app."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner of the SQLite app."""
    return app.test_cli_runner()


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A session on the SQLite app's database.

    No app context stays pushed while the test runs: a test-client request would reuse
    it, and with it `g` and the request's session, unlike any real request.
    """
    session = dbmod.new_session(app)
    yield session
    session.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server on loopback, collecting envelopes (tests/test_mail.py)."""
    from test_mail import SmtpServer

    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend in turn, for migrations step by step."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/steps.sqlite3"
        return
    with fresh_database(os.environ[POSTGRES_ENV], "campaign_migrations") as url:
        yield url
