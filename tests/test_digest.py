"""The organizers' daily summary: the account choice, what it says, when and to whom it goes."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import (
    AuthActions,
    app_client,
    auth,
    csrf_token,
    flashes,
    make_campaign,
    make_organizer,
    make_signature,
    organizer_by_email,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from campaign import digest, mail, tally
from campaign.cli import organizers as organizers_cli
from campaign.db import new_session
from campaign.mail import summary
from campaign.models import AuditEntry, Campaign, Organizer, OutboxMessage, Signature

__all__ = ["auth"]

# Eight in the morning UTC: past the default DIGEST_HOUR (7).
NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
BASE = "http://campaign.test/admin"


@pytest.fixture
def app(app_factory: Any, backend: str) -> Flask:
    """The app on each database in turn."""
    return app_factory(backend)  # type: ignore[no-any-return]


@pytest.fixture
def store(app: Flask) -> Iterator[Session]:
    """A plain session on the app's database, beside the test clients and the sender."""
    engine = create_engine(str(app.config["DATABASE_URL"]))
    session = Session(bind=engine, expire_on_commit=False)
    yield session
    session.close()
    engine.dispose()


def hours_ago(hours: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours)


def wanting(store: Session, email_address: str, **kwargs: Any) -> Organizer:
    """An organizer who asked for the daily summary."""
    organizer = make_organizer(store, email_address, **kwargs)
    organizer.digest = True
    store.commit()
    return organizer


