"""Bad input never reaches the database: NUL bytes and ids no row can have are refused
before any query (400, 404), on each backend."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from admin_helpers import PASSWORD, make_organizer, make_signature
from flask import Flask
from flask.testing import FlaskClient

from campaign import campaigns
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
