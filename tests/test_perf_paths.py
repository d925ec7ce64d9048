"""The fast paths of signing keep their meaning: cached choices, short write locks, mail batches."""

from __future__ import annotations

import sqlite3
import threading

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign import campaigns
from campaign.db import get_engine, session_scope
from campaign.models import Signature

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


def _hold_write_lock(app: Flask) -> sqlite3.Connection:
    """Another process's writer: a raw connection holding SQLite's write lock."""
    with app.app_context():
        path = get_engine().url.database
    assert path
    holder = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE campaign SET slug = slug")
    return holder


def test_reads_answer_while_a_writer_holds_the_lock(app: Flask, client: FlaskClient) -> None:
    _open_letter(app)
    holder = _hold_write_lock(app)
    try:
        page = client.get(f"/c/{SLUG}")
        tally = client.get(f"/c/{SLUG}/tally.json")
        # A refused form is answered from reads alone: it does not queue for the lock either.
        refused = client.post(f"/c/{SLUG}/sign", data={"name": "Maria Santos", "email": "bad"})
    finally:
        holder.rollback()
        holder.close()
    assert page.status_code == 200 and "Free Amara" in page.text
    assert tally.status_code == 200
    assert refused.status_code == 400 and "Free Amara" in refused.text
    # Had any of them waited for the write lock, it would have met "database is locked"
    # after the busy timeout and answered 503.


def test_a_signature_still_takes_the_write_lock(app: Flask, client: FlaskClient) -> None:
    _open_letter(app)
    holder = _hold_write_lock(app)
    data = {
        "name": "Maria Santos",
        "title": "MP",
        "parliament": "House of Representatives",
        "country": "PH",
        "email": "maria@example.org",
    }
    answers: list[int] = []
    signer = threading.Thread(
        target=lambda: answers.append(client.post(f"/c/{SLUG}/sign", data=data).status_code)
    )
    signer.start()
    signer.join(1.0)
    # The signer waits for the lock, then signs once it is released.
    assert signer.is_alive() and answers == []
    holder.rollback()
    holder.close()
    signer.join(30)
    assert answers == [303]
    with app.app_context(), session_scope(app) as db:
        assert db.scalar(select(func.count()).select_from(Signature)) == 1
