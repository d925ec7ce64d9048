"""Forgot your password: an organizer asks for a link by mail and sets a new password with it."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import itsdangerous.timed
import pytest
from admin_helpers import (
    PASSWORD,
    app_client,
    csrf_token,
    flashes,
    make_organizer,
    organizer_by_email,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from campaign import auth as authmod
from campaign.db import utcnow
from campaign.models import AuditEntry, OutboxMessage

NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(r"http://campaign\.test/admin/password-reset/([A-Za-z0-9_.\-]+)")
ANSWER = "If an account has this address, we have mailed it a link"


@pytest.fixture
def app(app_factory: Any, backend: str) -> Flask:
    """The app on each database in turn."""
    return app_factory(backend)  # type: ignore[no-any-return]


@pytest.fixture
def store(app: Flask) -> Any:
    """A plain session on the app's database, beside the test clients."""
    engine = create_engine(str(app.config["DATABASE_URL"]))
    session = Session(bind=engine, expire_on_commit=False)
    yield session
    session.close()
    engine.dispose()


@pytest.fixture
def ann(store: Session) -> None:
    """Ann, an active organizer."""
    make_organizer(store, "ann@example.org")


def mails(store: Session) -> list[OutboxMessage]:
    """Every queued mail."""
    store.expire_all()
    return list(store.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def ask(client: FlaskClient, email: str) -> Any:
    """POST the "forgot your password" form."""
    data = {"email": email}
    if client.application.config.get("WTF_CSRF_ENABLED", True):
        data["csrf_token"] = csrf_token(client, "/admin/password-reset")
    return client.post("/admin/password-reset", data=data)


def token_of(message: OutboxMessage) -> str:
    """The reset token in a mail's link."""
    found = LINK.search(message.body_text)
    assert found, message.body_text
    return found.group(1)


def reset(client: FlaskClient, token: str, password: str = NEW_PASSWORD, **extra: str) -> Any:
    """POST a new password, twice, to a reset link."""
    data = {"new_password": password, "new_password_again": password, **extra}
    return client.post(f"/admin/password-reset/{token}", data=data)


def link_for_ann(client: FlaskClient, store: Session) -> str:
    """Ask for Ann's link and return its token."""
    assert ask(client, "ann@example.org").status_code == 303
    (message,) = mails(store)
    return token_of(message)


def test_the_login_page_links_to_the_reset_form(client: FlaskClient) -> None:
    page = client.get("/admin/login").get_data(as_text=True)
    assert '<a href="/admin/password-reset">Forgot your password?</a>' in page
    form = client.get("/admin/password-reset")
    assert form.status_code == 200
    text = form.get_data(as_text=True)
    assert '<label class="label" for="email">Email address</label>' in text


def test_known_unknown_and_inactive_addresses_get_the_same_answer(
    client: FlaskClient, store: Session, ann: None
) -> None:
    bob = make_organizer(store, "bob@example.org")
    bob.active = False
    store.commit()
    answers = [ask(client, email) for email in ("ann@example.org", "nobody@example.org")]
    answers.append(ask(client, "bob@example.org"))
    assert {a.status_code for a in answers} == {303}
    assert {a.headers["Location"] for a in answers} == {"/admin/password-reset/sent"}
    assert len({a.get_data() for a in answers}) == 1
    pages = [client.get(a.headers["Location"]) for a in answers]
    assert {p.status_code for p in pages} == {200}
    assert len({p.get_data() for p in pages}) == 1
    assert ANSWER in pages[0].get_data(as_text=True)
    # Only Ann, active, gets a mail; Bob (inactive) and the unknown address none.
    assert [m.to_addr for m in mails(store)] == ["ann@example.org"]


def test_an_active_organizer_gets_one_mail_with_a_working_link(
    client: FlaskClient, store: Session, ann: None
) -> None:
    token = link_for_ann(client, store)
    (message,) = mails(store)
    assert message.signature_id is None
    assert "ignore" in message.body_text and "1 hour" in message.body_text
    page = client.get(f"/admin/password-reset/{token}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'name="new_password"' in text and 'name="new_password_again"' in text


def test_the_address_is_matched_in_any_case(client: FlaskClient, store: Session, ann: None) -> None:
    assert ask(client, "  ANN@Example.org ").status_code == 303
    assert [m.to_addr for m in mails(store)] == ["ann@example.org"]


def test_opening_the_link_changes_nothing(client: FlaskClient, store: Session, ann: None) -> None:
    token = link_for_ann(client, store)
    before = organizer_by_email(store, "ann@example.org")
    state = (before.password_hash, before.session_epoch, before.failed_logins)
    for _ in range(3):
        assert client.get(f"/admin/password-reset/{token}").status_code == 200
    after = organizer_by_email(store, "ann@example.org")
    assert (after.password_hash, after.session_epoch, after.failed_logins) == state
    assert reset(client, token).status_code == 303  # still usable after being opened


def test_posting_sets_the_password_ends_sessions_lifts_a_lockout_and_audits(
    app: Flask, store: Session, ann: None
) -> None:
    logged_in, auth = app_client(app)
    assert auth.login("ann@example.org").status_code == 303
    assert logged_in.get("/admin/").status_code == 200
    ann_row = organizer_by_email(store, "ann@example.org")
    ann_row.locked_until = utcnow() + dt.timedelta(minutes=10)
    ann_row.failed_logins = 3
    store.commit()

    client, client_auth = app_client(app)
    token = link_for_ann(client, store)
    response = reset(client, token)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/login"
    assert "Your password is changed" in " ".join(flashes(client.get("/admin/login")))
    assert client.get("/admin/").status_code == 302  # not logged in by the reset

    after = organizer_by_email(store, "ann@example.org")
    assert authmod.verify_password(after.password_hash, NEW_PASSWORD)
    assert after.locked_until is None and after.failed_logins == 0
    assert logged_in.get("/admin/").status_code == 302  # the older session is over
    assert client_auth.login("ann@example.org", NEW_PASSWORD).status_code == 303
    assert client_auth.login("ann@example.org", PASSWORD).status_code == 200

    entries = list(
        store.scalars(select(AuditEntry).where(AuditEntry.action == "organizer.password"))
    )
    assert len(entries) == 1
    assert entries[0].organizer_id == after.id
    assert '"via": "reset"' in entries[0].after
    assert NEW_PASSWORD not in entries[0].before + entries[0].after


def test_a_used_link_is_refused(client: FlaskClient, store: Session, ann: None) -> None:
    token = link_for_ann(client, store)
    assert reset(client, token).status_code == 303
    for response in (client.get(f"/admin/password-reset/{token}"), reset(client, token, "x" * 20)):
        assert response.status_code == 400
        text = response.get_data(as_text=True)
        assert "This link cannot be used" in text
        assert 'href="/admin/password-reset"' in text
    assert authmod.verify_password(
        organizer_by_email(store, "ann@example.org").password_hash, NEW_PASSWORD
    )


def test_logging_out_everywhere_ends_the_link(
    client: FlaskClient, store: Session, ann: None
) -> None:
    token = link_for_ann(client, store)
    ann_row = organizer_by_email(store, "ann@example.org")
    authmod.end_sessions(store, ann_row)
    store.commit()
    assert client.get(f"/admin/password-reset/{token}").status_code == 400


def test_an_expired_link_is_refused(
    client: FlaskClient, store: Session, ann: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = link_for_ann(client, store)
    later = int(time.time()) + 3601
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later)
    for response in (client.get(f"/admin/password-reset/{token}"), reset(client, token)):
        assert response.status_code == 400
        assert "This link has expired." in response.get_data(as_text=True)
    assert authmod.verify_password(
        organizer_by_email(store, "ann@example.org").password_hash, PASSWORD
    )


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "x" + t,
        lambda t: t + "%0A",
        lambda t: "not-a-token",
        lambda t: "a.b.c",
    ],
)
def test_a_tampered_link_is_refused(
    client: FlaskClient, store: Session, ann: None, mangle: Any
) -> None:
    token = mangle(link_for_ann(client, store))
    for response in (client.get(f"/admin/password-reset/{token}"), reset(client, token)):
        assert response.status_code == 400
        assert "This link cannot be used" in response.get_data(as_text=True)


