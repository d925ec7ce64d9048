"""Fuzzing with Hypothesis: the sign form, confirm and withdraw links, login, and the CSV import.

Whatever arrives - arbitrary text in every field, arbitrary bytes under any content
type, huge bodies, forged tokens, any file - the answer is never a 5xx, and a row is
stored only when signing.validate_entry accepts the same input (the form's and the
import's rules are that function).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from admin_helpers import PASSWORD, make_campaign, make_organizer
from app_helpers import base_config
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from campaign import create_app, imports, signing
from campaign import db as dbmod
from campaign.export import FORMULA_PREFIXES
from campaign.models import AuditEntry, Campaign, Organizer, Signature

SLUG = "letter"
ORGANIZER = "org@example.org"
BASE = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
# Werkzeug hands a urlencoded field whose bytes are not UTF-8 back with its %XX escapes;
# the sign form refuses any such text (forms/public.py), stricter than validate_entry.
REQUOTED = re.compile(r"%[89A-F][0-9A-F]")
TEXT_FIELDS = ("name", "title", "parliament", "party", "country", "email", "comment")


def fuzz(examples: int) -> settings:
    """Hypothesis settings: this many examples (times CAMPAIGN_TEST_FUZZ_SCALE, for a longer
    hunt), no deadline (requests vary in time)."""
    scale = float(os.environ.get("CAMPAIGN_TEST_FUZZ_SCALE", "1"))
    return settings(BASE, max_examples=max(1, int(examples * scale)))


@dataclass
class World:
    """One app on one SQLite file for the whole module, a letter and its organizer."""

    app: Flask
    store: Session
    campaign: Campaign
    secret: str
    pending: Signature
    other: Signature
    admin: FlaskClient


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Built once: Hypothesis runs many examples against the same app."""
    tmp = tmp_path_factory.mktemp("fuzz")
    previous = os.environ.get("CAMPAIGN_INSTANCE_PATH")
    os.environ["CAMPAIGN_INSTANCE_PATH"] = str(tmp / "instance")
    url = f"sqlite:///{tmp}/fuzz.sqlite3"
    dbmod.upgrade(url)
    app = create_app(base_config(tmp / "instance", url))
    writer = dbmod.make_engine(url)
    with Session(bind=writer, expire_on_commit=False) as setup:
        campaign = make_campaign(setup, SLUG)
        elsewhere = make_campaign(setup, "elsewhere")
        make_organizer(setup, ORGANIZER, campaigns=(campaign,))
        pending = signing.sign(setup, campaign, _entry("Ada Lovelace", "ada@example.org"))
        other = signing.sign(setup, elsewhere, _entry("Bo Diddley", "bo@example.org"))
        setup.commit()
    writer.dispose()
    # Checks read with a plain engine: no BEGIN IMMEDIATE, so reading holds no write lock.
    engine = create_engine(url)
    store = Session(bind=engine, expire_on_commit=False)
    try:
        admin = app.test_client()
        response = admin.post("/admin/login", data={"email": ORGANIZER, "password": PASSWORD})
        assert response.status_code == 303
        yield World(
            app,
            store,
            campaign,
            str(app.config["SECRET_KEY"]),
            pending.signature,
            other.signature,
            admin,
        )
    finally:
        store.close()
        engine.dispose()
        app.extensions["engine"].dispose()
        if previous is None:
            os.environ.pop("CAMPAIGN_INSTANCE_PATH", None)
        else:
            os.environ["CAMPAIGN_INSTANCE_PATH"] = previous


def _entry(name: str, email: str) -> signing.SignatureEntry:
    return signing.SignatureEntry(
        name=name, title="MP", parliament="Parliament", party="", country_code="FR", email=email
    )


@dataclass(frozen=True)
class Row:
    """A stored signature, as the checks compare it."""

    id: int
    campaign_id: int
    email_key: str
    values: Mapping[str, Any]
    state: tuple[Any, ...]


def _rows(store: Session) -> dict[int, Row]:
    store.expire_all()
    rows = {}
    for s in store.scalars(select(Signature)):
        rows[s.id] = Row(
            s.id,
            s.campaign_id,
            s.email_key,
            {
                "name": s.name,
                "title": s.title,
                "parliament": s.parliament,
                "party": s.party,
                "country": s.country_code,
                "email": s.email,
                "comment": s.comment,
                "public": s.public,
            },
            (s.status, s.counted, s.confirmed_at, s.withdrawn_at, s.rejected_at),
        )
    store.rollback()
    return rows


