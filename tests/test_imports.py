"""CSV import: preview, apply, the form's duplicate rules, and every bad file refused whole."""

from __future__ import annotations

import io
import json
import os
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from data_helpers import counted_by_country, login, make_campaign, make_organizer, sign
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from campaign import i18n, imports, mail, tally
from campaign.db import new_session
from campaign.models import AuditEntry, Campaign, OutboxMessage, Signature, TallyCount

HEADER = "name,title,parliament,party,country_code,email,public,comment\r\n"


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(row + "\r\n" for row in rows)).encode("utf-8")


def _file(tmp_path: Path, data: bytes, name: str = "upload.csv") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _import(db: Session, campaign: Campaign, path: str, *, count_now: bool) -> imports.ImportReport:
    """Apply a file as the CLI does (no organizer)."""
    layout = imports.check_file(path, max_bytes=10**6)
    return imports.apply(db, campaign, path, layout, organizer=None, count_now=count_now)


def _count(app: Flask, model: type, **where: object) -> int:
    db = new_session(app)
    try:
        stmt = select(func.count()).select_from(model)
        for key, value in where.items():
            stmt = stmt.where(getattr(model, key) == value)
        return int(db.scalar(stmt) or 0)
    finally:
        db.close()


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.fixture
def setup(app: Flask, client: FlaskClient) -> tuple[Flask, FlaskClient]:
    """A letter needing confirmation, one earlier signer, and its organizer logged in."""
    db = new_session(app)
    campaign = make_campaign(db)
    organizer = make_organizer(db, campaigns=(campaign,))
    sign(db, campaign, "Ingrid Existing", "ingrid@example.org", country="NO")
    db.close()
    login(client, organizer)
    return app, client


