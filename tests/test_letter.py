"""The letter for delivery: the letter, its numbers, the counted signers by continent, country."""

from __future__ import annotations

import re
import tracemalloc
from typing import Any

import pytest
from data_helpers import login, make_campaign, make_organizer, sign, verify
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from campaign import campaigns, review, tally
from campaign.db import new_session, utcnow
from campaign.models import Campaign, Signature


def _text(html: str) -> str:
    # A <bdi> (a signer's text, isolated) is inline: no word ends there.
    inline = re.sub(r"</?bdi[^>]*>", "", html)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", inline)).strip()


@pytest.fixture
def letter_client(app: Flask, client: FlaskClient) -> FlaskClient:
    """A letter with counted, verified, pending, held and rejected signers; its organizer in."""
    db = new_session(app)
    campaign = make_campaign(
        db,
        title="Release Kem Sokha",
        letter="Dear Prime Minister,\n\nWe ask for his **release**.\n\n<script>x()</script>",
        recipient="Prime Minister of Cambodia",
    )
    organizer = make_organizer(db, campaigns=(campaign,))
    zoe = sign(db, campaign, "Zoë Adams", "zoe@example.org", country="GB", party="Labour")
    sign(db, campaign, "Ahmed Bello", "ahmed@example.org", country="NG", party="")
    sign(
        db,
        campaign,
        "Émile Zola",
        "emile@example.org",
        country="FR",
        title="Député",
        parliament="Assemblée nationale",
        party="",
    )
    sign(db, campaign, "Anne Dupont", "anne@example.org", country="FR", party="PS")
    sign(db, campaign, "Pending Pat", "pat@example.org", country="FR", confirmed=False)
    sign(db, campaign, "Anne Dupont", "anne2@example.org", country="FR")  # held
    gone = sign(db, campaign, "Rejected Rick", "rick@example.org", country="US")
    review.reject(db, organizer, gone, "not an MP")
    db.commit()
    verify(db, organizer, zoe)
    db.close()
    return login(client, organizer)


def test_letter_shows_the_letter_date_numbers_and_counted_signers_by_place(
    letter_client: FlaskClient,
) -> None:
    response = letter_client.get("/admin/c/release/letter")
    html = response.get_data(as_text=True)
    text = _text(html)

    assert response.status_code == 200
    assert "Release Kem Sokha" in text
    assert "To: Prime Minister of Cambodia" in text
    assert "<strong>release</strong>" in html
    assert "<script>x()</script>" not in html
    assert utcnow().strftime("%B") in text and str(utcnow().year) in text
    assert "Signed by 4 MPs from 3 countries on 2 continents" in text
    assert "Africa Nigeria (1) Ahmed Bello, MP, National Assembly Europe" in text
    assert (
        "Europe France (2) Anne Dupont, MP, National Assembly (PS) "
        "Émile Zola, Député, Assemblée nationale "
        "United Kingdom (1) Zoë Adams, MP, National Assembly (Labour)"
    ) in text
    for absent in ("Pending Pat", "Rejected Rick", "zoe@example.org", "anne@example.org"):
        assert absent not in text
    assert text.count("Anne Dupont") == 1  # the held twin is not on the letter
    assert 'href="/static/print.css"' in html


JOHN_EVIL = "\uff2a\uff4f\uff48\uff4e\u202eevil"  # a right-to-left override after "John"


def test_each_signers_details_keep_their_direction_to_themselves(
    app: Flask, client: FlaskClient
) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    organizer = make_organizer(db, campaigns=(campaign,))
    # Stored before direction controls were refused: each detail is isolated on the letter,
    # so that an override reverses nothing after it ("P ,PM ,*live").
    old = sign(db, campaign, "John", "john@example.org", country="GB")
    old.name, old.title = JOHN_EVIL, "MP\u202e"
    old.parliament, old.party = "\u2067Commons", "\u202bLabour"
    db.commit()
    db.close()
    html = login(client, organizer).get("/admin/c/release/letter").get_data(as_text=True)
    assert (
        f'<li><bdi class="signer-name">{JOHN_EVIL}</bdi>, <bdi>MP\u202e</bdi>, '
        '<bdi>\u2067Commons</bdi> <span class="signer-party">(<bdi>\u202bLabour</bdi>)</span></li>'
    ) in html


def test_verified_only_letter_counts_its_own_list(letter_client: FlaskClient) -> None:
    text = _text(letter_client.get("/admin/c/release/letter?verified=1").get_data(as_text=True))

    assert "Signed by 1 MP from 1 country on 1 continent" in text
    assert "Zoë Adams" in text
    assert "Anne Dupont" not in text
    assert "Show every counted signer" in text


