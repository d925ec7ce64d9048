"""The fast paths of signing keep their meaning: cached choices, short write locks, mail batches."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from app_helpers import AppFactory, sqlite_statements
from data_helpers import count_signatures
from flask import Flask, before_render_template
from flask.testing import FlaskClient
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError, InvalidRequestError

from campaign import campaigns
from campaign import db as dbmod
from campaign.db import Direct, get_engine, session_scope
from campaign.mail import outbox
from campaign.models import Campaign, OutboxMessage, Signature

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
    assert count_signatures(app) == 1


def _statements_of(app: Flask, request: Callable[[], object]) -> list[str]:
    """The SQL statements one request sends, in order."""
    with sqlite_statements(app) as sent:
        request()
    return sent


def test_a_signature_is_one_write_transaction(app: Flask, client: FlaskClient) -> None:
    # The letter is read inside the transaction that stores the signature: no deferred read
    # transaction committed first (a second checkout, BEGIN and COMMIT per signature).
    _open_letter(app)
    sent = _statements_of(app, lambda: client.post(f"/c/{SLUG}/sign", data=_sign_data(1)))
    begins = [s for s in sent if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE"]
    assert sent.index("BEGIN IMMEDIATE") < next(
        i for i, s in enumerate(sent) if "FROM campaign" in s
    )
    assert count_signatures(app) == 1


def test_a_signature_reads_the_letters_settings_not_its_text(
    app: Flask, client: FlaskClient
) -> None:
    # Storing a signature needs the letter's window, its confirmation rule and its version,
    # not its title and text (kilobytes in every language) nor an ORM object built of them.
    _open_letter(app)
    sent = _statements_of(app, lambda: client.post(f"/c/{SLUG}/sign", data=_sign_data(3)))
    reads = [s for s in sent if "FROM campaign" in s]
    assert len(reads) == 1
    columns = reads[0].split("FROM campaign")[0]
    for needed in ("state", "opens_at", "closes_at", "require_confirmation", "letter_version"):
        assert f"campaign.{needed}" in columns
    assert "campaign.letter," not in columns
    assert "campaign.title" not in columns


def test_a_valid_signature_for_an_unknown_letter_is_a_404_that_writes_nothing(
    app: Flask, client: FlaskClient
) -> None:
    _open_letter(app)
    answer = client.post("/c/no-such-letter/sign", data=_sign_data(4))
    assert answer.status_code == 404
    # The write lock was given back: another writer gets it at once.
    holder = _hold_write_lock(app)
    holder.rollback()
    holder.close()
    assert count_signatures(app) == 0


def test_a_signature_for_a_closed_letter_frees_the_lock_before_the_page_renders(
    app: Flask, client: FlaskClient
) -> None:
    _open_letter(app)
    with app.app_context(), session_scope(app) as db:
        found = campaigns.get_by_slug(db, SLUG)
        assert found is not None
        found.state = "closed"
    lock_free_while_rendering: list[bool] = []

    def try_the_lock(*_args: object, **_kwargs: object) -> None:
        try:
            holder = _hold_write_lock(app)
        except sqlite3.OperationalError:
            lock_free_while_rendering.append(False)
        else:
            holder.rollback()
            holder.close()
            lock_free_while_rendering.append(True)

    before_render_template.connect(try_the_lock, app)
    try:
        answer = client.post(f"/c/{SLUG}/sign", data=_sign_data(2))
    finally:
        before_render_template.disconnect(try_the_lock, app)
    assert answer.status_code == 409
    assert "no longer takes signatures" in answer.text
    # The valid form's write transaction ended before the letter page was rendered.
    assert lock_free_while_rendering and all(lock_free_while_rendering)
    assert count_signatures(app) == 0


def _sign_data(n: int) -> dict[str, str]:
    return {
        "name": f"Signer Number {n}",
        "title": "MP",
        "parliament": "House of Representatives",
        "country": "PH",
        "email": f"signer{n}@example.org",
    }


def test_writers_in_one_process_take_turns_at_the_gate(app: Flask) -> None:
    _open_letter(app)
    first_wrote, finish_first = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with app.app_context(), session_scope(app) as db:
            db.execute(text("UPDATE campaign SET title = 'First'"))
            first_wrote.set()
            finish_first.wait(10)
            order.append("first commits")

    def second() -> None:
        with app.app_context(), session_scope(app) as db:
            db.execute(text("UPDATE campaign SET title = 'Second'"))
            order.append("second writes")

    one = threading.Thread(target=first)
    one.start()
    assert first_wrote.wait(10)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.5)
    # The second writer waits at the gate (before its BEGIN IMMEDIATE), not in SQLite.
    assert two.is_alive() and order == []
    finish_first.set()
    one.join(10)
    two.join(10)
    assert order == ["first commits", "second writes"]
    with app.app_context(), session_scope(app) as db:
        assert db.scalar(text("SELECT title FROM campaign")) == "Second"


def test_a_failed_write_hands_the_gate_on(app: Flask) -> None:
    _open_letter(app)
    with app.app_context():
        try:
            with session_scope(app) as db:
                db.execute(text("UPDATE campaign SET title = 'Lost'"))
                raise RuntimeError("the view failed")
        except RuntimeError:
            pass
        done = threading.Event()

        def write() -> None:
            with app.app_context(), session_scope(app) as db:
                db.execute(text("UPDATE campaign SET title = 'Kept'"))
            done.set()

        threading.Thread(target=write).start()
        # Rolled back, so the gate is free: the next writer does not wait for a timeout.
        assert done.wait(5)
        with session_scope(app) as db:
            assert db.scalar(text("SELECT title FROM campaign")) == "Kept"


def test_a_writer_in_another_process_holds_the_gate_until_it_commits(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    _open_letter(app)
    with app.app_context():
        url = str(get_engine().url)
    held, release = tmp_path / "held", tmp_path / "release"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, sys, time\n"
            "from sqlalchemy import text\n"
            "from campaign.db import make_engine\n"
            "engine = make_engine(sys.argv[1])\n"
            "with engine.begin() as conn:\n"
            "    conn.execute(text(\"UPDATE campaign SET title = 'Other process'\"))\n"
            "    pathlib.Path(sys.argv[2]).touch()\n"
            "    while not pathlib.Path(sys.argv[3]).exists():\n"
            "        time.sleep(0.01)\n",
            url,
            str(held),
            str(release),
        ]
    )
    try:
        for _ in range(1000):
            if held.exists() or child.poll() is not None:
                break
            threading.Event().wait(0.01)
        assert held.exists()
        answers: list[int] = []
        signer = threading.Thread(
            target=lambda: answers.append(
                client.post(f"/c/{SLUG}/sign", data=_sign_data(1)).status_code
            )
        )
        signer.start()
        signer.join(0.5)
        assert signer.is_alive() and answers == []
        release.touch()
        signer.join(30)
        assert answers == [303]
    finally:
        release.touch()
        child.wait(30)
    assert child.returncode == 0
    assert count_signatures(app) == 1


def test_a_writer_that_waits_too_long_at_the_gate_gets_a_503(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "SQLITE_BUSY_SECONDS", 0.3)
    app = app_factory()
    _open_letter(app)
    first_wrote, finish_first = threading.Event(), threading.Event()

    def hold() -> None:
        with app.app_context(), session_scope(app) as db:
            db.execute(text("UPDATE campaign SET title = 'Busy'"))
            first_wrote.set()
            finish_first.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert first_wrote.wait(10)
        response = app.test_client().post(f"/c/{SLUG}/sign", data=_sign_data(2))
    finally:
        finish_first.set()
        holder.join(10)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert count_signatures(app) == 0


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("chosen", [None, "DE", "", "ZZ", "<b>"])
def test_the_cached_country_select_renders_as_wtforms_does(
    app: Flask, lang: str, chosen: str | None
) -> None:
    from wtforms.widgets import Select

    from campaign.forms.public import SignForm

    data = {} if chosen is None else {"country": chosen}
    with app.test_request_context(f"/?lang={lang}", method="POST", data=data):
        form = SignForm(locale=lang, meta={"csrf": False})
        cached = str(form.country())
        plain = str(Select()(form.country, autocomplete="country", required=True))
    assert cached == plain
    assert cached.count("<option") > 240


# db.Direct: the signer's statements past SQLAlchemy's execution, with its meaning kept


def test_direct_reads_as_sqlalchemy_reads_on_each_backend(any_app: Flask) -> None:
    closes = dt.datetime(2031, 5, 6, 7, 8, 0, tzinfo=dt.UTC)  # a whole second: no ".000000"
    with any_app.app_context(), session_scope(any_app) as db:
        campaigns.create_campaign(db, slug=SLUG, title="Free Amara", state="open", closes_at=closes)
    with any_app.app_context(), session_scope(any_app) as db:
        direct = campaigns.admission_by_slug(db, SLUG)
        plain = db.execute(campaigns._ADMISSION_BY_SLUG.statement, {"slug": SLUG}).one()
        assert direct is not None
        assert tuple(direct) == tuple(plain)
        # Typed as SQLAlchemy types them: an aware UTC datetime, a bool.
        assert direct.closes_at == closes and direct.closes_at.tzinfo is not None
        assert direct.require_confirmation is True
        assert campaigns.admission_by_slug(db, "no-such-letter") is None


def test_direct_writes_what_sqlalchemy_would_store(app: Flask, client: FlaskClient) -> None:
    _open_letter(app)
    assert client.post(f"/c/{SLUG}/sign", data=_sign_data(5)).status_code == 303
    with app.app_context(), session_scope(app) as db:
        signature = db.scalars(select(Signature)).one()
        # Stored by the driver through SQLAlchemy's own processing: read back by the ORM
        # as any other row (the same text form of times, so comparisons in SQL hold).
        assert signature.signed_at.tzinfo is not None
        stored = db.scalar(text("SELECT signed_at FROM signature"))
        assert stored == signature.signed_at.replace(tzinfo=None).isoformat(" ")
        assert signature.status == "pending" and signature.counted is False
        assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_a_driver_error_in_a_direct_statement_is_sqlalchemys(app: Flask) -> None:
    _open_letter(app)
    with app.app_context(), session_scope(app) as db:
        # A mail for a signature that does not exist: the foreign key refuses it.
        row = outbox._kind_row("confirm", 999, "amara@example.org", "http://campaign.test")
        with pytest.raises(IntegrityError):
            outbox._INSERT_ONE.first(db, row)
        db.rollback()


def test_direct_refuses_what_it_cannot_run_as_sqlalchemy_would(app: Flask) -> None:
    _open_letter(app)
    expanding = Direct(select(Campaign.id).where(Campaign.slug.in_(bindparam("slugs"))))
    # The campaign's created_at comes from a Python-side default, which Direct does not run.
    defaulted = Direct(insert(Campaign.__table__))
    by_slug = Direct(select(Campaign.id).where(Campaign.slug == bindparam("slug")))
    with app.app_context(), session_scope(app) as db:
        with pytest.raises(InvalidRequestError):
            expanding.rows(db, {"slugs": [SLUG]})
        with pytest.raises(InvalidRequestError):
            defaulted.rows(db, {"slug": "other", "title": "Other"})
        # A missing value is an error, not a NULL that matches nothing.
        with pytest.raises(InvalidRequestError):
            by_slug.rows(db, {})
        assert by_slug.rows(db, {"slug": SLUG}) == [(1,)]
