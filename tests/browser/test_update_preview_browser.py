"""An update's preview in Chromium, under the site's own policy: the HTML mail as signers see it."""

from __future__ import annotations

from typing import Any

LONG = "https://example.org/" + "a" * 150


def test_the_preview_frame_shows_the_mail_with_its_styles_and_its_links(
    strict_page: Any, live_server: Any, screenshot: Any
) -> None:
    page = strict_page
    page.set_viewport_size({"width": 360, "height": 780})
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))
    live_server.log_in(page)
    page.goto(live_server(f"/admin/c/{live_server.slug}/updates"))
    page.get_by_label("Subject").fill("The letter was delivered")
    page.get_by_label("Text").fill(f"Read it at {LONG}.\n\n<b>Not bold</b>")
    with page.expect_navigation():
        page.get_by_role("button", name="Preview").click()

    frame = page.frame_locator("iframe.mail-html")
    link = frame.get_by_role("link", name=LONG)
    assert link.get_attribute("href") == LONG
    # The mail's inline styles apply (allowed by their hashes): the heading's size, and
    # the long address breaking instead of widening the mail.
    assert link.evaluate("e => getComputedStyle(e).wordBreak") == "break-all"
    heading = frame.locator("h1").evaluate("e => getComputedStyle(e).fontSize")
    body = frame.locator("body").evaluate("e => getComputedStyle(e).fontSize")
    assert float(heading.removesuffix("px")) == 1.25 * float(body.removesuffix("px"))
    assert frame.locator("html").evaluate("e => e.scrollWidth <= e.clientWidth")
    assert frame.get_by_text("<b>Not bold</b>").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # The plain-text part is there, folded.
    assert not page.locator(".mail-plain .mail-text").is_visible()
    page.get_by_text("Plain-text version").click()
    assert page.locator(".mail-plain .mail-text").is_visible()
    screenshot(page, "preview")
    # A link opens in a new tab, out of the sandbox (the letter's page, here).
    with page.expect_popup() as opened:
        frame.get_by_role("link", name=live_server.title).click()
    popup = opened.value
    popup.wait_for_load_state()
    assert popup.url == live_server(f"/c/{live_server.slug}")
    assert [text for text in refused if "Content Security Policy" in text] == []
