"""axe-core on every public page and every dashboard page: no violation, at phone and desktop
widths, in each language. Each page is also photographed for a person to look at."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from campaign import auth, campaigns, listing, password_reset, signing
from campaign import db as dbmod
from campaign.models import LetterUpdate, Organizer, Signature

LiveServer = Any  # conftest.LiveServer (tests/ is not a package)

# (language, viewport width): each language once, each width twice.
VIEWS = [("en", 360), ("fr", 1280), ("id", 360), ("es", 1280)]
PUBLIC = [
    "index",
    "letter",
    "letter-errors",
    "thanks",
    "confirm",
    "confirm-bad-token",
    "confirmed",
    "withdraw",
    "stop-updates",
    "stop-updates-done",
    "tally",
    "signatories",
    "signatories-countries",
    "signatories-country",
    "widget",
    "privacy",
    "not-found",
]
# Pages of the dashboard seen before logging in.
LOGGED_OUT = {"login", "password-reset", "password-reset-sent", "password-reset-link"}
DASHBOARD = [
    "login",
    "password-reset",
    "password-reset-sent",
    "password-reset-link",
    "index",
    "campaign-edit",
    "signatures",
    "signature",
    "signature-edit-errors",
    "signature-new",
    "signature-new-errors",
    "duplicates",
    "audit",
    "organizers",
    "organizer",
    "organizer-other",
    "account",
    "account-errors",
    "import",
    "letter",
    "letter-version",
    "activity",
    "updates",
    "updates-errors",
    "updates-preview",
    "updates-send-errors",
]


@dataclass(frozen=True)
class Fixtures:
    """URLs of pages that need particular data: tokens, a held duplicate, a signature."""

    confirm: str
    confirmed: str
    withdraw: str
    stop_updates: str
    stop_updates_done: str
    signature_id: int
    organizer_id: int
    other_organizer_id: int
    password_reset: str


@pytest.fixture(scope="module")
def fixtures(live_server: LiveServer) -> Fixtures:
    """A pending signer (confirm, withdraw links), a confirmed one, and a held duplicate."""
    app = live_server.app
    secret = str(app.config["SECRET_KEY"])
    with dbmod.session_scope(app) as session:
        letter = campaigns.get_by_slug(session, live_server.slug)
        assert letter is not None

        def add(name: str, country: str, email: str, *, confirmed: bool) -> Signature:
            entry = signing.SignatureEntry(
                name=name,
                title="MP",
                parliament="Parliament",
                party="",
                country_code=country,
                email=email,
            )
            return signing.sign(session, letter, entry, confirmed=confirmed).signature

        # The demo signers signed version 1; the text changed since: the versions show.
        campaigns.update_campaign(
            session, letter, new_version=True, letter=letter.letter + "\n\nP.S. Thank you."
        )
        pending = add("Pat Pending", "NZ", "pat@example.org", confirmed=False)
        # The same person as a demo signer under another address: held as a possible duplicate.
        held = add("Jean Dupont", "FR", "jean.other@example.org", confirmed=True)
        assert held.status == "held"
        # It asked for no updates: its stop link's page says so, and so does its admin page.
        held.updates_declined_at = dbmod.utcnow()
        organizer = session.scalars(select(Organizer)).first()
        assert organizer is not None
        # Another organizer: their page has the form an admin sets a new password with.
        other = auth.create_organizer(
            session, "otto@example.org", "otto's long password", name="Otto Other"
        )
        session.add(
            LetterUpdate(
                campaign_id=letter.id,
                subject="The letter was delivered",
                body="It was handed to the minister.\n\nHer answer: https://example.org/answer",
                published=True,
                created_by_id=organizer.id,
                recipients=0,
            )
        )
        session.flush()
        ids = pending.id, held.id, organizer.id, other.id
        reset_token = password_reset.make_token(secret, other)
    slug = live_server.slug
    first = signing.make_token(secret, ids[0], "confirm")
    second = signing.make_token(secret, ids[1], "confirm")
    return Fixtures(
        confirm=f"/c/{slug}/confirm/{first}",
        confirmed=f"/c/{slug}/confirm/{second}",
        withdraw=f"/c/{slug}/withdraw/{signing.make_token(secret, ids[0], 'withdraw')}",
        stop_updates=f"/c/{slug}/updates/stop/{signing.make_token(secret, ids[0], 'stop_updates')}",
        stop_updates_done=(
            f"/c/{slug}/updates/stop/{signing.make_token(secret, ids[1], 'stop_updates')}"
        ),
        signature_id=ids[1],
        organizer_id=ids[2],
        other_organizer_id=ids[3],
        password_reset=f"/admin/password-reset/{reset_token}",
    )


def public_path(name: str, slug: str, fixtures: Fixtures) -> str:
    return {
        "index": "/",
        "letter": f"/c/{slug}",
        "letter-errors": f"/c/{slug}",
        "thanks": f"/c/{slug}/thanks",
        "confirm": fixtures.confirm,
        "confirm-bad-token": f"/c/{slug}/confirm/not-a-token",
        "confirmed": fixtures.confirmed,
        "withdraw": fixtures.withdraw,
        "stop-updates": fixtures.stop_updates,
        "stop-updates-done": fixtures.stop_updates_done,
        "tally": f"/c/{slug}/tally",
        "signatories": f"/c/{slug}/signatories",
        # With pages of 1 (see the test): the table of countries, then the first page of France (2).
        "signatories-countries": f"/c/{slug}/signatories",
        "signatories-country": f"/c/{slug}/signatories?country=FR",
        "widget": f"/c/{slug}/widget",
        "privacy": "/privacy",
        "not-found": "/no/such/page",
    }[name]


@pytest.mark.parametrize(("language", "width"), VIEWS, ids=[f"{lang}-{w}" for lang, w in VIEWS])
@pytest.mark.parametrize("name", PUBLIC)
def test_public_page_has_no_axe_violations(
    browser: Any,
    live_server: LiveServer,
    fixtures: Fixtures,
    axe: Any,
    screenshot: Any,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    language: str,
    width: int,
) -> None:
    if name.startswith("signatories-"):
        # The demo letter's listed signers, as a large letter's: by country, then by pages.
        monkeypatch.setattr(listing, "PAGE_SIZE", 1)
    context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    page = context.new_page()
    path = public_path(name, live_server.slug, fixtures)
    joiner = "&" if "?" in path else "?"
    response = page.goto(live_server(f"{path}{joiner}lang={language}"))
    assert response is not None
    if name == "letter-errors":
        with page.expect_navigation():
            page.locator("button[type=submit]").click()  # everything empty: every error
        assert page.locator("#error-summary").is_visible()
    assert page.evaluate("document.documentElement.lang") == language
    if name == "signatories-countries":
        assert page.locator("table a[href*='country=FR']").count() == 1
    if name == "signatories-country":
        assert page.locator("a[rel=next]").count() == 1  # France has two listed signers
    # Nothing wider than the screen: a phone never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, "page")
    assert axe(page) == []
    context.close()


@pytest.fixture(scope="module")
def dashboard(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A browser context logged in through the dashboard's login form."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    live_server.log_in(page)
    assert page.url == live_server("/admin/")
    yield context
    context.close()


def dashboard_path(name: str, slug: str, fixtures: Fixtures) -> str:
    return {
        "login": "/admin/login",
        "password-reset": "/admin/password-reset",
        "password-reset-sent": "/admin/password-reset/sent",
        "password-reset-link": fixtures.password_reset,
        "index": "/admin/",
        "campaign-edit": f"/admin/c/{slug}/edit",
        "signatures": f"/admin/c/{slug}/signatures",
        "signature": f"/admin/c/{slug}/signatures/{fixtures.signature_id}",
        "signature-edit-errors": f"/admin/c/{slug}/signatures/{fixtures.signature_id}",
        "signature-new": f"/admin/c/{slug}/signatures/new",
        "signature-new-errors": f"/admin/c/{slug}/signatures/new",
        "duplicates": f"/admin/c/{slug}/duplicates",
        "audit": f"/admin/c/{slug}/audit",
        "organizers": "/admin/organizers",
        "organizer": f"/admin/organizers/{fixtures.organizer_id}",
        "organizer-other": f"/admin/organizers/{fixtures.other_organizer_id}",
        "account": "/admin/account",
        "account-errors": "/admin/account",
        "import": f"/admin/c/{slug}/import",
        "letter": f"/admin/c/{slug}/letter",
        "letter-version": f"/admin/c/{slug}/letter/versions/1",
        "activity": f"/admin/c/{slug}/activity",
        "updates": f"/admin/c/{slug}/updates",
        "updates-errors": f"/admin/c/{slug}/updates",
        "updates-preview": f"/admin/c/{slug}/updates",
        "updates-send-errors": f"/admin/c/{slug}/updates",
    }[name]


@pytest.mark.parametrize("width", [1280, 360])
@pytest.mark.parametrize("name", DASHBOARD)
def test_dashboard_page_has_no_axe_violations(
    browser: Any,
    dashboard: Any,
    live_server: LiveServer,
    fixtures: Fixtures,
    axe: Any,
    screenshot: Any,
    name: str,
    width: int,
) -> None:
    if name in LOGGED_OUT:
        context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    else:
        context = dashboard
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": 800})
    response = page.goto(live_server(dashboard_path(name, live_server.slug, fixtures)))
    assert response is not None and response.status == 200, name
    assert "/admin/login" not in page.url or name in LOGGED_OUT
    if name == "account-errors":
        with page.expect_navigation():
            page.get_by_role("button", name="Change password").click()  # empty: every error
        assert page.locator("#error-summary").is_visible()
    if name == "signature-edit-errors":
        page.get_by_text("Edit details").click()  # the form opens in place, without a request
        page.get_by_label("Full name").fill("")
        page.get_by_label("Country").select_option("")
        with page.expect_navigation():
            page.get_by_role("button", name="Save details").click()
        assert page.locator("#error-summary").is_visible()
        assert page.locator("#edit-details[open]").count() == 1
    if name == "signature-new-errors":
        page.get_by_label("Email address").fill("not an address")
        with page.expect_navigation():
            page.get_by_role("button", name="Add the signature").click()  # every field's error
        assert page.locator("#error-summary").is_visible()
    if name == "updates-errors":
        with page.expect_navigation():
            page.get_by_role("button", name="Preview").click()  # empty: every error
        assert page.locator("#error-summary").is_visible()
    if name in ("updates-preview", "updates-send-errors"):
        page.get_by_label("Subject").fill("The letter was delivered")
        page.get_by_label("Text").fill(
            "It was handed to the minister on 3 December.\n\nHer answer: https://example.org/a"
        )
        with page.expect_navigation():
            page.get_by_role("button", name="Preview").click()
        assert page.get_by_text("This update goes to").is_visible()
    if name == "updates-send-errors":
        with page.expect_navigation():
            page.get_by_role("button", name="Send", exact=True).click()  # not ticked
        assert page.locator("#error-summary").is_visible()
    # Nothing wider than the screen: a phone never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, "page")
    assert axe(page) == []
    page.close()
    if name in LOGGED_OUT:
        context.close()


# Every cell of these tables (campaigns, signatures, the organizer's sessions), and the
# campaign's counts, without scrolling sideways.
_OFF_SCREEN_CELLS = """(width) => [...document.querySelectorAll('table td, table th[scope=row]')]
    .filter((cell) => cell.getBoundingClientRect().right > width + 0.5)
    .map((cell) => cell.textContent.trim().slice(0, 40))"""


@pytest.mark.parametrize("width", [1280, 360])
@pytest.mark.parametrize("name", ["index", "signatures", "account"])
def test_the_dashboard_tables_fit_the_screen(
    dashboard: Any,
    live_server: LiveServer,
    fixtures: Fixtures,
    screenshot: Any,
    name: str,
    width: int,
) -> None:
    page = dashboard.new_page()
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(live_server(dashboard_path(name, live_server.slug, fixtures)))

    assert page.evaluate(_OFF_SCREEN_CELLS, width) == []
    if name == "index":
        first = page.locator("table.campaigns tbody tr").first
        counted = first.locator("td[data-label=confirmed]")
        assert counted.is_visible()
        label = counted.evaluate("(cell) => getComputedStyle(cell, '::before').content")
        # In a phone's card the count says what it counts; on a wide screen its column head does.
        assert (label != "none") == (width < 600), label
    screenshot(page, "page")
    page.close()


def test_tick_all_shows_the_ticks_a_refused_action_kept(
    dashboard: Any, live_server: LiveServer
) -> None:
    page = dashboard.new_page()
    page.goto(live_server(f"/admin/c/{live_server.slug}/signatures"))
    boxes = page.locator("input[name=ids]")
    ids = [boxes.nth(n).get_attribute("value") for n in range(boxes.count())]
    assert len(ids) >= 2
    pick_all = page.locator("input.pick-all")
    state = "(box) => [box.checked, box.indeterminate]"

    page.goto(live_server(f"/admin/c/{live_server.slug}/signatures?ticked={ids[0]}"))
    assert pick_all.evaluate(state) == [False, True]
    page.goto(live_server(f"/admin/c/{live_server.slug}/signatures?ticked={','.join(ids)}"))
    assert pick_all.evaluate(state) == [True, False]
    pick_all.uncheck()
    assert page.locator("input[name=ids]:checked").count() == 0
    page.close()
