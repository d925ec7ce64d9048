"""The public pages at 320 CSS pixels, the narrowest screen WCAG 1.4.10 (reflow) asks for:
nothing wider than the screen, so no page scrolls sideways, in English and in French (whose
words are longer)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import LiveServer

from campaign import campaigns, signing
from campaign import db as dbmod

SLUG = "narrow-screens"
NARROW = {"width": 320, "height": 568}
# Countries with long names, in English and in French, on several continents.
COUNTRIES = ["BA", "VC", "CF", "KN", "ST", "MH", "CD", "PG", "TT", "FR"]
PAGES = [
    "index",
    "letter",
    "letter-errors",
    "thanks",
    "confirm",
    "confirmed",
    "withdraw",
    "stop-updates",
    "bad-link",
    "tally",
    "signatories",
    "signatories-country",
    "widget",
    "privacy",
]


@pytest.fixture(scope="module")
def paths(live_server: LiveServer) -> dict[str, str]:
    """A letter with signers from countries with long names, one signer still pending."""
    app = live_server.app
    secret = str(app.config["SECRET_KEY"])
    with dbmod.session_scope(app) as session:
        letter = campaigns.create_campaign(
            session,
            slug=SLUG,
            title="Protect the freedom of the press",
            letter="Dear Minister,\n\nWe ask you to protect it.",
            state="open",
        )
        ids = []
        for index, country in enumerate(COUNTRIES):
            entry = signing.SignatureEntry(
                name=f"Member {index}",
                title="MP",
                parliament="Parliament",
                party="",
                country_code=country,
                email=f"narrow{index}@example.org",
                public=True,
            )
            ids.append(signing.sign(session, letter, entry, confirmed=index > 0).signer.id)
    pending, confirmed = ids[0], ids[1]
    stop = signing.make_token(secret, confirmed, "stop_updates")
    return {
        "index": "/",
        "letter": f"/c/{SLUG}",
        "letter-errors": f"/c/{SLUG}",
        "thanks": f"/c/{SLUG}/thanks",
        "confirm": f"/c/{SLUG}/confirm/{signing.make_token(secret, pending, 'confirm')}",
        "confirmed": f"/c/{SLUG}/confirm/{signing.make_token(secret, confirmed, 'confirm')}",
        "withdraw": f"/c/{SLUG}/withdraw/{signing.make_token(secret, pending, 'withdraw')}",
        "stop-updates": f"/c/{SLUG}/updates/stop/{stop}",
        "bad-link": f"/c/{SLUG}/confirm/not-a-token",
        "tally": f"/c/{SLUG}/tally",
        "signatories": f"/c/{SLUG}/signatories",
        "signatories-country": f"/c/{SLUG}/signatories?country=FR",
        "widget": f"/c/{SLUG}/widget",
        "privacy": "/privacy",
    }


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("name", PAGES)
def test_a_public_page_fits_a_320px_screen(
    browser: Any,
    live_server: LiveServer,
    paths: dict[str, str],
    screenshot: Any,
    name: str,
    language: str,
) -> None:
    context = browser.new_context(viewport=NARROW)
    page = context.new_page()
    path = paths[name]
    joiner = "&" if "?" in path else "?"
    response = page.goto(live_server(f"{path}{joiner}lang={language}"))
    assert response is not None
    assert response.status == (400 if name == "bad-link" else 200)
    if name == "letter-errors":
        with page.expect_navigation():
            page.locator("#sign button[type=submit]").click()  # everything empty: every error
        assert page.locator("#error-summary").is_visible()
    screenshot(page, "page")
    width = page.evaluate("window.innerWidth")
    assert width == NARROW["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # Every column of every table on the screen, the last one too.
    for cell in page.locator("table th").all():
        box = cell.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, cell.inner_text()
    context.close()


def test_a_letters_own_headings_read_between_its_text_and_the_page_title(
    live_server: LiveServer, page: Any
) -> None:
    """A letter's "#" to "#####" (rendered <h2> to <h6> under the page's <h1>) are never
    smaller than its text, nor as large as the page's title."""
    app = live_server.app
    with dbmod.session_scope(app) as session:
        campaigns.create_campaign(
            session,
            slug="headings",
            title="Free the journalists",
            letter="# One\n\n## Two\n\n### Three\n\n#### Four\n\n##### Five\n\nDear Minister.",
            state="open",
        )
    page.set_viewport_size(NARROW)
    page.goto(live_server("/c/headings"))
    sizes = page.evaluate(
        """() => Object.fromEntries(
            ["h1", ".letter h2", ".letter h3", ".letter h4", ".letter h5", ".letter h6",
             ".letter p"].map(s => [s, parseFloat(getComputedStyle(
                document.querySelector(s)).fontSize)]))"""
    )
    text, title = sizes.pop(".letter p"), sizes.pop("h1")
    assert len(sizes) == 5
    for selector, size in sizes.items():
        assert text <= size < title, (selector, size, text, title)
