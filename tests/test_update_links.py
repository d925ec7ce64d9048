"""Updates as signers and organizers see them: links in the text, the preview, the test mail."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from admin_helpers import make_signature
from markupsafe import Markup
from sqlalchemy import select
from test_mail import eml_files, parse_file, text_and_html
from test_updates import PAGE, World, _form, _text, world  # noqa: F401 - the fixture

from campaign import mail
from campaign.markup import linkify
from campaign.models import Signature

TEXT = (
    "Read the statement at https://example.org/statement.\n"
    "The minister answered (see https://example.org/answer) and the press wrote "
    "https://example.org/wiki/Kem_(politician), too.\n\n"
    "Do not click javascript:alert(1) nor <b>this</b> & that.\n"
    "A long one: https://example.org/" + "a" * 120 + "?x=1&y=2"
)


# --- the helper ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "html"),
    [
        (
            "at https://example.org/a.",
            'at <a href="https://example.org/a">https://example.org/a</a>.',
        ),
        (
            "(see http://example.org/a)",
            '(see <a href="http://example.org/a">http://example.org/a</a>)',
        ),
        (
            "https://example.org/Kem_(politician).",
            '<a href="https://example.org/Kem_(politician)">'
            "https://example.org/Kem_(politician)</a>.",
        ),
        (
            "Is it https://example.org/a?!",
            'Is it <a href="https://example.org/a">https://example.org/a</a>?!',
        ),
        (
            'said "https://example.org/q?a=1&b=2";',
            'said &#34;<a href="https://example.org/q?a=1&amp;b=2">'
            "https://example.org/q?a=1&amp;b=2</a>&#34;;",
        ),
        ("<https://example.org>", '&lt;<a href="https://example.org">https://example.org</a>&gt;'),
        ("<b>bold</b> & co", "&lt;b&gt;bold&lt;/b&gt; &amp; co"),
        ("javascript:alert(1)", "javascript:alert(1)"),
        ("data:text/html,x ftp://example.org mailto:a@example.org", None),
        ("www.example.org example.org", None),
        ("https:// and http://. and http://[oops/ and xhttps://example.org", None),
    ],
)
def test_only_web_addresses_become_links_and_the_rest_stays_escaped_text(
    text: str, html: str | None
) -> None:
    linked = linkify(text)
    assert isinstance(linked, Markup)
    assert str(linked) == (html if html is not None else str(Markup.escape(text)))


def test_a_style_goes_on_each_link_escaped() -> None:
    assert str(linkify("https://example.org x", style='a"b')) == (
        '<a href="https://example.org" style="a&#34;b">https://example.org</a> x'
    )


# --- the mail and the public letter ------------------------------------------------


def _sent_mail(world: World) -> tuple[str, str]:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    response = world.client.post(PAGE, data=_form(body=TEXT))
    assert response.status_code == 303
    assert mail.deliver_due(world.app) == 1
    [path] = eml_files(world.app)
    return text_and_html(parse_file(path))


def test_the_mails_html_part_links_web_addresses_and_nothing_else(world: World) -> None:
    plain, html = _sent_mail(world)
    links = re.findall(r'<a href="([^"]*)"', html)
    assert links[:3] == [
        "https://example.org/statement",
        "https://example.org/answer",
        "https://example.org/wiki/Kem_(politician)",
    ]
    assert links[3] == "https://example.org/" + "a" * 120 + "?x=1&amp;y=2"
    assert not any("javascript" in link for link in links)
    assert "https://example.org/statement</a>." in html
    assert "https://example.org/answer</a>) and" in html
    assert "(politician)</a>, too." in html
    assert "Do not click javascript:alert(1) nor &lt;b&gt;this&lt;/b&gt; &amp; that." in html
    # A long address may break anywhere rather than widen the mail (its style is inline:
    # mail programs ignore style sheets).
    assert '<a href="https://example.org/statement" style="word-break: break-all">' in html
    assert TEXT in plain  # the plain part keeps the text as written


def test_the_public_letter_links_the_addresses_of_a_published_update(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    assert world.client.post(PAGE, data=_form(body=TEXT)).status_code == 303
    html = world.app.test_client().get("/c/kem").get_data(as_text=True)
    updates = html[html.index('class="letter-updates"') :]
    assert (
        'at <a href="https://example.org/statement">https://example.org/statement</a>.'
    ) in updates
    assert '(see <a href="https://example.org/answer">https://example.org/answer</a>)' in updates
    assert "javascript:alert(1) nor &lt;b&gt;this&lt;/b&gt; &amp; that." in updates
    assert 'href="javascript' not in html and "style=" not in updates  # CSP: no inline style


# --- the preview ---------------------------------------------------------------------


class _Frames(HTMLParser):
    """The iframes of a page, with their attributes (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "iframe":
            self.frames.append(dict(attrs))


def _hash(value: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(value.encode()).digest()).decode() + "'"


def test_the_preview_shows_the_html_mail_in_a_sandbox_and_the_plain_text_too(
    world: World,
) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    response = world.client.post(PAGE, data=_form(body=TEXT, send=None, preview="1"))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    parser = _Frames()
    parser.feed(page)
    [frame] = parser.frames
    document = frame["srcdoc"] or ""
    # The HTML part as signers see it: their frame, the organizer's text with its links.
    assert document.startswith("<!doctype html>")
    assert "Hello alice@example.org," in document
    assert '<a href="https://example.org/statement" style="word-break: break-all">' in document
    assert "&lt;b&gt;this&lt;/b&gt;" in document and "<b>this</b>" not in document
    assert '<base target="_blank">' in document
    # Sandboxed: no script runs in it, nor may it reach the page.
    assert "allow-scripts" not in (frame["sandbox"] or "")
    assert "allow-same-origin" not in (frame["sandbox"] or "")
    # The page's policy stays strict: its scripts, and only the mail's own inline styles.
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    styles = re.search(r"style-src ([^;]*);", policy)
    assert styles is not None
    assert set(styles.group(1).split()) == {
        "'self'",
        "'unsafe-hashes'",
        _hash("font-size: 1.25em"),
        _hash("word-break: break-all"),
    }
    # The plain-text part, folded away.
    plain = page[page.index("<details") : page.index("</details>")]
    assert "Plain-text version" in plain
    assert "Read the statement at https://example.org/statement." in plain


def test_the_list_page_keeps_the_strict_policy(world: World) -> None:
    response = world.client.get(PAGE)
    assert "unsafe-hashes" not in response.headers["Content-Security-Policy"]


# --- the test mail ---------------------------------------------------------------------


def _signatures(world: World) -> list[tuple[Any, ...]]:
    world.store.expire_all()
    rows = world.store.scalars(select(Signature).order_by(Signature.id))
    return [
        tuple(getattr(row, column.key) for column in Signature.__table__.columns) for row in rows
    ]


def test_the_test_mail_has_no_link_that_leads_nowhere_and_changes_nothing(
    world: World,
) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    before = _signatures(world)
    response = world.client.post(PAGE, data=_form(send=None, confirm=None, test="1"))
    assert response.status_code == 200
    assert mail.deliver_due(world.app) == 1
    [path] = eml_files(world.app)
    message = parse_file(path)
    assert message["List-Unsubscribe"] is None  # no mail program offers a dead unsubscribe
    plain, html = text_and_html(message)
    urls = set(re.findall(r"http://campaign\.test\S*", plain))
    urls |= set(re.findall(r'href="(http://campaign\.test[^"]*)"', html))
    reader = world.app.test_client()
    for url in sorted(urls):
        page = reader.get(url.removeprefix("http://campaign.test"))
        assert "This link cannot be used" not in page.text, url
        assert page.status_code == 200
    assert urls == {"http://campaign.test/c/kem"}  # the letter, and nothing on a signer
    for url in re.findall(r'href="([^"]*)"', html):  # every link, whatever its host
        assert "/withdraw/" not in url and "/updates/stop/" not in url
    placeholder = "[Each signer gets their own link here. A preview or a test has none.]"
    assert _text(html).count(placeholder) == 2 and plain.count(placeholder) == 2
    assert _signatures(world) == before
