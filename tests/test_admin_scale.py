"""Organizer pages and actions on one signature cost the same in a big campaign as in a small one.

Each test records the SQL a request runs and asks SQLite how it would run each statement:
no statement may read the whole signature, outbox or audit table (a SCAN without a key).
The statistics are gathered (ANALYZE) on a campaign shaped like a real big one: thousands
of confirmed signers, one held duplicate, one mail each, so the planner sees the same
skew it sees in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, insert, select, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from campaign import campaigns, review, tally
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
    tally.recount(db, campaign)  # the counters, as signing would have moved them
    db.commit()
    db.execute(text("ANALYZE"))
    db.commit()
    return campaign, first, second


@contextmanager
def recorded(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """Each SELECT, UPDATE, DELETE or INSERT the app runs meanwhile, with its parameters."""
    engine = app.extensions["engine"]
    statements: list[tuple[str, Any]] = []

    def remember(
        conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", remember)


@contextmanager
def plans(app: Flask) -> Iterator[list[tuple[str, list[str]]]]:
    """Each statement run meanwhile, with the steps of SQLite's plan for it (filled at exit)."""
    planned: list[tuple[str, list[str]]] = []
    with recorded(app) as statements:
        yield planned
    with app.extensions["engine"].connect() as conn:
        for statement, parameters in statements:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            planned.append((statement, [str(row[-1]) for row in rows]))


@contextmanager
def full_scans(app: Flask) -> Iterator[list[str]]:
    """The plan steps that read a watched table without a key, for every statement run."""
    scans: list[str] = []
    with plans(app) as planned:
        yield scans
    for statement, steps in planned:
        for step in steps:
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


def _list_reads(planned: list[tuple[str, list[str]]]) -> tuple[list[str], list[str]]:
    """The plan of the list's one page read, and the statements that counted the list."""
    pages = [
        steps
        for statement, steps in planned
        if re.search(r"FROM signature.*LIMIT", statement, re.S)
    ]
    assert len(pages) == 1, planned
    counts = [s for s, _ in planned if re.search(r"count\(\*\).*FROM \(SELECT", s, re.S)]
    return pages[0], counts


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("sort", sorted(review.SORTS))
def test_a_page_of_the_list_in_any_order_is_one_range_of_an_index(
    app: Flask, db: Session, sort: str, direction: str
) -> None:
    # Sorting every signer of the letter for each page took 2.6 s at a million on SQLite.
    campaign, _first, _held = _big_campaign(db)
    client = _logged_in(app, db, campaign)
    with plans(app) as planned:
        page = client.get(f"/admin/c/big/signatures?sort={sort}&dir={direction}&page=3")
    assert page.status_code == 200
    assert "Page 3 of 61" in page.get_data(as_text=True)
    steps, counts = _list_reads(planned)
    assert [step for step in steps if "TEMP B-TREE" in step or step.startswith("SCAN")] == []
    # The total is the status counts' sum, shown above the list anyway: no COUNT of the list.
    assert counts == []


@pytest.mark.parametrize("status", ["confirmed", "counted", "held"])
def test_a_status_s_list_takes_its_total_from_the_counts_and_others_count(
    app: Flask, db: Session, status: str
) -> None:
    campaign, _first, _held = _big_campaign(db)
    client = _logged_in(app, db, campaign)
    with plans(app) as planned:
        assert client.get(f"/admin/c/big/signatures?status={status}").status_code == 200
    assert _list_reads(planned)[1] == []
    with plans(app) as planned:
        page = client.get("/admin/c/big/signatures?country=FR&sort=name")
    assert "3,000 signatures match" in page.get_data(as_text=True)
    assert len(_list_reads(planned)[1]) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("sort", sorted(review.SORTS))
def test_a_page_of_the_list_in_any_order_is_read_from_an_index_on_postgresql(
    app_factory: Any, sort: str, direction: str
) -> None:
    app = app_factory("postgres")
    with dbmod.new_session(app) as db:
        campaign, _first, _held = _big_campaign(db)
        client = _logged_in(app, db, campaign)
    with recorded(app) as statements:
        page = client.get(f"/admin/c/big/signatures?sort={sort}&dir={direction}&page=3")
    assert page.status_code == 200
    ((statement, parameters),) = [
        (s, p) for s, p in statements if re.search(r"FROM signature.*LIMIT", s, re.S)
    ]
    with app.extensions["engine"].connect() as conn:
        # A small table is cheap to scan and sort: ask whether an index gives the order.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
        plan = "\n".join(
            str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        )
    assert "Index Scan" in plan, plan
    # An incremental sort orders only the rows of one key the index gives in order.
    assert not re.search(r"(?<!Incremental )Sort  \(cost", plan), plan


# --------------------------------------------------------------------------- revision 0015

NAME_INDEX = "ix_signature_campaign_name"


