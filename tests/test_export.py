"""The CSV export: the contract's columns and bytes, filters, BOM, filename, flat memory."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
import threading
import tracemalloc
from typing import Any

import pytest
from app_helpers import AppFactory
from data_helpers import login, make_campaign, make_organizer, sign, verify
from flask import Flask
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.orm import Session

from campaign import db as dbmod
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
        "=SUM(A1)",
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
        b"1,2026-11-02T09:30:15Z,2026-11-03T18:00:59Z,confirmed,true,false,'=SUM(A1),'-2,'@x,'+33,"
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
    app.config["organizer"] = organizer
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
            "?status=&country=&continent=&verified=&held=&source=&q=&sort=name&dir=asc",
            ["Anna Counted", "Bob Pending", "Anna Counted", "Chen Verified", "Dina Imported"],
        ),
        ("?status=Pending&country=de&verified=No", ["Bob Pending"]),
        # The CLI's word for every status (export-csv --status all).
        (
            "?status=all",
            ["Anna Counted", "Bob Pending", "Anna Counted", "Chen Verified", "Dina Imported"],
        ),
        ("?status=ALL&country=de", ["Bob Pending"]),
    ],
)
def test_export_applies_the_lists_filters(mixed: Flask, query: str, names: list[str]) -> None:
    client = _logged_in(mixed)
    response = client.get("/admin/c/release/export.csv" + query)
    assert response.status_code == 200
    assert _names(response.data) == names


def _logged_in(app: Flask):  # type: ignore[no-untyped-def]
    return login(app.test_client(), app.config["organizer"])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "?status=bogus",
            "Unknown status filter: bogus. Use one of: counted, pending, held, confirmed, "
            "rejected, withdrawn, erased, all; or leave it empty.",
        ),
        (
            "?verified=maybe",
            "Unknown verified filter: maybe. Use one of: yes, no; or leave it empty.",
        ),
        ("?held=2", "Unknown held filter: 2. Use one of: yes, no; or leave it empty."),
        ("?source=fax", "Unknown source filter: fax. Use one of: form, import; or leave it empty."),
        (
            "?continent=ZZ",
            "Unknown continent filter: ZZ. Use one of: AF, AN, AS, EU, NA, OC, SA; "
            "or leave it empty.",
        ),
        (
            "?country=XX",
            "Unknown country filter: XX. Use a two-letter country code such as FR, "
            "or leave it empty.",
        ),
    ],
)
def test_a_mistyped_filter_exports_nothing_and_says_why(
    mixed: Flask, query: str, message: str
) -> None:
    response = _logged_in(mixed).get("/admin/c/release/export.csv" + query)

    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert "Content-Disposition" not in response.headers
    assert response.get_data(as_text=True) == f"Nothing was exported.\n{message}\n"
    db = new_session(mixed)
    assert (
        db.scalars(select(AuditEntry).where(AuditEntry.action == "signatures.export")).all() == []
    )
    db.close()


def test_every_mistyped_filter_is_named_and_in_the_readers_language(mixed: Flask) -> None:
    client = _logged_in(mixed)
    response = client.get(
        "/admin/c/release/export.csv?status=nonsense&country=XX",
        headers={"Accept-Language": "fr"},
    )

    assert response.status_code == 400
    lines = response.get_data(as_text=True).splitlines()
    assert len(lines) == 3
    assert "nonsense" in lines[1] and "XX" in lines[2]
    assert "Nothing was exported" not in lines[0]  # translated


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


# --- parallel reads: ranges of ids read by a few threads, handed back in order ---------------

# Text that CSV and spreadsheets treat specially: quotes, separators, line breaks, formula
# triggers in every position a cell can hold them, and text beyond ASCII.
ODD_TEXT = (
    "Anna Smith",
    'Ol"ga "Q" Petrova',
    "Zoë Ölçer",
    '=HYPERLINK("http://x")',
    "+33 Dupont",
    "-Minus",
    "@Handle",
    "\tTabbed",
    "\rCarriage",
    "Comma, Name",
    "李小龙",
    "مريم",
    "Emoji 🎉 party",
    "two\nlines",
    "crlf\r\nend",
    "",
    " =leading space",
    "a=b",
)
COUNTRIES = ("FR", "BQ", "TR", "JP", "KE", "US", "NZ", "AS", "NA", "DE")
STATUSES = ("confirmed", "pending", "held", "confirmed", "rejected", "withdrawn")


def _odd(i: int, shift: int) -> str:
    return ODD_TEXT[(i * 7 + shift) % len(ODD_TEXT)]


def _varied_row(i: int, campaign_id: int) -> dict[str, object]:
    """Signature i (its id too): every kind of status, place and awkward text, by turns."""
    status = STATUSES[i % len(STATUSES)]
    country = COUNTRIES[i % len(COUNTRIES)]
    signed = dt.datetime(2026, 10, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i, microseconds=i)
    return {
        "id": i,
        "campaign_id": campaign_id,
        "signed_at": signed,
        "updated_at": signed,
        "name": _odd(i, 0),
        "title": _odd(i, 3),
        "parliament": _odd(i, 5),
        "party": _odd(i, 11),
        "country_code": country,
        "continent_code": geo.continent_of(country),
        "email": f"{'=' if i % 13 == 0 else ''}p{i}@example.org",
        "email_key": f"p{i}@example.org",
        "email_domain": "example.org",
        "name_key": f"{i} person",
        "comment": _odd(i, 1) + (" " + _odd(i, 2) if i % 2 else ""),
        "public": i % 2 == 0,
        "source": "import" if i % 3 == 0 else "form",
        "locale": "en",
        "status": status,
        "counted": status == "confirmed",
        "confirmed_at": None if status == "pending" else signed + dt.timedelta(hours=1),
        "verified_at": signed + dt.timedelta(days=1) if i % 4 == 0 else None,
        "rejected_reason": "",
        "duplicate_state": "held" if status == "held" else None,
        "duplicate_notices": 0,
    }


def _sparse_campaigns(db: Session) -> tuple[Campaign, Campaign]:
    """Ours and another campaign over ids 1-1100: interleaved, a gap, a run of the other's
    rows, then ours again with rows missing (deleted)."""
    ours = make_campaign(db, "release")
    other = make_campaign(db, "other")
    rows = [_varied_row(i, other.id if i % 5 == 0 else ours.id) for i in range(1, 261)]
    rows += [_varied_row(i, other.id) for i in range(701, 781)]
    rows += [_varied_row(i, ours.id) for i in range(781, 1101) if i % 9]
    db.execute(insert(Signature), rows)
    db.commit()
    return ours, other


def _guarded(text: str) -> str:
    return "'" + text if text.startswith(export.FORMULA_PREFIXES) else text


def _iso(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _csv_module_export(app: Flask, campaign_id: int, flt: export.SignatureFilter) -> str:
    """The export as the csv module writes it from the ORM's values: the reference."""
    db = new_session(app)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(export.CSV_COLUMNS)
    stmt = flt.apply(select(Signature).where(Signature.campaign_id == campaign_id))
    for s in db.scalars(stmt.order_by(Signature.id)):
        writer.writerow(
            [
                s.id,
                _iso(s.signed_at),
                _iso(s.confirmed_at),
                s.status,
                "true" if s.counted else "false",
                "true" if s.verified_at else "false",
                *(_guarded(t) for t in (s.name, s.title, s.parliament, s.party)),
                s.country_code,
                geo.country_name(s.country_code),
                s.continent_code,
                geo.continent_name(s.continent_code),
                _guarded(s.email),
                "true" if s.public else "false",
                _guarded(s.comment),
                s.source,
            ]
        )
    db.close()
    return out.getvalue()


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(export.READER_THREAD_NAME)]


