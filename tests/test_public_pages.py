"""What the public pages show and how they present themselves: pictures, sharing, embedding."""

from __future__ import annotations

import html as htmllib
import io
import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from admin_helpers import PASSWORD, AuthActions
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from campaign import auth, campaigns, charts, signing
from campaign.db import session_scope
from campaign.views import embed

SLUG = "free-amara"
TITLE = "Release Amara"
BASE = "http://campaign.test"  # tests/conftest.py's BASE_URL
SIGNERS = ["DE", "DE", "FR", "BR", "SG"]  # counted; one more from ZA waits for confirmation


def sign(app: Flask, slug: str, country: str, index: int, *, confirmed: bool = True) -> None:
    with app.app_context(), session_scope(app) as db:
        found = campaigns.get_by_slug(db, slug)
        assert found is not None
        entry = signing.validate_entry(
            {
                "name": f"Signer {index}",
                "title": "MP",
                "parliament": "Parliament",
                "country": country,
                "email": f"signer{index}@example.org",
                "public": True,
            }
        )
        signing.sign(db, found, entry, confirmed=confirmed)


@pytest.fixture
def letter(app: Flask) -> None:
    """An open letter with five counted signers from four countries on three continents."""
    with app.app_context(), session_scope(app) as db:
        campaigns.create_campaign(
            db, slug=SLUG, title=TITLE, letter="Dear President,", state="open"
        )
    for index, country in enumerate(SIGNERS):
        sign(app, SLUG, country, index)
    sign(app, SLUG, "ZA", 99, confirmed=False)  # pending: not counted


def meta(page: str) -> dict[str, str]:
    """The page's <meta property|name=... content=...> values, unescaped."""
    found = re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', page)
    return {key: htmllib.unescape(value) for key, value in found}


@pytest.mark.parametrize("path", [f"/c/{SLUG}", f"/c/{SLUG}/tally"])
def test_letter_and_tally_pages_carry_open_graph_and_twitter_cards(
    client: FlaskClient, letter: None, path: str
) -> None:
    tags = meta(client.get(path).text)
    assert tags["og:title"] == TITLE
    assert tags["og:description"] == "Signed by 5 MPs from 4 countries on 3 continents"
    assert tags["og:url"] == BASE + path
    assert tags["og:type"] == "website"
    image = urlsplit(tags["og:image"])
    assert f"{image.scheme}://{image.netloc}{image.path}" == f"{BASE}/c/{SLUG}/share.png"
    assert parse_qs(image.query) == {"lang": ["en"], "v": ["5"]}  # refreshed as the count grows
    assert (tags["og:image:width"], tags["og:image:height"]) == ("1200", "630")
    assert tags["og:image:alt"] == f"{TITLE}: Signed by 5 MPs from 4 countries on 3 continents"
    assert tags["twitter:card"] == "summary_large_image"
    assert tags["twitter:image"] == tags["og:image"]
    assert tags["description"] == tags["og:description"]


def test_the_description_follows_the_readers_language(client: FlaskClient, letter: None) -> None:
    tags = meta(client.get(f"/c/{SLUG}?lang=fr").text)
    assert tags["og:description"] == "Signée par 5 parlementaires de 4 pays sur 3 continents"
    assert "lang=fr" in tags["og:image"]


def test_a_draft_offers_no_share_image(app: Flask, client: FlaskClient) -> None:
    with app.app_context(), session_scope(app) as db:
        draft = campaigns.create_campaign(db, slug="draft", title="Draft", state="draft")
        auth.add_to_campaign(db, auth.create_organizer(db, "alice@example.org", PASSWORD), draft)
    # Only its organizers see a draft's page (everyone else a 404): their preview.
    assert client.get("/c/draft").status_code == 404
    AuthActions(client).login("alice@example.org")
    tags = meta(client.get("/c/draft").text)
    assert "og:image" not in tags
    assert tags["twitter:card"] == "summary"
    assert client.get("/c/draft/share.png").status_code == 404


def share_links(page: str) -> dict[str, str]:
    found = re.findall(r'<a class="share-link share-(\w+)" href="([^"]+)"', page)
    return {network: htmllib.unescape(href) for network, href in found}