def _index_sql(url: str, name: str = NAME_INDEX) -> str | None:
    """The stored definition of an index of that name, or None when there is none."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                query = "SELECT sql FROM sqlite_master WHERE name = :n"
            else:
                query = "SELECT indexdef FROM pg_indexes WHERE indexname = :n"
            found = conn.execute(text(query), {"n": name}).scalar()
    finally:
        engine.dispose()
    return None if found is None else str(found)


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        (NAME_INDEX, r"\(campaign_id, lower\(\(?name\)?(::text)?\), id\)"),
        ("ix_signature_campaign_version", r"\(campaign_id, letter_version, status\)"),
    ],
)
def test_revision_0015_indexes_the_signers_and_downgrades(
    empty_database: str, name: str, columns: str
) -> None:
    url = empty_database
    before = "0014"
    dbmod.upgrade(url, before)
    engine = create_engine(url)
    with Session(engine) as db:
        campaign = make_campaign(db, "big")
        insert_members(db, campaign, 20)
    engine.dispose()
    assert _index_sql(url, name) is None
    dbmod.upgrade(url)  # what `campaign db upgrade` runs
    made = _index_sql(url, name)
    assert made is not None
    assert re.search(columns, made), made
    command.downgrade(dbmod.alembic_config(url), before)
    assert _index_sql(url, name) is None
    dbmod.upgrade(url)
    assert _index_sql(url, name) == made


def test_the_migrated_name_index_is_the_models_on_sqlite(app: Flask, db: Session) -> None:
    # Alembic cannot compare an index on an expression on SQLite: compare its SQL instead.
    (model,) = [ix for ix in Signature.__table__.indexes if ix.name == NAME_INDEX]
    assert _index_sql(app.config["DATABASE_URL"]) == str(CreateIndex(model).compile(db.get_bind()))


def _whole_letter_reads(planned: list[tuple[str, list[str]]]) -> list[str]:
    """The plan steps that read every signature of a letter (by its id alone), outside a page."""
    return [
        f"{step}  <-  {' '.join(statement.split())[:160]}"
        for statement, steps in planned
        if "LIMIT" not in statement
        for step in steps
        if step.startswith("SCAN signature")
        or re.fullmatch(r"SEARCH signature USING .*\(campaign_id=\?\)", step)
    ]


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/admin/c/big/signatures", "/admin/c/big/signatures?status=held&sort=name"],
)
def test_the_counts_per_status_read_no_confirmed_signer(app: Flask, db: Session, path: str) -> None:
    # The confirmed signers are the counted ones, whose number the tally's counters hold: the
    # counts above a list of a million took 0.1-0.2 s reading each of them.
    campaign, _first, _held = _big_campaign(db)
    client = _logged_in(app, db, campaign)
    with plans(app) as planned:
        page = client.get(path)
    assert page.status_code == 200
    assert "3,001" in page.get_data(as_text=True)  # confirmed
    assert _whole_letter_reads(planned) == []


def test_the_signers_of_each_version_are_counted_without_reading_the_letter(
    app: Flask, db: Session
) -> None:
    campaign, _first, _held = _big_campaign(db)  # 3,002 signers of the text, one of them held
    client = _logged_in(app, db, campaign)
    path = "/admin/c/big/edit"
    with plans(app) as planned:
        page = client.get(path).get_data(as_text=True)
    assert "3,002 people signed the current text" in page
    assert _whole_letter_reads(planned) == []
    campaigns.update_campaign(db, campaign, new_version=True, letter="The second text.")
    db.commit()
    for i in range(2):
        make_signature(db, campaign, f"Late {i}", f"late{i}@example.org", letter_version=2)
    make_signature(db, campaign, "Late 2", "late2@example.org", letter_version=2, confirmed=False)
    db.execute(text("ANALYZE"))
    db.commit()
    assert campaigns.signers_by_version(db, campaign) == {1: 3002, 2: 3}
    form = {
        "slug": "big",
        "title": campaign.title,
        "letter": "The second text, changed.",
        "recipient": campaign.recipient,
        "state": campaign.state,
        "require_confirmation": "y",
        "save": "1",
    }
    db.rollback()  # reading holds SQLite's write lock on the app's engine
    if app.config.get("WTF_CSRF_ENABLED", True):
        form["csrf_token"] = csrf_token(client, path)
    with plans(app) as planned:
        page = client.get(path).get_data(as_text=True)
        changed = client.post(path, data=form)
    assert "3 people signed the current text" in page
    assert changed.status_code == 400  # the tick was not given
    assert "3 people signed the current text" in changed.get_data(as_text=True)
    assert _whole_letter_reads(planned) == []


def test_an_upgraded_letter_with_statistics_still_reads_one_page_in_every_order(
    tmp_path: Path,
) -> None:
    # SQLite plans with what ANALYZE stored (an import runs it); an index it has no figures
    # for looks like one that finds ten rows per letter. Upgraded without its figures, the
    # list sorted a million rows per page (3 s) instead of reading fifty.
    url = f"sqlite:///{tmp_path}/analyzed.sqlite3"
    dbmod.upgrade(url, "0014")
    engine = create_engine(url)
    with Session(engine) as db:
        campaign = make_campaign(db, "big")
        insert_members(db, campaign, BIG, status="confirmed", counted=True)
        db.execute(text("ANALYZE"))
        db.commit()
    engine.dispose()
    dbmod.upgrade(url)  # before the new code starts, as README says
    engine = create_engine(url)
    with engine.connect() as conn:
        for sort in review.SORTS:
            for descending in (False, True):
                order = review.list_order(sort, descending)
                query = (
                    select(Signature.id)
                    .where(Signature.campaign_id == 1)
                    .order_by(*order)
                    .limit(50)
                )
                sql = query.compile(conn, compile_kwargs={"literal_binds": True})
                steps = [str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
                assert [s for s in steps if "TEMP B-TREE" in s] == [], (sort, descending, steps)
    engine.dispose()