def _new(store: Session, before: Mapping[int, Row]) -> list[Row]:
    return [row for row_id, row in _rows(store).items() if row_id not in before]


def _assert_valid(row: Row) -> signing.SignatureEntry:
    """A stored row holds what validate_entry accepts, unchanged by a second pass."""
    entry = signing.validate_entry(row.values)
    assert entry.email == row.values["email"] and entry.name == row.values["name"]
    return entry


def _answered(response: Any) -> int:
    """The status, never a 5xx; counted in Hypothesis' statistics (--hypothesis-show-statistics)."""
    status = int(response.status_code)
    assert status < 500, response.get_data(as_text=True)[:1000]
    event(f"HTTP {status}")
    return status


# --------------------------------------------------------------------------- the sign form

VALID: dict[str, list[str]] = {
    "name": ["Ana Lima", "Dr. Siti Aminah", "Jean-Luc Ørsted", "  Kofi Mensah ", "李明"],
    "title": ["MP", "Senator", "Member of the Bundestag"],
    "parliament": ["National Assembly", "Bundestag", "Dewan Perwakilan Rakyat"],
    "party": ["", "Green", "Parti socialiste"],
    "country": ["FR", "kh", " BR ", "GB"],
    "comment": ["", "Free him.\r\nNow.", "\tindented"],
    "public": ["y", "", "false", "on", "0"],
    "website": [""],
}


def _value(name: str) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [
        st.sampled_from(VALID.get(name) or [""]),
        st.text(max_size=40),
        st.text(max_size=400),
    ]
    if name == "email":
        options = [
            st.from_regex(
                r"[a-z]{1,12}(\+[a-z]{1,5})?@[a-z]{2,10}\.(org|net|example)", fullmatch=True
            ),
            st.emails(),
            st.text(max_size=60),
            st.builds(lambda s: s + "@example.org", st.text(min_size=1, max_size=300)),
        ]
    return st.one_of(*options)


# The language the page is in comes from ?lang=, a cookie or Accept-Language: any of them.
LANGUAGE = (
    st.none() | st.sampled_from(["fr", "id", "es", "en", "pt_BR", "xx"]) | st.text(max_size=20)
)
ACCEPT_LANGUAGE = (
    st.none()
    | st.sampled_from(["fr-FR,fr;q=0.9", "id", "*", "es;q=abc", "en-US,en;q=0.5"])
    | st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=40)
)
SIGN_FORM = st.fixed_dictionaries(
    {},
    optional={name: _value(name) for name in (*TEXT_FIELDS, "public", "website")},
)


def _public(form: Mapping[str, str]) -> bool:
    """What the form's BooleanField makes of the checkbox."""
    return "public" in form and form["public"] not in ("false", "")


@fuzz(500)
@given(form=SIGN_FORM, multipart=st.booleans(), lang=LANGUAGE, accept=ACCEPT_LANGUAGE)
def test_sign_form_stores_only_what_validate_entry_accepts(
    world: World, form: dict[str, str], multipart: bool, lang: str | None, accept: str | None
) -> None:
    before = _rows(world.store)
    client = world.app.test_client()
    data: dict[str, Any] = dict(form)
    if multipart:
        # A file part, which no field reads, makes the test client send multipart/form-data.
        data["attachment"] = (io.BytesIO(b"x"), "x.txt")
    query = f"?{urlencode({'lang': lang})}" if lang is not None else ""
    headers = {"Accept-Language": accept} if accept is not None else {}
    response = client.post(f"/c/{SLUG}/sign{query}", data=data, headers=headers)
    status = _answered(response)
    new = _new(world.store, before)
    if (form.get("website") or "").strip():
        assert status == 303 and new == []  # the honeypot: answered like success, not stored
        return
    try:
        expected: signing.SignatureEntry | None = signing.validate_entry(
            {**form, "public": _public(form)}
        )
    except signing.InvalidEntry:
        expected = None
    if expected is None:
        assert status == 400 and new == []
        return
    for row in new:
        _assert_valid(row)
        assert row.email_key == signing.email_key(expected.email)
        assert {k: row.values[k] for k in ("name", "email", "country", "comment")} == {
            "name": expected.name,
            "email": expected.email,
            "country": expected.country_code,
            "comment": expected.comment,
        }
    assert len(new) <= 1
    if any(REQUOTED.search(form.get(name) or "") for name in TEXT_FIELDS):
        assert status in (303, 400)  # the form's extra refusal, see REQUOTED
    else:
        assert status == 303
        known = {row.email_key for row in _rows(world.store).values()}
        assert signing.email_key(expected.email) in known


CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "application/json",
    "text/plain; charset=utf-16",
    "application/octet-stream",
    "x/y; boundary=",
]


def _mangled_form(draw: st.DrawFn) -> bytes:
    """A valid urlencoded form with arbitrary bytes spliced in somewhere."""
    body = urlencode(
        {
            "name": "Ana Lima",
            "title": "MP",
            "parliament": "Assembly",
            "country": "FR",
            "email": draw(st.from_regex(r"[a-z]{3,12}@mangled\.org", fullmatch=True)),
        }
    ).encode()
    at = draw(st.integers(0, len(body)))
    cut = draw(st.integers(0, 3))
    return body[:at] + draw(st.binary(max_size=12)) + body[at + cut :]


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or a real form with arbitrary bytes inside."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=3000))
    return _mangled_form(draw)


@fuzz(300)
@given(body=raw_bodies(), content_type=st.sampled_from(CONTENT_TYPES) | st.text(max_size=40))
def test_sign_arbitrary_bodies(world: World, body: bytes, content_type: str | None) -> None:
    before = _rows(world.store)
    headers = {"Content-Type": content_type} if content_type is not None else {}
    try:
        response = world.app.test_client().post(f"/c/{SLUG}/sign", data=body, headers=headers)
    except ValueError as error:
        # The test client itself refuses header values with newlines; a server never sees them.
        assert (
            "newline" in str(error) or "\n" in (content_type or "") or "\r" in (content_type or "")
        )
        return
    status = _answered(response)
    for row in _new(world.store, before):
        assert status == 303
        entry = _assert_valid(row)
        assert "\ufffd" not in entry.name and not REQUOTED.search(entry.name)


FORM = "application/x-www-form-urlencoded"


