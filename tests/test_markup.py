"""Letters in Markdown, rendered safely."""

from __future__ import annotations

import re

import pytest
from data_helpers import login, make_campaign, make_organizer
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import Markup

from campaign.db import new_session
from campaign.markup import breakable_address, render_markdown


def test_markdown_renders_headings_emphasis_and_lists() -> None:
    html = render_markdown("# Free him\n\nWe, the *undersigned*:\n\n- ask\n- insist\n")
    assert isinstance(html, Markup)
    assert "<h2>Free him</h2>" in html
    assert "<em>undersigned</em>" in html
    assert "<li>ask</li>" in html


def test_the_letters_headings_sit_under_the_pages_title() -> None:
    html = render_markdown(
        "# One\n\n## Two\n\n### Three\n\n#### Four\n\n##### Five\n\n###### Six\n\nSeven\n===\n"
    )
    assert re.findall(r"<(h\d)>(\w+)</h\d>", html) == [
        ("h2", "One"),
        ("h3", "Two"),
        ("h4", "Three"),
        ("h5", "Four"),
        ("h6", "Five"),
        ("h6", "Six"),
        ("h2", "Seven"),
    ]
    assert "<h1" not in html


def test_a_letter_heading_is_no_second_h1_on_the_letters_pages(
    app: Flask, client: FlaskClient
) -> None:
    db = new_session(app)
    campaign = make_campaign(db, title="Free Kem", letter="# Our demand\n\nRelease him.\n")
    organizer = make_organizer(db, campaigns=(campaign,))
    db.close()
    public = client.get("/c/release").get_data(as_text=True)
    assert re.findall(r"<h1[^>]*>([^<]*)</h1>", public) == ["Free Kem"]
    assert "<h2>Our demand</h2>" in public
    login(client, organizer)
    delivery = client.get("/admin/c/release/letter").get_data(as_text=True)
    assert re.findall(r"<h1[^>]*>([^<]*)</h1>", delivery) == ["Free Kem"]
    assert "<h2>Our demand</h2>" in delivery


def test_raw_html_is_escaped() -> None:
    html = render_markdown('<script>alert(1)</script>\n\n<img src=x onerror="alert(1)">')
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "url", ["https://example.org/a", "http://example.org", "mailto:office@example.org"]
)
def test_web_and_mail_links_are_kept(url: str) -> None:
    assert f'href="{url}"' in render_markdown(f"[link]({url})")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,<b>x</b>",
        "vbscript:x",
        "file:///etc/passwd",
        "/relative/path",
    ],
)
def test_other_links_are_not_links(url: str) -> None:
    assert "href" not in render_markdown(f"[link]({url})")


def test_images_do_not_load_from_other_servers() -> None:
    assert "<img" not in render_markdown("![pixel](https://tracker.example/p.gif)")


@pytest.mark.parametrize(
    ("text", "html"),
    [
        (
            "See ![the map](https://x.org/m.png) now",
            '<p>See <a href="https://x.org/m.png">the map</a> now</p>\n',
        ),
        (
            "![](https://x.org/a.png)",
            '<p><a href="https://x.org/a.png">https://x.org/a.png</a></p>\n',
        ),
        ("![x](javascript:alert(1))", "<p>![x](javascript:alert(1))</p>\n"),
        ('![a "b"](https://x.org/p)', '<p><a href="https://x.org/p">a &#34;b&#34;</a></p>\n'),
    ],
)
def test_an_image_is_a_link_to_it_named_by_its_description(text: str, html: str) -> None:
    assert str(render_markdown(text)) == html


def test_empty_letter_renders_empty() -> None:
    assert render_markdown("") == ""


def test_an_address_may_wrap_after_its_at_sign_and_stays_escaped() -> None:
    assert breakable_address("ana.walk@example.org") == Markup("ana.walk@<wbr>example.org")
    assert breakable_address('"<b>"@example.org') == Markup("&#34;&lt;b&gt;&#34;@<wbr>example.org")
    assert breakable_address("") == Markup("")
    assert breakable_address(None) == Markup("")