def test_share_links_need_no_script_and_carry_the_page_and_the_count(
    client: FlaskClient, letter: None
) -> None:
    page = client.get(f"/c/{SLUG}/tally").text
    links = share_links(page)
    assert set(links) == {"x", "facebook", "linkedin", "whatsapp", "telegram", "email"}
    url = f"{BASE}/c/{SLUG}/tally"
    text = f"{TITLE} \u2013 Signed by 5 MPs from 4 countries on 3 continents"
    x = urlsplit(links["x"])
    assert (x.netloc, x.path) == ("x.com", "/intent/tweet")
    assert parse_qs(x.query) == {"text": [text], "url": [url]}
    assert parse_qs(urlsplit(links["facebook"]).query) == {"u": [url]}
    assert parse_qs(urlsplit(links["linkedin"]).query) == {"url": [url]}
    assert parse_qs(urlsplit(links["whatsapp"]).query) == {"text": [f"{text} {url}"]}
    assert parse_qs(urlsplit(links["telegram"]).query) == {"url": [url], "text": [text]}
    mailto = urlsplit(links["email"])
    assert mailto.scheme == "mailto"
    assert parse_qs(mailto.query) == {"subject": [TITLE], "body": [f"{text}\n\n{url}"]}
    assert "+" not in links["email"]  # mail programs read + literally: spaces are %20
    # Other sites open in a new tab, and are told so; no script of theirs is loaded.
    assert page.count('target="_blank" rel="noopener noreferrer"') >= 5
    assert "(opens in a new tab)" in page
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script src="/static/site.js" defer>']


def test_copy_link_is_a_plain_link_to_the_page(client: FlaskClient, letter: None) -> None:
    page = client.get(f"/c/{SLUG}").text
    assert (
        f'<a class="share-link copy-link" href="{BASE}/c/{SLUG}" data-copy="{BASE}/c/{SLUG}" '
        'data-copied="Link copied">Copy link</a>'
    ) in page
    assert '<p class="copy-status" role="status"></p>' in page


def test_thanks_page_asks_to_share_the_letter(client: FlaskClient, letter: None) -> None:
    page = client.get(f"/c/{SLUG}/thanks").text
    assert "Ask your colleagues to sign" in page
    assert share_links(page)["facebook"].endswith(f"u=http%3A%2F%2Fcampaign.test%2Fc%2F{SLUG}")


def test_tally_page_shows_the_map_and_the_bars_each_with_its_table(
    client: FlaskClient, letter: None
) -> None:
    page = client.get(f"/c/{SLUG}/tally").text
    world = page.index('<svg xmlns="http://www.w3.org/2000/svg"')
    by_country = page.index('<table aria-labelledby="by-country">')
    bars = page.index('class="chart chart-bars"')
    by_continent = page.index('<table aria-labelledby="by-continent">')
    assert world < by_country < bars < by_continent  # each picture, then its table
    assert 'class="chart chart-map" role="img"' in page
    assert '<title id="world-map-title">Map of the signatures by country</title>' in page
    assert '<title id="continent-bars-title">Signatures by continent</title>' in page
    assert 'data-country="DE"><title>Germany: 2 signatures</title>' in page
    assert 'data-country="SG"><title>Singapore: 1 signature</title>' in page  # a dot
    assert '<th scope="row">Germany</th><td>Europe</td><td class="num">2</td>' in page
    assert '<th scope="row">Europe</th><td class="num">2</td><td class="num">3</td>' in page
    assert " style=" not in page and "<style" not in page  # the CSP allows no inline style


def test_the_pictures_speak_the_readers_language(client: FlaskClient, letter: None) -> None:
    page = client.get(f"/c/{SLUG}/tally?lang=fr").text
    assert '<title id="world-map-title">Carte des signatures par pays</title>' in page
    assert 'data-country="DE"><title>Allemagne: 2 signatures</title>' in page
    assert '<tspan font-weight="600">Europe</tspan> 3 signatures, 2 pays' in page
    assert '<tspan font-weight="600">Afrique</tspan>' not in page  # ZA's signer is pending
    assert "Signatures par pays" in page  # the legend


