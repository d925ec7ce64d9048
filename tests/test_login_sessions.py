"""Organizers' sessions kept on the server: logging out ends them, the account page lists them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Iterator
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
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaign import auth as authmod
from campaign.db import alembic_config, make_engine, new_session, upgrade, utcnow
from campaign.models import AuditEntry, LoginSession

__all__ = ["auth", "store"]

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)


def _device(app: Flask, user_agent: str) -> tuple[FlaskClient, AuthActions]:
    """A browser of its own, which says it is user_agent."""
    client, helper = app_client(app)
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return client, helper


def _rows(store: Session) -> list[LoginSession]:
    store.expire_all()
    return list(store.scalars(select(LoginSession).order_by(LoginSession.id)))


def _secret(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        secret = session["login"]
    assert isinstance(secret, str)
    return secret


def _row_of(store: Session, client: FlaskClient) -> LoginSession:
    """The session row behind a browser's cookie."""
    digest = hashlib.sha256(_secret(client).encode()).hexdigest()
    found = store.scalar(select(LoginSession).where(LoginSession.secret_hash == digest))
    assert found is not None
    return found


def _audit(store: Session, action: str) -> list[AuditEntry]:
    store.expire_all()
    return list(store.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
def ann(store: Session) -> None:
    """Ann, an organizer, not logged in anywhere yet."""
    make_organizer(store, "ann@example.org")


# --- the row and the cookie -------------------------------------------------------------


def test_a_login_keeps_only_the_hash_of_the_cookies_secret(
    app: Flask, store: Session, ann: None
) -> None:
    client, helper = _device(app, FIREFOX_WINDOWS)
    assert helper.login("ann@example.org").status_code == 303
    secret = _secret(client)
    assert len(secret) >= 40
    [row] = _rows(store)
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.organizer_id == organizer_by_email(store, "ann@example.org").id
    assert (row.browser, row.system) == ("Firefox", "Windows")
    assert abs(row.created_at - utcnow()) < dt.timedelta(minutes=1)
    assert row.last_seen_at == row.created_at
    stored = store.execute(text("SELECT * FROM login_session")).one()
    assert secret not in [str(value) for value in stored]
    assert "Gecko" not in " ".join(str(value) for value in stored)  # never the header itself


def test_a_copied_cookie_stops_working_after_plain_logout(any_app: Flask) -> None:
    with new_session(any_app) as db:
        make_organizer(db, "ann@example.org")
    laptop, helper = app_client(any_app)
    assert helper.login("ann@example.org").status_code == 303
    copy = copy_session(laptop)
    assert copy.get("/admin/").status_code == 200
    assert helper.logout().status_code == 303
    assert laptop.get("/admin/").status_code == 302
    response = copy.get("/admin/account")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login?next=/admin/account"
    with new_session(any_app) as db:
        assert db.scalar(select(func.count()).select_from(LoginSession)) == 0


def _laptop_and_phone(app: Flask) -> tuple[tuple[FlaskClient, AuthActions], ...]:
    """Ann logged in on a Windows laptop, then on an iPhone."""
    devices = (_device(app, FIREFOX_WINDOWS), _device(app, SAFARI_IPHONE))
    for _, helper in devices:
        assert helper.login("ann@example.org").status_code == 303
    return devices


def test_logging_out_ends_only_this_devices_session(app: Flask, store: Session, ann: None) -> None:
    (laptop, laptop_auth), (phone, _) = _laptop_and_phone(app)
    assert laptop_auth.logout().status_code == 303
    assert laptop.get("/admin/").status_code == 302
    assert phone.get("/admin/").status_code == 200
    assert [(row.browser, row.system) for row in _rows(store)] == [("Safari", "iPhone")]


def test_a_cookie_from_before_the_upgrade_is_logged_out_once_and_login_works(
    app: Flask, store: Session, ann: None
) -> None:
    client, helper = app_client(app)
    ann_id = organizer_by_email(store, "ann@example.org").id
    with client.session_transaction() as session:
        # What a login wrote before revision 0018: no session secret.
        session["organizer_id"] = ann_id
        session["epoch"] = 0
        session["since"] = int(time.time())
        session.permanent = True
    response = client.get("/admin/")
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert 'name="password"' in page.get_data(as_text=True)
    assert helper.login("ann@example.org").status_code == 303
    assert client.get("/admin/").status_code == 200


def test_a_session_whose_organizer_does_not_match_the_cookie_is_refused(
    app: Flask, store: Session, ann: None
) -> None:
    make_organizer(store, "bob@example.org")
    client, helper = app_client(app)
    assert helper.login("ann@example.org").status_code == 303
    with client.session_transaction() as session:
        session["organizer_id"] = organizer_by_email(store, "bob@example.org").id
    assert client.get("/admin/").status_code == 302


def test_sessions_past_their_lifetime_are_deleted_at_the_next_login(
    app: Flask, store: Session, ann: None
) -> None:
    make_organizer(store, "bob@example.org")
    old, old_auth = app_client(app)
    assert old_auth.login("ann@example.org").status_code == 303
    lifetime = app.permanent_session_lifetime
    [row] = _rows(store)
    row.created_at = utcnow() - lifetime - dt.timedelta(seconds=1)
    store.commit()
    assert old.get("/admin/").status_code == 302  # refused at once, the row still there
    assert len(_rows(store)) == 1
    _, bob_auth = app_client(app)
    assert bob_auth.login("bob@example.org").status_code == 303  # anyone's login sweeps
    assert [r.organizer_id for r in _rows(store)] == [
        organizer_by_email(store, "bob@example.org").id
    ]


def test_an_organizers_sessions_go_with_the_organizer(store: Session, app: Flask) -> None:
    _, helper = app_client(app)
    make_organizer(store, "ann@example.org")
    assert helper.login("ann@example.org").status_code == 303
    with new_session(app) as db:  # the app's connections, which enforce foreign keys
        db.execute(text("DELETE FROM organizer"))
        db.commit()
    assert _rows(store) == []


# --- what each way of ending sessions ends ---------------------------------------------


def test_logins_and_logouts_are_in_the_audit_trail(app: Flask, store: Session, ann: None) -> None:
    (_, laptop_auth), (phone, _) = _laptop_and_phone(app)
    assert laptop_auth.logout().status_code == 303
    assert laptop_auth.logout().status_code == 303  # logged out already: nothing ended
    logins = _audit(store, "organizer.login")
    assert [(e.organizer.email, json.loads(e.after)["browser"]) for e in logins] == [
        ("ann@example.org", "Firefox"),
        ("ann@example.org", "Safari"),
    ]
    [logout] = _audit(store, "organizer.logout")
    assert logout.organizer.email == "ann@example.org"
    # Log out everywhere is its own entry, not one more plain logout.
    assert phone.post("/admin/account/logout-everywhere").status_code == 303
    assert len(_audit(store, "organizer.logout_everywhere")) == 1
    assert len(_audit(store, "organizer.logout")) == 1
    make_organizer(store, "root@example.org", admin=True)
    admin, admin_auth = app_client(app)
    assert admin_auth.login("root@example.org").status_code == 303
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert "<code>organizer.login</code>" in page and "<code>organizer.logout</code>" in page


def test_log_out_everywhere_deletes_every_session_of_the_organizer_only(
    app: Flask, store: Session, ann: None
) -> None:
    make_organizer(store, "bob@example.org")
    laptop, laptop_auth = _device(app, FIREFOX_WINDOWS)
    phone, phone_auth = _device(app, SAFARI_IPHONE)
    bob, bob_auth = app_client(app)
    for helper, email in [
        (laptop_auth, "ann@example.org"),
        (phone_auth, "ann@example.org"),
        (bob_auth, "bob@example.org"),
    ]:
        assert helper.login(email).status_code == 303
    assert laptop.post("/admin/account/logout-everywhere").status_code == 303
    assert laptop.get("/admin/").status_code == 302
    assert phone.get("/admin/").status_code == 302
    assert bob.get("/admin/").status_code == 200
    bob_id = organizer_by_email(store, "bob@example.org").id
    assert [row.organizer_id for row in _rows(store)] == [bob_id]


def test_changing_the_password_keeps_this_device_in_a_new_session_and_ends_the_others(
    app: Flask, store: Session, ann: None
) -> None:
    laptop, laptop_auth = _device(app, FIREFOX_WINDOWS)
    phone, phone_auth = _device(app, SAFARI_IPHONE)
    assert phone_auth.login("ann@example.org").status_code == 303
    assert laptop_auth.login("ann@example.org").status_code == 303
    before = _row_of(store, laptop).id
    copy = copy_session(laptop)
    new = "a brand new passphrase"
    response = laptop.post(
        "/admin/account",
        data={"current_password": PASSWORD, "new_password": new, "new_password_again": new},
    )
    assert response.status_code == 303
    assert laptop.get("/admin/").status_code == 200
    assert phone.get("/admin/").status_code == 302
    assert copy.get("/admin/").status_code == 302  # the cookie from before the change, too
    [row] = _rows(store)
    assert row.id != before
    assert (row.browser, row.system) == ("Firefox", "Windows")


def test_an_admin_setting_a_password_or_deactivating_ends_the_organizers_sessions(
    app: Flask, store: Session, ann: None
) -> None:
    make_organizer(store, "root@example.org", admin=True)
    ann_client, ann_auth = app_client(app)
    root, root_auth = app_client(app)
    assert ann_auth.login("ann@example.org").status_code == 303
    assert root_auth.login("root@example.org").status_code == 303
    ann_id = organizer_by_email(store, "ann@example.org").id
    response = root.post(
        f"/admin/organizers/{ann_id}/password", data={"pw-password": "a long password!"}
    )
    assert response.status_code == 303
    assert ann_client.get("/admin/").status_code == 302
    assert root.get("/admin/").status_code == 200
    root_id = organizer_by_email(store, "root@example.org").id
    assert [row.organizer_id for row in _rows(store)] == [root_id]
    assert ann_auth.login("ann@example.org", "a long password!").status_code == 303
    assert root.post(f"/admin/organizers/{ann_id}", data={"name": "Ann"}).status_code == 303
    assert ann_client.get("/admin/").status_code == 302
    assert [row.organizer_id for row in _rows(store)] == [root_id]


def test_a_password_reset_ends_every_session(app: Flask, store: Session, ann: None) -> None:
    client, helper = app_client(app)
    assert helper.login("ann@example.org").status_code == 303
    with new_session(app) as db, app.app_context():
        ann_row = organizer_by_email(db, "ann@example.org")
        authmod.reset_password(db, ann_row, "a brand new passphrase")
        db.commit()
    assert client.get("/admin/").status_code == 302
    assert _rows(store) == []


# --- the account page -------------------------------------------------------------------


def test_the_account_page_lists_each_session_with_its_device(
    app: Flask, store: Session, ann: None
) -> None:
    laptop, laptop_auth = _device(app, FIREFOX_WINDOWS)
    phone, phone_auth = _device(app, SAFARI_IPHONE)
    _, odd_auth = _device(app, "curl/8.5.0")
    for helper in (phone_auth, odd_auth, laptop_auth):
        assert helper.login("ann@example.org").status_code == 303
    page = laptop.get("/admin/account").get_data(as_text=True)
    section = page.split('id="sessions"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>.*?</tr>", section.split("<tbody>", 1)[1], re.S)
    assert len(rows) == 3
    this = [row for row in rows if "this device" in row]
    assert len(this) == 1
    assert "Firefox on Windows" in this[0]
    assert "/end" not in this[0]  # this one ends by logging out
    others = [row for row in rows if "this device" not in row]
    names = sorted(re.findall(r'<th scope="row">([^<]*)', "".join(others)))
    assert names == ["Safari on iPhone", "Unknown device"]
    phone_row = _row_of(store, phone)
    assert f'action="/admin/account/sessions/{phone_row.id}/end"' in section
    started = phone_row.created_at.strftime("%Y-%m-%d %H:%M")
    assert f">{started}</time>" in section
    assert "curl" not in page and "Gecko" not in page


def test_the_account_page_lists_no_other_organizers_sessions(
    app: Flask, store: Session, ann: None
) -> None:
    make_organizer(store, "bob@example.org")
    ann_client, ann_auth = app_client(app)
    _, bob_auth = _device(app, SAFARI_IPHONE)
    assert bob_auth.login("bob@example.org").status_code == 303
    assert ann_auth.login("ann@example.org").status_code == 303
    page = ann_client.get("/admin/account").get_data(as_text=True)
    section = page.split('id="sessions"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr>", section)) == 1 + 1  # the header row and Ann's own
    assert "iPhone" not in section


def test_ending_another_session_from_the_account_page_ends_that_one_only(
    app_factory: Any,
) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    with new_session(app) as db:
        make_organizer(db, "ann@example.org")
    laptop, laptop_auth = _device(app, FIREFOX_WINDOWS)
    phone, phone_auth = _device(app, SAFARI_IPHONE)
    tablet, tablet_auth = _device(app, CHROME_ANDROID)
    for helper in (laptop_auth, phone_auth, tablet_auth):
        assert helper.login("ann@example.org").status_code == 303
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(engine) as store:
        phone_row = _row_of(store, phone)
        phone_id, started = phone_row.id, phone_row.created_at
    token = csrf_token(laptop, "/admin/account")
    response = laptop.post(f"/admin/account/sessions/{phone_id}/end", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/account#sessions"
    assert flashes(laptop.get("/admin/account")) == [
        f"The session on Safari on iPhone, logged in {started:%Y-%m-%d %H:%M} UTC, is ended."
    ]
    assert phone.get("/admin/").status_code == 302
    assert laptop.get("/admin/").status_code == 200
    assert tablet.get("/admin/").status_code == 200
    with Session(engine) as store:
        assert sorted((r.browser, r.system) for r in _rows(store)) == [
            ("Chrome", "Android"),
            ("Firefox", "Windows"),
        ]
        [entry] = _audit(store, "organizer.session_end")
        assert entry.organizer_id == organizer_by_email(store, "ann@example.org").id
        assert '"browser": "Safari"' in entry.before and '"system": "iPhone"' in entry.before
        assert "ann@example.org" in entry.after
    engine.dispose()


def test_ending_a_session_needs_the_csrf_token(app_factory: Any) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    with new_session(app) as db:
        make_organizer(db, "ann@example.org")
    laptop, laptop_auth = app_client(app)
    phone, phone_auth = app_client(app)
    assert laptop_auth.login("ann@example.org").status_code == 303
    assert phone_auth.login("ann@example.org").status_code == 303
    with new_session(app) as db:
        phone_id = max(db.scalars(select(LoginSession.id)))
    assert laptop.post(f"/admin/account/sessions/{phone_id}/end").status_code == 400
    assert phone.get("/admin/").status_code == 200


def test_another_organizers_session_id_ends_nothing(
    client: FlaskClient, auth: AuthActions, app: Flask, store: Session, ann: None
) -> None:
    make_organizer(store, "bob@example.org")
    bob, bob_auth = app_client(app)
    assert bob_auth.login("bob@example.org").status_code == 303
    assert auth.login("ann@example.org").status_code == 303
    bob_id = _row_of(store, bob).id
    before = [row.id for row in _rows(store)]
    for session_id in (bob_id, 999_999):
        response = client.post(f"/admin/account/sessions/{session_id}/end")
        assert response.status_code == 303
        assert response.headers["Location"] == "/admin/account#sessions"
        assert flashes(client.get("/admin/account")) == [
            "You have no such session: it may have ended already."
        ]
    assert bob.get("/admin/").status_code == 200
    assert [row.id for row in _rows(store)] == before
    assert _audit(store, "organizer.session_end") == []
    assert client.post("/admin/account/sessions/not-a-number/end").status_code == 404
    assert client.post("/admin/account/sessions/-1/end").status_code == 404


def test_ending_a_session_twice_says_it_had_ended(
    client: FlaskClient, auth: AuthActions, app: Flask, store: Session, ann: None
) -> None:
    phone, phone_auth = app_client(app)
    assert phone_auth.login("ann@example.org").status_code == 303
    assert auth.login("ann@example.org").status_code == 303
    phone_id = _row_of(store, phone).id
    assert client.post(f"/admin/account/sessions/{phone_id}/end").status_code == 303
    client.get("/admin/account")  # shows the flash
    assert client.post(f"/admin/account/sessions/{phone_id}/end").status_code == 303
    assert flashes(client.get("/admin/account")) == [
        "You have no such session: it may have ended already."
    ]
    assert len(_audit(store, "organizer.session_end")) == 1


def test_this_session_is_not_ended_by_the_end_form(
    client: FlaskClient, auth: AuthActions, store: Session, ann: None
) -> None:
    assert auth.login("ann@example.org").status_code == 303
    this_id = _row_of(store, client).id
    response = client.post(f"/admin/account/sessions/{this_id}/end")
    assert response.status_code == 303
    assert flashes(client.get("/admin/account")) == [
        "This is the session you are using: to end it, log out."
    ]
    assert client.get("/admin/").status_code == 200
    assert [row.id for row in _rows(store)] == [this_id]


def test_ending_a_session_needs_a_login(client: FlaskClient, store: Session, app: Flask) -> None:
    make_organizer(store, "ann@example.org")
    phone, phone_auth = app_client(app)
    assert phone_auth.login("ann@example.org").status_code == 303
    phone_id = _row_of(store, phone).id
    response = client.post(f"/admin/account/sessions/{phone_id}/end")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")
    assert phone.get("/admin/").status_code == 200


def test_the_sessions_section_is_translated(
    client: FlaskClient, auth: AuthActions, ann: None
) -> None:
    assert auth.login("ann@example.org").status_code == 303
    page = client.get("/admin/account?lang=fr").get_data(as_text=True)
    section = page.split('id="sessions"', 1)[1].split("</table>", 1)[0]
    assert '<span class="badge">cet appareil</span>' in section
    assert "Appareil inconnu" in section


# --- last seen ------------------------------------------------------------------------


@pytest.fixture
def session_writes(any_app: Flask) -> Iterator[list[str]]:
    """The UPDATEs of login_session the app's engine runs."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE LOGIN_SESSION"):
            seen.append(statement)

    engine = any_app.extensions["engine"]
    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_last_seen_is_written_at_most_once_a_minute(
    any_app: Flask, session_writes: list[str]
) -> None:
    with new_session(any_app) as db:
        make_organizer(db, "ann@example.org")
    client, helper = app_client(any_app)
    assert helper.login("ann@example.org").status_code == 303
    for path in ("/admin/", "/admin/account", "/admin/"):
        assert client.get(path).status_code == 200
    assert session_writes == []  # seen at login, less than a minute ago
    engine = create_engine(str(any_app.config["DATABASE_URL"]))
    with Session(engine) as store:
        [row] = _rows(store)
        earlier = utcnow() - dt.timedelta(seconds=61)
        row.last_seen_at = earlier
        store.commit()
        assert client.get("/admin/").status_code == 200
        assert len(session_writes) == 1
        [row] = _rows(store)
        assert abs(row.last_seen_at - utcnow()) < dt.timedelta(seconds=30)
        noted = row.last_seen_at
        assert client.get("/admin/account").status_code == 200
        assert client.get("/admin/").status_code == 200
        assert len(session_writes) == 1
        [row] = _rows(store)
        assert row.last_seen_at == noted
    engine.dispose()


def test_a_writing_request_leaves_last_seen_to_the_next_page(
    any_app: Flask, session_writes: list[str]
) -> None:
    with new_session(any_app) as db:
        make_organizer(db, "ann@example.org")
    client, helper = app_client(any_app)
    assert helper.login("ann@example.org").status_code == 303
    engine = create_engine(str(any_app.config["DATABASE_URL"]))
    with Session(engine) as store:
        [row] = _rows(store)
        row.last_seen_at = utcnow() - dt.timedelta(minutes=5)
        store.commit()
    response = client.post("/admin/account/digest", data={"daily_summary": "y"})
    assert response.status_code == 303
    assert session_writes == []
    assert client.get(response.headers["Location"]).status_code == 200
    assert len(session_writes) == 1
    engine.dispose()


def test_the_account_page_shows_when_each_session_was_last_seen(
    client: FlaskClient, auth: AuthActions, app: Flask, store: Session, ann: None
) -> None:
    phone, phone_auth = app_client(app)
    assert phone_auth.login("ann@example.org").status_code == 303
    assert auth.login("ann@example.org").status_code == 303
    phone_row = _row_of(store, phone)
    phone_row.last_seen_at = dt.datetime(2026, 11, 30, 9, 15, tzinfo=dt.UTC)
    phone_row.created_at = utcnow() - dt.timedelta(hours=1)
    store.commit()
    page = client.get("/admin/account").get_data(as_text=True)
    assert ">2026-11-30 09:15</time>" in page


# --- the device ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        (FIREFOX_WINDOWS, ("Firefox", "Windows")),
        (SAFARI_IPHONE, ("Safari", "iPhone")),
        (CHROME_ANDROID, ("Chrome", "Android")),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
            "Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            ("Edge", "macOS"),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/18.1 Safari/605.1.15",
            ("Safari", "macOS"),
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
            ("Opera", "Linux"),
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            ("Chrome", "iPad"),
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            ("Chrome", "ChromeOS"),
        ),
        ("curl/8.5.0", ("", "")),
        ("", ("", "")),
        ("<script>alert(1)</script> Firefox/1", ("Firefox", "")),
    ],
)
def test_the_device_is_named_from_a_fixed_list(user_agent: str, device: tuple[str, str]) -> None:
    assert authmod.describe_device(user_agent) == device


# --- the migration ----------------------------------------------------------------------


def test_revision_0018_adds_the_session_table_and_downgrades(empty_database: str) -> None:
    url = empty_database
    upgrade(url, "0017")
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizer (email, name, password_hash, is_admin, active, "
                "failed_logins, session_epoch, digest, created_at) VALUES ('ann@example.org', "
                "'Ann', 'x', false, true, 0, 3, false, :now)"
            ),
            {"now": now},
        )
    upgrade(url)
    app_engine = make_engine(url)  # the app's connections, which enforce foreign keys
    with Session(app_engine) as db:
        [ann_id] = db.scalars(text("SELECT id FROM organizer")).all()
        assert db.scalar(text("SELECT session_epoch FROM organizer")) == 3
        db.add(LoginSession(secret_hash="a" * 64, organizer_id=ann_id, browser="", system=""))
        db.commit()
        db.add(LoginSession(secret_hash="a" * 64, organizer_id=ann_id))
        with pytest.raises(IntegrityError):
            db.commit()  # one row per secret
        db.rollback()
        db.execute(text("DELETE FROM organizer"))
        db.commit()
        assert db.scalar(select(func.count()).select_from(LoginSession)) == 0
    app_engine.dispose()
    command.downgrade(alembic_config(url), "0017")
    with engine.connect() as conn:
        assert "login_session" not in inspect(conn).get_table_names()
    engine.dispose()
