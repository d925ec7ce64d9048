"""The dashboard's doors: anonymous visitors, roles, CSRF, campaigns and organizers."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import pytest
from admin_helpers import (
    PASSWORD,
    AuthActions,
    app_client,
    auth,
    csrf_token,
    flashes,
    insert_members,
    make_campaign,
    make_organizer,
    make_signature,
    organizer_by_email,
    store,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaign import create_app
from campaign.db import utcnow
from campaign.models import (
    AuditEntry,
    Campaign,
    CampaignOrganizer,
    LetterTranslation,
    LoginSession,
    Organizer,
    Signature,
)

__all__ = ["auth", "store"]


def _admin_rules() -> list[tuple[str, str, frozenset[str]]]:
    """(endpoint, method, arguments) of every /admin route, read from the app's URL map."""
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": "sqlite://", "MAIL_SENDER": False}
    )
    rules = sorted(
        (rule.endpoint, method, frozenset(rule.arguments))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/admin")
        for method in (rule.methods or set()) & {"GET", "POST"}
    )
    app.extensions["engine"].dispose()
    return rules


ADMIN_RULES = _admin_rules()
ARGUMENTS = {endpoint: arguments for endpoint, _, arguments in ADMIN_RULES}
# Pages for organizers who are not logged in: logging in, and forgot your password.
ANONYMOUS = {
    "admin.login",
    "admin.password_reset",
    "admin.password_reset_sent",
    "admin.password_reset_link",
}
PROTECTED = [(e, m) for e, m, _ in ADMIN_RULES if e not in ANONYMOUS]
PER_CAMPAIGN = [(e, m) for e, m, arguments in ADMIN_RULES if "slug" in arguments]
POSTS = [e for e, m, _ in ADMIN_RULES if m == "POST"]


@dataclass
class World:
    """Two campaigns, each with its own organizer and signers, and an admin."""

    alpha: Campaign
    beta: Campaign
    alpha_signature: Signature
    alpha_held: Signature
    beta_signature: Signature
    alice: Organizer
    bob: Organizer
    root: Organizer


@pytest.fixture
def world(store: Session) -> World:
    """alice runs alpha, bob runs beta, root is an admin."""
    alpha = make_campaign(store, "alpha")
    beta = make_campaign(store, "beta")
    first = make_signature(store, alpha, "Ann Lee", "ann@parl.example")
    held = make_signature(store, alpha, "Ann Lee", "ann.lee@other.example", duplicate_of=first)
    secret = make_signature(store, beta, "Beatrice Secret", "beatrice@secret.example")
    return World(
        alpha=alpha,
        beta=beta,
        alpha_signature=first,
        alpha_held=held,
        beta_signature=secret,
        alice=make_organizer(store, "alice@example.org", campaigns=(alpha,)),
        bob=make_organizer(store, "bob@example.org", campaigns=(beta,)),
        root=make_organizer(store, "root@example.org", admin=True),
    )


def _values(
    endpoint: str, campaign: Campaign, signature: Signature, organizer: Organizer
) -> dict[str, Any]:
    """Real values for a route's arguments."""
    known = {
        "slug": campaign.slug,
        "signature_id": signature.id,
        "organizer_id": organizer.id,
        "locale": "fr",
        "token": "not-a-token",
        "number": 1,
        "session_id": 1,
    }
    missing = ARGUMENTS[endpoint] - known.keys()
    assert not missing, f"give test values for {endpoint}'s {missing}"
    return {key: known[key] for key in ARGUMENTS[endpoint]}


# Form data that would do something if the request were allowed.
ACTION_DATA: dict[str, dict[str, Any]] = {
    "admin.new_campaign": {"slug": "gamma", "title": "Gamma", "state": "open", "save": "Save"},
    "admin.edit_campaign": {"slug": "changed", "title": "Changed", "state": "closed", "save": "1"},
    "admin.save_translation": {"tr-fr-title": "Titre", "tr-fr-letter": "Lettre"},
    "admin.act": {"action": "reject", "reason": "not an MP"},
    "admin.edit_details": {
        "name": "Changed Name",
        "title": "Senator",
        "parliament": "Senate",
        "party": "",
        "country": "KE",
    },
    "admin.bulk": {"action": "reject", "reason": "not an MP"},
    "admin.resolve": {"keep": "both"},
    "admin.organizers": {
        "email": "eve@example.org",
        "password": "a long password!",
        "is_admin": "y",
    },
    "admin.organizer": {"name": "Eve", "is_admin": "y", "active": "y"},
    "admin.organizer_password": {"pw-password": "a long password!"},
    "admin.account": {
        "current_password": PASSWORD,
        "new_password": "a long password!",
        "new_password_again": "a long password!",
    },
}


# Query arguments a route needs to show its page at all.
QUERY: dict[str, dict[str, str]] = {
    "admin.activity_group": {
        "kind": "domain",
        "key": "parl.example",
        "action": "hold",
        "burst": "2026-11-28T10:00:00+00:00",
    },
}


def _data(endpoint: str, signature: Signature) -> dict[str, Any]:
    data = dict(ACTION_DATA.get(endpoint, {}))
    if endpoint == "admin.bulk":
        data["ids"] = [str(signature.id)]
    return data