def test_a_link_for_a_deactivated_organizer_is_refused(
    client: FlaskClient, store: Session, ann: None
) -> None:
    token = link_for_ann(client, store)
    ann_row = organizer_by_email(store, "ann@example.org")
    ann_row.active = False
    store.commit()
    assert client.get(f"/admin/password-reset/{token}").status_code == 400


def test_one_mail_per_account_per_interval(client: FlaskClient, store: Session, ann: None) -> None:
    for _ in range(4):
        assert ask(client, "ann@example.org").status_code == 303
    assert len(mails(store)) == 1
    ann_row = organizer_by_email(store, "ann@example.org")
    assert ann_row.password_reset_sent_at is not None
    ann_row.password_reset_sent_at -= dt.timedelta(seconds=301)
    store.commit()
    assert ask(client, "ann@example.org").status_code == 303
    assert len(mails(store)) == 2


def test_a_weak_or_mismatched_password_comes_back_with_errors(
    client: FlaskClient, store: Session, ann: None
) -> None:
    token = link_for_ann(client, store)
    short = reset(client, token, "short")
    assert short.status_code == 400
    assert 'aria-describedby="new_password-hint new_password-error"' in short.get_data(as_text=True)
    differ = client.post(
        f"/admin/password-reset/{token}",
        data={"new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD + "!"},
    )
    assert differ.status_code == 400
    assert "The two new passwords differ." in differ.get_data(as_text=True)
    assert authmod.verify_password(
        organizer_by_email(store, "ann@example.org").password_hash, PASSWORD
    )


def test_an_empty_or_malformed_address_is_a_form_error(client: FlaskClient, store: Session) -> None:
    for email in ("", "not an address"):
        response = client.post("/admin/password-reset", data={"email": email})
        assert response.status_code == 400
        assert 'id="email-error"' in response.get_data(as_text=True)
    assert mails(store) == []


def test_csrf_is_enforced_on_both_forms(app_factory: Any, backend: str) -> None:
    app = app_factory(backend, WTF_CSRF_ENABLED=True)
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(bind=engine, expire_on_commit=False) as store:
        make_organizer(store, "ann@example.org")
        client = app.test_client()
        refused = client.post("/admin/password-reset", data={"email": "ann@example.org"})
        assert refused.status_code == 400
        assert mails(store) == []
        token = link_for_ann(client, store)
        assert reset(client, token).status_code == 400
        assert authmod.verify_password(
            organizer_by_email(store, "ann@example.org").password_hash, PASSWORD
        )
        good = csrf_token(client, f"/admin/password-reset/{token}")
        assert reset(client, token, csrf_token=good).status_code == 303
        assert authmod.verify_password(
            organizer_by_email(store, "ann@example.org").password_hash, NEW_PASSWORD
        )
    engine.dispose()


def test_asking_is_rate_limited_per_client(app_factory: Any, backend: str) -> None:
    app = app_factory(backend, RATELIMIT_ENABLED=True, PASSWORD_RESET_RATE_LIMIT="2 per minute")
    client = app.test_client()
    codes = [ask(client, f"n{i}@example.org").status_code for i in range(3)]
    assert codes == [303, 303, 429]


def test_a_bad_rate_limit_setting_stops_start_up(app_factory: Any) -> None:
    with pytest.raises(ValueError, match="PASSWORD_RESET_RATE_LIMIT"):
        app_factory(PASSWORD_RESET_RATE_LIMIT="often")


def test_the_mail_and_pages_speak_the_language_it_was_asked_in(
    client: FlaskClient, store: Session, ann: None
) -> None:
    headers = {"Accept-Language": "fr"}
    assert "Mot de passe oublié" in client.get("/admin/login", headers=headers).get_data(
        as_text=True
    )
    client.post("/admin/password-reset", data={"email": "ann@example.org"}, headers=headers)
    (message,) = mails(store)
    assert message.subject == "Réinitialiser votre mot de passe"
    assert "Le lien expire dans 1 heure" in message.body_text
    assert LINK.search(message.body_text)