def test_an_empty_letter_says_so(app: Flask, client: FlaskClient) -> None:
    db = new_session(app)
    campaign = make_campaign(db)
    organizer = make_organizer(db, campaigns=(campaign,))
    db.close()
    login(client, organizer)
    text = _text(client.get("/admin/c/release/letter").get_data(as_text=True))
    assert "No signatures yet." in text


def test_letter_is_for_the_campaigns_organizers_only(app: Flask, client: FlaskClient) -> None:
    db = new_session(app)
    make_campaign(db, "release")
    other = make_campaign(db, "other")
    organizer = make_organizer(db, campaigns=(other,))
    db.close()
    assert client.get("/admin/c/release/letter").status_code == 302
    login(client, organizer)
    assert client.get("/admin/c/release/letter").status_code == 404


def test_print_stylesheet_leaves_out_navigation_and_keeps_countries_whole(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/static/print.css")
    css = response.get_data(as_text=True)
    response.close()
    printed = css[css.index("@media print") :]
    for hidden in (".site-header", ".tabs", ".letter-tools", "button", "form", "nav"):
        assert hidden in printed.split("display: none")[0]
    assert ".letter-country { break-inside: avoid; page-break-inside: avoid; }" in printed


def test_a_big_letter_is_streamed_with_flat_memory_and_every_signer_once(
    app_factory: Any, backend: str
) -> None:
    # 20,000 counted signers in two countries: the page goes out in pieces as it is made,
    # never holding the signers (or the page) at once, and lists each of them in order.
    app = app_factory(backend)
    client = app.test_client()
    db = new_session(app)
    campaign = make_campaign(db)
    organizer = make_organizer(db, campaigns=(campaign,))
    rows = [
        {
            "campaign_id": campaign.id,
            "name": f"Member {i:05d}",
            "title": "MP",
            "parliament": "Parliament",
            "party": "",
            "email": f"m{i}@example.org",
            "email_key": f"m{i}@example.org",
            "email_domain": "example.org",
            "name_key": f"member {i:05d}",
            "country_code": "SE" if i % 4 else "KE",
            "continent_code": "EU" if i % 4 else "AF",
            "status": "confirmed",
            "counted": True,
        }
        for i in reversed(range(20_000))
    ]
    db.execute(insert(Signature), rows)
    tally.recount(db, campaign)
    db.commit()
    db.close()
    login(client, organizer)

    tracemalloc.start()
    try:
        response = client.get("/admin/c/release/letter", buffered=False)
        pieces = 0
        size = 0
        names: list[str] = []
        rest = ""  # a list item cut at the end of a piece, completed by the next one
        for piece in response.response:
            pieces += 1
            size += len(piece)
            text, _, rest = (rest + piece.decode()).rpartition("</li>")
            names += re.findall(r'signer-name">Member (\d+)<', text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        response.close()

    assert response.status_code == 200
    assert response.is_streamed
    assert pieces > 10  # pieces of ~32 KB as they are written
    kenya = [f"{i:05d}" for i in range(0, 20_000, 4)]
    sweden = [f"{i:05d}" for i in range(20_000) if i % 4]
    assert names == kenya + sweden  # Africa before Europe, each by name
    # The page is ~1.5 MB and the signers' rows more: holding either would pass 8 MiB.
    assert size > 1_000_000
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_the_letter_prints_in_the_language_of_a_translation(
    app: Flask, letter_client: FlaskClient
) -> None:
    db = new_session(app)
    campaign = db.scalars(select(Campaign)).one()
    campaigns.save_translation(
        db,
        campaign,
        "fr",
        "Libérez Kem Sokha",
        "Monsieur le Premier ministre,\n\nLibérez-le.",
        new_version=True,
    )
    db.commit()
    slug = campaign.slug
    db.close()
    english = letter_client.get(f"/admin/c/{slug}/letter").text
    assert "Release Kem Sokha</h1>" in english and "Libérez" not in _text(english)
    tools = _text(english)
    assert "Print the letter in: English · French" in tools, tools[:600]
    french = letter_client.get(f"/admin/c/{slug}/letter?lang=fr").text
    assert "Libérez Kem Sokha</h1>" in french
    assert "Libérez-le." in french and "We ask for his" not in french
    assert "Signée par" in french or "Signé par" in french
    assert "has no translation" not in _text(french)
    # A language the letter has no text in: printed as written, marked as English.
    indonesian = letter_client.get(f"/admin/c/{slug}/letter?lang=id").text
    assert '<h1 id="letter-title" lang="en">Release Kem Sokha</h1>' in indonesian
    assert '<div class="letter-body" lang="en">' in indonesian