def _snapshot(store: Session) -> tuple[Any, ...]:
    """Everything an action could change."""
    store.expire_all()
    return (
        store.scalar(select(func.count()).select_from(AuditEntry)),
        tuple(store.execute(select(Campaign.slug, Campaign.title, Campaign.state)).all()),
        tuple(
            store.execute(
                select(
                    Signature.id,
                    Signature.status,
                    Signature.verified_at,
                    Signature.rejected_at,
                    Signature.erased_at,
                    Signature.email,
                    Signature.duplicate_state,
                    Signature.name,
                    Signature.country_code,
                    Signature.public,
                ).order_by(Signature.id)
            ).all()
        ),
        tuple(
            store.execute(
                select(
                    Organizer.email,
                    Organizer.is_admin,
                    Organizer.active,
                    Organizer.password_hash,
                    Organizer.session_epoch,
                ).order_by(Organizer.id)
            ).all()
        ),
        tuple(
            store.execute(
                select(CampaignOrganizer.campaign_id, CampaignOrganizer.organizer_id)
            ).all()
        ),
        store.scalar(select(func.count()).select_from(LetterTranslation)),
        tuple(store.scalars(select(LoginSession.id).order_by(LoginSession.id))),
    )


def _url(app: Flask, endpoint: str, values: dict[str, Any]) -> str:
    with app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **values)


def test_the_rule_list_covers_the_dashboard() -> None:
    endpoints = {endpoint for endpoint, _, _ in ADMIN_RULES}
    assert {
        "admin.login",
        "admin.logout",
        "admin.index",
        "admin.signatures",
        "admin.signature",
        "admin.act",
        "admin.bulk",
        "admin.duplicates",
        "admin.resolve",
        "admin.campaign_audit",
        "admin.organizers",
        "admin.account",
        "admin.logout_everywhere",
        "admin.organizer_password",
    } <= endpoints


@pytest.mark.parametrize(("endpoint", "method"), PROTECTED)
def test_every_admin_url_refuses_anonymous_visitors(
    app: Flask, client: FlaskClient, store: Session, world: World, endpoint: str, method: str
) -> None:
    before = _snapshot(store)
    url = _url(app, endpoint, _values(endpoint, world.alpha, world.alpha_held, world.alice))
    response = client.open(url, method=method, data=_data(endpoint, world.alpha_held))
    assert response.status_code in (302, 303)
    assert response.headers["Location"].startswith("/admin/login")
    body = response.get_data(as_text=True)
    assert "ann@parl.example" not in body
    assert "Ann Lee" not in body
    assert _snapshot(store) == before


@pytest.mark.parametrize(("endpoint", "method"), PER_CAMPAIGN)
def test_an_organizer_cannot_reach_another_campaign(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    store: Session,
    world: World,
    endpoint: str,
    method: str,
) -> None:
    auth.login("alice@example.org")
    before = _snapshot(store)
    url = _url(app, endpoint, _values(endpoint, world.beta, world.beta_signature, world.bob))
    response = client.open(url, method=method, data=_data(endpoint, world.beta_signature))
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "Beatrice" not in body
    assert "beatrice@secret.example" not in body
    assert _snapshot(store) == before


@pytest.mark.parametrize(("endpoint", "method"), PER_CAMPAIGN)
def test_the_same_urls_work_for_the_campaigns_organizer(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    world: World,
    endpoint: str,
    method: str,
) -> None:
    auth.login("bob@example.org")
    url = _url(app, endpoint, _values(endpoint, world.beta, world.beta_signature, world.bob))
    response = client.open(
        url,
        method=method,
        query_string=QUERY.get(endpoint, {}) if method == "GET" else {},
        data=_data(endpoint, world.beta_signature),
    )
    # Reached: a page, a redirect after the action, or a form error (an empty upload) - not 404.
    assert response.status_code in (200, 303, 400), response.get_data(as_text=True)[:500]


@pytest.mark.parametrize(
    "endpoint", ["admin.signature", "admin.act", "admin.resolve", "admin.edit_details"]
)
def test_a_signature_of_another_campaign_is_404_under_ones_own(
    app: Flask, client: FlaskClient, auth: AuthActions, store: Session, world: World, endpoint: str
) -> None:
    auth.login("alice@example.org")
    before = _snapshot(store)
    url = _url(app, endpoint, {"slug": "alpha", "signature_id": world.beta_signature.id})
    method = "GET" if endpoint == "admin.signature" else "POST"
    response = client.open(url, method=method, data=_data(endpoint, world.beta_signature))
    assert response.status_code == 404
    assert _snapshot(store) == before


