"""The dashboard's layout in a browser: a signature's actions under their heading."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import LiveServer
from sqlalchemy import select

from campaign import db as dbmod
from campaign import signing
from campaign.models import Campaign, Signature


@pytest.fixture(scope="module")
def unlisted_id(live_server: LiveServer) -> int:
    """A signature of the demo letter whose signer is not on the public list."""
    with dbmod.session_scope(live_server.app) as session:
        letter = session.scalars(select(Campaign).where(Campaign.slug == live_server.slug)).one()
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
    wide_page.goto(live_server(f"/admin/c/{live_server.slug}/signatures/{unlisted_id}"))
    heading = wide_page.locator("#actions-heading").bounding_box()
    button = wide_page.get_by_role("button", name="Mark verified").bounding_box()
    assert wide_page.get_by_role("button", name="Take off the public list").count() == 0
    assert button["y"] >= heading["y"] + heading["height"], (heading, button)
