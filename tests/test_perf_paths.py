"""The fast paths of signing keep their meaning: cached choices, short write locks, mail batches."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from campaign import campaigns
from campaign.db import session_scope

SLUG = "free-amara"


def _open_letter(app: Flask) -> None:
    with app.app_context(), session_scope(app) as db:
        campaigns.create_campaign(db, slug=SLUG, title="Free Amara", state="open")


def test_cached_country_choices_stay_in_each_readers_language(
    app: Flask, client: FlaskClient
) -> None:
    _open_letter(app)
    # Each language twice, interleaved: the second page of a language comes from the cache.
    for _ in range(2):
        french = client.get(f"/c/{SLUG}?lang=fr").text
        spanish = client.get(f"/c/{SLUG}?lang=es").text
        english = client.get(f"/c/{SLUG}?lang=en").text
        assert '<option data-continent="Europe" value="DE">Allemagne</option>' in french
        assert '<option data-continent="Afrique" value="ZA">Afrique du Sud</option>' in french
        assert '<option data-continent="Europa" value="DE">Alemania</option>' in spanish
        assert '<option data-continent="Europe" value="DE">Germany</option>' in english
        assert '<option data-continent="Africa" value="ZA">South Africa</option>' in english


def test_a_refused_form_keeps_translated_choices_and_the_chosen_country(
    app: Flask, client: FlaskClient
) -> None:
    _open_letter(app)
    client.get(f"/c/{SLUG}?lang=fr")
    data = {"name": "Maria Santos", "title": "MP", "parliament": "House", "country": "DE"}
    page = client.post(f"/c/{SLUG}/sign?lang=fr", data={**data, "email": "bad"})
    assert page.status_code == 400
    assert '<option data-continent="Europe" selected value="DE">Allemagne</option>' in page.text
    # The shared cached choices were not changed by that form's selection.
    other = client.get(f"/c/{SLUG}?lang=fr").text
    assert '<option data-continent="Europe" value="DE">Allemagne</option>' in other
