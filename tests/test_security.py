"""Security headers, framing, HTTPS, cookies, request sizes, the secret key, security.txt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from data_helpers import count_signatures
from flask import Flask
from flask.testing import FlaskClient

from campaign import campaigns, create_app
from campaign.db import new_session

CSP_NO_FRAMING = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGES = [
    "/c/letter",
    "/c/letter/tally",
    "/c/letter/signatories",
    "/c/letter/tally.json",
    "/healthz",
    "/privacy",
    "/admin/login",
    "/no-such-page",
]


@pytest.fixture
def app(app_factory) -> Flask:
    """An app with an open campaign "letter"."""
    app: Flask = app_factory()
    with app.app_context():
        db = new_session(app)
        campaigns.create_campaign(db, slug="letter", title="Free them", state="open")
        db.commit()
        db.close()
    return app


def signer() -> dict[str, str]:
    """A valid sign form."""
    return {
        "name": "Member Test Signer",
        "title": "MP",
        "parliament": "National Assembly",
        "party": "Independent",
        "country": "KH",
        "email": "signer@parliament.example",
    }


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_security_headers(client, path: str) -> None:
    response = client.get(path)
    assert response.headers["Content-Security-Policy"] == CSP_NO_FRAMING
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert "Strict-Transport-Security" not in response.headers


def test_no_page_needs_inline_script_or_style(client) -> None:
    for path in ("/c/letter", "/c/letter/tally", "/privacy", "/admin/login"):
        page = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), path
        assert " style=" not in page and "<style" not in page, path
        assert " onclick=" not in page and "javascript:" not in page, path


@pytest.mark.parametrize("path", ["/c/letter/widget", "/c/letter/badge.svg"])
def test_embeddable_responses_may_be_framed_by_any_site(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"].endswith("; frame-ancestors *")
    assert "object-src 'none'" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_dashboard_pages_are_never_cached(client) -> None:
    assert client.get("/admin/login").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/c/letter").headers.get("Cache-Control", "")


def test_hsts_only_over_https(client) -> None:
    secure = client.get("/c/letter", base_url="https://letters.example")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get("/c/letter").headers


def test_forwarded_https_counts_only_behind_a_configured_proxy(app_factory) -> None:
    https = {"X-Forwarded-Proto": "https"}
    direct = app_factory().test_client().get("/privacy", headers=https)
    assert "Strict-Transport-Security" not in direct.headers
    proxied = app_factory(PROXY_FIX_HOPS=1).test_client().get("/privacy", headers=https)
    assert "Strict-Transport-Security" in proxied.headers


def session_cookie(app: Flask, base_url: str) -> str:
    """The Set-Cookie header of the session the login form starts (its CSRF token)."""
    app.config["WTF_CSRF_ENABLED"] = True
    response = app.test_client().get("/admin/login", base_url=base_url)
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1
    return cookies[0]


def test_session_cookie_is_httponly_and_samesite(app: Flask) -> None:
    cookie = session_cookie(app, "http://letters.example")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_over_https(app: Flask) -> None:
    cookie = session_cookie(app, "https://letters.example")
    assert "Secure" in cookie and "HttpOnly" in cookie


@pytest.mark.parametrize("base_url", ["https://letters.example", "HTTPS://Letters.Example"])
def test_an_https_base_url_makes_the_session_cookie_secure(app_factory, base_url: str) -> None:
    app = app_factory(BASE_URL=base_url)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert "Secure" in session_cookie(app, "http://letters.example")


def test_cookies_set_by_views_are_secure_over_https(app: Flask) -> None:
    @app.get("/_set-cookie")
    def set_cookie() -> object:
        from flask import make_response

        response = make_response("ok")
        response.set_cookie("lang", "fr", samesite="Lax")
        return response

    secure = app.test_client().get("/_set-cookie", base_url="https://letters.example")
    assert secure.headers["Set-Cookie"].endswith("; Secure")
    plain = app.test_client().get("/_set-cookie")
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_an_oversized_sign_post_gets_a_readable_413(app: Flask, client) -> None:
    form = signer() | {"comment": "x" * (300 * 1024)}
    response = client.post("/c/letter/sign", data=form)
    text = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "<h1>What you sent is too large</h1>" in text
    assert "Nothing was saved" in text
    assert count_signatures(app) == 0


def test_an_oversized_multipart_field_gets_413(app: Flask, client) -> None:
    form = signer() | {"comment": "x" * (200 * 1024)}
    app.config["MAX_FORM_MEMORY_SIZE"] = 100 * 1024
    response = client.post("/c/letter/sign", data=form, content_type="multipart/form-data")
    assert response.status_code == 413
    assert count_signatures(app) == 0


def test_the_dashboard_accepts_larger_bodies_than_public_pages(client) -> None:
    big = {"email": "a@example.org", "password": "p" * (300 * 1024)}
    assert client.post("/admin/login", data=big).status_code in (200, 400)
    assert client.post("/c/letter/sign", data=big).status_code == 413


def test_a_normal_signature_still_fits(app: Flask, client) -> None:
    form = signer() | {"comment": "For justice. " * 50}
    assert client.post("/c/letter/sign", data=form).status_code == 303
    assert count_signatures(app) == 1


def test_without_a_configured_secret_a_random_one_is_kept_in_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGN_INSTANCE_PATH", str(tmp_path))
    url = f"sqlite:///{tmp_path}/secret.sqlite3"
    first = create_app({"DATABASE_URL": url, "MAIL_SENDER": False})
    second = create_app({"DATABASE_URL": url, "MAIL_SENDER": False})
    key = first.config["SECRET_KEY"]
    assert len(key) >= 48 and key == second.config["SECRET_KEY"]
    assert (tmp_path / "secret_key").read_text().strip() == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    for app in (first, second):
        app.extensions["engine"].dispose()


def test_security_txt_only_when_a_contact_is_configured(app_factory) -> None:
    assert app_factory().test_client().get("/.well-known/security.txt").status_code == 404
    app = app_factory(SECURITY_CONTACT="security@letters.example")
    response = app.test_client().get("/.well-known/security.txt")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    lines = response.get_data(as_text=True).splitlines()
    assert "Contact: mailto:security@letters.example" in lines
    assert any(re.fullmatch(r"Expires: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line) for line in lines)


@pytest.mark.parametrize(
    ("path", "location"),
    [("/admin", "/admin/"), ("/c/release/withdraw//abc", "/c/release/withdraw/abc")],
)
def test_werkzeugs_own_redirects_never_name_the_requests_host(
    client: FlaskClient, path: str, location: str
) -> None:
    """A missing trailing slash or a "//" in a path: the 308 names no host the client chose."""
    response = client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 308
    assert response.headers["Location"] == location