def _upload(client: FlaskClient, data: bytes, name: str = "paper.csv"):  # type: ignore[no-untyped-def]
    return client.post(
        "/admin/c/release/import",
        data={"step": "preview", "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def _apply(client: FlaskClient, preview, mode: str = "count_now"):  # type: ignore[no-untyped-def]
    token = re.search(r'name="token"[^>]*value="([^"]+)"', preview.get_data(as_text=True))
    assert token, "no apply form on the preview"
    return client.post(
        "/admin/c/release/import",
        data={
            "step": "apply",
            "token": token.group(1),
            "mode": mode,
            "locale": "en",
            "filename": "paper.csv",
        },
    )


PAPER_ROWS = (
    "Anna Müller,MP,Bundestag,Greens,DE,anna@example.org,yes,",
    'Bob Smith,Senator,Senate,,US,bob@example.org,no,"two\nlines"',
    "Dr. Anna Muller,MP,Bundestag,Greens,DE,anna.m@example.org,yes,",
    "Bad Row,MP,Somewhere,,ZZ,not-an-email,maybe,",
    "Anna Again,MP,Bundestag,,DE,ANNA+paper@example.org,,",
    "Ingrid Existing,MP,Storting,,NO,INGRID@example.org,yes,",
    "Ingrid Existing,MP,Storting,,NO,ingrid.other@example.org,yes,",
)
PAPER = _csv(*PAPER_ROWS)


def test_preview_shows_each_rows_outcome_and_stores_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    response = _upload(client, PAPER)
    page = _text(response)

    assert response.status_code == 200
    assert "Nothing is stored yet" in page
    assert "<strong>4</strong> to import" in page
    assert "<strong>2</strong> of them held for review" in page
    assert "<strong>2</strong> already signed, skipped" in page
    assert "<strong>1</strong> invalid, skipped" in page
    # line 5: the header is line 1 and Bob's comment spans lines 3 and 4
    assert "Held for review: same name and country as line 2." in page
    assert "<code>country_code</code>: Not the code of a country signers sign from" in page
    assert "<code>email</code>: This is not a valid email address." in page
    assert f"<code>public</code>: Not yes or no: use {imports.PUBLIC_WORDS} (in any case)" in page
    assert "The same address is on line 2." in page
    assert "This address has already signed." in page
    assert "Held for review: same name and country as an earlier signer." in page
    assert _count(app, Signature) == 1
    assert _count(app, AuditEntry) == 0
    assert len(os.listdir(os.path.join(app.instance_path, "imports"))) == 1


def test_apply_counts_at_once_with_source_import_and_an_audit_entry(setup) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    response = _apply(client, _upload(client, PAPER))

    assert response.status_code == 303
    page = _text(client.get(response.headers["Location"]))
    assert (
        "Import applied. Imported: 4 (held for review: 2). Skipped: 2 already signed, 1 invalid."
    ) in page
    db = new_session(app)
    imported = select(Signature).where(Signature.source == "import")
    rows = db.scalars(imported.order_by(Signature.id)).all()
    assert [(s.name, s.status, s.counted) for s in rows] == [
        ("Anna Müller", "confirmed", True),
        ("Bob Smith", "confirmed", True),
        ("Dr. Anna Muller", "held", False),
        ("Ingrid Existing", "held", False),
    ]
    assert rows[1].comment == "two\nlines"
    assert rows[1].public is False
    assert rows[2].duplicate_of_id == rows[0].id
    assert rows[3].duplicate_of_id == 1
    # The counters moved with the rows, the listed ones (counted and public) too.
    assert tally.recount(db, db.get_one(Campaign, rows[0].campaign_id)) == {}
    assert db.scalar(select(func.sum(TallyCount.listed))) == sum(
        1 for s in db.scalars(select(Signature)) if s.counted and s.public
    )
    entry = db.scalars(select(AuditEntry)).one()
    db.close()
    assert entry.action == "signatures.import"
    assert json.loads(entry.after) == {
        "counted": 2,
        "duplicate": 2,
        "file": "paper.csv",
        "held": 2,
        "imported": 4,
        "invalid": 1,
        "mode": "count_now",
    }
    assert counted_by_country(app, "release") == {"DE": 1, "US": 1, "NO": 1}
    assert os.listdir(os.path.join(app.instance_path, "imports")) == []
    assert _count(app, OutboxMessage) == 0


def test_apply_with_confirmation_mail_queues_one_mail_per_new_signer(setup) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    response = _apply(client, _upload(client, PAPER), mode="confirmation")

    assert response.status_code == 303
    db = new_session(app)
    new = db.scalars(select(Signature).where(Signature.source == "import")).all()
    mails = db.scalars(select(OutboxMessage)).all()
    with app.app_context():
        texts = [mail.compose(db, m).text for m in mails]
    db.close()
    assert sorted(s.status for s in new) == ["held", "held", "pending", "pending"]
    assert sorted(m.to_addr for m in mails) == sorted(s.email for s in new)
    assert all(m.kind == "confirm" and m.signature_id is not None for m in mails)
    assert all("http://campaign.test/c/release/confirm/" in text for text in texts)
    assert counted_by_country(app, "release") == {"NO": 1}


@pytest.mark.parametrize("mode", ["count_now", "confirmation"])
def test_importing_into_a_letter_without_confirmation_mails_no_receipt(
    app: Flask, client: FlaskClient, mode: str
) -> None:
    db = new_session(app)
    campaign = make_campaign(db, require_confirmation=False)
    organizer = make_organizer(db, campaigns=(campaign,))
    db.close()
    login(client, organizer)
    response = _apply(client, _upload(client, PAPER), mode=mode)

    assert response.status_code == 303
    assert _count(app, Signature, source="import") == 5
    assert _count(app, OutboxMessage) == 0


def test_applying_twice_imports_once(setup) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    preview = _upload(client, PAPER)
    _apply(client, preview)
    again = _apply(client, preview)

    assert again.status_code == 303
    assert "That upload is no longer here" in _text(client.get(again.headers["Location"]))
    assert _count(app, Signature, source="import") == 4


def test_apply_rechecks_the_database(setup) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    preview = _upload(client, PAPER)
    db = new_session(app)
    campaign = db.scalars(select(Campaign)).one()
    sign(db, campaign, "Bob Smith", "bob@example.org", country="US")  # signs meanwhile
    db.close()

    _apply(client, preview)

    assert _count(app, Signature, email="bob@example.org") == 1
    assert _count(app, Signature, source="import") == 3


def test_export_then_import_into_a_new_campaign_reproduces_the_counts(app: Flask) -> None:
    db = new_session(app)
    source = make_campaign(db, "source")
    target = make_campaign(db, "release")
    organizer = make_organizer(db, campaigns=(source, target))
    for i, (country, name) in enumerate(
        [
            ("KH", "Sokha Chea"),
            ("KH", "Dara Kim"),
            ("FR", "=SUM(A1)"),
            ("ID", "Budi Santoso"),
            ("BR", "Ana Silva"),
            ("AU", "Jack O'Brien"),
            ("CA", "-Claire Roy"),
        ]
    ):
        sign(db, source, name, f"mp{i}@example.org", country=country, comment="+ support")
    sign(db, source, "Pending Person", "pending@example.org", confirmed=False)
    sign(db, source, "Sokha Chea", "sokha.other@example.org", country="KH")  # held
    rejected = sign(db, source, "Rejected Person", "rejected@example.org", country="JP")
    from campaign import review

    review.reject(db, organizer, rejected, "not an MP")
    db.commit()
    db.close()
    client = login(app.test_client(), organizer)

    exported = client.get("/admin/c/source/export.csv?status=counted&bom=1").data
    _apply(client, _upload(client, exported))

    assert counted_by_country(app, "release") == counted_by_country(app, "source")
    assert counted_by_country(app, "release") == {
        "KH": 2,
        "FR": 1,
        "ID": 1,
        "BR": 1,
        "AU": 1,
        "CA": 1,
    }
    db = new_session(app)
    names = set(db.scalars(select(Signature.name).where(Signature.source == "import")))
    comments = set(db.scalars(select(Signature.comment).where(Signature.source == "import")))
    db.close()
    assert {"=SUM(A1)", "-Claire Roy", "Jack O'Brien"} <= names  # the formula guard is undone
    assert comments == {"+ support"}


def test_a_full_export_does_not_bring_back_rejected_signers(app: Flask, tmp_path: Path) -> None:
    db = new_session(app)
    source = make_campaign(db, "source")
    target = make_campaign(db, "target")
    organizer = make_organizer(db, campaigns=(source,))
    rejected = sign(db, source, "Rejected Person", "rejected@example.org", country="JP")
    from campaign import review

    review.reject(db, organizer, rejected, "not an MP")
    db.commit()
    client = login(app.test_client(), organizer)
    path = _file(tmp_path, client.get("/admin/c/source/export.csv").data)
    report = imports.preview(db, target, path, imports.check_file(path, max_bytes=10**6))
    db.close()
    assert (report.imported, report.invalid) == (0, 1)
    assert report.rows[0].errors == {
        "status": "Rejected, withdrawn and erased signatures are not imported."
    }


BAD_FILES = [
    pytest.param(
        (HEADER + "Zoë,MP,Assemblée,,FR,zoe@example.org,yes,\r\n").encode("latin-1"),
        "The file is not UTF-8 text (line 2).",
        id="latin-1",
    ),
    pytest.param(
        b"name,title,email\r\nAnna,MP,anna@example.org\r\n",
        "Missing columns: parliament, country_code.",
        id="missing-columns",
    ),
    pytest.param(b"\x7fELF\x02\x01\x01\x00\x00\x00binary", "This is not a text file", id="binary"),
    pytest.param(b"PK\x03\x04\x14\x00\x06\x00", "This is a spreadsheet workbook", id="xlsx"),
    pytest.param("\ufeffname,title".encode("utf-16"), "The file is UTF-16 text.", id="utf-16"),
    pytest.param(b"", "The file is empty.", id="empty"),
    pytest.param(b"\xef\xbb\xbf\r\n\r\n", "The file is empty.", id="blank-lines"),
    pytest.param(
        b"name,name,title,parliament,country_code,email\r\n",
        "The column name appears twice.",
        id="twice",
    ),
    pytest.param(
        _csv("a,b,c,d,FR," + "x" * 200_000 + "@example.org,,"),
        "Line 2 cannot be read as CSV: field larger than field limit",
        id="huge-cell",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_FILES)
def test_a_bad_file_gets_its_report_and_nothing_is_stored(setup, data: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    response = _upload(client, data)

    assert response.status_code == 400
    page = _text(response)
    assert "This file cannot be imported" in page
    assert message in page
    assert "Nothing was imported." in page
    assert _count(app, Signature) == 1
    assert os.listdir(os.path.join(app.instance_path, "imports")) == []


def test_blank_lines_before_the_header_are_skipped(setup) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    data = b"\n\nname,title,parliament,country_code,email\n\nBlank Lines,MP,X,FR,bl@x.fr\n"
    response = _upload(client, data)
    page = _text(response)

    assert response.status_code == 200, page
    assert "<strong>1</strong> to import" in page
    assert "The file is empty." not in page
    _apply(client, response)
    db = new_session(app)
    assert db.scalar(select(Signature.name).where(Signature.email == "bl@x.fr")) == "Blank Lines"
    db.close()


def test_a_file_of_blank_lines_and_empty_cells_has_no_header(app: Flask, tmp_path: Path) -> None:
    path = _file(tmp_path, b"\r\n , \t\r\n,,,\r\n")
    with pytest.raises(imports.ImportRefused, match=r"^The file is empty\.$"):
        imports.check_file(path, max_bytes=10**6)


def test_a_50_mb_upload_is_refused_before_it_is_stored(setup) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    row = b"Anna Muller,MP,Bundestag,Greens,DE,anna@example.org,yes,\r\n"
    data = HEADER.encode() + row * (50 * 1024 * 1024 // len(row))

    # The body is built here: the test client would spool it to a file it never closes.
    boundary = "----import-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="step"\r\n\r\npreview\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/admin/c/release/import",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )

    assert response.status_code == 400
    assert "The file is 50 MB; files up to 20 MB can be imported." in _text(response)
    assert _count(app, Signature) == 1
    assert not os.path.exists(os.path.join(app.instance_path, "imports")) or not os.listdir(
        os.path.join(app.instance_path, "imports")
    )


def test_upload_without_a_file_asks_for_one(setup) -> None:  # type: ignore[no-untyped-def]
    _, client = setup
    response = client.post("/admin/c/release/import", data={"step": "preview"})
    assert response.status_code == 400
    assert "Choose a CSV file." in _text(response)


def test_a_racing_signer_rolls_the_whole_import_back(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = new_session(app)
    campaign = make_campaign(db, require_confirmation=False)
    sign(db, campaign, "Late Comer", "late@example.org", country="FI")
    path = _file(
        tmp_path,
        _csv(
            "One,MP,P,,SE,one@example.org,,",
            "Two,MP,P,,SE,two@example.org,,",
            "Three,MP,P,,SE,three@example.org,,",
            "Late Comer,MP,P,,FI,late@example.org,,",
        ),
    )
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    # As if late@ signed between the import's check and its insert (PostgreSQL can race).
    monkeypatch.setattr(imports._Importer, "_taken", lambda self, keys: {})

    with pytest.raises(imports.ImportRefused, match="nothing was imported"):
        _import(db, campaign, path, count_now=True)
    db.commit()
    db.close()

    assert _count(app, Signature) == 1
    assert _count(app, AuditEntry) == 0
    assert counted_by_country(app, "release") == {"FI": 1}


def test_duplicates_and_twins_are_found_across_chunks(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = new_session(app)
    campaign = make_campaign(db, require_confirmation=False)
    path = _file(
        tmp_path,
        _csv(
            "Ana Lima,MP,P,,BR,ana@example.org,,",
            "Other,MP,P,,BR,other@example.org,,",
            "ANA LIMA,MP,P,,BR,ana.lima@example.org,,",
            "Ana Copy,MP,P,,BR,Ana+x@Example.org,,",
            "Ana Lima,MP,P,,BR,lima@example.org,,",
        ),
    )
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    report = _import(db, campaign, path, count_now=True)
    db.commit()
    rows = db.scalars(select(Signature).order_by(Signature.id)).all()
    db.close()

    assert (report.imported, report.duplicate, report.held, report.counted) == (4, 1, 2, 2)
    assert [r.reason % r.values for r in report.rows] == [
        "",
        "",
        "Held for review: same name and country as line 2.",
        "The same address is on line 2.",
        "Held for review: same name and country as line 2.",
    ]
    assert [(r.email, r.duplicate_of_id) for r in rows] == [
        ("ana@example.org", None),
        ("other@example.org", None),
        ("ana.lima@example.org", rows[0].id),
        ("lima@example.org", rows[0].id),
    ]


def test_twins_inside_one_chunk_point_at_the_first(app: Flask, tmp_path: Path) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    path = _file(
        tmp_path,
        _csv(
            "Li Wei,MP,P,,CN,li@example.org,,",
            "Wei Li,MP,P,,CN,wei@example.org,,",
            "Li Wei,MP,P,,SG,li.sg@example.org,,",
        ),
    )
    _import(db, campaign, path, count_now=False)
    db.commit()
    rows = db.scalars(select(Signature).order_by(Signature.id)).all()
    db.close()
    assert [(r.status, r.duplicate_of_id) for r in rows] == [
        ("pending", None),
        ("held", rows[0].id),
        ("pending", None),
    ]


def test_dry_run_preview_matches_apply(app: Flask, tmp_path: Path) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    sign(db, campaign, "Ingrid Existing", "ingrid@example.org", country="NO")
    path = _file(tmp_path, PAPER)
    layout = imports.check_file(path, max_bytes=10**6)
    before = imports.preview(db, campaign, path, layout)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Signature)) == 1
    after = imports.apply(db, campaign, path, layout, organizer=None, count_now=True)
    db.commit()
    db.close()
    assert (before.imported, before.duplicate, before.invalid, before.held) == (
        after.imported,
        after.duplicate,
        after.invalid,
        after.held,
    )
    assert [(r.line, r.outcome, r.reason) for r in before.rows] == [
        (r.line, r.outcome, r.reason) for r in after.rows
    ]


def test_columns_in_any_order_semicolons_bom_and_extra_columns(
    any_app: Flask, tmp_path: Path
) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db, require_confirmation=False)
    data = (
        "\ufeffEmail;Country_Code;Name;Notes;Parliament;Title;signed_at\r\n"
        "kem@example.org;KH;Kem Ley;ignored;National Assembly;MP;2026-11-02T09:30:15Z\r\n"
        "\r\n"
        "sam@example.org;KH;Sam Rainsy;;National Assembly;MP;2026-11-03\r\n"
        "mu@example.org;KH;Mu Sochua;;National Assembly;MP;2026-11-02T10:30:15.25+01:00\r\n"
        "late@example.org;KH;Late;;National Assembly;MP;2999-01-01\r\n"
        "bad@example.org;KH;Bad;;National Assembly;MP;yesterday\r\n"
    ).encode()
    path = _file(tmp_path, data)
    report = _import(db, campaign, path, count_now=True)
    db.commit()
    rows = db.scalars(select(Signature).order_by(Signature.id)).all()
    db.close()
    assert (report.imported, report.invalid) == (3, 2)
    assert [(r.name, r.signed_at.isoformat(), r.public) for r in rows] == [
        ("Kem Ley", "2026-11-02T09:30:15+00:00", False),
        ("Sam Rainsy", "2026-11-03T00:00:00+00:00", False),
        ("Mu Sochua", "2026-11-02T09:30:15.250000+00:00", False),
    ]
    assert [r.errors for r in report.rows[3:]] == [
        {"signed_at": "This time is in the future."},
        {"signed_at": "Use a time like 2026-11-28T09:30:00Z or a date like 2026-11-28."},
    ]
    assert [r.line for r in report.rows] == [2, 4, 5, 6, 7]


def test_a_row_with_more_cells_than_the_header_is_invalid(app: Flask, tmp_path: Path) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    path = _file(tmp_path, _csv("Anna,MP,P,,FR,anna@example.org,,,oops", "Bob,MP,P"))
    report = imports.preview(db, campaign, path, imports.check_file(path, max_bytes=10**6))
    db.close()
    assert [(r.outcome, dict(r.errors)) for r in report.rows] == [
        ("invalid", {"row": "This row has more cells than the header."}),
        (
            "invalid",
            {
                "country_code": "The country code is missing.",
                "email": "The email address is missing.",
            },
        ),
    ]


def test_rows_of_invisible_or_reordering_text_are_invalid_and_invisible_ends_trimmed(
    app: Flask, tmp_path: Path
) -> None:
    db = new_session(app)
    campaign = make_campaign(db, require_confirmation=False)
    path = _file(
        tmp_path,
        _csv(
            "\u200b,\u200b,\u2060,,FR,blank@example.org,,",
            "Anna\u202eevil,MP,P,,FR,anna@example.org,,",
            "\ufeffBob Lee\u200b,MP\u2060,Senate,\u200d,US,bob@example.org,,",
        ),
    )
    report = _import(db, campaign, path, count_now=True)
    db.commit()
    stored = [(s.name, s.title, s.parliament, s.party) for s in db.scalars(select(Signature))]
    db.close()
    assert [(r.outcome, dict(r.errors)) for r in report.rows] == [
        (
            "invalid",
            {
                "name": "The cell is empty; this column is required.",
                "title": "The cell is empty; this column is required.",
                "parliament": "The cell is empty; this column is required.",
            },
        ),
        ("invalid", {"name": "Remove the invisible text direction characters."}),
        ("imported", {}),
    ]
    assert stored == [("Bob Lee", "MP", "Senate", "")]


def test_import_is_for_the_campaigns_organizers_only(app: Flask, client: FlaskClient) -> None:
    db = new_session(app)
    make_campaign(db, "release")
    other = make_campaign(db, "other")
    organizer = make_organizer(db, campaigns=(other,))
    db.close()
    assert client.get("/admin/c/release/import").status_code == 302
    login(client, organizer)
    assert client.get("/admin/c/release/import").status_code == 404
    assert _upload(client, PAPER).status_code == 404
    assert client.get("/admin/c/other/import").status_code == 200


def _many_rows(count: int) -> bytes:
    rows = "".join(
        f"Member {i} Name,MP,Parliament of Somewhere,Party,SE,member{i}@example.org,yes,\r\n"
        for i in range(count)
    )
    return (HEADER + rows).encode()


def test_memory_stays_flat_while_importing(app: Flask, tmp_path: Path) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    path = _file(tmp_path, _many_rows(20_000))
    layout = imports.check_file(path, max_bytes=10**8)

    tracemalloc.start()
    try:
        report = imports.apply(db, campaign, path, layout, organizer=None, count_now=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    db.commit()
    db.close()

    assert report.imported == 20_000
    # Holding 20,000 rows' values at once would take well over 20 MiB.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    assert counted_by_country(app, "release") == {"SE": 20_000}


def test_import_works_on_each_backend(any_app: Flask, tmp_path: Path) -> None:
    db: Session = new_session(any_app)
    campaign = make_campaign(db, require_confirmation=False)
    sign(db, campaign, "Ingrid Existing", "ingrid@example.org", country="NO")
    path = _file(tmp_path, PAPER)
    report = _import(db, campaign, path, count_now=False)
    db.commit()
    db.close()
    assert (report.imported, report.duplicate, report.invalid, report.held) == (4, 2, 1, 2)
    assert counted_by_country(any_app, "release") == {"DE": 1, "US": 1, "NO": 1}


# The columns an import sets as signing.sign() does (its own time, source and locale aside).
_SAME_AS_SIGNING = (
    "campaign_id",
    "name",
    "title",
    "parliament",
    "party",
    "country_code",
    "continent_code",
    "email",
    "email_key",
    "email_domain",
    "name_key",
    "comment",
    "public",
    "client_hash",
    "status",
    "counted",
    "rejected_reason",
    "duplicate_state",
    "duplicate_notices",
    "verified_at",
    "rejected_at",
    "withdrawn_at",
    "erased_at",
)


@pytest.mark.parametrize("count_now", [True, False])
def test_an_imported_row_is_stored_as_the_form_stores_it(
    any_app: Flask, tmp_path: Path, count_now: bool
) -> None:
    db = new_session(any_app)
    formed = make_campaign(db, "formed")
    imported = make_campaign(db, "imported")
    sign(
        db,
        formed,
        "Dr. Zoë O'Brien",
        "Zoe.OBrien+x@GoogleMail.com",
        country="ie",
        confirmed=count_now,
        title="TD",
        parliament="Dáil",
        party="Greens",
        comment="Free\nhim",
        public=True,
    )
    path = _file(
        tmp_path,
        _csv('Dr. Zoë O\'Brien,TD,Dáil,Greens,ie,Zoe.OBrien+x@GoogleMail.com,yes,"Free\nhim"'),
    )
    report = _import(db, imported, path, count_now=count_now)
    db.commit()
    rows = {s.campaign.slug: s for s in db.scalars(select(Signature).order_by(Signature.id)).all()}
    one, other = rows["formed"], rows["imported"]
    assert report.imported == 1
    assert {c: getattr(other, c) for c in _SAME_AS_SIGNING if c != "campaign_id"} == {
        c: getattr(one, c) for c in _SAME_AS_SIGNING if c != "campaign_id"
    }
    assert (other.source, other.locale, other.duplicate_of_id) == ("import", "en", None)
    assert other.signed_at.tzinfo is not None and other.updated_at == other.signed_at
    assert (other.confirmed_at == other.signed_at) is count_now
    assert (other.confirmed_at is None) is not count_now
    db.close()


def test_duplicates_and_twins_are_found_across_chunks_on_each_backend(
    any_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db, require_confirmation=False)
    sign(db, campaign, "Existing Person", "existing@example.org", country="NO")
    rows = [f"Member {i},MP,P,,SE,m{i}@example.org,," for i in range(25)]
    rows[7] = "Existing Person,MP,P,,NO,existing.other@example.org,,"  # held: earlier signer
    rows[12] = "Member 3,MP,P,,SE,member3@example.org,,"  # held: line 5, an earlier chunk
    rows[13] = "Again,MP,P,,SE,M3@Example.org,,"  # duplicate of line 5
    rows[21] = "Late,MP,P,,SE,existing@example.org,,"  # already signed
    rows[22] = "Member 20,MP,P,,SE,twin20@example.org,,"  # held: line 22, same chunk
    path = _file(tmp_path, _csv(*rows))
    monkeypatch.setattr(imports, "CHUNK_ROWS", 4)
    report = _import(db, campaign, path, count_now=True)
    db.commit()
    stored = {s.email: s for s in db.scalars(select(Signature)).all()}
    db.close()

    assert (report.imported, report.duplicate, report.held) == (23, 2, 3)
    reasons = {r.line: r.reason % r.values for r in report.rows if r.reason}
    assert reasons == {
        9: "Held for review: same name and country as an earlier signer.",
        14: "Held for review: same name and country as line 5.",
        15: "The same address is on line 5.",
        23: "This address has already signed.",
        24: "Held for review: same name and country as line 22.",
    }
    assert stored["existing.other@example.org"].duplicate_of_id == stored["existing@example.org"].id
    assert stored["member3@example.org"].duplicate_of_id == stored["m3@example.org"].id
    assert stored["twin20@example.org"].duplicate_of_id == stored["m20@example.org"].id
    ids = [stored[f"m{i}@example.org"].id for i in (0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 14)]
    assert ids == sorted(ids)  # signatures are numbered in the file's order
    assert counted_by_country(any_app, "release") == {"NO": 1, "SE": 20}


def test_postgresql_looks_each_key_up_in_the_unique_index(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.environ.get("CAMPAIGN_TEST_POSTGRES_URL"):
        pytest.skip("CAMPAIGN_TEST_POSTGRES_URL is not set")
    app = app_factory("postgres")
    db = new_session(app)
    campaign = make_campaign(db)
    monkeypatch.setattr(imports, "CHUNK_ROWS", 500)
    path = _file(tmp_path, _csv(*(f"M {i},MP,P,,SE,m{i}@example.org,," for i in range(1500))))
    # The plan of the next chunk's lookup, seen from inside the import's transaction:
    # with the statistics of an empty table it scanned every signature of the letter.
    plans: list[str] = []
    taken = imports._Importer._taken

    def spy(self: imports._Importer, keys: set[str]) -> dict[str, int]:
        sql = "EXPLAIN SELECT id FROM signature WHERE campaign_id = :c AND email_key = :k"
        plans.append(" ".join(self.db.scalars(text(sql), {"c": campaign.id, "k": "x"})))
        return taken(self, keys)

    monkeypatch.setattr(imports._Importer, "_taken", spy)
    report = _import(db, campaign, path, count_now=True)
    db.rollback()
    db.close()
    assert report.imported == 1500
    assert len(plans) == 3
    assert all("uq_signature_campaign_id_email_key" in plan for plan in plans[1:]), plans


def test_an_unclosed_quotation_mark_is_reported_on_its_row(app: Flask, tmp_path: Path) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    data = _csv(
        "Ann,MP,P,,IE,ann@example.org,,",
        '"Bob,MP,P,,IE,bob@example.org,,',  # the quotation mark takes the rest of the file
        "Cy,MP,P,,IE,cy@example.org,,",
    )
    path = _file(tmp_path, data)
    report = imports.preview(db, campaign, path, imports.check_file(path, max_bytes=10**6))
    db.close()
    assert [(r.line, r.outcome, r.name, dict(r.errors)) for r in report.rows] == [
        (2, "imported", "Ann", {}),
        (
            3,
            "invalid",
            "",
            {
                "row": "A quotation mark in this row is not closed, so the rest of the file "
                "was read into it. Close or remove it and import the file again."
            },
        ),
    ]


def test_a_quoted_cell_over_two_lines_is_not_an_unclosed_quotation_mark(
    app: Flask, tmp_path: Path
) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    # The last row's quoted cell ends the file, with no line break after it.
    path = _file(tmp_path, _csv('Ann,MP,P,,IE,ann@example.org,,"two\nlines"')[:-2])
    report = imports.preview(db, campaign, path, imports.check_file(path, max_bytes=10**6))
    db.close()
    assert [(r.line, r.outcome) for r in report.rows] == [(2, "imported")]


def test_blank_rows_quotes_and_guards_read_as_before(app: Flask, tmp_path: Path) -> None:
    db = new_session(app)
    campaign = make_campaign(db, require_confirmation=False)
    data = (
        HEADER
        + " , \t,,,,,,\r\n"  # blanks only: skipped, not a row
        + "Jack O'Brien,MP,P,,IE,jack@example.org,,'not a guard\r\n"
        + "'=SUM(A1),MP,P,,IE,formula@example.org,,\r\n"
        + "Ann,MP,P,,IE,ann@example.org,,,  \t\r\n"  # a blank extra cell is no extra cell
        + "Bo,MP,P,,IE,bo@example.org,,, x\r\n"
    ).encode()
    path = _file(tmp_path, data)
    report = _import(db, campaign, path, count_now=True)
    db.commit()
    stored = {s.email: (s.name, s.comment) for s in db.scalars(select(Signature)).all()}
    db.close()
    assert [(r.line, r.outcome) for r in report.rows] == [
        (3, "imported"),
        (4, "imported"),
        (5, "imported"),
        (6, "invalid"),
    ]
    assert stored == {
        "jack@example.org": ("Jack O'Brien", "'not a guard"),
        "formula@example.org": ("=SUM(A1)", ""),
        "ann@example.org": ("Ann", ""),
    }


# --------------------------------------------------------------------------- in parallel

# A file of every kind of row, over several chunks of 4: new, held for an earlier signer,
# held for an earlier chunk's row, a duplicate, already signed, invalid, a bad time.
_MIXED = [f"Member {i},MP,P,,SE,m{i}@example.org,," for i in range(25)]
_MIXED[7] = "Existing Person,MP,P,,NO,existing.other@example.org,,"
_MIXED[12] = "Member 3,MP,P,,SE,member3@example.org,,"
_MIXED[13] = "Again,MP,P,,SE,M3@Example.org,,"
_MIXED[17] = "Nobody,MP,P,,XX,not-an-address,,"
_MIXED[21] = "Late,MP,P,,SE,existing@example.org,,"
_MIXED[22] = "Member 20,MP,P,,SE,twin20@example.org,,"


def _import_mixed(app: Flask, tmp_path: Path, slug: str, *, parallel: bool) -> Any:
    db = new_session(app)
    campaign = make_campaign(db, slug, require_confirmation=False)
    sign(db, campaign, "Existing Person", "existing@example.org", country="NO")
    path = _file(tmp_path, _csv(*_MIXED), name=f"{slug}.csv")
    layout = imports.check_file(path, max_bytes=10**6)
    report = imports.apply(
        db, campaign, path, layout, organizer=None, count_now=True, parallel=parallel
    )
    db.commit()
    stored = db.execute(
        select(
            Signature.id,
            Signature.email,
            Signature.status,
            Signature.counted,
            Signature.duplicate_of_id,
        )
        .where(Signature.campaign_id == campaign.id)
        .order_by(Signature.id)
    ).all()
    db.close()
    # The letters' ids differ: a held signer's twin is named by its address.
    email_of = {row.id: row.email for row in stored}
    return report, [
        (row.email, row.status, row.counted, email_of.get(row.duplicate_of_id)) for row in stored
    ]


def test_checking_rows_in_parallel_imports_and_reports_what_one_process_does(
    any_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 4)
    monkeypatch.setattr(imports, "PARALLEL_MIN_BYTES", 0)
    pids = tmp_path / "pids"
    validate = imports._validate

    def spy(*args: Any) -> Any:
        with pids.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return validate(*args)

    monkeypatch.setattr(imports, "_validate", spy)
    serial = _import_mixed(any_app, tmp_path, "serial", parallel=False)
    assert set(pids.read_text().split()) == {str(os.getpid())}
    pids.unlink()
    parallel = _import_mixed(any_app, tmp_path, "parallel", parallel=True)
    checkers = set(pids.read_text().split())

    assert len(checkers) == 1 and str(os.getpid()) not in checkers
    assert parallel[0] == serial[0]
    assert parallel[1] == serial[1]
    assert parallel[1][:2] == [
        ("existing@example.org", "confirmed", True, None),
        ("m0@example.org", "confirmed", True, None),
    ]
    report = parallel[0]
    assert (report.imported, report.duplicate, report.invalid, report.held) == (22, 2, 1, 3)
    assert counted_by_country(any_app, "parallel") == counted_by_country(any_app, "serial")


def _refused_in_parallel(app: Flask, path: str) -> imports.ImportRefused:
    """Apply a file with its rows checked in a second process; what refused it."""
    db = new_session(app)
    campaign = make_campaign(db, require_confirmation=False)
    layout = imports.check_file(path, max_bytes=10**6)
    with pytest.raises(imports.ImportRefused) as refused:
        imports.apply(db, campaign, path, layout, organizer=None, count_now=True, parallel=True)
    db.commit()
    db.close()
    return refused.value


def test_a_file_unreadable_after_two_chunks_is_refused_whole_in_parallel(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 4)
    monkeypatch.setattr(imports, "PARALLEL_MIN_BYTES", 0)
    rows = [f"Member {i},MP,P,,SE,m{i}@example.org,," for i in range(12)]
    rows[9] = "a,b,c,d,FR," + "x" * 200_000 + "@example.org,,"
    error = _refused_in_parallel(app, _file(tmp_path, _csv(*rows)))

    assert str(error) == "Line 11 cannot be read as CSV: field larger than field limit (131072)."
    assert error.message == imports.N_("Line %(line)d cannot be read as CSV: %(error)s.")
    assert _count(app, Signature) == 0
    assert _count(app, AuditEntry) == 0
    assert counted_by_country(app, "release") == {}


def test_a_row_checker_that_dies_refuses_the_import_whole(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 4)
    monkeypatch.setattr(imports, "PARALLEL_MIN_BYTES", 0)
    validate = imports._validate

    def dies_on_line_10(line: int, *args: Any) -> Any:
        if line == 10:
            os._exit(9)  # as if the kernel killed the checker (out of memory)
        return validate(line, *args)

    monkeypatch.setattr(imports, "_validate", dies_on_line_10)
    rows = [f"Member {i},MP,P,,SE,m{i}@example.org,," for i in range(12)]
    error = _refused_in_parallel(app, _file(tmp_path, _csv(*rows)))

    assert "stopped unexpectedly, so nothing was imported" in str(error)
    assert _count(app, Signature) == 0
    assert counted_by_country(app, "release") == {}


def test_a_small_file_is_checked_in_this_process(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = tmp_path / "pids"
    validate = imports._validate

    def spy(*args: Any) -> Any:
        pids.write_text(str(os.getpid()))
        return validate(*args)

    monkeypatch.setattr(imports, "_validate", spy)
    db = new_session(app)
    campaign = make_campaign(db, require_confirmation=False)
    path = _file(tmp_path, PAPER)
    layout = imports.check_file(path, max_bytes=10**6)
    report = imports.apply(
        db, campaign, path, layout, organizer=None, count_now=True, parallel=True
    )
    db.commit()
    db.close()
    assert report.imported == 5
    assert pids.read_text() == str(os.getpid())


def test_an_unknown_status_is_a_row_error_not_a_counted_signature(
    app: Flask, tmp_path: Path
) -> None:
    db = new_session(app)
    campaign = make_campaign(db, require_confirmation=False)
    header = "name,title,parliament,country_code,email,status\r\n"
    path = _file(
        tmp_path,
        _csv(
            "Ann Plain,MP,P,SE,ann@example.org,",
            "Hal Hacked,MP,P,SE,hal@example.org,hacked",
            "Cleo Confirmed,MP,P,SE,cleo@example.org, Confirmed ",
            "Pia Pending,MP,P,SE,pia@example.org,pending",
            "Hugo Held,MP,P,SE,hugo@example.org,HELD",
            "Cara Counted,MP,P,SE,cara@example.org,counted",
            header=header,
        ),
    )
    report = _import(db, campaign, path, count_now=True)
    db.commit()
    stored = db.scalars(select(Signature.email).order_by(Signature.id)).all()
    db.close()

    unknown = "Unknown status: use pending, held or confirmed, or leave it empty."
    assert (report.imported, report.invalid, report.counted) == (4, 2, 4)
    assert [(row.line, row.outcome, dict(row.errors)) for row in report.rows if row.errors] == [
        (3, "invalid", {"status": unknown}),
        (7, "invalid", {"status": unknown}),
    ]
    assert "hal@example.org" not in stored and "cara@example.org" not in stored
    assert counted_by_country(app, "release") == {"SE": 4}


def test_a_large_previews_problem_rows_are_listed_wherever_they_are(
    setup, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    _, client = setup
    monkeypatch.setattr(imports, "PROBLEM_ROWS", 2)
    good = [f"Signer {n},MP,Parliament,,FR,s{n}@example.org,yes," for n in range(250)]
    bad = [f"Bad {n},MP,Somewhere,,ZZ,bad{n}@example.org,yes," for n in range(3)]
    page = _text(_upload(client, _csv(*good, *bad)))
    assert "<strong>3</strong> invalid, skipped" in page
    # The header is line 1: the bad rows are lines 252 to 254.
    lines = re.findall(r'<td class="num">(\d+)</td>', page)
    assert lines[:200] == [str(n) for n in range(2, 202)]
    assert lines[200:] == ["252", "253"]
    assert "Of 253 rows: the first 200, then every row with a problem" in page
    assert "1 more row with a problem is not shown" in page


def test_an_upload_past_the_request_limit_gets_the_import_page_with_the_file_limit(
    setup,
) -> None:  # type: ignore[no-untyped-def]
    app, client = setup
    app.config["MAX_CONTENT_LENGTH"] = 50_000
    response = _upload(
        client, _csv(*[f"Signer {n},MP,P,,FR,s{n}@example.org,yes," for n in range(2000)])
    )
    page = _text(response)
    assert response.status_code == 413
    assert "The file is larger than 20 MB, the most that can be imported." in page
    assert 'type="file"' in page  # the upload form, to try another file
    assert _count(app, Signature) == 1


# A spreadsheet in each interface language writes its own words for a yes and a no.
PUBLIC_YES = ["VRAI", "Oui", "sí", "SÍ", "si", "Verdadero", "ya", "BENAR", "true", "Yes", "y", "1"]
PUBLIC_NO = ["FAUX", "non", "No", "falso", "TIDAK", "salah", "False", "n", "0", " ", ""]


def test_the_public_column_takes_yes_and_no_in_the_interface_languages_in_any_case(
    app: Flask, tmp_path: Path
) -> None:
    words = PUBLIC_YES + PUBLIC_NO
    rows = [
        f"Signer {chr(65 + i)}{chr(97 + i)},MP,Senate,,FR,p{i}@example.org,{word},"
        for i, word in enumerate(words)
    ]
    db = new_session(app)
    campaign = make_campaign(db)
    report = _import(db, campaign, _file(tmp_path, _csv(*rows)), count_now=True)
    db.commit()
    public = dict(db.execute(select(Signature.email, Signature.public)).all())
    db.close()

    assert (report.imported, report.invalid) == (len(words), 0)
    assert [public[f"p{i}@example.org"] for i in range(len(words))] == [True] * len(PUBLIC_YES) + [
        False
    ] * len(PUBLIC_NO)


def test_the_import_page_and_a_refused_public_cell_list_the_same_words(setup) -> None:  # type: ignore[no-untyped-def]
    _app, client = setup
    for lang in ("en", "fr", "es", "id"):
        hint = _text(client.get(f"/admin/c/release/import?lang={lang}"))
        assert imports.PUBLIC_WORDS in hint, lang
        preview = _text(
            _upload(client, _csv("Rita Maybe,MP,Senate,,FR,rita@example.org,peut-être,"))
        )
        error = re.search(r"<code>public</code>: ([^<]+)</li>", preview)
        assert error is not None, lang
        assert imports.PUBLIC_WORDS in error.group(1), lang


def test_row_errors_speak_to_the_organizer_not_the_signer(setup) -> None:  # type: ignore[no-untyped-def]
    _app, client = setup
    page = _text(
        _upload(
            client,
            _csv("Nora Nomail,MP,Senate,,,,yes,", "Tia Titleless,,Senate,,FR,tia@example.org,no,"),
        )
    )
    assert "<code>email</code>: The email address is missing." in page
    assert "<code>country_code</code>: The country code is missing." in page
    assert "<code>title</code>: The cell is empty; this column is required." in page
    assert "your email" not in page and "Choose a country" not in page
    french = _text(
        client.post(
            "/admin/c/release/import?lang=fr",
            data={
                "step": "preview",
                "file": (io.BytesIO(_csv("Nora Nomail,MP,Senate,,FR,,yes,")), "a.csv"),
            },
            content_type="multipart/form-data",
        )
    )
    assert "<code>email</code>: L\u2019adresse e-mail est manquante." in french


def test_the_applied_imports_counts_are_grouped_as_the_preview_groups_them(setup) -> None:  # type: ignore[no-untyped-def]
    _app, client = setup
    rows = [f"Signer {i:04d},MP,Senate,,FR,s{i}@example.org,yes," for i in range(1001)]
    preview = _upload(client, _csv(*rows))
    assert "<strong>1,001</strong> to import" in _text(preview)
    done = _apply(client, preview)
    assert done.status_code == 303
    page = _text(client.get(done.headers["Location"]))
    assert "Imported: 1,001 (held for review: " in page


def test_the_mail_language_choice_names_languages_as_the_language_switcher_does(setup) -> None:  # type: ignore[no-untyped-def]
    _app, client = setup
    for lang in ("en", "id", "fr"):
        page = client.post(
            f"/admin/c/release/import?lang={lang}",
            data={"step": "preview", "file": (io.BytesIO(_csv(*PAPER_ROWS)), "p.csv")},
            content_type="multipart/form-data",
        ).get_data(as_text=True)
        picker = re.search(r'<select[^>]*name="locale"[^>]*>(.*?)</select>', page, re.S)
        assert picker is not None, lang
        names = re.findall(r'<option[^>]*value="([^"]+)"[^>]*>([^<]+)</option>', picker.group(1))
        assert names == [(code, i18n.LANGUAGE_NAMES[code]) for code in ("en", "id", "fr", "es")]
        assert ("id", "Bahasa Indonesia") in names and ("fr", "Français") in names


@pytest.mark.parametrize("lang", ["fr", "es", "id"])
def test_every_catalog_keeps_the_public_columns_words_in_its_error(app: Flask, lang: str) -> None:
    from flask_babel import force_locale, gettext

    with app.test_request_context(), force_locale(lang):
        translated = gettext(imports.NOT_YES_OR_NO)
    assert translated != imports.NOT_YES_OR_NO
    assert imports.PUBLIC_WORDS in translated