FILTERS = (
    export.SignatureFilter(),
    export.SignatureFilter(status="counted"),
    export.SignatureFilter(status="held"),
    export.SignatureFilter(held=False),
    export.SignatureFilter(q="ö"),
    export.SignatureFilter(q='"'),
    export.SignatureFilter(country="BQ"),
    export.SignatureFilter(continent="AS", verified=True),
    export.SignatureFilter(source="import", status="confirmed"),
)


def test_parallel_export_is_byte_identical_to_the_sequential_one(
    any_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK_ROWS", 16)  # ~70 ranges of ids, most of them partial
    db = new_session(any_app)
    ours, _ = _sparse_campaigns(db)
    ours_id = ours.id
    readers_seen = False
    for flt in FILTERS:
        parallel = []
        for piece in export.csv_lines(db, ours, flt, bom=True):
            parallel.append(piece)
            readers_seen |= bool(_reader_threads())
        with monkeypatch.context() as sequential:
            sequential.setattr(export, "READ_THREADS", 1)
            one_by_one = "".join(export.csv_lines(db, ours, flt, bom=True))
            rows_one_by_one = list(export.signature_rows(db, ours, flt))
        expected = _csv_module_export(any_app, ours_id, flt)

        assert "".join(parallel) == one_by_one == export.BOM + expected, flt
        assert list(export.signature_rows(db, ours, flt)) == rows_one_by_one, flt
        assert rows_one_by_one == list(csv.reader(io.StringIO(expected, newline="")))[1:]
    everyone = _csv_module_export(any_app, ours_id, export.SignatureFilter())
    db.close()
    assert readers_seen, "the ranges were read by reader threads"
    assert everyone.count("\r\n") > 400  # the data set is what it claims to be
    for cell in ('"Ol""ga ""Q"" Petrova"', "'=HYPERLINK", "'\tTabbed", '"\'\rCarriage"', "李小龙"):
        assert cell in everyone
    assert _reader_threads() == []


def test_rows_added_during_a_download_are_in_it_once(
    any_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK_ROWS", 16)
    db = new_session(any_app)
    ours, _ = _sparse_campaigns(db)
    ours_id = ours.id
    pieces = export.csv_lines(db, ours)
    head = [next(pieces), next(pieces)]  # the export has begun: the table ends at id 1100
    # Some of these fall in the id range of the last range of ids, not read yet.
    db.execute(insert(Signature), [_varied_row(i, ours_id) for i in range(1101, 1140)])
    db.commit()
    exported = "".join(head + list(pieces))
    db.close()
    assert exported == _csv_module_export(any_app, ours_id, export.SignatureFilter())
    assert "\r\n1139,2026-" in exported
    assert _reader_threads() == []


def test_closing_a_download_early_leaves_no_reader_or_connection_behind(
    any_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK_ROWS", 16)
    db = new_session(any_app)
    ours, _ = _sparse_campaigns(db)
    engine = any_app.extensions["engine"]
    pieces = export.csv_lines(db, ours)
    next(pieces)
    next(pieces)
    assert _reader_threads()

    pieces.close()  # the client went away

    assert _reader_threads() == []
    assert engine.pool.checkedout() == 0
    db.close()


def test_a_client_that_disconnects_mid_download_stops_the_readers(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK_ROWS", 16)
    db = new_session(app)
    ours, _ = _sparse_campaigns(db)
    organizer = make_organizer(db, campaigns=(ours,))
    db.close()
    client = login(app.test_client(), organizer)

    response = client.get("/admin/c/release/export.csv", buffered=False)
    body = iter(response.response)
    assert next(body).startswith(HEADER)
    next(body)
    assert _reader_threads()
    response.close()

    assert _reader_threads() == []
    assert app.extensions["engine"].pool.checkedout() == 0


def test_an_error_in_a_reader_thread_reaches_the_consumer(
    any_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK_ROWS", 16)
    db = new_session(any_app)
    ours, _ = _sparse_campaigns(db)
    # One row in a range in the middle has a country the (broken) name lookup refuses.
    db.execute(update(Signature).where(Signature.id == 151).values(country_code="XK"))
    db.commit()
    failed_in: list[str] = []
    real_country_name = geo.country_name

    def country_name(code: str, locale: str | None = None) -> str:
        if code == "XK":
            failed_in.append(threading.current_thread().name)
            raise LookupError("no name for XK")
        return real_country_name(code, locale)

    monkeypatch.setattr(geo, "country_name", country_name)
    pieces = export.csv_lines(db, ours)
    with pytest.raises(LookupError, match="no name for XK"):
        for _ in pieces:
            pass

    assert failed_in and failed_in[0].startswith(export.READER_THREAD_NAME)
    assert _reader_threads() == []
    assert any_app.extensions["engine"].pool.checkedout() == 0
    db.close()


def test_export_reads_while_another_writer_holds_the_lock(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every read is DEFERRED, in the reader threads too: none waits for the write lock
    # (outside a request the session's transactions otherwise begin IMMEDIATE).
    monkeypatch.setattr(dbmod, "SQLITE_BUSY_SECONDS", 0.5)
    monkeypatch.setattr(export, "CHUNK_ROWS", 16)
    app = app_factory()
    db = new_session(app)
    ours, _ = _sparse_campaigns(db)
    expected = _csv_module_export(app, ours.id, export.SignatureFilter())
    path = app.extensions["engine"].url.database
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE signature SET name = 'changed' WHERE id = 1")
    try:
        exported = "".join(export.csv_lines(db, ours))
    finally:
        holder.rollback()
        holder.close()
        db.close()
    assert exported == expected


def test_every_read_walks_the_primary_key_so_other_campaigns_rows_cost_little(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plan by a campaign index would sort all of the campaign's rows for every range.
    monkeypatch.setattr(export, "CHUNK_ROWS", 16)
    db = new_session(app)
    ours, _ = _sparse_campaigns(db)
    engine = app.extensions["engine"]
    reads: dict[str, tuple[object, ...]] = {}

    def remember(
        conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool
    ) -> None:
        if "printf(" in statement:
            reads[statement] = parameters

    event.listen(engine, "before_cursor_execute", remember)
    try:
        "".join(export.csv_lines(db, ours, export.SignatureFilter(status="counted")))
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    plans = [
        " / ".join(
            str(row[-1])
            for row in db.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        )
        for sql, params in reads.items()
    ]
    db.close()
    assert len(plans) == 2  # the ranges, and the rows added since the export began
    for plan in plans:
        reads_of_signature = [step for step in plan.split(" / ") if "signature" in step]
        assert reads_of_signature == [
            "SEARCH signature USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"
            if "rowid<" in plan
            else "SEARCH signature USING INTEGER PRIMARY KEY (rowid>?)"
        ], plan
        assert "TEMP B-TREE" not in plan, plan


def test_a_field_holding_the_mark_comes_out_as_it_is(
    any_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database joins a read's lines with the place codes between marks (a unit
    # separator); a read whose fields hold one is read again row by row.
    monkeypatch.setattr(export, "CHUNK_ROWS", 16)
    db = new_session(any_app)
    ours, _ = _sparse_campaigns(db)
    ours_id = ours.id
    db.execute(
        update(Signature)
        .where(Signature.id.in_([3, 151, 1100]))
        .values(comment="a\x1fb", party=export.MARK)
    )
    db.commit()
    parallel = "".join(export.csv_lines(db, ours))
    with monkeypatch.context() as sequential:
        sequential.setattr(export, "READ_THREADS", 1)
        one_by_one = "".join(export.csv_lines(db, ours))
    db.close()
    expected = _csv_module_export(any_app, ours_id, export.SignatureFilter())
    assert parallel == one_by_one == expected
    assert expected.count("\x1f") == 6
