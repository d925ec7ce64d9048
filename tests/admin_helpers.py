"""Test helpers for the dashboard: organizers, campaigns and signatures, and an `auth` fixture."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from campaign import auth as authmod
from campaign import db as dbmod
from campaign import geo, tally
from campaign.models import AuditEntry, Campaign, Organizer, Signature

PASSWORD = "correct horse battery staple"


def make_organizer(
    db: Session,
    email: str,
    *,
    admin: bool = False,
    campaigns: tuple[Campaign, ...] = (),
    password: str = PASSWORD,
) -> Organizer:
    """A committed organizer running the given campaigns."""
    organizer = authmod.create_organizer(db, email, password, is_admin=admin)
    for campaign in campaigns:
        authmod.add_to_campaign(db, organizer, campaign)
    db.commit()
    return organizer


def make_campaign(
    db: Session, slug: str, *, require_confirmation: bool = True, state: str = "open"
) -> Campaign:
    """A committed campaign."""
    campaign = Campaign(
        slug=slug,
        title=f"Letter {slug}",
        letter="Dear minister,\n\nRelease him.",
        state=state,
        require_confirmation=require_confirmation,
    )
    db.add(campaign)
    db.commit()
    return campaign


def make_signature(
    db: Session,
    campaign: Campaign,
    name: str,
    email: str,
    *,
    country: str = "FR",
    confirmed: bool = True,
    duplicate_of: Signature | None = None,
    **facts: object,
) -> Signature:
    """A committed signature, its status and the counters derived through tally.refresh."""
    signature = Signature(
        campaign_id=campaign.id,
        name=name,
        email=email,
        email_key=email.casefold(),
        email_domain=email.rpartition("@")[2],
        name_key=" ".join(sorted(name.casefold().split())),
        country_code=country,
        continent_code=geo.continent_of(country),
        title=facts.pop("title", "MP"),
        parliament=facts.pop("parliament", "National Assembly"),
        party=facts.pop("party", "Green"),
        confirmed_at=dbmod.utcnow() if confirmed else None,
        duplicate_of_id=duplicate_of.id if duplicate_of is not None else None,
        duplicate_state="held" if duplicate_of is not None else None,
        **facts,
    )
    db.add(signature)
    db.flush()
    tally.refresh(db, signature)
    db.commit()
    return signature


def insert_members(
    db: Session,
    campaign: Campaign,
    count: int,
    *,
    countries: tuple[str, ...] = ("FR",),
    **values: object,
) -> None:
    """count signers "Member i" <memberi@example.org>, in one INSERT (no counters).

    For a letter of thousands of signers: the countries in turn (France alone by default);
    values (a status, counted, confirmed_at...) apply to every row, and the tally counters
    are left to the test.
    """
    db.execute(
        insert(Signature),
        [
            {
                "campaign_id": campaign.id,
                "name": f"Member {i}",
                "email": f"member{i}@example.org",
                "email_key": f"member{i}@example.org",
                "email_domain": "example.org",
                "name_key": f"member {i}",
                "country_code": countries[i % len(countries)],
                "continent_code": geo.continent_of(countries[i % len(countries)]),
                **values,
            }
            for i in range(count)
        ],
    )
    db.commit()


def reload(db: Session, signature: Signature) -> Signature:
    """The signature as the database holds it now."""
    db.expire_all()
    found = db.get(Signature, signature.id)
    assert found is not None
    return found


def flashes(response: TestResponse) -> list[str]:
    """The flash messages shown on a page."""
    return [
        re.sub(r"\s+", " ", m).strip()
        for m in re.findall(r'class="flash[^"]*"[^>]*>([^<]*)<', response.get_data(as_text=True))
    ]


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the first form on a page."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    assert found, f"no csrf token on {path}"
    return found.group(1)


@dataclass
class AuthActions:
    """Log a test client in and out as an organizer."""

    client: FlaskClient

    def login(self, email: str, password: str = PASSWORD, **extra: str) -> TestResponse:
        """POST the login form (with a CSRF token when the app checks them)."""
        data = {"email": email, "password": password, **extra}
        if self.client.application.config.get("WTF_CSRF_ENABLED", True):
            data["csrf_token"] = csrf_token(self.client, "/admin/login")
        return self.client.post("/admin/login", data=data)

    def logout(self) -> TestResponse:
        """POST the logout form."""
        return self.client.post("/admin/logout")


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Log the test client in as a given organizer."""
    return AuthActions(client)


@pytest.fixture
def store(app: Flask) -> Iterator[Session]:
    """A session on the app's database for arranging and checking, beside the test client.

    Unlike conftest's `db` it pushes no app context (requests of the test client would
    reuse it, so `g` - the request's session, the logged-in organizer - would outlive
    each request), and its engine is plain: the app's engine begins every transaction
    IMMEDIATE, so a test merely reading would hold SQLite's write lock against the app.
    """
    engine = create_engine(str(app.config["DATABASE_URL"]))
    session = Session(bind=engine, expire_on_commit=False)
    yield session
    session.close()
    engine.dispose()


def organizer_by_email(db: Session, email: str) -> Organizer:
    """The stored organizer with this address."""
    db.expire_all()
    found = db.scalar(select(Organizer).where(Organizer.email == email))
    assert found is not None
    return found


def app_client(app: Flask) -> tuple[FlaskClient, AuthActions]:
    """A fresh client of an app and its login helper."""
    client = app.test_client()
    return client, AuthActions(client)


def copy_session(client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of this client's session cookie (a stolen cookie)."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = client.application.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


@pytest.fixture
def campaign(store: Session) -> Campaign:
    """An open campaign, kem, run by alice@example.org (the review and correction tests')."""
    made = make_campaign(store, "kem")
    make_organizer(store, "alice@example.org", campaigns=(made,))
    return made


@pytest.fixture
def logged_in(auth: AuthActions, campaign: Campaign) -> AuthActions:
    """The test client, logged in as the campaign's organizer."""
    assert auth.login("alice@example.org").status_code == 303
    return auth


def changes_audited(store: Session) -> list[AuditEntry]:
    """The audit entries of changes, oldest first: every one but organizers' logins and
    logouts, which each test's own login writes."""
    store.expire_all()
    sessions = ("organizer.login", "organizer.logout")
    return list(
        store.scalars(
            select(AuditEntry).where(AuditEntry.action.not_in(sessions)).order_by(AuditEntry.id)
        )
    )
