"""The widget and the badge other sites embed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from admin_helpers import AuthActions, auth, make_organizer
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from campaign import campaigns, signing

SIGNERS = [
    ("Ana Lima", "BR"),
    ("Jean Dupont", "FR"),
    ("Marie Curie", "FR"),
    ("Siti Aminah", "ID"),
    ("Kofi Mensah", "GH"),
]


__all__ = ["auth"]  # the fixture


def seed(db: Session, *, slug: str = "free-them", title: str = "Free them", state: str = "open"):
    """A campaign with the SIGNERS counted, committed."""
    campaign = campaigns.create_campaign(
        db, slug=slug, title=title, letter="Dear minister,", state=state
    )
    for index, (name, country) in enumerate(SIGNERS):
        entry = signing.SignatureEntry(
            name=name,
            title="MP",
            parliament="Parliament",
            party="",
            country_code=country,
            email=f"signer{index}@example.org",
        )
        signing.sign(db, campaign, entry, confirmed=True)
    db.commit()
    return campaign


def test_widget_shows_title_count_continents_and_a_link_to_sign(
    client: FlaskClient, db: Session
) -> None:
    seed(db)
    response = client.get("/c/free-them/widget")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Free them" in page
    assert '<span class="widget-number">5</span>' in page
    assert "from 4 countries" in page
    assert "on 4 continents" in page
    assert all(name in page for name in ("Europe", "South America", "Africa", "Asia"))
    assert (
        '<a class="widget-sign" href="http://campaign.test/c/free-them" target="_blank" '
        'rel="noopener">Sign the letter' in page
    )
    assert "site-header" not in page  # standalone, not the site's layout
    assert "/static/embed.css" in page


def test_widget_may_be_framed_by_other_sites(client: FlaskClient, db: Session) -> None:
    seed(db)
    response = client.get("/c/free-them/widget")
    assert "X-Frame-Options" not in response.headers
    assert "frame-ancestors 'none'" not in response.headers.get("Content-Security-Policy", "")
    assert response.headers["Cache-Control"] == "public, max-age=60"


def test_other_pages_still_refuse_framing(client: FlaskClient, db: Session) -> None:
    seed(db)
    assert client.get("/privacy").headers.get("X-Frame-Options") == "DENY"


def test_widget_of_a_closed_letter_invites_reading_not_signing(
    client: FlaskClient, db: Session
) -> None:
    seed(db, state="closed")
    page = client.get("/c/free-them/widget").get_data(as_text=True)
    assert "Read the letter" in page
    assert "Sign the letter" not in page


def test_widget_escapes_the_title(client: FlaskClient, db: Session) -> None:
    seed(db, title='<script>alert("x")</script>')
    page = client.get("/c/free-them/widget").get_data(as_text=True)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


@pytest.mark.parametrize("path", ["/c/nope/widget", "/c/nope/badge.svg"])
def test_unknown_slug_is_404(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


DRAFT_EMBEDS = ["/c/free-them/widget", "/c/free-them/badge.svg"]


@pytest.mark.parametrize("path", [*DRAFT_EMBEDS, "/c/free-them/share.png"])
def test_draft_letter_is_404(client: FlaskClient, db: Session, path: str) -> None:
    seed(db, state="draft")
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", DRAFT_EMBEDS)
def test_a_drafts_organizers_preview_its_embeds_uncached(
    client: FlaskClient, db: Session, auth: AuthActions, path: str
) -> None:
    """The draft's settings page shows its badge and links its widget: both open for the
    organizers who run it, kept out of every cache; anyone else still gets a 404."""
    campaign = seed(db, state="draft")
    make_organizer(db, "olga@example.org", campaigns=(campaign,))
    make_organizer(db, "other@example.org")
    auth.login("other@example.org")
    assert client.get(path).status_code == 404
    auth.logout()
    auth.login("olga@example.org")
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"


def test_badge_is_an_svg_stating_the_count(client: FlaskClient, db: Session) -> None:
    seed(db)
    response = client.get("/c/free-them/badge.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.headers["Cache-Control"] == "public, max-age=60"
    root = ET.fromstring(response.get_data())  # noqa: S314 - our own output under test
    assert root.attrib["aria-label"] == "Free them: 5 signatures"


def test_badge_counts_only_counted_signatures(client: FlaskClient, db: Session) -> None:
    campaign = seed(db)
    entry = signing.SignatureEntry(
        name="Pending Person",
        title="MP",
        parliament="P",
        party="",
        country_code="DE",
        email="pending@example.org",
    )
    signing.sign(db, campaign, entry)  # not confirmed: does not count
    db.commit()
    svg = client.get("/c/free-them/badge.svg").get_data(as_text=True)
    assert "5 signatures" in svg


def test_widget_speaks_the_readers_language(client: FlaskClient, db: Session) -> None:
    seed(db)
    page = client.get("/c/free-them/widget?lang=fr").get_data(as_text=True)
    assert '<html lang="fr"' in page
    assert "de 4 pays" in page and "sur 4 continents" in page
    assert "<span>Amérique du Sud</span>" in page and "<span>Afrique</span>" in page
    assert "Signer la lettre" in page
    assert 'aria-current="true"' not in page  # no language switcher inside other sites


def test_widget_shows_the_letters_translated_title(client: FlaskClient, db: Session) -> None:
    from campaign.models import LetterTranslation

    campaign = seed(db)
    db.add(LetterTranslation(campaign_id=campaign.id, locale="es", title="Libérenlos", letter="."))
    db.commit()
    page = client.get("/c/free-them/widget", headers={"Accept-Language": "es"}).text
    assert "<bdi>Libérenlos</bdi>" in page


def test_badge_speaks_the_readers_language(client: FlaskClient, db: Session) -> None:
    seed(db)
    svg = client.get("/c/free-them/badge.svg?lang=es").get_data(as_text=True)
    assert "5 firmas" in svg