def _multipart(form: Mapping[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body, encoded here: the test client would spool a large one
    to a temporary file that it never closes when the app refuses the body unread."""
    boundary = "fuzz-boundary-7d1e"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in form.items()
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


@fuzz(16)
@given(
    size=st.sampled_from([1000, 200 * 1024, 256 * 1024 - 200, 256 * 1024 + 1, 1 << 20, 5 << 20]),
    field=st.sampled_from(["name", "comment", "email", "website", "other"]),
    multipart=st.booleans(),
)
def test_sign_huge_bodies(world: World, size: int, field: str, multipart: bool) -> None:
    before = _rows(world.store)
    form = {
        "name": "Ana Lima",
        "title": "MP",
        "parliament": "Assembly",
        "country": "FR",
        "email": "huge@example.org",
        field: "a" * size,
    }
    body, content_type = _multipart(form) if multipart else (urlencode(form).encode(), FORM)
    response = world.app.test_client().post(
        f"/c/{SLUG}/sign", data=body, headers={"Content-Type": content_type}
    )
    status = _answered(response)
    new = _new(world.store, before)
    if (response.request.content_length or 0) > 256 * 1024:
        assert status == 413 and new == []
        return
    try:
        signing.validate_entry(form)
    except signing.InvalidEntry:
        assert status == 400 and new == []
        return
    assert status == 303  # "website" (the honeypot) filled, or a comment of 1000 characters
    for row in new:
        _assert_valid(row)


# --------------------------------------------------------------------------- confirm and withdraw


@st.composite
def tokens(draw: st.DrawFn, world: World) -> str:
    """Arbitrary text, or a real token cut, altered, extended or for something else."""
    kind = draw(st.sampled_from(["text", "cut", "flip", "extend", "other", "real"]))
    if kind == "text":
        return draw(st.text(min_size=1, max_size=200))
    purpose = draw(st.sampled_from(["confirm", "withdraw"]))
    target = world.other if kind == "other" else world.pending
    real = signing.make_token(world.secret, target.id, purpose)
    if kind in ("other", "real"):
        return real
    if kind == "cut":
        return real[: draw(st.integers(1, len(real) - 1))]
    if kind == "extend":
        return real + draw(st.text(min_size=1, max_size=20))
    at = draw(st.integers(0, len(real) - 1))
    char = draw(st.characters(codec="ascii").filter(lambda c: c != real[at]))
    return real[:at] + char + real[at + 1 :]


def _target(world: World, token: str, purpose: str) -> int | None:
    """The signature a token really opens for this purpose on this letter, if any."""
    try:
        signature_id = signing.read_token(world.secret, token, purpose, 10**9)
    except signing.BadToken:
        return None
    return signature_id if signature_id == world.pending.id else None


@fuzz(400)
@given(
    data=st.data(),
    purpose=st.sampled_from(["confirm", "withdraw"]),
    method=st.sampled_from(["GET", "POST"]),
)
def test_confirm_and_withdraw_links(
    world: World, data: st.DataObject, purpose: str, method: str
) -> None:
    token = data.draw(tokens(world))
    before = _rows(world.store)
    response = world.app.test_client().open(
        f"/c/{SLUG}/{purpose}/{quote(token, safe='')}", method=method
    )
    status = _answered(response)
    after = _rows(world.store)
    target = _target(world, token, purpose) if method == "POST" else None
    changed = {i for i in before if before[i].state != after[i].state}
    assert changed <= ({target} if target is not None else set())
    assert after.keys() == before.keys()
    if target is None and status == 303:
        pytest.fail(f"a {purpose} POST with a bad token answered 303")


# --------------------------------------------------------------------------- login

LOGIN_FIELD = st.one_of(st.text(max_size=80), st.text(max_size=3000), st.just(ORGANIZER))


@fuzz(80)
@given(
    form=st.fixed_dictionaries({}, optional={"email": LOGIN_FIELD, "password": LOGIN_FIELD}),
    raw=st.none() | st.binary(max_size=2000),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_login_form(
    world: World, form: dict[str, str], raw: bytes | None, content_type: str | None
) -> None:
    world.store.expire_all()
    organizers = world.store.scalar(select(Organizer.id).order_by(Organizer.id.desc()))
    entries = len(world.store.scalars(select(AuditEntry.id)).all())
    world.store.rollback()
    client = world.app.test_client()
    if raw is None:
        response = client.post("/admin/login", data=form)
    else:
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/admin/login", data=raw, headers=headers)
    status = _answered(response)
    assert status in (200, 400)  # the password is never among the inputs: never logged in
    assert client.get("/admin/").status_code == 302
    world.store.expire_all()
    assert world.store.scalar(select(Organizer.id).order_by(Organizer.id.desc())) == organizers
    assert len(world.store.scalars(select(AuditEntry.id)).all()) == entries
    world.store.rollback()


# --------------------------------------------------------------------------- CSV import

COLUMNS = [*imports.REQUIRED_COLUMNS, *imports.OPTIONAL_COLUMNS, "id", "extra"]
CELL = st.one_of(
    st.sampled_from(["Ana Lima", "MP", "Assembly", "FR", "kh", "yes", "no", "", "confirmed",
                     "rejected", "2026-11-01T10:00:00Z", "'=1+1", "=HYPERLINK(\"x\")"]),
    st.from_regex(r"[a-z]{1,8}@csv\.(org|example)", fullmatch=True),
    st.text(max_size=30),
)  # fmt: skip


GOOD_CELLS: dict[str, list[str]] = {
    "name": ["Ana Lima", "Siti Aminah", "=cmd|' /C calc'!A0", "'=Jean Dupont"],
    "title": ["MP", "Senator"],
    "parliament": ["Assembly", "Bundestag"],
    "country_code": ["FR", "kh", "XX"],
    "party": ["", "Green", "http://spam.example"],
    "comment": ["", "line one\nline two", "@risk"],
    "public": ["yes", "no", "", "maybe"],
    "signed_at": ["", "2026-11-01T10:00:00Z", "2026-11-01", "2999-01-01", "yesterday"],
    "status": ["", "confirmed", "pending", "rejected", "withdrawn"],
}


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """Mostly a CSV with the export's columns and rows of good and arbitrary cells;
    sometimes any header, any text or any bytes."""
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return draw(st.binary(max_size=4000))
    if shape == 1:
        return draw(st.text(max_size=2000)).encode("utf-8", "surrogatepass")
    optional = draw(
        st.lists(st.sampled_from([*imports.OPTIONAL_COLUMNS, "id", "extra"]), unique=True)
    )
    header = draw(st.permutations([*imports.REQUIRED_COLUMNS, *optional]))
    if shape <= 4:
        header = draw(st.lists(st.sampled_from(COLUMNS) | st.text(max_size=10), max_size=8))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow([h.upper() if draw(st.integers(0, 9)) == 0 else h for h in header])
    for _ in range(draw(st.integers(0, 12))):
        row = []
        for column in header:
            if draw(st.integers(0, 9)) == 0:  # now and then, any text in any cell
                row.append(draw(CELL))
            elif column == "email":
                row.append(draw(st.from_regex(r"[a-z]{1,8}@csv\.(org|example)", fullmatch=True)))
            else:
                row.append(draw(st.sampled_from(GOOD_CELLS.get(column, [""]))))
        if draw(st.integers(0, 9)) == 0:  # a row too short or too long
            row = row[: len(row) + draw(st.integers(-2, 0))] + draw(st.lists(CELL, max_size=1))
        writer.writerow(row)
    bom = codecs.BOM_UTF8 if draw(st.booleans()) else b""
    return bom + out.getvalue().encode("utf-8", "surrogatepass")


def _unguard(cell: str) -> str:
    return cell[1:] if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_PREFIXES else cell


def _acceptable_keys(content: bytes) -> set[str]:
    """The email keys of rows in the file that validate_entry accepts."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return set()
    first = io.StringIO(text, newline="").readline()
    delimiter = max((",", ";", "\t"), key=first.count)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error:
        return set()
    if not rows:
        return set()
    header = [h.strip().casefold() for h in rows[0]]
    keys = set()
    for row in rows[1:]:
        cells = {h: _unguard(row[i]) if i < len(row) else "" for i, h in enumerate(header)}
        raw = {**cells, "country": cells.get("country_code", "")}
        try:
            keys.add(signing.email_key(signing.validate_entry(raw).email))
        except signing.InvalidEntry:
            continue
    return keys


@fuzz(300)
@given(content=csv_files(), apply=st.booleans())
def test_import_service(world: World, content: bytes, apply: bool) -> None:
    before = _rows(world.store)
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as handle:
        handle.write(content)
    path = handle.name
    try:
        with world.app.app_context():
            db = dbmod.new_session(world.app)
            try:
                layout = imports.check_file(path, max_bytes=1 << 20)
                campaign = db.get(Campaign, world.campaign.id)
                assert campaign is not None
                report = imports.preview(db, campaign, path, layout)
                db.rollback()
                assert _new(world.store, before) == []  # a preview stores nothing
                if apply:
                    report = imports.apply(
                        db, campaign, path, layout, organizer=None, count_now=True
                    )
                    db.commit()
            except imports.ImportRefused:
                db.rollback()
                report = None
                event("refused")
            finally:
                db.close()
    finally:
        Path(path).unlink()
    new = _new(world.store, before)
    if not apply or report is None:
        assert new == []
        return
    event(f"applied, {'some' if new else 'none'} imported")
    assert report.imported == len(new)
    assert {row.email_key for row in new} <= _acceptable_keys(content)
    for row in new:
        _assert_valid(row)


@fuzz(120)
@given(content=csv_files(), filename=st.text(max_size=40), apply=st.booleans())
def test_import_upload(world: World, content: bytes, filename: str, apply: bool) -> None:
    before = _rows(world.store)
    response = world.admin.post(
        f"/admin/c/{SLUG}/import",
        data={"file": (io.BytesIO(content), filename or "x.csv")},
        content_type="multipart/form-data",
    )
    status = _answered(response)
    assert status in (200, 400)
    assert _new(world.store, before) == []
    token = re.search(r'name="token"[^>]*value="([^"]+)"', response.get_data(as_text=True))
    if status != 200 or not apply or token is None:
        return
    applied = world.admin.post(
        f"/admin/c/{SLUG}/import",
        data={"step": "apply", "token": token.group(1), "mode": "count_now", "locale": "en"},
    )
    assert _answered(applied) in (303, 409)
    new = _new(world.store, before)
    event(f"applied, {'some' if new else 'none'} imported")
    assert {row.email_key for row in new} <= _acceptable_keys(content)
    for row in new:
        _assert_valid(row)


@pytest.mark.parametrize("purpose", ["confirm", "withdraw"])
@pytest.mark.parametrize("junk", ["%0D%0A", "%3A%0A", "!%0A"])
def test_a_valid_token_with_a_line_break_is_refused_cleanly(
    world: World, purpose: str, junk: str
) -> None:
    """Found by the fuzzer: the serializer's base64 ignores stray characters, so a token
    followed by CR/LF opened its signature, and redirecting to request.path put the line
    break in the Location header (werkzeug refuses it: a 500)."""
    with world.app.app_context():
        db = dbmod.new_session(world.app)
        campaign = db.get(Campaign, world.campaign.id)
        assert campaign is not None
        address = f"{purpose}-{len(junk)}-{junk[-1]}@linebreak.example"
        signature = signing.sign(db, campaign, _entry("Line Break", address)).signature
        db.commit()
        token = signing.make_token(world.secret, signature.id, purpose)
        db.close()
    response = world.app.test_client().post(f"/c/{SLUG}/{purpose}/{token}{junk}")
    # signing.read_token now refuses any character outside the token alphabet: a clear
    # "not valid" page, nothing changed, never a 500.
    assert response.status_code == 400
    assert "Location" not in response.headers