def test_bulk_ignores_ids_of_another_campaign(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    before = _snapshot(store)
    response = client.post(
        "/admin/c/alpha/signatures/bulk",
        data={"ids": [str(world.beta_signature.id)], "action": "reject", "reason": "x"},
    )
    assert response.status_code == 303
    assert _snapshot(store) == before


def test_export_of_another_campaign_is_404(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    response = client.get("/admin/c/beta/export.csv")
    assert response.status_code == 404
    assert b"beatrice" not in response.data
    assert client.get("/admin/c/beta/export.csv?status=counted").status_code == 404


def test_an_organizer_sees_only_their_campaigns_and_an_admin_all(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Letter alpha" in page
    assert "Letter beta" not in page
    assert client.get("/admin/organizers").status_code == 404
    auth.logout()
    auth.login("root@example.org")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Letter alpha" in page
    assert "Letter beta" in page
    assert client.get("/admin/c/beta/signatures").status_code == 200


def test_the_campaign_list_counts_each_status(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    make_signature(store, world.alpha, "Pending Person", "p@parl.example", confirmed=False)
    auth.login("alice@example.org")
    page = client.get("/admin/").get_data(as_text=True)
    row = re.search(r"Letter alpha.*?</tr>", page, re.S)
    assert row
    cells = re.findall(r'<td class="num"[^>]*>(.*?)</td>', row.group(0), re.S)
    numbers = [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]
    # pending, held, confirmed, rejected, withdrawn, erased, goal
    assert numbers == ["1", "1", "1", "0", "0", "0", "—"]
    assert ">1 possible duplicate</a>" in row.group(0)


def test_the_list_lets_a_long_address_wrap_after_its_at_sign(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    make_signature(store, world.alpha, "Long Address", "ana.walk1796077913@parl.example")
    auth.login("alice@example.org")
    page = client.get("/admin/c/alpha/signatures").get_data(as_text=True)
    assert '<td class="email">ana.walk1796077913@<wbr>parl.example</td>' in page


def test_the_country_filter_names_and_sorts_countries_in_the_organizers_language(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    page = client.get("/admin/c/alpha/signatures?lang=fr&country=DE").get_data(as_text=True)
    select = re.search(r'<select id="f-country" name="country">(.*?)</select>', page, re.S)
    assert select is not None
    names = re.findall(r"<option[^>]*>([^<]+)</option>", select.group(1))
    assert '<option value="DE" selected>Allemagne</option>' in select.group(1)
    assert "Antigua-et-Barbuda" in names and "Germany" not in names
    assert names.index("Afrique du Sud") < names.index("Allemagne") < names.index("Zimbabwe")


def test_counts_past_999_are_grouped_as_the_reader_writes_them(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    insert_members(store, world.alpha, 1234, status="pending")
    auth.login("alice@example.org")
    assert ">1,234</a>" in client.get("/admin/").get_data(as_text=True)
    assert "<strong>1,234</strong> pending" in client.get("/admin/c/alpha/signatures").get_data(
        as_text=True
    )
    assert ">1 234</a>" in client.get("/admin/?lang=fr").get_data(as_text=True).replace(
        "\u202f", " "
    ).replace("\xa0", " ")
    last = client.get("/admin/c/alpha/signatures?page=21&lang=en").get_data(as_text=True)
    assert "1,236 signatures match; showing 1,001\u20131,050." in last  # an en dash


def test_the_campaign_lists_status_headings_are_capitalised_as_the_other_headings(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    for lang, expected in (
        ("en", ["Campaign", "State", "Pending", "Held", "Confirmed", "Rejected"]),
        ("fr", ["Campagne", "État", "En attente", "Retenue", "Confirmée", "Refusée"]),
    ):
        page = client.get(f"/admin/?lang={lang}").get_data(as_text=True)
        headings = re.findall(r'<th scope="col"[^>]*>([^<]+)</th>', page)
        assert headings[:6] == expected, headings


def test_bulk_outcomes_write_their_counts_as_the_reader_does(app: Flask) -> None:
    from collections import Counter

    from flask import get_flashed_messages

    from campaign.views import admin

    with app.test_request_context("/admin/?lang=fr"):
        admin._flash_outcome("verify", 1234, Counter({"erased": 2500}))
        messages = [m.replace("\u202f", " ").replace("\xa0", " ") for m in get_flashed_messages()]
    assert "1 234" in messages[0] and "2 500" in messages[1], messages


@pytest.fixture
def csrf_app(app_factory: Any) -> Flask:
    """The app with CSRF checks on, as in production."""
    return app_factory(WTF_CSRF_ENABLED=True)


@pytest.mark.parametrize("endpoint", POSTS)
def test_every_post_needs_a_csrf_token(
    csrf_app: Flask, store: Session, world: World, endpoint: str
) -> None:
    client = csrf_app.test_client()
    helper = AuthActions(client)
    assert helper.login("root@example.org").status_code == 303
    before = _snapshot(store)
    url = _url(csrf_app, endpoint, _values(endpoint, world.alpha, world.alpha_held, world.alice))
    response = client.post(url, data=_data(endpoint, world.alpha_held))
    assert response.status_code == 400
    # Refused in plain words (campaign/errors.py csrf_failed), not Flask-WTF's.
    assert "This page had been open a long time" in response.get_data(as_text=True)
    assert _snapshot(store) == before
    assert client.get("/admin/").status_code == 200  # not even logged out


def test_a_post_with_its_csrf_token_goes_through(
    csrf_app: Flask, store: Session, world: World
) -> None:
    client = csrf_app.test_client()
    AuthActions(client).login("alice@example.org")
    path = f"/admin/c/alpha/signatures/{world.alpha_signature.id}"
    token = csrf_token(client, path)
    response = client.post(path, data={"csrf_token": token, "action": "verify"})
    assert response.status_code == 303
    store.expire_all()
    assert store.get(Signature, world.alpha_signature.id).verified_at is not None


def test_login_needs_a_csrf_token(csrf_app: Flask, world: World) -> None:
    client = csrf_app.test_client()
    response = client.post(
        "/admin/login", data={"email": "alice@example.org", "password": "x" * 20}
    )
    assert response.status_code == 400


# --- campaigns ---------------------------------------------------------------


def _campaign_form(**changes: str) -> dict[str, str]:
    form = {
        "slug": "gamma",
        "title": "Release the prisoners",
        "letter": "Dear **Minister**,\r\n\r\n<script>x</script>",
        "recipient": "The Prime Minister",
        "goal": "150",
        "opens_at": "2026-12-01T09:30",
        "closes_at": "2027-01-31T18:00",
        "state": "open",
        "require_confirmation": "y",
        "save": "Save",
    }
    form.update(changes)
    return form


def test_an_organizer_creates_a_campaign_and_runs_it(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    response = client.post("/admin/campaigns/new", data=_campaign_form())
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/c/gamma/edit"
    store.expire_all()
    created = store.scalar(select(Campaign).where(Campaign.slug == "gamma"))
    assert created is not None
    assert created.title == "Release the prisoners"
    assert created.letter == "Dear **Minister**,\n\n<script>x</script>"
    assert created.goal == 150
    assert created.opens_at is not None
    assert created.opens_at.isoformat() == "2026-12-01T09:30:00+00:00"
    assert created.closes_at is not None
    assert created.closes_at.isoformat() == "2027-01-31T18:00:00+00:00"
    assert created.require_confirmation
    assert store.get(CampaignOrganizer, (created.id, world.alice.id)) is not None
    entry = store.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.create"))
    assert entry is not None
    assert entry.campaign_id == created.id
    assert entry.organizer_id == world.alice.id
    edit = client.get("/admin/c/gamma/edit").get_data(as_text=True)
    assert 'value="2026-12-01T09:30"' in edit
    assert "(UTC)" in edit


def test_a_taken_slug_is_a_form_error(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    response = client.post("/admin/campaigns/new", data=_campaign_form(slug="beta"))
    assert response.status_code == 400
    assert "That address is taken" in response.get_data(as_text=True)
    store.expire_all()
    assert store.scalar(select(func.count()).select_from(Campaign)) == 2


def test_renaming_a_letter_keeps_its_old_address_for_it_alone(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    form = _campaign_form(slug="alpha-renamed", new_version="y")
    response = client.post("/admin/c/alpha/edit", data=form)
    assert response.headers["Location"] == "/admin/c/alpha-renamed/edit"
    assert client.get("/c/alpha").headers["Location"] == "/c/alpha-renamed"
    response = client.post("/admin/campaigns/new", data=_campaign_form(slug="alpha"))
    assert response.status_code == 400
    assert "Another letter had that address before; its links still lead there." in (
        response.get_data(as_text=True)
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slug": "Bad Slug"}, "Lowercase letters, digits and hyphens only."),
        ({"title": ""}, "This field is required."),
        ({"goal": "many"}, "Not a valid integer value."),
        ({"goal": "0"}, "Number must be"),
        ({"opens_at": "yesterday"}, "Not a valid datetime value."),
        ({"closes_at": "2026-11-01T00:00"}, "The closing time must be after the opening time."),
        ({"state": "paused"}, "Not a valid choice."),
        # Text no field of the site takes: a NUL is refused before any form (PostgreSQL
        # would refuse it); the other controls misprint, as form errors.
        ({"title": "Free\x00them"}, "The request contains a NUL character"),
        ({"title": "Free\x0bthem"}, "Remove the control characters."),
        ({"title": "Free \u202ethem"}, "Remove the invisible text direction characters."),
        ({"recipient": "The\x01Minister"}, "Remove the control characters."),
        ({"letter": "Dear\x1bMinister"}, "Remove the control characters."),
        ({"letter": "x" * 100_001}, "Field cannot be longer than 100000 characters."),
    ],
)
def test_bad_campaign_input_is_a_form_error(
    client: FlaskClient,
    auth: AuthActions,
    store: Session,
    world: World,
    changes: dict[str, str],
    message: str,
) -> None:
    auth.login("alice@example.org")
    response = client.post("/admin/campaigns/new", data=_campaign_form(**changes))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    store.expire_all()
    assert store.scalar(select(func.count()).select_from(Campaign)) == 2


def test_the_campaign_forms_error_summary_follows_the_page(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    bad = {"title": "", "slug": "Not A Slug", "recipient": "x" * 201, "letter": ""}
    bad |= {"goal": "0", "opens_at": "someday", "closes_at": "never"}
    page = client.post("/admin/campaigns/new", data=_campaign_form(**bad)).get_data(True)
    start = page.index('class="error-summary"')
    summary = page[start : page.index("</ul>", start)]
    fields = page[page.index('class="campaign-form"') :]
    listed = re.findall(r'href="#([a-z_]+)"', summary)
    assert sorted(listed) == sorted(bad)
    assert listed == sorted(listed, key=lambda name: fields.index(f'id="{name}"'))


@pytest.mark.parametrize("state", ["open", "closed"])
def test_a_letter_signers_can_see_cannot_be_saved_without_text(
    client: FlaskClient, auth: AuthActions, store: Session, world: World, state: str
) -> None:
    auth.login("alice@example.org")
    form = _campaign_form(slug="alpha", letter=" \r\n ", state=state, new_version="y")
    response = client.post("/admin/c/alpha/edit", data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Write the letter's text; only a draft can be saved without it." in page
    assert 'href="#letter"' in page  # the error summary leads to the field
    assert "Campaign saved." not in page
    store.expire_all()
    stored = store.get(Campaign, world.alpha.id)
    assert (stored.letter, stored.letter_version) == ("Dear minister,\n\nRelease him.", 1)
    assert "Release him." in client.get("/c/alpha").get_data(as_text=True)


def test_a_new_open_letter_needs_its_text(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    response = client.post("/admin/campaigns/new", data=_campaign_form(letter=""))
    assert response.status_code == 400
    assert "Write the letter's text" in response.get_data(as_text=True)
    store.expire_all()
    assert store.scalar(select(Campaign).where(Campaign.slug == "gamma")) is None


def test_a_draft_can_be_saved_without_text(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    response = client.post("/admin/campaigns/new", data=_campaign_form(letter="", state="draft"))
    assert response.status_code == 303
    store.expire_all()
    created = store.scalar(select(Campaign).where(Campaign.slug == "gamma"))
    assert created is not None
    assert (created.state, created.letter) == ("draft", "")


def test_preview_renders_the_letter_without_saving(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    form = _campaign_form(letter="Dear **Minister**\n\n<script>alert(1)</script>")
    form.pop("save")
    form["preview"] = "Preview"
    response = client.post("/admin/c/alpha/edit", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>Minister</strong>" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    store.expire_all()
    assert store.get(Campaign, world.alpha.id).letter == "Dear minister,\n\nRelease him."


def test_editing_a_campaign_is_audited_with_before_and_after(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    # People signed the title: changing it is a new version, ticked.
    form = _campaign_form(slug="alpha", title="New title", state="closed", new_version="y")
    response = client.post("/admin/c/alpha/edit", data=form)
    assert response.status_code == 303
    store.expire_all()
    entry = store.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.update"))
    assert entry is not None
    assert '"title": "Letter alpha"' in entry.before
    assert '"title": "New title"' in entry.after
    assert '"state": "closed"' in entry.after
    assert '"letter_version": 1' in entry.before
    assert '"letter_version": 2' in entry.after
    assert "slug" not in entry.after  # unchanged fields are not listed


def test_turning_confirmation_off_and_on_moves_the_unconfirmed_and_says_how_many(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    pending = make_signature(store, world.alpha, "Pat Doe", "pat@parl.example", confirmed=False)
    auth.login("alice@example.org")
    # Only the confirmation rule changes: the letter stays as its signers read it.
    form = _campaign_form(
        slug="alpha", title="Letter alpha", letter="Dear minister,\n\nRelease him."
    )
    form.pop("require_confirmation")
    response = client.post("/admin/c/alpha/edit", data=form, follow_redirects=True)
    assert response.status_code == 200
    store.expire_all()
    assert store.get(Signature, pending.id).status == "confirmed"
    page = response.get_data(as_text=True)
    assert "Campaign saved." in page
    assert "1 signature that was waiting for confirmation counts now." in page
    # Back on: the signature nobody confirmed waits again, and the page says how to mail it.
    form["require_confirmation"] = "y"
    page = client.post("/admin/c/alpha/edit", data=form, follow_redirects=True).get_data(
        as_text=True
    )
    store.expire_all()
    assert store.get(Signature, pending.id).status == "pending"
    assert "1 signature that counted without confirmation now waits for it" in page
    # A save that leaves the rule alone moves nothing and says nothing of it.
    page = client.post("/admin/c/alpha/edit", data=form, follow_redirects=True).get_data(
        as_text=True
    )
    assert "Campaign saved." in page
    assert "confirmation now waits" not in page


def test_translations_are_added_changed_and_removed(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    url = "/admin/c/alpha/translations/fr"
    # alpha's signers signed version 1: the first change makes version 2, ticked.
    response = client.post(
        url,
        data={"tr-fr-title": "Libérez-le", "tr-fr-letter": "Monsieur,", "tr-fr-new_version": "y"},
    )
    assert response.status_code == 303
    store.expire_all()
    stored = store.get(LetterTranslation, (world.alpha.id, "fr"))
    assert stored is not None
    assert (stored.title, stored.letter) == ("Libérez-le", "Monsieur,")
    page = client.get("/admin/c/alpha/edit").get_data(as_text=True)
    assert "Libérez-le" in page
    client.post(url, data={"tr-fr-title": "Libérez-le !", "tr-fr-letter": "Madame,"})
    store.expire_all()
    assert store.get(LetterTranslation, (world.alpha.id, "fr")).letter == "Madame,"
    client.post(url, data={"tr-fr-title": "", "tr-fr-letter": ""})
    store.expire_all()
    assert store.get(LetterTranslation, (world.alpha.id, "fr")) is None
    actions = store.scalars(
        select(AuditEntry.action).where(AuditEntry.action == "campaign.translation")
    ).all()
    assert len(actions) == 3


def test_a_translation_needs_its_title_and_a_known_language(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("alice@example.org")
    response = client.post("/admin/c/alpha/translations/fr", data={"tr-fr-letter": "Monsieur,"})
    assert response.status_code == 400
    assert "Give the translated title too." in response.get_data(as_text=True)
    assert client.post("/admin/c/alpha/translations/xx", data={}).status_code == 404
    assert client.post("/admin/c/alpha/translations/en", data={}).status_code == 404
    store.expire_all()
    assert store.scalar(select(func.count()).select_from(LetterTranslation)) == 0


@pytest.mark.parametrize("letter", ["", " \r\n "])
def test_a_translation_needs_its_text_too(
    client: FlaskClient, auth: AuthActions, store: Session, world: World, letter: str
) -> None:
    auth.login("alice@example.org")
    response = client.post(
        "/admin/c/alpha/translations/es",
        data={"tr-es-title": "Libérenlo", "tr-es-letter": letter, "tr-es-new_version": "y"},
    )
    assert response.status_code == 400
    assert "Give the translated text too." in response.get_data(as_text=True)
    assert "Translation saved." not in flashes(response)
    store.expire_all()
    assert store.get(LetterTranslation, (world.alpha.id, "es")) is None
    assert "Release him." in client.get("/c/alpha?lang=es").get_data(as_text=True)


def test_a_refused_translation_lands_on_its_section_with_the_errors_listed(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    response = client.post("/admin/c/alpha/translations/es", data={"tr-es-title": "Libérenlo"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    # Every translation form posts to its own section: the browser shows the refused one.
    assert 'action="/admin/c/alpha/translations/es#tr-es"' in page
    assert 'action="/admin/c/alpha/translations/fr#tr-fr"' in page
    summary = page[page.index('id="tr-es"') :]
    summary = summary[summary.index("There is a problem") : summary.index("<form")]
    assert 'href="#tr-es-letter"' in summary
    assert "Give the translated text too." in summary


def test_reloading_a_translations_address_leads_to_its_section(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    response = client.get("/admin/c/alpha/translations/es")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/c/alpha/edit#tr-es"
    assert client.get("/admin/c/alpha/translations/xx").status_code == 404
    assert client.get("/admin/c/alpha/translations/en").status_code == 404


# --- organizers --------------------------------------------------------------


def test_an_admin_creates_an_organizer_who_can_log_in(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("root@example.org")
    response = client.post(
        "/admin/organizers",
        data={"email": "Carol@Example.org", "name": "Carol", "password": "a long password!"},
    )
    assert response.status_code == 303
    carol = organizer_by_email(store, "carol@example.org")
    # The form's address ends in #new: the next page opens at its top, not at a #new.
    assert response.headers["Location"] == f"/admin/organizers/{carol.id}#top"
    assert not carol.is_admin
    assert carol.password_hash.startswith("$argon2id$")
    entry = store.scalar(select(AuditEntry).where(AuditEntry.action == "organizer.create"))
    assert entry is not None
    assert "carol@example.org" in entry.after
    assert "a long password!" not in entry.after
    auth.logout()
    assert auth.login("carol@example.org", "a long password!").status_code == 303


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "alice@example.org"}, "An organizer has this address already."),
        ({"email": "not-an-address"}, "Enter a valid email address, like name@example.org."),
        ({"password": "short one"}, "At least 12 characters."),
        ({"name": "Dan\x07Lee"}, "Remove the control characters."),
    ],
)
def test_bad_organizer_input_is_a_form_error(
    client: FlaskClient,
    auth: AuthActions,
    store: Session,
    world: World,
    data: dict[str, str],
    message: str,
) -> None:
    auth.login("root@example.org")
    form = {"email": "dan@example.org", "password": "a long password!"} | data
    response = client.post("/admin/organizers", data=form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    store.expire_all()
    assert store.scalar(select(func.count()).select_from(Organizer)) == 3


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("en", "Enter a password of at least 12 characters."),
        ("fr", "Saisissez un mot de passe d\u2019au moins 12 caractères."),
    ],
)
def test_a_new_organizer_without_a_password_is_told_what_to_enter(
    client: FlaskClient, auth: AuthActions, store: Session, world: World, lang: str, message: str
) -> None:
    auth.login("root@example.org")
    response = client.post(
        f"/admin/organizers?lang={lang}", data={"email": "dan@example.org", "password": ""}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert "This field is required." not in page
    assert "Ce champ est obligatoire." not in page
    store.expire_all()
    assert store.scalar(select(func.count()).select_from(Organizer)) == 3


def test_a_new_organizers_bad_address_is_told_in_the_sites_own_words(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("root@example.org")
    response = client.post(
        "/admin/organizers?lang=fr", data={"email": "pas-une-adresse", "password": "x" * 20}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Saisissez une adresse e-mail valide, comme nom@example.org." in page
    assert "électronique" not in page


def test_an_admin_assigns_promotes_and_deactivates(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("root@example.org")
    url = f"/admin/organizers/{world.alice.id}"
    page = client.get(url).get_data(as_text=True)
    checked = re.findall(
        r'<input checked id="campaigns-\d+" name="campaigns"[^>]*value="(\d+)"', page
    )
    assert checked == [str(world.alpha.id)]
    assert "Letter beta (beta)" in page
    response = client.post(
        url, data={"name": "Alice", "active": "y", "campaigns": [str(world.beta.id)]}
    )
    assert response.status_code == 303
    store.expire_all()
    assert store.get(CampaignOrganizer, (world.beta.id, world.alice.id)) is not None
    assert store.get(CampaignOrganizer, (world.alpha.id, world.alice.id)) is None
    actions = store.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.action.not_in(["organizer.login", "organizer.logout"]))
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["organizer.update", "organizer.unassign", "organizer.assign"]
    client.post(url, data={"name": "Alice", "is_admin": "y", "active": "y"})
    assert organizer_by_email(store, "alice@example.org").is_admin
    client.post(url, data={"name": "Alice"})
    alice = organizer_by_email(store, "alice@example.org")
    assert not alice.active
    assert not alice.is_admin
    auth.logout()
    assert "do not match" in auth.login("alice@example.org").get_data(as_text=True)


def test_a_deactivated_then_reactivated_organizer_must_log_in_again(
    app: Flask, client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    alice, alice_auth = app_client(app)
    alice_auth.login("alice@example.org")
    assert alice.get("/admin/").status_code == 200
    auth.login("root@example.org")
    url = f"/admin/organizers/{world.alice.id}"
    assert (
        client.post(url, data={"name": "", "campaigns": [str(world.alpha.id)]}).status_code == 303
    )
    assert (
        client.post(url, data={"active": "y", "campaigns": [str(world.alpha.id)]}).status_code
        == 303
    )
    assert organizer_by_email(store, "alice@example.org").active
    assert alice.get("/admin/").status_code == 302
    assert alice_auth.login("alice@example.org").status_code == 303
    assert alice.get("/admin/").status_code == 200


def test_an_admin_cannot_demote_or_deactivate_themself(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("root@example.org")
    response = client.post(f"/admin/organizers/{world.root.id}", data={"name": "Root"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "You cannot remove your own admin role." in _field_errors(page, "is_admin")
    assert "You cannot deactivate yourself." in _field_errors(page, "active")
    root = organizer_by_email(store, "root@example.org")
    assert root.is_admin
    assert root.active


@pytest.mark.parametrize(
    ("data", "refused", "fine"),
    [
        ({"active": "y"}, "is_admin", "active"),
        ({"is_admin": "y"}, "active", "is_admin"),
    ],
)
def test_an_admins_refusal_of_their_own_change_is_told_at_the_box_they_unticked(
    client: FlaskClient,
    auth: AuthActions,
    store: Session,
    world: World,
    data: dict[str, str],
    refused: str,
    fine: str,
) -> None:
    auth.login("root@example.org")
    response = client.post(f"/admin/organizers/{world.root.id}", data={"name": "Root", **data})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert _field_errors(page, refused) != []
    assert _field_errors(page, fine) == []
    root = organizer_by_email(store, "root@example.org")
    assert root.is_admin and root.active


def _field_errors(page: str, name: str) -> list[str]:
    """The error messages the page shows at one field (the field macro's id="<name>-error")."""
    found = re.search(rf'id="{name}-error"[^>]*>(.*?)</', page, re.S)
    return [] if found is None else [found.group(1).strip()]


def test_an_admin_sets_a_new_password_and_ends_the_organizers_sessions(
    app: Flask, client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    alice, alice_auth = app_client(app)
    alice_auth.login("alice@example.org")
    auth.login("root@example.org")
    url = f"/admin/organizers/{world.alice.id}"
    page = client.get(url).get_data(as_text=True)
    assert f'action="{url}/password#password"' in page
    assert '<label class="label" for="pw-password">New password</label>' in page
    assert 'autocomplete="new-password"' in page
    response = client.post(f"{url}/password", data={"pw-password": "a new long password"})
    assert response.status_code == 303
    # Not the form's #password, which the browser would keep: the page opens at its top,
    # with the message in view.
    assert response.headers["Location"] == f"{url}#top"
    assert flashes(client.get(url)) == [
        "New password set for alice@example.org; every session of theirs is ended."
    ]
    assert alice.get("/admin/").status_code == 302
    assert client.get("/admin/").status_code == 200  # the admin's own session goes on
    [entry] = store.scalars(select(AuditEntry).where(AuditEntry.action == "organizer.password"))
    assert entry.organizer_id == world.root.id
    assert "alice@example.org" in entry.after
    assert "a new long password" not in entry.before + entry.after
    assert "$argon2" not in entry.before + entry.after
    assert "do not match" in alice_auth.login("alice@example.org").get_data(as_text=True)
    assert alice_auth.login("alice@example.org", "a new long password").status_code == 303


@pytest.mark.parametrize(
    ("password", "message"),
    [("too short", "At least 12 characters."), ("", "Enter a password of at least 12 characters.")],
)
def test_a_bad_password_set_by_an_admin_is_a_form_error(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    store: Session,
    world: World,
    password: str,
    message: str,
) -> None:
    alice, alice_auth = app_client(app)
    alice_auth.login("alice@example.org")
    auth.login("root@example.org")
    before = _snapshot(store)
    url = f"/admin/organizers/{world.alice.id}"
    response = client.post(f"{url}/password", data={"pw-password": password})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'<p class="error" id="pw-password-error">{message}</p>' in page
    assert 'aria-describedby="pw-password-hint pw-password-error"' in page
    assert '<a href="#pw-password">' in page
    assert "<h1>alice@example.org</h1>" in page  # the rest of the page as it was
    assert re.search(r'<input checked id="campaigns-\d+" name="campaigns"', page)
    assert _snapshot(store) == before
    assert alice.get("/admin/").status_code == 200


def test_an_admin_changes_their_own_password_on_their_account_page_only(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    auth.login("root@example.org")
    url = f"/admin/organizers/{world.root.id}"
    page = client.get(url).get_data(as_text=True)
    assert 'name="pw-password"' not in page
    assert '<a href="/admin/account#password">' in page
    before = _snapshot(store)
    response = client.post(f"{url}/password", data={"pw-password": "skipping the check"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/account#password"
    assert _snapshot(store) == before
    assert flashes(client.get("/admin/account")) == [
        "Change your own password here, with your current one."
    ]


def test_unknown_organizer_is_404(client: FlaskClient, auth: AuthActions, world: World) -> None:
    auth.login("root@example.org")
    assert client.get("/admin/organizers/9999").status_code == 404
    response = client.post("/admin/organizers/9999/password", data={"pw-password": "x" * 20})
    assert response.status_code == 404


def test_flash_after_logout(client: FlaskClient, auth: AuthActions, world: World) -> None:
    auth.login("alice@example.org")
    auth.logout()
    assert flashes(client.get("/admin/login")) == ["You are logged out."]


def test_campaign_page_gives_the_embed_code_for_the_widget_and_badge(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    page = client.get("/admin/c/alpha/edit").get_data(as_text=True)
    assert "/c/alpha/widget" in page
    assert "/c/alpha/badge.svg" in page
    assert 'id="embed-widget-code"' in page
    assert "site.js" in page


@pytest.mark.parametrize(
    ("opens", "closes", "badge"),
    [
        (None, dt.timedelta(days=-1), '<span class="badge state-closed">closed</span>'),
        (dt.timedelta(days=1), None, '<span class="badge state-scheduled">not open yet</span>'),
        (dt.timedelta(days=-1), dt.timedelta(days=1), '<span class="badge state-open">open</span>'),
    ],
)
def test_the_dashboard_shows_a_letter_as_its_readers_see_it_now(
    client: FlaskClient,
    auth: AuthActions,
    store: Session,
    world: World,
    opens: dt.timedelta | None,
    closes: dt.timedelta | None,
    badge: str,
) -> None:
    now = utcnow()
    world.alpha.opens_at = now + opens if opens else None
    world.alpha.closes_at = now + closes if closes else None
    store.commit()
    auth.login("alice@example.org")
    assert badge in client.get("/admin/").get_data(as_text=True)
    assert badge in client.get("/admin/c/alpha/signatures").get_data(as_text=True)


def test_an_organizer_whose_session_ended_is_sent_to_log_in_and_back(
    csrf_app: Flask, store: Session, world: World
) -> None:
    client = csrf_app.test_client()
    AuthActions(client).login("alice@example.org")
    path = f"/admin/c/alpha/signatures/{world.alpha_signature.id}"
    token = csrf_token(client, path)
    before = _snapshot(store)
    client.delete_cookie("session")  # the session ended: its lifetime, or "log out everywhere"
    response = client.post(
        path,
        data={"csrf_token": token, "action": "verify"},
        headers={"Referer": f"http://localhost{path}"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/login?next={path}"
    login = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your session had ended, so nothing was saved. Log in, then do it again." in login
    assert _snapshot(store) == before


def test_status_all_lists_and_exports_every_status(
    client: FlaskClient, auth: AuthActions, store: Session, world: World
) -> None:
    make_signature(store, world.alpha, "Pat Pending", "pat@example.org", confirmed=False)
    auth.login("alice@example.org")
    everyone = client.get("/admin/c/alpha/signatures").get_data(as_text=True)
    page = client.get("/admin/c/alpha/signatures?status=all")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Unknown status filter" not in text
    listed = set(re.findall(r'href="/admin/c/alpha/signatures/(\d+)"', text))
    assert "Pat Pending" in text
    assert listed == set(re.findall(r'href="/admin/c/alpha/signatures/(\d+)"', everyone))
    export_link = re.search(r'href="(/admin/c/alpha/export\.csv[^"]*)"', text)
    assert export_link is not None and "status=all" in export_link.group(1)
    exported = client.get(export_link.group(1).replace("&amp;", "&"))
    assert exported.status_code == 200
    assert b"pat@example.org" in exported.data


def test_the_list_says_which_filters_it_did_not_apply_and_exports_what_it_shows(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("alice@example.org")
    page = client.get("/admin/c/alpha/signatures?status=bogus&country=AQ&q=Ann")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Unknown status filter: bogus." in text
    assert "Unknown country filter" not in text  # Antarctica: no one may choose it now, known
    export_link = re.search(r'href="(/admin/c/alpha/export\.csv[^"]*)"', text)
    assert export_link is not None
    assert "status=bogus" not in export_link.group(1) and "country=AQ" in export_link.group(1)
    assert client.get(export_link.group(1).replace("&amp;", "&")).status_code == 200
