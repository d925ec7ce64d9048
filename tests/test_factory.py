"""The app factory, configuration and the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import create_engine, inspect

from campaign import create_app
from campaign.db import Base, upgrade


def test_testing_config_is_applied(app: Flask) -> None:
    assert app.testing
    assert app.config["DATABASE_URL"].startswith("sqlite:///")


def test_default_app_is_not_testing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CAMPAIGN_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("CAMPAIGN_SECRET_KEY", "from-the-environment-1234")
    app = create_app()
    assert not app.testing
    assert app.config["SECRET_KEY"] == "from-the-environment-1234"
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"


def test_migrations_build_the_models_schema_from_empty(app_factory, backend: str) -> None:
    app = app_factory(backend)
    engine = create_engine(app.config["DATABASE_URL"])
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"campaign", "signature", "tally_count", "organizer", "outbox_message"} <= tables


def test_upgrade_is_idempotent(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/twice.sqlite3"
    upgrade(url)
    upgrade(url)
