"""The CSV export: the contract's columns and bytes, filters, BOM, filename, flat memory."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tracemalloc

import pytest
from data_helpers import login, make_campaign, make_organizer, sign, verify
from flask import Flask
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from campaign import export, geo
from campaign.db import new_session, utcnow
from campaign.models import AuditEntry, Campaign, Signature

HEADER = (
    b"id,signed_at,confirmed_at,status,counted,verified,name,title,parliament,party,"
    b"country_code,country,continent_code,continent,email,public,comment,source\r\n"
)
SIGNED = dt.datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=dt.UTC)
CONFIRMED = dt.datetime(2026, 11, 3, 18, 0, 59, tzinfo=dt.UTC)


def _rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def _names(body: bytes) -> list[str]:
    return [row["name"] for row in _rows(body)]


def test_columns_are_the_contract() -> None:
    assert ",".join(export.CSV_COLUMNS).encode() + b"\r\n" == HEADER


def test_export_bytes_quote_and_defuse_formula_cells(any_app: Flask) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db, require_confirmation=False)
    organizer = make_organizer(db, campaigns=(campaign,))
    sign(
        db,
        campaign,
        "=1+1",
        "=cmd@example.org",
        title="-2",
        parliament="@x",
        party="+33",
        comment='Say "no", twice',
        signed_at=SIGNED,
        confirmed_at=CONFIRMED,
    )
    sign(
        db,
        campaign,
        "Zoë Ölçer",
        "zoe@example.org",
        country="TR",
        public=False,
        comment="two\nlines",
        signed_at=SIGNED,
        confirmed_at=None,
    )
    tab = sign(
        db,
        campaign,
        "Tab Person",
        "tab@example.org",
        country="US",
        signed_at=SIGNED,
        confirmed_at=CONFIRMED,
    )
    # Tab and CR cannot come through the form; older data or a direct edit might hold them.
    tab.party = "\tHYPERLINK"
    tab.comment = "\rcalc"
    db.commit()
    verify(db, organizer, tab)
    db.close()

    client = login(any_app.test_client(), organizer)
    response = client.get("/admin/c/release/export.csv")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.data == HEADER + (
        b"1,2026-11-02T09:30:15Z,2026-11-03T18:00:59Z,confirmed,true,false,'=1+1,'-2,'@x,'+33,"
        b'FR,France,EU,Europe,\'=cmd@example.org,true,"Say ""no"", twice",form\r\n'
        b"2,2026-11-02T09:30:15Z,,confirmed,true,false,Zo\xc3\xab \xc3\x96l\xc3\xa7er,MP,"
        b"National Assembly,Greens,TR,T\xc3\xbcrkiye,AS,Asia,zoe@example.org,false,"
        b'"two\nlines",form\r\n'
        b"3,2026-11-02T09:30:15Z,2026-11-03T18:00:59Z,confirmed,true,true,Tab Person,MP,"
        b"National Assembly,'\tHYPERLINK,US,United States,NA,North America,tab@example.org,"
        b'true,"\'\rcalc",form\r\n'
    )


def test_formula_guard_in_sql_matches_every_trigger(app: Flask) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    cells = ["=A1", "+1", "-1", "@SUM(1)", "\tx", "\rx", "plain", "", "a=b", " =x"]
    for i, cell in enumerate(cells):
        signature = sign(db, campaign, f"Person {i}", f"p{i}@example.org")
        signature.comment = cell
    db.commit()
    comments = [row[16] for row in export.signature_rows(db, campaign)]
    db.close()
    assert comments == ["'=A1", "'+1", "'-1", "'@SUM(1)", "'\tx", "'\rx", "plain", "", "a=b", " =x"]


@pytest.fixture
def mixed(app: Flask) -> Flask:
    """A campaign with one signer of each kind, and its organizer logged in."""
    db = new_session(app)
    campaign = make_campaign(db)
    organizer = make_organizer(db, campaigns=(campaign,))
    sign(db, campaign, "Anna Counted", "anna@example.org", country="FR", party="Liberal")
    sign(db, campaign, "Bob Pending", "bob@example.org", country="DE", confirmed=False)
    held_twin = sign(db, campaign, "Anna Counted", "anna.other@example.org", country="FR")
    assert held_twin.status == "held"
    checked = sign(db, campaign, "Chen Verified", "chen@example.org", country="JP")
    verify(db, organizer, checked)
    imported = sign(db, campaign, "Dina Imported", "dina@example.org", country="KE")
    imported.source = "import"
    db.commit()
    db.close()
    app.config["organizer_id"] = organizer.id
    return app


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("", ["Anna Counted", "Bob Pending", "Anna Counted", "Chen Verified", "Dina Imported"]),
        ("?status=counted", ["Anna Counted", "Chen Verified", "Dina Imported"]),
        ("?status=pending", ["Bob Pending"]),
        ("?status=held", ["Anna Counted"]),
        ("?held=yes", ["Anna Counted"]),
        ("?held=no", ["Anna Counted", "Bob Pending", "Chen Verified", "Dina Imported"]),
        ("?country=de", ["Bob Pending"]),
        ("?continent=AS", ["Chen Verified"]),
        ("?verified=1", ["Chen Verified"]),
        ("?source=import", ["Dina Imported"]),
        ("?q=liberal", ["Anna Counted"]),
        ("?q=CHEN%40example", ["Chen Verified"]),
        ("?q=100%25", []),
        ("?status=counted&continent=EU", ["Anna Counted"]),
        (
            "?status=nonsense&country=XX",
            ["Anna Counted", "Bob Pending", "Anna Counted", "Chen Verified", "Dina Imported"],
        ),
    ],
)
def test_export_applies_the_lists_filters(mixed: Flask, query: str, names: list[str]) -> None:
    client = mixed.test_client()
    with client.session_transaction() as session:
        session["organizer_id"] = mixed.config["organizer_id"]
    response = client.get("/admin/c/release/export.csv" + query)
    assert response.status_code == 200
    assert _names(response.data) == names


def test_bom_and_dated_filename(client, app: Flask) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    organizer = make_organizer(db, campaigns=(campaign,))
    db.close()
    login(client, organizer)

    plain = client.get("/admin/c/release/export.csv")
    with_bom = client.get("/admin/c/release/export.csv?bom=1")

    assert plain.data == HEADER
    assert with_bom.data == b"\xef\xbb\xbf" + HEADER
    today = utcnow().date().isoformat()
    assert plain.headers["Content-Disposition"] == (
        f'attachment; filename="release-signatures-{today}.csv"'
    )
    assert plain.headers["Cache-Control"] == "no-store"


def test_export_is_for_the_campaigns_organizers_only(client, app: Flask) -> None:
    db = new_session(app)
    ours = make_campaign(db, "ours")
    theirs = make_campaign(db, "theirs")
    sign(db, theirs, "Secret Signer", "secret@example.org")
    organizer = make_organizer(db, campaigns=(ours,))
    db.close()

    anonymous = client.get("/admin/c/theirs/export.csv")
    assert anonymous.status_code == 302
    assert "/admin/login" in anonymous.headers["Location"]

    login(client, organizer)
    other = client.get("/admin/c/theirs/export.csv")
    assert other.status_code == 404
    assert b"secret@example.org" not in other.data
    assert client.get("/admin/c/missing/export.csv").status_code == 404


def _bulk_signatures(db: Session, campaign_id: int, count: int) -> None:
    now = utcnow()
    codes = sorted(geo.CONTINENT_OF)
    for start in range(0, count, 10_000):
        db.execute(
            insert(Signature),
            [
                {
                    "campaign_id": campaign_id,
                    "signed_at": now,
                    "updated_at": now,
                    "name": f"Member {i}",
                    "title": "MP",
                    "parliament": "Parliament",
                    "party": "Party",
                    "country_code": codes[i % len(codes)],
                    "continent_code": geo.continent_of(codes[i % len(codes)]),
                    "email": f"m{i}@example.org",
                    "email_key": f"m{i}@example.org",
                    "email_domain": "example.org",
                    "name_key": f"{i} member",
                    "comment": "",
                    "public": True,
                    "source": "form",
                    "locale": "en",
                    "status": "confirmed",
                    "counted": True,
                    "confirmed_at": now,
                    "rejected_reason": "",
                    "duplicate_notices": 0,
                }
                for i in range(start, min(start + 10_000, count))
            ],
        )
    db.commit()


def test_memory_stays_flat_for_a_100000_row_export(app: Flask) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    _bulk_signatures(db, campaign.id, 100_000)

    tracemalloc.start()
    try:
        rows = size = 0
        for piece in export.csv_lines(db, campaign):
            rows += piece.count("\r\n")
            size += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        db.close()

    assert rows == 100_001
    assert size > 8_000_000  # what holding the whole export would cost, at the least
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def _sign_quickly(app: Flask, slug_email: str) -> Signature:
    """Sign in another session that gives up after 100 ms if the database is locked."""
    signer = new_session(app)
    signer.execute(text("PRAGMA busy_timeout = 100"))
    signer.commit()
    campaign = signer.scalar(select(Campaign))
    assert campaign is not None
    signature = sign(signer, campaign, slug_email.split("@")[0].title(), slug_email)
    signer.close()
    return signature


def test_a_download_in_progress_does_not_block_signers(app: Flask) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    _bulk_signatures(db, campaign.id, export.CHUNK_ROWS * 2)
    pieces = export.csv_lines(db, campaign)

    assert next(pieces) == HEADER.decode()  # the client has the header and reads slowly
    _sign_quickly(app, "early@example.org")
    next(pieces)  # now it has the first chunk
    late = _sign_quickly(app, "late@example.org")

    rest = "".join(pieces)
    db.close()
    assert rest.count("\r\n") == export.CHUNK_ROWS + 2
    assert "early@example.org" in rest
    assert "late@example.org" in rest
    assert late.id == export.CHUNK_ROWS * 2 + 2


def test_signature_rows_are_text_cells(app: Flask) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    sign(db, campaign, "Ann Pending", "ann@example.org", confirmed=False, signed_at=SIGNED)
    rows = list(export.signature_rows(db, campaign))
    db.close()
    assert rows == [
        [
            "1",
            "2026-11-02T09:30:15Z",
            "",
            "pending",
            "false",
            "false",
            "Ann Pending",
            "MP",
            "National Assembly",
            "Greens",
            "FR",
            "France",
            "EU",
            "Europe",
            "ann@example.org",
            "true",
            "",
            "form",
        ]
    ]


def test_filter_from_args_ignores_unknown_values() -> None:
    flt = export.SignatureFilter.from_args(
        {
            "q": "  x ",
            "status": "COUNTED",
            "country": "fr",
            "continent": "zz",
            "verified": "maybe",
            "held": "no",
            "source": "fax",
        }
    )
    assert flt == export.SignatureFilter(q="x", status="counted", country="FR", held=False)


def test_country_names_are_not_continent_names(app: Flask) -> None:
    # AF, AS, NA and SA are both country and continent codes.
    db = new_session(app)
    campaign = make_campaign(db)
    for i, code in enumerate(["AF", "AS", "NA", "SA", "BQ"]):
        sign(db, campaign, f"Member {i}", f"m{i}@example.org", country=code)
    places = [(row[10], row[11], row[12], row[13]) for row in export.signature_rows(db, campaign)]
    lines = "".join(export.csv_lines(db, campaign))
    db.close()
    assert places == [
        ("AF", "Afghanistan", "AS", "Asia"),
        ("AS", "American Samoa", "OC", "Oceania"),
        ("NA", "Namibia", "AF", "Africa"),
        ("SA", "Saudi Arabia", "AS", "Asia"),
        ("BQ", "Bonaire, Sint Eustatius and Saba", "NA", "North America"),
    ]
    assert ',BQ,"Bonaire, Sint Eustatius and Saba",NA,North America,' in lines


def test_each_download_is_in_the_audit_trail(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    db = new_session(app)
    campaign = make_campaign(db)
    organizer = make_organizer(db, campaigns=(campaign,))
    db.close()
    login(client, organizer)

    client.get("/admin/c/release/export.csv?status=counted&country=fr&q=&bom=1")

    db = new_session(app)
    entry = db.scalars(select(AuditEntry)).one()
    db.close()
    assert (entry.action, entry.organizer_id, entry.campaign_id) == (
        "signatures.export",
        organizer.id,
        campaign.id,
    )
    assert json.loads(entry.after) == {
        "bom": True,
        "filter": {"country": "FR", "status": "counted"},
    }