def mails(store: Session) -> list[OutboxMessage]:
    """Every queued mail, oldest first."""
    store.expire_all()
    return list(store.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def send(app: Flask, now: dt.datetime = NOW) -> dict[str, str]:
    """Send the day's summaries as the sender does; each organizer's outcome."""
    return {result.email: result.outcome for result in summary.send_digests(app, now)}


def closed_letter_with_a_duplicate_to_review(store: Session) -> Campaign:
    """A closed letter, nothing new for days, one possible duplicate held for review."""
    review = make_campaign(store, "review", state="closed")
    first = make_signature(
        store, review, "Ana Lima", "ana@review.br", country="BR", signed_at=hours_ago(90)
    )
    make_signature(
        store,
        review,
        "Ana Lima",
        "ana2@review.br",
        country="BR",
        duplicate_of=first,
        signed_at=hours_ago(80),
    )
    return review


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# --- the choice on the account page ----------------------------------------------------


def test_the_account_page_offers_the_summary_unticked_by_default(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "ann@example.org")
    assert auth.login("ann@example.org").status_code == 303
    page = client.get("/admin/account").get_data(as_text=True)
    assert '<h2 id="digest">Daily summary</h2>' in page
    assert 'action="/admin/account/digest"' in page
    box = re.search(r'<input[^>]*name="daily_summary"[^>]*>', page)
    assert box is not None and 'type="checkbox"' in box.group(0)
    assert "checked" not in box.group(0)
    assert "Mail me a daily summary of my letters" in page


def test_ticking_and_unticking_the_summary_is_stored_and_audited(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "ann@example.org")
    response = client.post("/admin/account/digest", data={"daily_summary": "y"})
    assert response.status_code == 302  # to the login page
    assert organizer_by_email(store, "ann@example.org").digest is False
    assert auth.login("ann@example.org").status_code == 303
    response = client.post("/admin/account/digest", data={"daily_summary": "y"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/account#digest"
    page = client.get("/admin/account")
    assert flashes(page) == ["You will get a daily summary of your letters by mail."]
    box = re.search(r'<input[^>]*name="daily_summary"[^>]*>', page.get_data(as_text=True))
    assert box is not None and "checked" in box.group(0)
    assert organizer_by_email(store, "ann@example.org").digest is True

    assert client.post("/admin/account/digest", data={"daily_summary": "y"}).status_code == 303
    assert flashes(client.get("/admin/account")) == ["Nothing changed."]
    assert client.post("/admin/account/digest", data={}).status_code == 303
    assert flashes(client.get("/admin/account")) == [
        "You will no longer get a daily summary by mail."
    ]
    ann = organizer_by_email(store, "ann@example.org")
    assert ann.digest is False
    entries = list(
        store.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "organizer.digest")
            .order_by(AuditEntry.id)
        )
    )
    assert [(e.organizer_id, e.before, e.after) for e in entries] == [
        (
            ann.id,
            '{"digest": false, "organizer": "ann@example.org"}',
            '{"digest": true, "organizer": "ann@example.org"}',
        ),
        (
            ann.id,
            '{"digest": true, "organizer": "ann@example.org"}',
            '{"digest": false, "organizer": "ann@example.org"}',
        ),
    ]


def test_the_choice_needs_a_csrf_token(app_factory: Any) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    client, helper = app_client(app)
    with new_session(app) as db:
        make_organizer(db, "ann@example.org")
    assert helper.login("ann@example.org").status_code == 303
    assert client.post("/admin/account/digest", data={"daily_summary": "y"}).status_code == 400
    with new_session(app) as db:
        assert organizer_by_email(db, "ann@example.org").digest is False
    token = csrf_token(client, "/admin/account")
    data = {"daily_summary": "y", "csrf_token": token}
    assert client.post("/admin/account/digest", data=data).status_code == 303
    with new_session(app) as db:
        assert organizer_by_email(db, "ann@example.org").digest is True


# --- what the summary says ---------------------------------------------------------------


def busy_letter(store: Session, slug: str = "kem") -> Campaign:
    """A letter with a day of activity and older signatures; its figures are in the test."""
    letter = make_campaign(store, slug)
    # Before the summary's day: two counted (Japan, Asia; one verified), one pending.
    older = make_signature(store, letter, "Aiko Sato", f"aiko@{slug}.jp", country="JP")
    older.signed_at = hours_ago(50)
    older.verified_at = hours_ago(40)
    make_signature(
        store, letter, "Kenji Ito", f"kenji@{slug}.jp", country="JP", signed_at=hours_ago(49)
    )
    make_signature(
        store,
        letter,
        "Old Pending",
        f"old@{slug}.de",
        country="DE",
        confirmed=False,
        signed_at=hours_ago(30),
    )
    # In the last 24 hours: two counted (France), one pending (Germany), one possible
    # duplicate of Aiko, one held from a burst.
    first = make_signature(store, letter, "Marie Curie", f"marie@{slug}.fr", signed_at=hours_ago(5))
    make_signature(store, letter, "Jean Jaures", f"jean@{slug}.fr", signed_at=hours_ago(4))
    make_signature(
        store,
        letter,
        "Karl Pending",
        f"karl@{slug}.de",
        country="DE",
        confirmed=False,
        signed_at=hours_ago(3),
    )
    make_signature(
        store,
        letter,
        "Aiko Sato",
        f"aiko2@{slug}.jp",
        country="JP",
        duplicate_of=older,
        signed_at=hours_ago(2),
    )
    bot = make_signature(store, letter, "Bot One", f"bot@{slug}.example", signed_at=hours_ago(1))
    # Held from the suspicious-activity page, as abuse.act_on_group holds.
    bot = tally.lock(store, bot.id)
    assert bot is not None
    bot.duplicate_state = "held"
    tally.refresh(store, bot)
    store.commit()
    assert first.counted
    return letter


def test_the_summary_of_a_busy_letter_gives_its_figures_and_links(
    app: Flask, store: Session
) -> None:
    letter = busy_letter(store)
    ann = wanting(store, "ann@example.org", campaigns=(letter,))
    assert send(app) == {"ann@example.org": "sent"}
    [message] = mails(store)
    assert message.to_addr == "ann@example.org"
    assert message.subject == "Daily summary: 5 new signatures on 1 letter"
    # The figures, checked against the rows.
    rows = list(store.scalars(select(Signature).where(Signature.campaign_id == letter.id)))
    assert sum(s.signed_at >= hours_ago(24) for s in rows) == 5
    assert sum(s.counted for s in rows) == 4
    assert sum(s.status == "pending" for s in rows) == 2
    assert sum(s.counted and s.verified_at is None for s in rows) == 3
    text = lines(message.body_text)
    assert "Your letters since 29 Nov 2026, 08:00 UTC:" in text
    assert "== Letter kem ==" in text
    assert "New signatures: 5" in text
    assert "Counted now: 4 signatures from 2 countries on 2 continents" in text
    assert "Waiting for confirmation by mail: 2" in text
    assert "Possible duplicates to review: 1" in text
    assert "Held from suspicious activity, to review: 1" in text
    assert "Counted but not yet verified: 3" in text
    assert f"{BASE}/c/kem/duplicates" in text
    assert f"{BASE}/c/kem/signatures?status=counted&verified=no" in text
    assert f"Signatures: {BASE}/c/kem/signatures" in text
    assert f"{BASE}/account#digest" in text
    html = message.body_html or ""
    assert f'<a href="{BASE}/c/kem/duplicates">Possible duplicates to review: 1</a>' in html
    assert f'<a href="{BASE}/c/kem/signatures?status=pending">' in html
    assert f'<a href="{BASE}/c/kem/activity">Suspicious activity</a>' in html
    store.expire_all()
    ann = store.get(Organizer, ann.id)
    assert ann is not None
    assert ann.digest_day == NOW.date()
    assert ann.digest_sent_at == NOW


def test_the_summary_comes_in_the_language_the_organizer_ticked_it_in(
    app: Flask, client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    letter = busy_letter(store)
    make_organizer(store, "ann@example.org", campaigns=(letter,))
    make_organizer(store, "bob@example.org", campaigns=(letter,))
    assert auth.login("ann@example.org").status_code == 303
    page = client.get("/admin/account?lang=fr").get_data(as_text=True)
    assert "Le résumé est écrit dans la langue de cette page" in page
    assert client.post("/admin/account/digest", data={"daily_summary": "y"}).status_code == 303
    client.post("/admin/logout")
    assert auth.login("bob@example.org").status_code == 303
    assert (
        client.post("/admin/account/digest?lang=en", data={"daily_summary": "y"}).status_code == 303
    )
    assert send(app) == {"ann@example.org": "sent", "bob@example.org": "sent"}
    subjects = {message.to_addr: message.subject for message in mails(store)}
    assert subjects == {
        "ann@example.org": "Résumé quotidien : 5 nouvelles signatures sur 1 lettre",
        "bob@example.org": "Daily summary: 5 new signatures on 1 letter",
    }
    french = next(m for m in mails(store) if m.to_addr == "ann@example.org")
    assert "Bonjour" in french.body_text


def test_saving_the_choice_in_another_language_moves_the_summary_to_it(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    make_organizer(store, "ann@example.org")
    assert auth.login("ann@example.org").status_code == 303
    client.post("/admin/account/digest?lang=fr", data={"daily_summary": "y"})
    assert organizer_by_email(store, "ann@example.org").locale == "fr"
    assert flashes(client.get("/admin/account")) == [
        "Vous recevrez chaque jour par courriel un résumé de vos lettres."
    ]
    client.post("/admin/account/digest?lang=es", data={"daily_summary": "y"})
    store.expire_all()
    assert organizer_by_email(store, "ann@example.org").locale == "es"
    assert flashes(client.get("/admin/account")) == [
        "Recibirá cada día por correo un resumen de sus cartas."
    ]


def test_the_summary_is_written_to_the_outbox_as_mail(app: Flask, store: Session) -> None:
    wanting(store, "ann@example.org", campaigns=(busy_letter(store),))
    send(app)
    assert mail.deliver_due(app) == 1
    folder = Path(app.instance_path) / "outbox"
    [path] = list(folder.glob("*.eml"))
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "ann@example.org"
    assert parsed["Subject"] == "Daily summary: 5 new signatures on 1 letter"
    assert {part.get_content_type() for part in parsed.walk()} >= {"text/plain", "text/html"}


def test_quiet_and_finished_letters_are_left_out(app: Flask, store: Session) -> None:
    busy = busy_letter(store)
    quiet = make_campaign(store, "quiet")
    make_signature(store, quiet, "Old Signer", "old@quiet.fr", signed_at=hours_ago(30))
    closed = make_campaign(store, "closed", state="closed")
    make_signature(store, closed, "Late Import", "late@closed.fr", signed_at=hours_ago(2))
    past = make_campaign(store, "past")
    past.closes_at = hours_ago(1)
    store.commit()
    make_signature(store, past, "Last Minute", "last@past.fr", signed_at=hours_ago(2))
    # Over, but something waits for review: it stays.
    closed_letter_with_a_duplicate_to_review(store)
    wanting(store, "boss@example.org", admin=True)
    assert send(app) == {"boss@example.org": "sent"}
    [message] = mails(store)
    text = message.body_text
    assert "== Letter kem ==" in text
    assert "== Letter review (closed) ==" in text
    for slug in ("quiet", "closed", "past"):
        assert f"Letter {slug} " not in text, slug
    assert message.subject == "Daily summary: 5 new signatures on 2 letters"
    assert busy.slug == "kem"


def test_a_summary_with_only_signatures_to_review_says_so(app: Flask, store: Session) -> None:
    review = closed_letter_with_a_duplicate_to_review(store)
    wanting(store, "ann@example.org", campaigns=(review,))
    send(app)
    [message] = mails(store)
    assert message.subject == "Daily summary: 1 signature to review on 1 letter"
    assert "New signatures: 0" in lines(message.body_text)


def test_no_mail_when_nothing_is_new_and_nothing_waits(app: Flask, store: Session) -> None:
    quiet = make_campaign(store, "quiet")
    make_signature(store, quiet, "Old Signer", "old@quiet.fr", signed_at=hours_ago(30))
    make_signature(
        store, quiet, "Old Pending", "pending@quiet.fr", confirmed=False, signed_at=hours_ago(26)
    )
    ann = wanting(store, "ann@example.org", campaigns=(quiet,))
    wanting(store, "bob@example.org")  # runs no letter at all
    assert send(app) == {"ann@example.org": "nothing", "bob@example.org": "nothing"}
    assert mails(store) == []
    store.expire_all()
    ann = store.get(Organizer, ann.id)
    assert ann is not None
    assert (ann.digest_day, ann.digest_sent_at) == (NOW.date(), None)


def test_an_organizer_hears_only_of_their_letters_an_admin_of_all(
    app: Flask, store: Session
) -> None:
    mine = busy_letter(store, "mine")
    theirs = busy_letter(store, "theirs")
    wanting(store, "ann@example.org", campaigns=(mine,))
    wanting(store, "boss@example.org", admin=True)
    send(app)
    by_recipient = {message.to_addr: message for message in mails(store)}
    ann_text = by_recipient["ann@example.org"].body_text
    assert "== Letter mine ==" in ann_text
    assert "theirs" not in ann_text
    boss = by_recipient["boss@example.org"]
    assert "== Letter mine ==" in boss.body_text and "== Letter theirs ==" in boss.body_text
    assert boss.subject == "Daily summary: 10 new signatures on 2 letters"
    assert theirs.slug == "theirs"


def test_those_who_did_not_ask_and_deactivated_organizers_get_nothing(
    app: Flask, store: Session
) -> None:
    letter = busy_letter(store)
    make_organizer(store, "quiet@example.org", campaigns=(letter,))
    gone = wanting(store, "gone@example.org", campaigns=(letter,))
    gone.active = False
    store.commit()
    assert send(app) == {}
    assert mails(store) == []
    results = summary.send_digests(app, NOW, organizer_ids=[gone.id])
    assert [(r.email, r.outcome) for r in results] == [("gone@example.org", "inactive")]
    assert mails(store) == []


# --- once a day ------------------------------------------------------------------------------


def test_never_twice_the_same_day_and_the_next_counts_from_the_last(
    app: Flask, store: Session
) -> None:
    letter = busy_letter(store)
    ann = wanting(store, "ann@example.org", campaigns=(letter,))
    assert send(app) == {"ann@example.org": "sent"}
    assert send(app, NOW + dt.timedelta(hours=6)) == {}
    results = summary.send_digests(app, NOW + dt.timedelta(hours=6), organizer_ids=[ann.id])
    assert [r.outcome for r in results] == ["done"]
    assert len(mails(store)) == 1
    # The next day: what came since the last summary, and only that.
    make_signature(store, letter, "New Comer", "new@kem.fr", signed_at=NOW + dt.timedelta(hours=3))
    tomorrow = NOW + dt.timedelta(days=1, minutes=5)
    assert send(app, tomorrow) == {"ann@example.org": "sent"}
    second = mails(store)[-1]
    assert second.subject == "Daily summary: 1 new signature on 1 letter"
    assert "Your letters since 30 Nov 2026, 08:00 UTC:" in lines(second.body_text)


def test_two_senders_racing_send_one_summary(
    app: Flask, store: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = wanting(store, "ann@example.org", campaigns=(busy_letter(store),))
    # Both have counted and composed before either claims the day.
    both_ready = threading.Barrier(2, timeout=30)
    claim = digest.record

    def record_together(*args: Any, **kwargs: Any) -> digest.Outcome:
        both_ready.wait()
        return claim(*args, **kwargs)

    monkeypatch.setattr(digest, "record", record_together)
    outcomes: list[str] = []

    def run() -> None:
        outcomes.extend(r.outcome for r in summary.send_digests(app, NOW, organizer_ids=[ann.id]))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["done", "sent"]
    assert len(mails(store)) == 1


# --- the sender --------------------------------------------------------------------------------


def test_the_sender_sends_the_day_s_summaries_after_the_hour_and_not_before(
    app: Flask, store: Session
) -> None:
    wanting(store, "ann@example.org", campaigns=(busy_letter(store),))
    clock = {"now": NOW.replace(hour=6, minute=59)}
    sender = mail._Sender(pid=os.getpid(), clock=lambda: clock["now"])
    assert mail.send_digests_due(app, sender) == 0
    assert mails(store) == []
    clock["now"] = NOW.replace(hour=7, minute=0)
    assert mail.send_digests_due(app, sender) == 1
    assert len(mails(store)) == 1
    clock["now"] = NOW.replace(hour=9)
    assert mail.send_digests_due(app, sender) == 0
    assert len(mails(store)) == 1


def test_the_hour_is_configurable_and_the_sender_can_leave_it_to_cron(
    app_factory: Any, backend: str
) -> None:
    for overrides, sends in [({"DIGEST_HOUR": 9}, 0), ({"DIGEST_ENABLED": False}, 0), ({}, 1)]:
        app = app_factory(backend, **overrides)
        with new_session(app) as db:
            db.query(OutboxMessage).delete()
            db.query(Organizer).delete()
            db.query(Campaign).delete()
            db.commit()
            wanting(db, "ann@example.org", campaigns=(busy_letter(db),))
        sender = mail._Sender(pid=os.getpid(), clock=lambda: NOW)
        assert mail.send_digests_due(app, sender) == sends, overrides


def test_the_running_sender_thread_mails_the_summary(app: Flask, store: Session) -> None:
    wanting(store, "ann@example.org", campaigns=(busy_letter(store),))
    sender = mail._Sender(pid=os.getpid(), clock=lambda: NOW)
    thread = threading.Thread(target=mail._sender_loop, args=(app, sender), daemon=True)
    thread.start()
    try:
        folder = Path(app.instance_path) / "outbox"
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        while not list(folder.glob("*.eml")) and dt.datetime.now(dt.UTC) < deadline:
            sender.stopping.wait(0.05)
    finally:
        sender.stopping.set()
        thread.join(30)
    [path] = list(folder.glob("*.eml"))
    assert "Daily summary: 5 new signatures on 1 letter" in path.read_text()
    [message] = mails(store)
    assert message.sent_at is not None


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def at_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's clock reads NOW."""
    monkeypatch.setattr(organizers_cli, "utcnow", lambda: NOW)


def test_send_digest_dry_run_prints_the_text_and_sends_nothing(
    app: Flask, store: Session, at_now: None
) -> None:
    letter = busy_letter(store)
    ann = wanting(store, "ann@example.org", campaigns=(letter,))
    make_organizer(store, "quiet@example.org", campaigns=(letter,))
    result = app.test_cli_runner().invoke(args=["send-digest", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Subject: Daily summary: 5 new signatures on 1 letter" in result.output
    assert "New signatures: 5" in result.output
    assert "ann@example.org: would be sent (dry run: nothing sent)" in result.output
    assert "quiet@example.org: not wanted" in result.output
    assert mails(store) == []
    store.expire_all()
    assert store.get(Organizer, ann.id).digest_day is None  # type: ignore[union-attr]


def test_send_digest_sends_and_says_what_became_of_each(
    app: Flask, store: Session, at_now: None
) -> None:
    letter = busy_letter(store)
    wanting(store, "ann@example.org", campaigns=(letter,))
    make_organizer(store, "quiet@example.org", campaigns=(letter,))
    wanting(store, "idle@example.org")
    gone = wanting(store, "gone@example.org", campaigns=(letter,))
    gone.active = False
    store.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["send-digest"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "ann@example.org: sent",
        "quiet@example.org: not wanted",
        "idle@example.org: nothing to say",
        "gone@example.org: deactivated",
    ]
    again = runner.invoke(args=["send-digest", "--organizer", "ANN@example.org"])
    assert again.exit_code == 0
    assert again.output == "ann@example.org: already sent today\n"
    assert store.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_send_digest_errors_are_one_line_and_a_non_zero_exit(
    app_factory: Any, backend: str
) -> None:
    app = app_factory(backend)
    result = app.test_cli_runner().invoke(args=["send-digest", "--organizer", "nobody@example.org"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: no organizer has the address nobody@example.org"
    )
    app = app_factory(backend, BASE_URL=None)
    with new_session(app) as db:
        wanting(db, "ann@example.org", campaigns=(busy_letter(db),))
    result = app.test_cli_runner().invoke(args=["send-digest"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: set CAMPAIGN_BASE_URL: the summary's links must be absolute"
    )
    with new_session(app) as db:
        assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_the_summarys_numbers_are_grouped_as_the_organizers_language_writes_them(
    app_factory: Any,
) -> None:
    app = app_factory("sqlite", BASE_URL="http://campaign.test")
    letter = digest.LetterSummary(
        campaign_id=1,
        slug="kem",
        title="Release Kem",
        state="open",
        over=False,
        new=30010,
        counted=30010,
        countries=150,
        continents=6,
        pending=1200,
        duplicates=1500,
        holds=0,
        unverified=15005,
    )
    made = digest.Summary(1, "o@example.org", "O", NOW - dt.timedelta(days=1), NOW, (letter,))
    for locale, new, waiting in (("en", "30,010", "1,200"), ("fr", "30\u202f010", "1\u202f200")):
        composed = summary.compose(app, made, "http://campaign.test", locale)
        for body in (composed.text, composed.html):
            assert new in body and waiting in body, (locale, body)
            assert "30010" not in body and "15005" not in body
