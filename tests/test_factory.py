"""The app factory, configuration and the migrations."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import make_campaign, make_signature
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaign import create_app, mail
from campaign.db import Base, alembic_config, new_session, upgrade, utcnow
from campaign.models import Campaign, Signature

POSTGRES_ENV = "CAMPAIGN_TEST_POSTGRES_URL"


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


def _modelled(name: str | None, kind: str, parent: object) -> bool:
    """Whether the models describe a schema object: not PostgreSQL's pg_trgm index of the
    organizer's search (revision 0014), which SQLAlchemy cannot describe."""
    return not (kind == "index" and name == "ix_signature_search")


# SQLAlchemy cannot reflect an index on an expression from SQLite, so Alembic cannot compare
# ix_signature_listed and ix_signature_campaign_name there (tests/test_signatories.py and
# tests/test_admin_scale.py compare their SQL instead).
@pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index ix_signature_listed",
    "ignore:autogenerate skipping metadata-specified expression-based index 'ix_signature_listed'",
    "ignore:Skipped unsupported reflection of expression-based index ix_signature_campaign_name",
    "ignore:autogenerate skipping metadata-specified expression-based index"
    " 'ix_signature_campaign_name'",
)
def test_migrations_build_the_models_schema_from_empty(app_factory, backend: str) -> None:
    app = app_factory(backend)
    engine = create_engine(app.config["DATABASE_URL"])
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _modelled})
        diff = compare_metadata(context, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"campaign", "signature", "tally_count", "organizer", "outbox_message"} <= tables


