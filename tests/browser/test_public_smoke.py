"""Smoke test of the letter page on a phone (phase 1: the page itself is still being written)."""

from __future__ import annotations


def test_letter_page_loads_on_a_360px_phone_with_its_form(page, live_server, screenshot) -> None:
    page.set_viewport_size({"width": 360, "height": 780})
    response = page.goto(live_server(f"/c/{live_server.slug}"))
    assert response.status == 200
    assert page.locator("form").count() >= 1
    screenshot(page, "letter-360")
