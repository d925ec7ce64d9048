"""Alembic environment: migrations run against the URL the caller put in the config."""

from __future__ import annotations

from alembic import context

from campaign import models  # noqa: F401 - registers the tables on Base.metadata
from campaign.db import Base, make_engine

config = context.config
url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("no database URL given to the migrations")


def run_migrations_online() -> None:
    """Run the migrations on one connection, in one transaction."""
    engine = make_engine(str(url))
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                # SQLite's DDL is transactional too (Alembic assumes not): a revision that
                # refuses to run leaves every step before it undone, as on PostgreSQL.
                transactional_ddl=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        # A revision that refuses to run must not leave its connection to the collector.
        engine.dispose()


run_migrations_online()
