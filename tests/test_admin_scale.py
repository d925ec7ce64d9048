"""Organizer pages and actions on one signature cost the same in a big campaign as in a small one.

Each test records the SQL a request runs and asks SQLite how it would run each statement:
no statement may read the whole signature, outbox or audit table (a SCAN without a key).
The statistics are gathered (ANALYZE) on a campaign shaped like a real big one: thousands
of confirmed signers, one held duplicate, one mail each, so the planner sees the same
skew it sees in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from admin_helpers import (
    AuthActions,
    csrf_token,
    insert_members,
    make_campaign,
    make_organizer,
    make_signature,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, insert, text
from sqlalchemy.orm import Session

from campaign import db as dbmod
from campaign.models import AuditEntry, Campaign, OutboxMessage, Signature

BIG = 3000
WATCHED = ("signature", "outbox_message", "audit_entry")


def _big_campaign(db: Session, *, held: bool = True) -> tuple[Campaign, Signature, Signature]:
    """A campaign of BIG confirmed signers with a mail and an audit entry each, a possible pair.

    With held=False the pair's second signer is in another campaign: none is held here.
    """
    campaign = make_campaign(db, "big")
    now = dbmod.utcnow()
    insert_members(db, campaign, BIG, status="confirmed", counted=True, confirmed_at=now)
    first = make_signature(db, campaign, "Ana Pérez", "ana@example.es", country="ES")
    other = campaign if held else make_campaign(db, "other")
    second = make_signature(
        db, other, "Ana Perez", "ana.perez@example.es", country="ES", duplicate_of=first
    )
    ids = list(db.scalars(text("SELECT id FROM signature ORDER BY id")))
    db.execute(
        insert(OutboxMessage),
        [
            {"to_addr": "x@example.org", "subject": "s", "body_text": "b", "message_id": f"<{i}@x>"}
            | {"signature_id": i, "sent_at": now}
            for i in ids
        ],
    )
    db.execute(
        insert(AuditEntry),
        [
            {"campaign_id": campaign.id, "signature_id": i, "action": "signature.verify"}
            for i in ids
        ],
    )
    db.commit()
    db.execute(text("ANALYZE"))
    db.commit()
    return campaign, first, second


@contextmanager
def full_scans(app: Flask) -> Iterator[list[str]]:
    """The plan steps that read a watched table without a key, for every statement run."""
    engine = app.extensions["engine"]
    statements: list[tuple[str, Any]] = []

    def remember(
        conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
            statements.append((statement, parameters))

    scans: list[str] = []
    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield scans
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    with engine.connect() as conn:
        for statement, parameters in statements:
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters):
                step = str(row[-1])
                if step.startswith("SCAN") and step.split()[1] in WATCHED:
                    scans.append(f"{step}  <-  {' '.join(statement.split())[:160]}")


def _logged_in(app: Flask, db: Session, campaign: Campaign) -> FlaskClient:
    make_organizer(db, "org@example.org", campaigns=(campaign,))
    client = app.test_client()
    assert AuthActions(client).login("org@example.org").status_code == 303
    return client


@pytest.mark.parametrize("held", [True, False], ids=["one-held", "none-held"])
def test_the_duplicates_page_reads_only_the_held_signatures(
    app: Flask, db: Session, held: bool
) -> None:
    campaign, _first, second = _big_campaign(db, held=held)
    client = _logged_in(app, db, campaign)
    with full_scans(app) as scans:
        page = client.get("/admin/c/big/duplicates")
    assert page.status_code == 200
    assert (f"/signatures/{second.id}" in page.get_data(as_text=True)) is held
    assert scans == []


def test_a_signature_page_reads_only_that_signature_s_rows(app: Flask, db: Session) -> None:
    campaign, first, held = _big_campaign(db)
    client = _logged_in(app, db, campaign)
    with full_scans(app) as scans:
        page = client.get(f"/admin/c/big/signatures/{first.id}")
    assert page.status_code == 200
    # The held signature that resembles it is listed.
    assert f"/admin/c/big/signatures/{held.id}" in page.get_data(as_text=True)
    assert scans == []


def test_erasing_a_signature_reads_only_that_signature_s_rows(app: Flask, db: Session) -> None:
    campaign, first, _held = _big_campaign(db)
    client = _logged_in(app, db, campaign)
    path = f"/admin/c/big/signatures/{first.id}"
    form = {"action": "erase", "confirm_erase": "y"}
    if app.config.get("WTF_CSRF_ENABLED", True):
        form["csrf_token"] = csrf_token(client, path)
    with full_scans(app) as scans:
        done = client.post(path, data=form)
    assert done.status_code == 303
    db.expire_all()
    erased = db.get(Signature, first.id)
    assert erased is not None and erased.erased_at is not None
    mails = text("SELECT count(*) FROM outbox_message WHERE signature_id = :id")
    assert db.scalar(mails, {"id": first.id}) == 0
    assert scans == []
