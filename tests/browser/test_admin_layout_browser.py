"""The dashboard's layout in a browser: a signature's actions under their heading, a long
address wrapping on a phone instead of being cut off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import LiveServer
from sqlalchemy import select

from campaign import campaigns, signing
from campaign import db as dbmod
from campaign.models import Campaign, Signature

# As long as an address may be (64 characters), and no hyphen to wrap at.
LONG_SLUG = "releasethepoliticalprisonersofconscienceheldwithouttrialnow12345"


# A letter of this module's own: the shared demo letter's count is what other modules read.
LAYOUT_SLUG = "layout-letter"


@pytest.fixture(scope="module")
def unlisted_id(live_server: LiveServer) -> int:
    """A signature, on a letter of its own, whose signer is not on the public list."""
    with dbmod.session_scope(live_server.app) as session:
        letter = campaigns.create_campaign(
            session, slug=LAYOUT_SLUG, title="Layout", letter="Dear Minister,", state="open"
        )
        entry = signing.SignatureEntry(
            name="Nora Unlisted",
            title="MP",
            parliament="Storting",
            party="",
            country_code="NO",
            email="nora@example.org",
            public=False,
        )
        signature: Signature = signing.sign(session, letter, entry, confirmed=True).signature
        return int(signature.id)


@pytest.fixture
def wide_page(browser: Any) -> Iterator[Any]:
    """A desktop-sized page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def test_a_lone_action_button_sits_under_the_actions_heading(
    live_server: LiveServer, wide_page: Any, unlisted_id: int
) -> None:
    live_server.log_in(wide_page)
    wide_page.goto(live_server(f"/admin/c/{LAYOUT_SLUG}/signatures/{unlisted_id}"))
    heading = wide_page.locator("#actions-heading").bounding_box()
    button = wide_page.get_by_role("button", name="Mark verified").bounding_box()
    assert wide_page.get_by_role("button", name="Take off the public list").count() == 0
    assert button["y"] >= heading["y"] + heading["height"], (heading, button)


def test_a_long_address_wraps_on_a_phone(live_server: LiveServer, page: Any) -> None:
    with dbmod.session_scope(live_server.app) as session:
        if session.scalar(select(Campaign).where(Campaign.slug == LONG_SLUG)) is None:
            campaigns.create_campaign(
                session, slug=LONG_SLUG, title="A letter", letter="Dear Minister,", state="draft"
            )
    page.set_viewport_size({"width": 390, "height": 844})
    live_server.log_in(page)
    page.goto(live_server("/admin/"))
    address = page.get_by_text(f"/c/{LONG_SLUG}")
    box = address.bounding_box()
    assert box["x"] + box["width"] <= 390, box
    # Shown whole, in the page's width: nothing is scrolled or clipped away.
    assert address.evaluate("e => e.scrollWidth <= e.clientWidth")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
