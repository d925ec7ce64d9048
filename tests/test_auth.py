"""Organizer accounts and login: hashing, password policy, throttling, sessions, `next`."""

from __future__ import annotations

import datetime as dt

import pytest
from admin_helpers import (
    PASSWORD,
    AuthActions,
    app_client,
    auth,
    copy_session,
    make_organizer,
    organizer_by_email,
    store,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from campaign import auth as authmod
from campaign.db import new_session, utcnow
from campaign.models import LoginSession

__all__ = ["auth", "store"]

FAILED = "That email address and password do not match an account."


def test_passwords_are_hashed_with_argon2id_at_owasp_strength(store: Session) -> None:
    organizer = make_organizer(store, "a@example.org")
    assert organizer.password_hash.startswith("$argon2id$")
    assert "m=47104,t=1,p=1" in organizer.password_hash
    assert authmod.verify_password(organizer.password_hash, PASSWORD)
    assert not authmod.verify_password(organizer.password_hash, PASSWORD + "x")


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_passwords_shorter_than_twelve_characters_are_refused(
    store: Session, password: str
) -> None:
    with pytest.raises(authmod.AccountError, match="at least 12"):
        authmod.create_organizer(store, "a@example.org", password)


def test_a_twelve_character_password_is_accepted(store: Session) -> None:
    organizer = authmod.create_organizer(store, "a@example.org", "twelve chars")
    assert organizer.id


def test_a_taken_address_is_refused_whatever_its_case(store: Session) -> None:
    make_organizer(store, "a@example.org")
    with pytest.raises(authmod.AccountError, match="already exists"):
        authmod.create_organizer(store, "A@Example.ORG", PASSWORD)


def test_login_page_has_the_contract_fields(app_factory) -> None:
    client = app_factory(WTF_CSRF_ENABLED=True).test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    for name in ("csrf_token", "email", "password"):
        assert f'name="{name}"' in page


def test_login_succeeds_with_303_to_the_dashboard(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    response = auth.login("A@example.org ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert organizer_by_email(store, "a@example.org").last_login_at is not None


def test_unknown_address_and_wrong_password_read_the_same(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    unknown = auth.login("nobody@example.org")
    wrong = auth.login("a@example.org", "not the password at all")
    assert unknown.status_code == wrong.status_code == 200
    assert FAILED in unknown.get_data(as_text=True)
    # Apart from the address typed in, kept in the form, the two pages are identical.
    shown = unknown.get_data(as_text=True).replace("nobody@example.org", "a@example.org")
    assert shown == wrong.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_an_unknown_address_still_costs_one_hash_verification(
    auth: AuthActions, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = authmod.verify_password

    def counting(password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(authmod, "verify_password", counting)
    auth.login("nobody@example.org")
    assert len(calls) == 1
    assert calls[0].startswith("$argon2id$")


def test_the_account_locks_after_the_configured_failures(app_factory) -> None:
    app = app_factory(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_SECONDS=600)
    client = app.test_client()
    helper = AuthActions(client)
    store = new_session(app)
    make_organizer(store, "a@example.org")
    for _ in range(3):
        failed = helper.login("a@example.org", "wrong password!!")
        assert FAILED in failed.get_data(as_text=True)
    locked = helper.login("a@example.org")  # the right password, during the lockout
    assert locked.status_code == 200
    assert FAILED in locked.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    organizer = organizer_by_email(store, "a@example.org")
    assert organizer.locked_until is not None
    assert organizer.locked_until > utcnow() + dt.timedelta(seconds=590)
    # Once the lockout has passed, the right password works again.
    organizer.locked_until = utcnow() - dt.timedelta(seconds=1)
    store.commit()
    assert helper.login("a@example.org").status_code == 303
    assert organizer_by_email(store, "a@example.org").failed_logins == 0
    store.close()


def test_failures_during_a_lockout_do_not_extend_it(store: Session) -> None:
    make_organizer(store, "a@example.org")
    now = utcnow()
    for _ in range(5):
        authmod.authenticate(
            store, "a@example.org", "wrong", now=now, max_failures=5, lockout_seconds=60
        )
    store.commit()
    until = organizer_by_email(store, "a@example.org").locked_until
    authmod.authenticate(
        store,
        "a@example.org",
        "wrong",
        now=now + dt.timedelta(seconds=30),
        max_failures=5,
        lockout_seconds=60,
    )
    assert organizer_by_email(store, "a@example.org").locked_until == until


def test_login_is_rate_limited_per_client_address(app_factory) -> None:
    app = app_factory(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    helper = AuthActions(client)
    responses = [helper.login(f"n{i}@example.org") for i in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    # An organizer's page: no advice about colleagues signing, a way back to the login.
    refused = responses[-1].get_data(as_text=True)
    assert "colleagues signing" not in refused
    assert 'href="/admin/login">Back to the login page</a>' in refused
    assert client.get("/admin/login").status_code == 200  # the form itself stays reachable


def test_an_inactive_organizer_cannot_log_in_and_loses_their_session(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    assert auth.login("a@example.org").status_code == 303
    organizer = organizer_by_email(store, "a@example.org")
    organizer.active = False
    store.commit()
    assert client.get("/admin/").status_code == 302
    assert FAILED in auth.login("a@example.org").get_data(as_text=True)


def test_login_starts_a_fresh_session(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    auth.login("a@example.org")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["organizer_id"]
        assert session.permanent


def test_session_cookie_is_httponly_and_samesite_lax(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    cookie = auth.login("a@example.org").headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_logout_is_post_only(client: FlaskClient, auth: AuthActions, store: Session) -> None:
    make_organizer(store, "a@example.org")
    auth.login("a@example.org")
    assert client.get("/admin/logout").status_code == 405
    assert client.get("/admin/").status_code == 200
    response = auth.logout()
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/login"
    assert client.get("/admin/").status_code == 302


def _login_with_next(client: FlaskClient, store: Session, target: str) -> TestResponse:
    """An organizer's login through /admin/login?next=target."""
    make_organizer(store, "a@example.org")
    return client.post(
        "/admin/login",
        query_string={"next": target},
        data={"email": "a@example.org", "password": PASSWORD},
    )


@pytest.mark.parametrize("target", ["/admin/c/x/signatures?status=held", "/admin/organizers"])
def test_next_within_the_site_is_followed(
    auth: AuthActions, store: Session, target: str, client: FlaskClient
) -> None:
    response = _login_with_next(client, store, target)
    assert response.status_code == 303
    assert response.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_next_outside_the_site_is_refused(client: FlaskClient, store: Session, target: str) -> None:
    response = _login_with_next(client, store, target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/"


@pytest.mark.parametrize(
    "target",
    [
        "/admin/logout",  # a form's action only: a crafted link would land on a 405
        "/admin/account/logout-everywhere",
        "/no/such/page",
    ],
)
def test_next_that_is_no_page_leads_to_the_dashboard(
    client: FlaskClient, store: Session, target: str
) -> None:
    response = _login_with_next(client, store, target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200  # still logged in


def test_anonymous_visitors_are_sent_to_login_with_next(client: FlaskClient) -> None:
    response = client.get("/admin/organizers")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login?next=/admin/organizers"


def test_a_logged_in_organizer_visiting_login_goes_to_the_dashboard(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    auth.login("a@example.org")
    response = client.get("/admin/login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_admin_pages_are_404_for_organizers(
    client: FlaskClient, auth: AuthActions, store: Session, app: Flask
) -> None:
    make_organizer(store, "a@example.org")
    auth.login("a@example.org")
    assert client.get("/admin/organizers").status_code == 404
    assert client.get("/admin/audit").status_code == 404
    assert client.post("/admin/organizers", data={"email": "b@example.org"}).status_code == 404
    other = make_organizer(store, "b@example.org")
    response = client.post(f"/admin/organizers/{other.id}/password", data={"pw-password": "x" * 20})
    assert response.status_code == 404
    assert authmod.verify_password(
        organizer_by_email(store, "b@example.org").password_hash, PASSWORD
    )


def test_ending_an_organizers_sessions_logs_out_every_copy_of_the_cookie(any_app: Flask) -> None:
    client, helper = app_client(any_app)
    engine = create_engine(str(any_app.config["DATABASE_URL"]))
    with Session(bind=engine, expire_on_commit=False) as db:
        organizer = make_organizer(db, "a@example.org")
        assert organizer.session_epoch == 0
        assert helper.login("a@example.org").status_code == 303
        thief = copy_session(client)
        assert thief.get("/admin/").status_code == 200
        authmod.end_sessions(db, organizer)
        db.commit()
        assert organizer.session_epoch == 1
        assert thief.get("/admin/").status_code == 302
        assert client.get("/admin/").status_code == 302
        # Logging in again starts a session of the new generation; the copy stays dead.
        assert helper.login("a@example.org").status_code == 303
        assert client.get("/admin/").status_code == 200
        assert thief.get("/admin/").status_code == 302
    engine.dispose()


def test_logging_out_ends_every_copy_of_this_browsers_cookie(any_app: Flask) -> None:
    client, helper = app_client(any_app)
    engine = create_engine(str(any_app.config["DATABASE_URL"]))
    with Session(bind=engine) as db:
        make_organizer(db, "a@example.org")
    assert helper.login("a@example.org").status_code == 303
    thief = copy_session(client)
    assert thief.get("/admin/").status_code == 200
    assert helper.logout().status_code == 303
    assert client.get("/admin/").status_code == 302
    assert thief.get("/admin/").status_code == 302  # the session itself ended, not one cookie
    with Session(bind=engine) as db:
        assert db.scalar(select(func.count()).select_from(LoginSession)) == 0
    engine.dispose()


def test_a_session_cookie_without_the_epoch_is_logged_out(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    auth.login("a@example.org")
    with client.session_transaction() as session:
        assert session["epoch"] == 0
        del session["epoch"]  # as cookies issued before revision 0007 are
    assert client.get("/admin/").status_code == 302


def test_a_session_ends_twelve_hours_after_login_however_busy(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    # Flask renews the cookie on every request; the login time its row keeps does not move.
    make_organizer(store, "a@example.org")
    auth.login("a@example.org")
    lifetime = client.application.permanent_session_lifetime
    [row] = store.scalars(select(LoginSession))
    assert abs(row.created_at - utcnow()) < dt.timedelta(seconds=60)
    started = utcnow() - lifetime + dt.timedelta(seconds=60)  # 11 h 59 min ago
    row.created_at = started
    store.commit()
    assert client.get("/admin/").status_code == 200
    assert store.scalar(select(LoginSession.created_at)) == started  # the request kept it
    row.created_at = utcnow() - lifetime - dt.timedelta(seconds=1)
    store.commit()
    assert client.get("/admin/").status_code == 302


def test_a_session_cookie_without_its_secret_is_logged_out(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    auth.login("a@example.org")
    with client.session_transaction() as session:
        del session["login"]
    assert client.get("/admin/").status_code == 302


def test_the_dashboards_error_pages_lead_back_to_the_dashboard(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "a@example.org")
    auth.login("a@example.org")
    page = client.get("/admin/c/no-such-letter/signatures")
    assert page.status_code == 404
    text = page.get_data(as_text=True)
    assert "Check the address, or start again from the dashboard." in text
    assert '<a href="/admin/">Back to the dashboard</a>' in text
    public = client.get("/c/no-such-letter").get_data(as_text=True)
    assert "start again from the letter\u2019s page" in public and "Back to the start" in public
