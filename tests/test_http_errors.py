"""Bad input never reaches the database; error answers carry the headers their endpoint needs.

NUL bytes and ids no row can have are refused before any query (400, 404), on each backend;
tally.json's redirects and error answers carry its CORS header; /healthz fails without the
schema; Retry-After only where it means something; tally.json is cacheable briefly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import PASSWORD, make_organizer, make_signature
from app_helpers import base_config
from flask import Flask
from flask.testing import FlaskClient
from pg_helpers import fresh_database
from test_public import make_campaign, post_sign

from campaign import campaigns, create_app
from campaign.db import session_scope
from campaign.models import Campaign

SLUG = "demo"
ADMIN = "admin@example.org"
TALLY = f"/c/{SLUG}/tally.json"
# Past PostgreSQL's INTEGER (the id columns), past 64 bits, and more digits than int() takes.
HUGE_IDS = ["2147483648", "9999999999", "99999999999999999999999", "9" * 5000]


def _setup(app: Flask) -> Campaign:
    with app.app_context(), session_scope(app) as db:
        campaign = campaigns.create_campaign(db, slug=SLUG, title="Demo letter", state="open")
        db.flush()
        make_organizer(db, ADMIN, admin=True, campaigns=(campaign,))
        make_signature(db, campaign, "Maria Santos", "maria@example.org")
        db.expunge(campaign)
        return campaign


@pytest.fixture
def site(app_factory: Any, backend: str) -> Flask:
    """An app on each backend with the open letter "demo", one signature and an admin."""
    app: Flask = app_factory(backend)
    _setup(app)
    return app


def _admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    response = client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD})
    assert response.status_code == 303
    return client


def _no_database_error(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


# --------------------------------------------------------------------------- NUL bytes


@pytest.mark.parametrize("path", ["/c/de%00mo", "/c/demo/tally%00", "/c/%00"])
def test_a_nul_byte_in_a_page_address_is_refused(
    site: Flask, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = site.test_client().get(path)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Something in the request was not right" in response.text
    assert "NUL" in response.text
    _no_database_error(caplog)


def test_a_nul_byte_in_a_json_address_is_refused_in_json(
    site: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    response = site.test_client().get("/c/demo%00/tally.json")
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == 400 and "NUL" in body["message"]
    _no_database_error(caplog)


def test_a_nul_byte_in_a_login_form_is_a_400_not_a_503(
    site: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = site.test_client()
    response = client.post(
        "/admin/login", data={"email": "a\x00b@example.org", "password": "whatever it is"}
    )
    assert response.status_code == 400
    assert "Retry-After" not in response.headers
    _no_database_error(caplog)
    # The form still works for everyone after it.
    assert _admin(site).get("/admin/").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/admin/c/{SLUG}/signatures?q=%00",
        f"/admin/c/{SLUG}/signatures?q=maria&country=F%00",
        f"/admin/c/{SLUG}/signatures?q%00=maria",
        f"/admin/c/{SLUG}/export.csv?q=%00",
        "/admin/audit?page=%00",
    ],
)
def test_a_nul_byte_in_a_dashboard_query_is_refused(
    site: Flask, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = _admin(site).get(path)
    assert response.status_code == 400
    assert response.mimetype == "text/html"  # no CSV, not even its header row
    assert "NUL" in response.text
    _no_database_error(caplog)


def test_a_nul_byte_in_a_signature_form_gets_the_forms_own_error_and_nothing_is_stored(
    site: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    form = {
        "name": "Ana\x00 Lima",
        "title": "MP",
        "parliament": "Senate",
        "party": "Independent",
        "country": "BR",
        "email": "ana@example.org",
    }
    client = site.test_client()
    response = client.post(f"/c/{SLUG}/sign", data=form)
    assert response.status_code == 400
    assert "Remove the control characters." in response.text  # the field's own error
    # An address with a NUL gets no further than the form does.
    assert client.post("/c/de%00mo/sign", data=form).status_code == 400
    assert client.get("/c/de%00mo/signatories?country=FR").status_code == 400
    _no_database_error(caplog)
    assert client.get(TALLY).get_json()["signatures"] == 1


def test_text_without_nul_bytes_passes(site: Flask) -> None:
    client = _admin(site)
    found = client.get(f"/admin/c/{SLUG}/signatures?q=maria")
    assert found.status_code == 200 and "Maria Santos" in found.text
    assert client.get(f"/admin/c/{SLUG}/export.csv?q=maria").status_code == 200


# --------------------------------------------------------------------------- huge ids


@pytest.mark.parametrize("number", HUGE_IDS)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/c/demo/signatures/{}"),
        ("GET", "/admin/c/demo/signatures/{}/details"),
        ("POST", "/admin/c/demo/signatures/{}"),
        ("POST", "/admin/c/demo/duplicates/{}"),
        ("GET", "/admin/organizers/{}"),
        ("POST", "/admin/organizers/{}/password"),
        ("GET", "/admin/c/demo/letter/versions/{}"),
    ],
)
def test_an_id_no_row_can_have_is_a_404(
    site: Flask, method: str, path: str, number: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = _admin(site).open(path.format(number), method=method, data={"action": "verify"})
    assert response.status_code == 404
    assert "Retry-After" not in response.headers
    _no_database_error(caplog)


def test_the_largest_id_a_row_can_have_still_reaches_the_page(site: Flask) -> None:
    client = _admin(site)
    # The page itself answers: no such signature on this letter (a 404 of the view's own).
    response = client.get("/admin/c/demo/signatures/2147483647")
    assert response.status_code == 404
    with site.app_context(), session_scope(site) as db:
        from campaign.models import Signature

        signature_id = db.query(Signature.id).scalar()
    assert client.get(f"/admin/c/demo/signatures/{signature_id}").status_code == 200


# --------------------------------------------------------------------------- CORS


def _cross_origin(response: Any) -> None:
    assert response.headers.get("Access-Control-Allow-Origin") == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_tally_json_under_an_earlier_slug_redirects_with_cors(site: Flask) -> None:
    with site.app_context(), session_scope(site) as db:
        found = campaigns.get_by_slug(db, SLUG)
        assert found is not None
        campaigns.update_campaign(db, found, slug="demo-renamed")
    client = site.test_client()
    response = client.get(TALLY, headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/c/demo-renamed/tally.json"
    _cross_origin(response)
    followed = client.get(response.headers["Location"])
    assert followed.status_code == 200
    _cross_origin(followed)


def test_tally_json_of_no_letter_is_a_json_404_with_cors(site: Flask) -> None:
    response = site.test_client().get("/c/nope/tally.json")
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    _cross_origin(response)


def test_tally_json_preflight_allows_any_origin_to_get(site: Flask) -> None:
    response = site.test_client().options(
        TALLY,
        headers={
            "Origin": "https://elsewhere.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert response.status_code == 200
    _cross_origin(response)
    assert response.headers["Access-Control-Allow-Methods"] == "GET"
    assert "if-none-match" in response.headers["Access-Control-Allow-Headers"].lower()


def test_tally_json_405_is_json_with_cors_and_allow(site: Flask) -> None:
    response = site.test_client().post(TALLY)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    _cross_origin(response)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}


def test_html_pages_get_no_cors_header(site: Flask) -> None:
    client = site.test_client()
    for path in (f"/c/{SLUG}", "/c/nope", f"/c/{SLUG}/tally", "/healthz"):
        assert "Access-Control-Allow-Origin" not in client.get(path).headers, path


# --------------------------------------------------------------------------- rate limits


def _limited(app_factory: Any, **config: Any) -> Flask:
    app: Flask = app_factory(RATELIMIT_ENABLED=True, **config)
    _setup(app)
    return app


def test_a_429_from_tally_json_is_json_with_cors_and_security_headers(app_factory: Any) -> None:
    client = _limited(app_factory, JSON_RATE_LIMIT="1 per minute").test_client()
    assert client.get(TALLY).status_code == 200
    refused = client.get(TALLY)
    assert refused.status_code == 429
    assert refused.mimetype == "application/json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    _cross_origin(refused)
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]
    assert refused.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert refused.headers["X-Frame-Options"] == "DENY"
    assert refused.headers["X-Content-Type-Options"] == "nosniff"


def test_only_a_429_or_503_says_retry_after(app_factory: Any) -> None:
    client = _limited(app_factory, JSON_RATE_LIMIT="5 per minute").test_client()
    answered = client.get(TALLY)
    assert answered.status_code == 200
    assert answered.headers["X-RateLimit-Remaining"] == "4"  # the limit's own headers stay
    assert "Retry-After" not in answered.headers
    missing = client.get("/c/nope/tally.json")
    assert missing.status_code == 404 and "Retry-After" not in missing.headers


# --------------------------------------------------------------------------- 405


def test_a_405_page_names_the_methods_allowed(site: Flask) -> None:
    response = site.test_client().post(f"/c/{SLUG}/tally")
    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}


# --------------------------------------------------------------------------- /healthz


@pytest.fixture
def unmigrated(backend: str, tmp_path: Path) -> Iterator[Flask]:
    """An app on an empty database of each backend: no tables, never migrated."""
    os.environ["CAMPAIGN_INSTANCE_PATH"] = str(tmp_path / "instance")
    try:
        if backend == "sqlite":
            app = create_app(base_config(tmp_path / "instance", f"sqlite:///{tmp_path}/empty.db"))
            yield app
            app.extensions["engine"].dispose()
            return
        base = os.environ["CAMPAIGN_TEST_POSTGRES_URL"]
        with fresh_database(base, "campaign_healthz") as url:
            app = create_app(base_config(tmp_path / "instance", url))
            yield app
            app.extensions["engine"].dispose()
    finally:
        os.environ.pop("CAMPAIGN_INSTANCE_PATH", None)


def test_healthz_fails_without_the_schema(unmigrated: Flask) -> None:
    response = unmigrated.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status": "unavailable", "database": "no schema"}
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_healthz_is_ok_on_a_migrated_database(site: Flask) -> None:
    response = site.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert "Retry-After" not in response.headers


def test_healthz_of_an_unreachable_database_says_when_to_retry(app: Flask, tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    broken = create_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite3")
    app.extensions["sessionmaker"].configure(bind=broken)
    response = app.test_client().get("/healthz")
    broken.dispose()
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "down"}
    assert 1 <= int(response.headers["Retry-After"]) <= 60


# --------------------------------------------------------------------------- tally.json caching


def test_tally_json_may_be_cached_briefly_and_revalidated(site: Flask) -> None:
    client = site.test_client()
    first = client.get(TALLY)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "public, max-age=10"
    etag = first.headers["ETag"]
    again = client.get(TALLY, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "public, max-age=10"
    _cross_origin(again)
    assert "ETag" in again.headers["Access-Control-Expose-Headers"]


def test_a_new_signature_changes_tally_json_etag(site: Flask) -> None:
    client = site.test_client()
    etag = client.get(TALLY).headers["ETag"]
    with site.app_context(), session_scope(site) as db:
        found = campaigns.get_by_slug(db, SLUG)
        assert found is not None
        make_signature(db, found, "Ana Lima", "ana@example.org", country="BR")
    changed = client.get(TALLY, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.get_json()["signatures"] == 2
    assert changed.headers["ETag"] != etag


def test_a_database_error_while_signing_logs_no_signers_data(
    any_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """The 503 is logged, as the driver's first line: never the statement's values (the
    signer's name and address), which erasure could not reach in a log."""
    make_campaign(any_app)
    with any_app.extensions["engine"].begin() as conn:
        if any_app.extensions["engine"].dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER full_disk BEFORE INSERT ON signature"
                " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION full_disk() RETURNS trigger AS $$BEGIN RAISE EXCEPTION"
                " 'could not extend file: No space left on device' USING ERRCODE = '53100';"
                " END$$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER full_disk BEFORE INSERT ON signature"
                " FOR EACH ROW EXECUTE FUNCTION full_disk()"
            )
    try:
        with caplog.at_level(logging.INFO):
            response = post_sign(
                any_app.test_client(), name="Ada Private", email="ada.p@example.org"
            )
    finally:
        # PostgreSQL's test database outlives this test (its tables are emptied, not dropped).
        with any_app.extensions["engine"].begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS full_disk")
            else:
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS full_disk ON signature")
                conn.exec_driver_sql("DROP FUNCTION IF EXISTS full_disk()")
    assert response.status_code == 503
    logged = caplog.text
    assert "database error" in logged
    assert "ada.p@example.org" not in logged and "Ada Private" not in logged