def test_upgrade_is_idempotent(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/twice.sqlite3"
    upgrade(url)
    upgrade(url)


def _outbox_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {column["name"] for column in inspect(conn).get_columns("outbox_message")}
    finally:
        engine.dispose()


def test_revision_0002_keeps_queued_mail_and_downgrades_once_it_is_sent(
    app_factory: Any, empty_database: str
) -> None:
    url = empty_database
    upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        # A mail queued by revision 0001's code: composed when it was queued.
        conn.execute(
            text(
                "INSERT INTO outbox_message (created_at, to_addr, subject, body_text, "
                "message_id, attempts, next_attempt_at, last_error) VALUES (:now, "
                "'ada@example.org', 'Old mail', 'Queued before the upgrade', '<1@x>', 0, :now, '')"
            ),
            {"now": utcnow()},
        )
    upgrade(url)
    assert {"kind", "link_base"} <= _outbox_columns(url)
    app = app_factory(DATABASE_URL=url)
    with app.app_context(), new_session(app) as db:
        campaign = Campaign(slug="c", title="A letter", state="open")
        signature = Signature(
            campaign=campaign,
            name="Ada",
            country_code="GB",
            continent_code="EU",
            email="ada@example.org",
            email_key="ada@example.org",
            name_key="ada",
        )
        db.add(signature)
        db.flush()
        mail.queue_confirmation(db, signature)
        db.commit()
    # An unsent mail of a kind has no text yet for revision 0001's sender to send.
    with pytest.raises(RuntimeError, match="1 queued mails are composed when sent"):
        command.downgrade(alembic_config(url), "0001")
    assert {"kind", "link_base"} <= _outbox_columns(url)
    assert mail.deliver_due(app) == 2
    app.extensions["engine"].dispose()
    command.downgrade(alembic_config(url), "0001")
    assert not {"kind", "link_base"} & _outbox_columns(url)
    with engine.connect() as conn:
        subjects = conn.execute(
            text("SELECT subject FROM outbox_message WHERE sent_at IS NOT NULL ORDER BY id")
        ).scalars()
        assert list(subjects) == ["Old mail", "Please confirm your signature: A letter"]
    engine.dispose()


def _insert_receipt_row(url: str) -> None:
    """An outbox row of kind 'receipt', inserted as SQL (no check but the database's)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO outbox_message (created_at, to_addr, kind, subject, body_text, "
                    "message_id, attempts, next_attempt_at, last_error) VALUES (:now, "
                    "'ada@example.org', 'receipt', '', '', '<2@x>', 0, :now, '')"
                ),
                {"now": utcnow()},
            )
    finally:
        engine.dispose()


def test_revision_0006_lets_the_outbox_hold_receipts_and_downgrades_once_they_are_sent(
    app_factory: Any, empty_database: str
) -> None:
    url = empty_database
    upgrade(url, "0005")
    with pytest.raises(IntegrityError):
        _insert_receipt_row(url)
    upgrade(url)
    app = app_factory(DATABASE_URL=url)
    with app.app_context(), new_session(app) as db:
        campaign = Campaign(slug="c", title="A letter", state="open", require_confirmation=False)
        signature = Signature(
            campaign=campaign,
            name="Ada",
            country_code="GB",
            continent_code="EU",
            email="ada@example.org",
            email_key="ada@example.org",
            name_key="ada",
            status="confirmed",
        )
        db.add(signature)
        db.flush()
        mail.queue_receipt(db, signature)
        db.commit()
    # Revision 0005's sender cannot compose a receipt: refuse while one waits.
    with pytest.raises(RuntimeError, match="1 queued receipts are composed when sent"):
        command.downgrade(alembic_config(url), "0005")
    assert mail.deliver_due(app) == 1
    app.extensions["engine"].dispose()
    command.downgrade(alembic_config(url), "0005")
    engine = create_engine(url)
    with engine.connect() as conn:
        # The sent receipt is kept as what it said: a mail stored whole, of no kind.
        sent = conn.execute(text("SELECT kind, subject FROM outbox_message")).all()
    engine.dispose()
    assert [tuple(row) for row in sent] == [(None, "Receipt for your signature: A letter")]
    with pytest.raises(IntegrityError):
        _insert_receipt_row(url)


def _index_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            return {
                index["name"] or ""
                for table in ("signature", "audit_entry", "outbox_message")
                for index in found.get_indexes(table)
            }
    finally:
        engine.dispose()


@pytest.mark.filterwarnings(
    # SQLAlchemy cannot read an index on an expression back from SQLite; 0003's own test
    # compares that one's SQL.
    "ignore:Skipped unsupported reflection of expression-based index ix_signature_listed",
)
def test_revision_0004_adds_the_lookup_indexes_and_takes_them_back(empty_database: str) -> None:
    url = empty_database
    added = {
        "ix_signature_campaign_status_signed",
        "ix_signature_duplicate_of",
        "ix_audit_entry_signature",
        "ix_outbox_message_signature",
    }
    upgrade(url, "0003")
    before = _index_names(url)
    assert "ix_signature_campaign_status" in before
    assert not added & before
    upgrade(url, "0004")
    after = _index_names(url)
    assert added <= after
    assert "ix_signature_campaign_status" not in after
    command.downgrade(alembic_config(url), "0003")
    assert _index_names(url) == before


def _organizer_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {column["name"] for column in inspect(conn).get_columns("organizer")}
    finally:
        engine.dispose()


def test_revision_0007_gives_existing_organizers_session_epoch_0_and_downgrades(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url, "0006")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizer (email, name, password_hash, is_admin, active, "
                "failed_logins, created_at) VALUES ('ann@example.org', 'Ann', 'x', false, true, "
                "0, :now)"
            ),
            {"now": utcnow()},
        )
    upgrade(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT email, session_epoch FROM organizer")).all() == [
            ("ann@example.org", 0)
        ]
    command.downgrade(alembic_config(url), "0006")
    assert "session_epoch" not in _organizer_columns(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT email FROM organizer")).scalars().all() == [
            "ann@example.org"
        ]
    engine.dispose()


def test_revision_0017_holds_signatures_rejected_as_duplicates_against_the_one_kept(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url)
    engine = create_engine(url)
    db = Session(engine, expire_on_commit=False)
    letter, other_letter = make_campaign(db, "one"), make_campaign(db, "two")
    kept = make_signature(db, letter, "Ann Lee", "ann@parl.example")
    rejected = make_signature(db, letter, "Ann Lee", "lee@parl.example")
    elsewhere = make_signature(db, other_letter, "Ann Lee", "ann@senate.example")
    # As "keep this one" left them before: the kept one distinct, the rejected one unflagged.
    kept.duplicate_of_id, kept.duplicate_state = rejected.id, "distinct"
    rejected.rejected_at, rejected.rejected_reason = utcnow(), f"duplicate of #{kept.id}"
    # An organizer's own reasons, and one naming another letter's signature: left alone.
    own = make_signature(db, letter, "Bo Ek", "bo@parl.example")
    own.rejected_at, own.rejected_reason = utcnow(), f"duplicate of #{kept.id}, says Bo"
    foreign = make_signature(db, letter, "Cy Ng", "cy@parl.example")
    foreign.rejected_at, foreign.rejected_reason = utcnow(), f"duplicate of #{elsewhere.id}"
    db.commit()
    ids = [kept.id, rejected.id, own.id, foreign.id]
    db.close()
    command.downgrade(alembic_config(url), "0016")
    upgrade(url)
    with engine.connect() as conn:
        flags = conn.execute(
            text("SELECT id, duplicate_of_id, duplicate_state FROM signature ORDER BY id")
        ).all()
    assert [tuple(row) for row in flags if row[0] in ids] == [
        (kept.id, None, None),
        (rejected.id, kept.id, "held"),
        (own.id, None, None),
        (foreign.id, None, None),
    ]
    engine.dispose()


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # It holds signers' addresses and password hashes, as the secret key file (0600) does.
    path = tmp_path / "new.sqlite3"
    old = os.umask(0o022)
    try:
        upgrade(f"sqlite:///{path}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM campaign")).scalar() == 0
    engine.dispose()
