"""In Chromium: a signer whose cookies were cleared, or whose letter closed while they typed,
sees why at once (the alert focused, in view) and keeps what they typed."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from sqlalchemy import func, select, update

from campaign import campaigns
from campaign import db as dbmod
from campaign.models import Campaign, Signature

LiveServer = Any  # conftest.LiveServer
_numbers = itertools.count(1)


@pytest.fixture
def letter(live_server: LiveServer) -> str:
    slug = f"recover-{next(_numbers)}"
    with dbmod.session_scope(live_server.app) as session:
        campaigns.create_campaign(
            session, slug=slug, title="Free the poets", letter="Dear Minister,\n\n" * 40
        )
        session.execute(update(Campaign).where(Campaign.slug == slug).values(state="open"))
    return slug


def fill(page: Any, slug: str) -> None:
    page.get_by_label("Full name").fill("Rosa Parks")
    page.get_by_label("Title", exact=True).fill("MP")
    page.get_by_label("Parliament").fill("Congress")
    page.get_by_label("Country").select_option("US")
    page.get_by_label("Email address").fill(f"rosa-{slug}@example.org")


def stored(live_server: LiveServer, slug: str) -> int:
    with dbmod.session_scope(live_server.app) as session:
        found = campaigns.get_by_slug(session, slug)
        assert found is not None
        return int(
            session.scalar(
                select(func.count()).select_from(Signature).where(Signature.campaign_id == found.id)
            )
            or 0
        )


def alert_in_view(page: Any) -> None:
    alert = page.locator("#error-summary")
    assert alert.is_visible()
    assert page.evaluate("document.activeElement.id") == "error-summary"
    box = alert.bounding_box()
    # Scrolled to (the form's action ends in #error-summary), its top on screen.
    assert box is not None and -1 < box["y"] < page.viewport_size["height"] / 2


def test_cookies_cleared_before_pressing_sign(
    page: Any, live_server: LiveServer, letter: str, screenshot: Any
) -> None:
    page.goto(live_server(f"/c/{letter}#sign"))
    fill(page, letter)
    page.context.clear_cookies()
    with page.expect_navigation():
        page.get_by_role("button", name="Sign the letter").click()
    alert_in_view(page)
    assert "allow cookies for this site" in page.locator("#error-summary").inner_text()
    assert page.get_by_label("Full name").input_value() == "Rosa Parks"
    assert page.get_by_label("Country").input_value() == "US"
    assert stored(live_server, letter) == 0
    screenshot(page, "stale", full_page=False)
    page.get_by_role("button", name="Sign the letter").click()
    page.wait_for_url(re.compile(rf"/c/{letter}/thanks#thank-you$"))
    assert stored(live_server, letter) == 1


def test_the_letter_closes_while_the_form_is_filled(
    page: Any, live_server: LiveServer, letter: str, screenshot: Any
) -> None:
    page.goto(live_server(f"/c/{letter}#sign"))
    fill(page, letter)
    with dbmod.session_scope(live_server.app) as session:
        session.execute(update(Campaign).where(Campaign.slug == letter).values(state="closed"))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign the letter").click()
    alert_in_view(page)
    assert "This letter is closed" in page.locator("#error-summary").inner_text()
    screenshot(page, "closed", full_page=False)
    assert stored(live_server, letter) == 0
