"""The widget and the badge in Chromium: how they look, axe, and framing by another site."""

from __future__ import annotations


def test_widget_reads_well_and_has_no_axe_violations(page, live_server, screenshot, axe) -> None:
    page.set_viewport_size({"width": 320, "height": 420})
    response = page.goto(live_server(f"/c/{live_server.slug}/widget"))
    assert response.status == 200
    assert page.locator("h1").inner_text() == live_server.title
    assert page.locator(".widget-number").inner_text() == "7"
    link = page.get_by_role("link", name="Sign the letter")
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("rel") == "noopener"
    assert link.get_attribute("href") == live_server(f"/c/{live_server.slug}")
    screenshot(page, "widget-320")
    assert axe(page) == []


def test_widget_link_is_reachable_by_keyboard_with_visible_focus(page, live_server) -> None:
    page.goto(live_server(f"/c/{live_server.slug}/widget"))
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert focused == "widget-sign"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"


def test_another_site_can_frame_the_widget(strict_page, live_server, ally_site, screenshot) -> None:
    src = live_server(f"/c/{live_server.slug}/widget")
    strict_page.goto(
        ally_site(
            f"<h1>Our allies</h1><iframe src='{src}' title='Signatures' width='320' "
            "height='360'></iframe>"
        )
    )
    frame = strict_page.frame_locator("iframe")
    assert frame.locator(".widget-number").inner_text(timeout=5000) == "7"
    screenshot(strict_page, "widget-in-iframe")


def test_another_site_cannot_frame_the_letter_page(strict_page, live_server, ally_site) -> None:
    letter = live_server(f"/c/{live_server.slug}")
    widget = live_server(f"/c/{live_server.slug}/widget")
    strict_page.goto(
        ally_site(
            f"<iframe src='{letter}' title='Letter'></iframe>"
            f"<iframe src='{widget}' title='Widget'></iframe>"
        ),
        wait_until="load",  # the load event waits for both frames, refused or not
    )
    letter_frame, widget_frame = strict_page.frames[1:]
    assert widget_frame.url == widget
    assert widget_frame.locator(".widget-number").count() == 1
    # Chromium replaces a refused frame with its error page.
    assert letter_frame.url.startswith("chrome-error://")
    assert letter_frame.locator("form").count() == 0


def test_badge_is_an_svg_image_other_sites_can_show(
    strict_page, live_server, ally_site, screenshot
) -> None:
    src = live_server(f"/c/{live_server.slug}/badge.svg")
    response = strict_page.goto(src)
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    strict_page.goto(ally_site(f"<p><img src='{src}' alt='Signatures'></p>"))
    image = strict_page.locator("img")
    image.wait_for()
    strict_page.wait_for_function("document.images[0].complete")
    assert strict_page.evaluate("document.images[0].naturalWidth") > 100
    screenshot(strict_page, "badge-on-other-site", full_page=False)
