"""Long values on small screens: a signer's page and the recommended widget embed.

A signer's name, title, parliament or party may be one long unbroken word; the confirm and
withdraw pages must still fit a phone. The widget, at the 320x380 the embed code asks for,
must show its button whatever the letter's title.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from conftest import LiveServer

from campaign import auth, campaigns, signing
from campaign import db as dbmod
from campaign.cli.campaigns import DEMO_TITLE

SLUG = "long-values"
LONG_NAME = "B" * signing.NAME_MAX
# The demo's signers' spread: six continents, so six rows under the count.
SPREAD = ["GB", "FR", "ZA", "KE", "JP", "MY", "CA", "BR", "AU", "NZ"]


@dataclass(frozen=True)
class Links:
    confirm: str
    withdraw: str
    widget: str


@pytest.fixture(scope="module")
def links(live_server: LiveServer) -> Links:
    """A letter with the demo's long title, signers on six continents, one signer all Bs."""
    app = live_server.app
    secret = str(app.config["SECRET_KEY"])
    with dbmod.session_scope(app) as session:
        letter = campaigns.create_campaign(
            session, slug=SLUG, title=DEMO_TITLE, letter="Dear Minister,", state="open"
        )
        for index, country in enumerate(SPREAD):
            entry = signing.SignatureEntry(
                name=f"Member {index}",
                title="MP",
                parliament="Parliament",
                party="",
                country_code=country,
                email=f"member{index}@example.org",
            )
            signing.sign(session, letter, entry, confirmed=True)
        entry = signing.SignatureEntry(
            name=LONG_NAME,
            title="T" * signing.TITLE_MAX,
            parliament="P" * signing.PARLIAMENT_MAX,
            party="Q" * signing.PARTY_MAX,
            country_code="FR",
            email="bbbb@example.org",
        )
        signer = signing.sign(session, letter, entry, confirmed=False).signature.id
    return Links(
        confirm=f"/c/{SLUG}/confirm/{signing.make_token(secret, signer, 'confirm')}",
        withdraw=f"/c/{SLUG}/withdraw/{signing.make_token(secret, signer, 'withdraw')}",
        widget=f"/c/{SLUG}/widget",
    )


@pytest.mark.parametrize("which", ["confirm", "withdraw"])
def test_a_signers_page_fits_a_phone_whatever_the_name(
    page: Any, live_server: LiveServer, links: Links, screenshot: Any, which: str
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    response = page.goto(live_server(getattr(links, which)))
    assert response.status == 200
    name = page.locator("dl.signer dd").first
    assert name.inner_text() == LONG_NAME
    screenshot(page, which)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = name.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390


def test_the_recommended_widget_size_shows_the_button_under_a_long_title(
    page: Any, live_server: LiveServer, links: Links, screenshot: Any
) -> None:
    page.set_viewport_size({"width": 320, "height": 380})
    response = page.goto(live_server(links.widget))
    assert response.status == 200
    # The whole title is there for screen readers, however few lines it shows.
    assert page.locator("h1").inner_text() == DEMO_TITLE
    assert page.locator(".widget-continents li").count() == 6
    screenshot(page, "widget-320x380", full_page=False)
    button = page.get_by_role("link", name="Sign the letter").bounding_box()
    assert button["y"] >= 0 and button["y"] + button["height"] <= 380
    assert page.evaluate("document.documentElement.scrollHeight") <= 380


def test_the_organizers_table_fits_the_screen_whatever_a_name(
    browser: Any, live_server: LiveServer, screenshot: Any
) -> None:
    with dbmod.session_scope(live_server.app) as session:
        auth.create_organizer(
            session, "longname@example.org", "a long enough password", name="N" * 150
        )
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    live_server.log_in(page)
    page.goto(live_server("/admin/organizers"))
    screenshot(page, "organizers")
    # Every column of the table, the last one too, on the screen.
    for header in page.locator("table th").all():
        box = header.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280, header.inner_text()
    context.close()