def test_tally_of_an_empty_letter_shows_a_grey_map_and_no_tables(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context(), session_scope(app) as db:
        campaigns.create_campaign(db, slug="empty", title="Empty", state="open")
    page = client.get("/c/empty/tally").text
    assert "<h1" in page and "No signatures yet." in page
    assert 'class="chart chart-map"' in page
    assert "<table" not in page
    assert "the table by country" not in page  # no table to point to


def live(page: str, tag: str) -> dict[str, str]:
    found = re.search(rf"<{tag} [^>]*data-live=[^>]*>", page, re.S)
    assert found is not None
    return {
        key: htmllib.unescape(value)
        for key, value in re.findall(
            r"""(data-live[\w-]*|aria-live)=(?:"([^"]*)"|'[^']*')""", found.group(0)
        )
    } | dict(re.findall(r"""(data-live-forms)='([^']*)'""", found.group(0)))


def test_the_count_carries_what_the_script_needs_to_refresh_it(
    client: FlaskClient, letter: None
) -> None:
    attrs = live(client.get(f"/c/{SLUG}/tally?lang=fr").text, "h1")
    assert attrs["aria-live"] == "polite"
    assert attrs["data-live"] == f"/c/{SLUG}/tally.json"
    assert attrs["data-live-numbers"] == "5 4 3"
    assert attrs["data-live-template"] == "Signée par {signatures} de {countries} sur {continents}"
    assert json.loads(htmllib.unescape(attrs["data-live-forms"])) == {
        "signatures": ["%(num)d parlementaire", "%(num)d parlementaires"],
        "countries": ["%(num)d pays", "%(num)d pays"],
        "continents": ["%(num)d continent", "%(num)d continents"],
    }
    assert attrs["data-live-empty"] == "Aucune signature pour l\u2019instant."
    letter_attrs = live(client.get(f"/c/{SLUG}?lang=en").text, "p")
    assert letter_attrs["data-live-template"] == "{signatures} from {countries} on {continents}"


def test_tally_json_may_be_read_by_other_sites_without_credentials(
    client: FlaskClient, letter: None
) -> None:
    response = client.get(f"/c/{SLUG}/tally.json", headers={"Origin": "https://ally.example"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "GET"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.json is not None and response.json["signatures"] == 5


def test_the_tally_page_offers_the_embed_code(client: FlaskClient, letter: None) -> None:
    page = client.get(f"/c/{SLUG}/tally").text
    widget = re.search(r'<textarea id="embed-widget-code"[^>]*>([^<]*)</textarea>', page)
    badge = re.search(r'<textarea id="embed-badge-code"[^>]*>([^<]*)</textarea>', page)
    assert widget is not None and badge is not None
    assert htmllib.unescape(widget.group(1)) == (
        f'<iframe src="{BASE}/c/{SLUG}/widget" title="{TITLE}: signatures" width="320" '
        'height="380" loading="lazy"></iframe>'
    )
    assert htmllib.unescape(badge.group(1)) == (
        f'<a href="{BASE}/c/{SLUG}"><img src="{BASE}/c/{SLUG}/badge.svg" '
        f'alt="{TITLE}: signatures" height="20"></a>'
    )
    assert '<label class="label" for="embed-widget-code">' in page
    assert f'<img src="/c/{SLUG}/badge.svg"' in page  # the preview, from this site


def test_embed_code_escapes_a_hostile_title(app: Flask, client: FlaskClient) -> None:
    with app.app_context(), session_scope(app) as db:
        campaigns.create_campaign(db, slug="bad", title='"><script>x()</script>', state="open")
    page = client.get("/c/bad/tally").text
    assert "<script>x()" not in page
    code = re.search(r'<textarea id="embed-widget-code"[^>]*>([^<]*)</textarea>', page)
    assert code is not None
    assert 'title="&#34;&gt;&lt;script&gt;x()&lt;/script&gt;: signatures"' in htmllib.unescape(
        code.group(1)
    )


def png(response: Any) -> Image.Image:
    return Image.open(io.BytesIO(response.get_data()))


def test_share_image_is_a_png_of_link_preview_size(client: FlaskClient, letter: None) -> None:
    embed._share_images.clear()
    response = client.get(f"/c/{SLUG}/share.png")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    image = png(response)
    assert (image.format, image.size) == ("PNG", (1200, 630))
    assert response.headers["Cache-Control"] == "public, max-age=300"
    etag = response.headers["ETag"]
    again = client.get(f"/c/{SLUG}/share.png", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_share_image_is_drawn_once_per_count(
    app: Flask, client: FlaskClient, letter: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    embed._share_images.clear()
    drawn: list[tuple[str, int]] = []
    real = charts.share_image_png

    def counting(title: str, tally: Any, **kwargs: Any) -> bytes:
        drawn.append((title, tally.signatures))
        return real(title, tally, **kwargs)

    monkeypatch.setattr(charts, "share_image_png", counting)
    first = client.get(f"/c/{SLUG}/share.png").get_data()
    assert client.get(f"/c/{SLUG}/share.png").get_data() == first
    assert drawn == [(TITLE, 5)]
    sign(app, SLUG, "BR", 50)
    second = client.get(f"/c/{SLUG}/share.png").get_data()
    assert second != first
    assert drawn == [(TITLE, 5), (TITLE, 6)]
    client.get(f"/c/{SLUG}/share.png?lang=fr")  # another language is another picture
    assert len(drawn) == 3


def test_share_image_states_the_count_in_its_pixels(client: FlaskClient, letter: None) -> None:
    """The big number is drawn in the darkest shade, left of the map: some pixels have it."""
    image = png(client.get(f"/c/{SLUG}/share.png")).convert("RGB")
    dark = tuple(int(charts.SHADES[-1][i : i + 2], 16) for i in (1, 3, 5))
    band = image.crop((0, 200, 560, 480))
    assert dark in {colour for _count, colour in band.getcolors(maxcolors=1 << 20) or []}


BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


@pytest.mark.parametrize(
    ("title", "fonts", "drawn_with"),
    [
        ("Освободите Амару", f'["{BOLD}"]', BOLD),
        ("أطلقوا سراح أمارة", BOLD, BOLD),
        ("Ελευθερώστε την Αμάρα", '["/nowhere/missing.ttf", "/etc/hostname"]', None),
    ],
)
def test_a_share_image_of_a_non_latin_title_with_the_operators_fonts_or_bad_ones(
    app_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    title: str,
    fonts: str,
    drawn_with: str | None,
) -> None:
    def share_png(app: Flask) -> bytes:
        embed._share_images.clear()
        response = app.test_client().get("/c/nonlatin/share.png")
        assert response.status_code == 200
        assert (png(response).format, png(response).size) == ("PNG", (1200, 630))
        return bytes(response.get_data())

    plain = app_factory()
    with plain.app_context(), session_scope(plain) as db:
        campaigns.create_campaign(db, slug="nonlatin", title=title, letter="Dear,", state="open")
    # CAMPAIGN_SHARE_FONTS as the environment gives it: a JSON list, or one path.
    monkeypatch.setenv("CAMPAIGN_SHARE_FONTS", fonts)
    app = app_factory()
    app.config.from_prefixed_env("CAMPAIGN")
    with app.app_context():
        named = embed._share_fonts()
    assert named == (tuple(json.loads(fonts)) if fonts.startswith("[") else (fonts,))
    assert charts.face_for(title, named) == (drawn_with or charts.face_for(title))
    assert (share_png(app) != share_png(plain)) is (drawn_with is not None)


PAGES = [
    "/",
    f"/c/{SLUG}",
    f"/c/{SLUG}/thanks",
    f"/c/{SLUG}/tally",
    f"/c/{SLUG}/signatories",
    f"/c/{SLUG}/widget",
    "/privacy",
    "/nowhere",
]


@pytest.mark.parametrize("path", PAGES)
def test_no_page_has_inline_script_or_style_or_outside_assets(
    client: FlaskClient, letter: None, path: str
) -> None:
    page = client.get(path).text
    assert re.findall(r"<script(?![^>]*\bsrc=\"/static/)[^>]*>", page) == []
    assert " style=" not in page and "<style" not in page and " on" + "click=" not in page
    for asset in re.findall(r'<(?:link|script|img)[^>]*(?:href|src)="([^"]+)"', page):
        if asset.startswith(BASE):
            continue  # canonical and Open Graph links name this site absolutely
        assert asset.startswith("/"), asset  # no CDN, no outside font


@pytest.mark.parametrize("path", PAGES)
def test_every_page_names_its_language_and_offers_the_others(
    client: FlaskClient, letter: None, path: str
) -> None:
    page = client.get(path + ("&" if "?" in path else "?") + "lang=id").text
    assert '<html lang="id"' in page
    if path.endswith("/widget"):
        return  # framed inside other sites' pages: no switcher of its own
    assert page.count('aria-current="true"') == 1
    assert unquote("Bahasa Indonesia") in page


def test_the_letter_form_works_without_javascript(client: FlaskClient, letter: None) -> None:
    page = client.get(f"/c/{SLUG}").text
    form = re.search(r'<form method="post" action="([^"]+)"', page)
    assert form is not None and form.group(1) == f"/c/{SLUG}/sign#error-summary"
    assert '<button type="submit">Sign the letter</button>' in page
    assert 'id="country-continent"' in page  # shown by the server after a refused form too
