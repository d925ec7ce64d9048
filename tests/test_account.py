"""Your account: every organizer's own page, their password and their sessions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from admin_helpers import (
    PASSWORD,
    AuthActions,
    app_client,
    auth,
    copy_session,
    csrf_token,
    flashes,
    make_organizer,
    organizer_by_email,
    store,
)
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign import auth as authmod
from campaign.db import new_session
from campaign.models import AuditEntry

__all__ = ["auth", "store"]

NEW_PASSWORD = "a brand new passphrase"


def _change(**changes: str) -> dict[str, str]:
    """The password form, filled in right unless told otherwise."""
    form = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_again": NEW_PASSWORD,
    }
    form.update(changes)
    return form


def _twice(password: str) -> dict[str, str]:
    return {"new_password": password, "new_password_again": password}


SHORT = "At least 12 characters."
DIFFER = "The two new passwords differ."
REQUIRED = "This field is required."


@pytest.fixture
def ann(store: Session, auth: AuthActions) -> None:
    """Ann, an organizer (not an admin), logged in on the test client."""
    organizer = make_organizer(store, "ann@example.org")
    organizer.name = "Ann Organizer"
    store.commit()
    assert auth.login("ann@example.org").status_code == 303


def _audit(store: Session, action: str) -> list[AuditEntry]:
    store.expire_all()
    return list(store.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_every_dashboard_page_links_to_the_account_page(client: FlaskClient, ann: None) -> None:
    page = client.get("/admin/").get_data(as_text=True)
    nav = re.search(r'<nav class="admin-nav".*?</nav>', page, re.S)
    assert nav is not None
    assert '<a href="/admin/account">Your account</a>' in nav.group(0)
    assert 'action="/admin/logout"' in nav.group(0)


def test_the_account_page_shows_who_you_are_and_the_forms(client: FlaskClient, ann: None) -> None:
    response = client.get("/admin/account")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Your account</h1>" in page
    assert "Ann Organizer" in page
    assert "ann@example.org" in page
    for name, autocomplete in [
        ("current_password", "current-password"),
        ("new_password", "new-password"),
        ("new_password_again", "new-password"),
    ]:
        assert f'<label class="label" for="{name}">' in page
        field = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
        assert field is not None
        assert f'autocomplete="{autocomplete}"' in field.group(0)
        assert 'type="password"' in field.group(0)
    assert 'action="/admin/account/logout-everywhere"' in page
    assert "Log out everywhere" in page


def test_changing_the_password_keeps_this_session_and_ends_every_other(
    client: FlaskClient, auth: AuthActions, store: Session, ann: None
) -> None:
    phone = copy_session(client)
    assert phone.get("/admin/").status_code == 200
    response = client.post("/admin/account", data=_change())
    assert response.status_code == 303
    # At the top, with the message in view, not at the form's #password.
    assert response.headers["Location"] == "/admin/account#top"
    assert flashes(client.get("/admin/account")) == [
        "Your password is changed. Every other session of yours is logged out."
    ]
    assert client.get("/admin/").status_code == 200
    assert phone.get("/admin/").status_code == 302
    ann = organizer_by_email(store, "ann@example.org")
    assert authmod.verify_password(ann.password_hash, NEW_PASSWORD)
    [entry] = _audit(store, "organizer.password")
    assert entry.organizer_id == ann.id
    assert "ann@example.org" in entry.after
    for secret in (PASSWORD, NEW_PASSWORD, ann.password_hash, "$argon2"):
        assert secret not in entry.before + entry.after
    auth.logout()
    assert "do not match" in auth.login("ann@example.org").get_data(as_text=True)
    assert auth.login("ann@example.org", NEW_PASSWORD).status_code == 303


def test_a_wrong_current_password_is_a_form_error_and_changes_nothing(
    client: FlaskClient, store: Session, ann: None
) -> None:
    phone = copy_session(client)
    response = client.post("/admin/account", data=_change(current_password="not my password!"))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert '<p class="error" id="current_password-error">The current password is wrong.</p>' in page
    field = re.search(r'<input[^>]*name="current_password"[^>]*>', page)
    assert field is not None
    assert 'aria-describedby="current_password-error"' in field.group(0)
    assert 'aria-invalid="true"' in field.group(0)
    assert '<a href="#current_password">' in page  # the summary at the top links the field
    assert "not my password!" not in page  # password fields are never filled back in
    ann = organizer_by_email(store, "ann@example.org")
    assert authmod.verify_password(ann.password_hash, PASSWORD)
    assert ann.session_epoch == 0
    assert phone.get("/admin/").status_code == 200
    assert _audit(store, "organizer.password") == []


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (_twice("too short"), "new_password", SHORT),
        ({"new_password_again": "something else entirely"}, "new_password_again", DIFFER),
        ({"current_password": ""}, "current_password", REQUIRED),
        (_twice(""), "new_password", "Enter a password of at least 12 characters."),
        (_twice("x" * 1025), "new_password", "At most 1024 characters."),
        (_twice(PASSWORD), "new_password", "Choose a password other than your current one."),
    ],
)
def test_bad_new_passwords_are_form_errors(
    client: FlaskClient,
    store: Session,
    ann: None,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = client.post("/admin/account", data=_change(**changes))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'<p class="error" id="{field}-error">{message}</p>' in page
    ann = organizer_by_email(store, "ann@example.org")
    assert authmod.verify_password(ann.password_hash, PASSWORD)
    assert ann.session_epoch == 0
    assert _audit(store, "organizer.password") == []


def test_the_error_summary_follows_the_page_order(client: FlaskClient, ann: None) -> None:
    response = client.post("/admin/account", data={})
    assert response.status_code == 400
    summary = response.get_data(as_text=True).split('id="error-summary"', 1)[1].split("</div>")[0]
    links = re.findall(r'href="#([a-z_]+)"', summary)
    assert links == ["current_password", "new_password", "new_password_again"]


def test_changing_the_password_works_with_csrf_checks_twice_in_a_row(app_factory: Any) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    client, helper = app_client(app)
    with new_session(app) as db:
        make_organizer(db, "ann@example.org")
    assert helper.login("ann@example.org").status_code == 303
    for current, new in [(PASSWORD, NEW_PASSWORD), (NEW_PASSWORD, PASSWORD + " again")]:
        token = csrf_token(client, "/admin/account")
        data = _change(current_password=current, new_password=new, new_password_again=new)
        response = client.post("/admin/account", data={"csrf_token": token, **data})
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
    assert client.get("/admin/").status_code == 200


def test_changing_the_password_is_rate_limited_like_login(app_factory: Any) -> None:
    app = app_factory(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute")
    client, helper = app_client(app)
    with new_session(app) as db:
        make_organizer(db, "ann@example.org")
    assert helper.login("ann@example.org").status_code == 303
    wrong = _change(current_password="guess number one")
    statuses = [client.post("/admin/account", data=wrong).status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
    assert client.get("/admin/account").status_code == 200  # the page itself stays reachable


def test_log_out_everywhere_ends_this_session_and_every_other(
    client: FlaskClient, auth: AuthActions, store: Session, ann: None
) -> None:
    phone = copy_session(client)
    response = client.post("/admin/account/logout-everywhere")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/login"
    assert flashes(client.get("/admin/login")) == [
        "You are logged out everywhere: on this device and every other."
    ]
    assert client.get("/admin/").status_code == 302
    assert phone.get("/admin/").status_code == 302
    ann = organizer_by_email(store, "ann@example.org")
    [entry] = _audit(store, "organizer.logout_everywhere")
    assert entry.organizer_id == ann.id
    assert "ann@example.org" in entry.after
    # The password stays what it was: logging in again works, and only here.
    assert auth.login("ann@example.org").status_code == 303
    assert client.get("/admin/").status_code == 200
    assert phone.get("/admin/").status_code == 302


def test_log_out_everywhere_is_post_only(client: FlaskClient, ann: None) -> None:
    assert client.get("/admin/account/logout-everywhere").status_code == 405
    assert client.get("/admin/").status_code == 200


def test_admins_have_the_same_account_page(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "root@example.org", admin=True)
    auth.login("root@example.org")
    assert client.post("/admin/account", data=_change()).status_code == 303
    root = organizer_by_email(store, "root@example.org")
    assert authmod.verify_password(root.password_hash, NEW_PASSWORD)


def test_the_account_page_is_translated(client: FlaskClient, ann: None) -> None:
    page = client.get("/admin/account?lang=fr").get_data(as_text=True)
    assert "<h1>Votre compte</h1>" in page
    wrong = client.post("/admin/account?lang=es", data=_change(current_password="wrong guess"))
    assert "La contraseña actual no es correcta." in wrong.get_data(as_text=True)
