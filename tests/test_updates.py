"""Updates to a letter's signers: who gets them, the mail, its links, the two steps, the pages."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest
from admin_helpers import flashes, make_campaign, make_organizer, make_signature
from alembic import command
from data_helpers import insert_old_letter, login
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import Markup
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session
from test_mail import eml_files, parse_file, text_and_html

from campaign import mail, review, signing, tally, updates
from campaign.db import alembic_config, new_session, upgrade, utcnow
from campaign.markup import linkify
from campaign.models import (
    AuditEntry,
    Campaign,
    LetterTranslation,
    LetterUpdate,
    Organizer,
    OutboxMessage,
    Signature,
)

PAGE = "/admin/c/kem/updates"
BODY = (
    "The letter was handed to the Foreign Minister on 3 December.\n"
    "She promised an answer.\n\n"
    "Her answer: https://example.org/answer"
)


@dataclass
class World:
    """An app, a client logged in as kem's organizer, and a session to arrange and check."""

    app: Flask
    client: FlaskClient
    store: Session
    campaign: Campaign
    organizer: Organizer


@pytest.fixture
def world(any_app: Flask) -> Iterator[World]:
    """kem (open, confirmation required) run by alice, on each database in turn."""
    engine = create_engine(str(any_app.config["DATABASE_URL"]))
    store = Session(bind=engine, expire_on_commit=False)
    campaign = make_campaign(store, "kem")
    organizer = make_organizer(store, "alice@example.org", campaigns=(campaign,))
    client = login(any_app.test_client(), organizer)
    yield World(any_app, client, store, campaign, organizer)
    store.close()
    engine.dispose()


def _form(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "subject": "The letter was delivered",
        "body": BODY,
        "publish": "y",
        "confirm": "y",
        "send": "1",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _update_mail(store: Session) -> list[tuple[str, int | None]]:
    store.expire_all()
    return [
        (row.to_addr, row.signature_id)
        for row in store.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "update").order_by(OutboxMessage.id)
        )
    ]


def _updates(store: Session) -> list[LetterUpdate]:
    store.expire_all()
    return list(store.scalars(select(LetterUpdate).order_by(LetterUpdate.id)))


def _audit(store: Session, action: str) -> list[dict[str, Any]]:
    store.expire_all()
    return [
        json.loads(entry.after)
        for entry in store.scalars(select(AuditEntry).where(AuditEntry.action == action))
    ]


def _mails(app: Flask) -> dict[str, tuple[str, str, str]]:
    """Each .eml written: recipient -> (subject, text part, html part)."""
    found = {}
    for path in eml_files(app):
        message = parse_file(path)
        plain, html = text_and_html(message)
        found[str(message["To"])] = (str(message["Subject"]), plain, html)
    return found


def _every_status(world: World) -> dict[str, Signature]:
    """One signature of kem in each status."""
    store, campaign = world.store, world.campaign
    now = utcnow()
    confirmed = make_signature(store, campaign, "Ana Lopez", "ana@example.org")
    return {
        "confirmed": confirmed,
        "pending": make_signature(store, campaign, "Ben Ode", "ben@example.org", confirmed=False),
        "held": make_signature(
            store, campaign, "Ana Lopez", "ana2@example.org", duplicate_of=confirmed
        ),
        "rejected": make_signature(
            store, campaign, "Cy Park", "cy@example.org", rejected_at=now, rejected_reason="fake"
        ),
        "withdrawn": make_signature(store, campaign, "Di Rey", "di@example.org", withdrawn_at=now),
        "erased": make_signature(store, campaign, "", "erased-5@invalid", erased_at=now),
    }


# --- who gets it -------------------------------------------------------------


def test_only_signatures_that_count_get_the_update(world: World) -> None:
    signatures = _every_status(world)
    assert {s.status for s in signatures.values()} == set(signatures)
    also = make_signature(world.store, world.campaign, "Ed Fox", "ed@example.org", country="ES")
    response = world.client.post(PAGE, data=_form())
    assert response.status_code == 303
    assert flashes(world.client.get(PAGE)) == ["The update goes to 2 signers."]
    assert sorted(_update_mail(world.store)) == [
        ("ana@example.org", signatures["confirmed"].id),
        ("ed@example.org", also.id),
    ]
    [update] = _updates(world.store)
    assert (update.recipients, update.published, update.created_by_id) == (
        2,
        True,
        world.organizer.id,
    )
    assert _audit(world.store, "update.send") == [
        {"subject": "The letter was delivered", "recipients": 2, "published": True}
    ]
    assert mail.deliver_due(world.app) == 2
    assert sorted(_mails(world.app)) == ["ana@example.org", "ed@example.org"]


def test_a_letter_without_confirmation_sends_to_its_signers(world: World) -> None:
    world.campaign.require_confirmation = False
    world.store.commit()
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org", confirmed=False)
    assert world.client.post(PAGE, data=_form()).status_code == 303
    assert [to for to, _ in _update_mail(world.store)] == ["ana@example.org"]


def test_the_update_is_queued_by_one_insert_whatever_the_number_of_signers(
    world: World,
) -> None:
    for i in range(30):
        make_signature(world.store, world.campaign, f"Signer {i}", f"s{i}@example.org")
    inserts: list[str] = []
    engine = world.app.extensions["engine"]

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX_MESSAGE"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert world.client.post(PAGE, data=_form()).status_code == 303
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1 and "SELECT" in inserts[0].upper()
    rows = _update_mail(world.store)
    assert len(rows) == 30
    world.store.expire_all()
    ids = world.store.scalars(select(OutboxMessage.message_id)).all()
    assert len(set(ids)) == 30 and all(i.startswith("<update.") for i in ids)


# --- the mail ----------------------------------------------------------------


def test_the_mail_carries_the_text_as_written_in_the_signers_frame(world: World) -> None:
    world.store.add(
        LetterTranslation(
            campaign_id=world.campaign.id, locale="fr", title="Libérez-le", letter="..."
        )
    )
    world.store.commit()
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    make_signature(world.store, world.campaign, "Jean Roy", "jean@example.org", locale="fr")
    assert world.client.post(PAGE, data=_form()).status_code == 303
    assert mail.deliver_due(world.app) == 2
    mails = _mails(world.app)

    subject, plain, html = mails["ana@example.org"]
    assert subject == "The letter was delivered"
    assert "Hello Ana Lopez," in plain
    assert 'The organizers of the open letter "Letter kem", which you signed' in plain
    assert BODY in plain  # as written: lines and paragraphs kept, never translated
    assert "you will get no more updates about this letter" in plain
    withdraw = re.search(r"http://campaign\.test/c/kem/withdraw/\S+", plain)
    assert withdraw is not None
    assert "<p>The letter was handed to the Foreign Minister on 3 December.<br>She promised" in (
        html
    )
    assert f'href="{withdraw.group(0)}"' in html

    subject, plain, html = mails["jean@example.org"]
    assert subject == "The letter was delivered"
    assert "Bonjour Jean Roy," in plain
    assert "« Libérez-le »" in plain or '"Libérez-le"' in plain
    assert BODY in plain
    assert "retirer votre signature" in plain.lower()

    # The withdraw link works: its page offers to withdraw this signature.
    page = world.client.get(withdraw.group(0).removeprefix("http://campaign.test"))
    assert page.status_code == 200
    assert "Ana Lopez" in page.get_data(as_text=True)


def test_the_html_part_escapes_the_organizers_text_and_the_subject_stays_one_header(
    world: World,
) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    with world.app.test_request_context():
        db = Session(bind=world.app.extensions["engine"])
        campaign = db.get_one(Campaign, world.campaign.id)
        organizer = db.get_one(Organizer, world.organizer.id)
        updates.send(
            db,
            organizer,
            campaign,
            subject="Delivered\r\nBcc: everyone@example.org",
            body='<script>alert("x")</script> & <a href="http://evil.example">click</a>',
            publish=False,
        )
        db.commit()
        db.close()
    assert mail.deliver_due(world.app) == 1
    [path] = eml_files(world.app)
    message = parse_file(path)
    assert message["Bcc"] is None
    assert "everyone@example.org" in str(message["Subject"])  # folded into the one subject
    plain, html = text_and_html(message)
    # The tag stays text; the address written in it is an http address, so a link to itself.
    assert "<script>" not in html and ">click</a>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;a href=" in html
    assert '<script>alert("x")</script>' in plain  # plain text is plain


# --- the two steps -------------------------------------------------------------


def test_the_preview_shows_the_mail_and_the_count_and_sending_needs_the_tick(
    world: World,
) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    make_signature(world.store, world.campaign, "Ed Fox", "ed@example.org")
    preview = world.client.post(PAGE, data=_form(send=None, confirm=None, preview="1"))
    assert preview.status_code == 200
    page = _text(preview.get_data(as_text=True))
    assert "Nothing is sent yet." in page
    assert "Subject: The letter was delivered" in page
    assert "Hello alice@example.org," in page  # the organizer's own greeting, their language
    assert "The letter was handed to the Foreign Minister" in page
    assert "This update goes to 2 signers." in page
    assert "I have read it; send it to 2 signers" in page
    assert _update_mail(world.store) == [] and _updates(world.store) == []

    unticked = world.client.post(PAGE, data=_form(confirm=None))
    assert unticked.status_code == 400
    assert "Tick the box to say you have read it." in unticked.get_data(as_text=True)
    assert _update_mail(world.store) == [] and _updates(world.store) == []

    french = world.client.post(PAGE + "?lang=fr", data=_form(send=None, preview="1"))
    assert "Bonjour alice@example.org," in french.get_data(as_text=True)


def test_change_it_brings_the_text_back_to_the_form(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    response = world.client.post(PAGE, data=_form(send=None, edit="1"))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'value="The letter was delivered"' in page
    assert "She promised an answer." in page
    assert _updates(world.store) == []


def test_a_count_changed_since_the_preview_is_said_with_the_real_one(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    assert world.client.post(PAGE, data=_form(audience="3")).status_code == 303
    assert flashes(world.client.get(PAGE)) == [
        "The number of signers changed since the preview: the update goes to the 1 signer "
        "who counts now."
    ]
    assert len(_update_mail(world.store)) == 1


def test_a_test_mail_goes_to_the_organizer_alone(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    response = world.client.post(PAGE, data=_form(send=None, confirm=None, test="1"))
    assert response.status_code == 200
    assert "A test was mailed to alice@example.org. Nobody else got it." in flashes(response)
    assert "This update goes to 1 signer." in _text(response.get_data(as_text=True))
    assert _updates(world.store) == [] and _update_mail(world.store) == []
    assert _audit(world.store, "update.test") == [
        {"subject": "The letter was delivered", "to": "alice@example.org"}
    ]
    assert mail.deliver_due(world.app) == 1
    [(to, (subject, plain, html))] = _mails(world.app).items()
    assert (to, subject) == ("alice@example.org", "The letter was delivered")
    assert BODY in plain and "Hello alice@example.org," in plain and "She promised" in html


def test_the_same_update_sent_again_within_ten_minutes_is_refused(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    assert world.client.post(PAGE, data=_form()).status_code == 303
    world.client.get(PAGE)  # the first flash
    again = world.client.post(PAGE, data=_form())
    assert again.status_code == 303
    page = world.client.get(PAGE)
    [message] = flashes(page)
    # Its time as the table of updates beside it writes it.
    [sent] = _updates(world.store)
    minute = sent.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    day, clock = minute.split()
    assert message == (
        f"This update was already sent to the signers on {day} at {clock} (UTC): it is not "
        "sent again."
    )
    assert f">{minute}</time>" in page.get_data(as_text=True)
    # French says "le <date> à <time>", not "à <date and time>".
    assert world.client.post(f"{PAGE}?lang=fr", data=_form()).status_code == 303
    [french] = flashes(world.client.get(PAGE))
    assert f"envoyée aux signataires le {day} à {clock} (UTC)" in french, french
    world.client.get(f"{PAGE}?lang=en")
    assert len(_update_mail(world.store)) == 1 and len(_updates(world.store)) == 1
    assert len(_audit(world.store, "update.send")) == 1
    # Another text is news; the same one after the window is too.
    assert world.client.post(PAGE, data=_form(subject="The answer")).status_code == 303
    [first, _] = _updates(world.store)
    first.created_at = utcnow() - dt.timedelta(minutes=11)
    world.store.commit()
    assert world.client.post(PAGE, data=_form()).status_code == 303
    assert len(_updates(world.store)) == 3


def test_two_sends_of_the_same_update_at_once_mail_the_signers_once(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    first_holds = threading.Event()
    outcomes: dict[str, str] = {}

    def send(name: str, hold: float) -> None:
        with world.app.app_context():
            db = new_session(world.app)
            try:
                updates.send(
                    db,
                    db.get_one(Organizer, world.organizer.id),
                    db.get_one(Campaign, world.campaign.id),
                    subject="Delivered",
                    body="Today.",
                    publish=False,
                )
                first_holds.set()
                time.sleep(hold)  # the second request arrives while this one is uncommitted
                db.commit()
                outcomes[name] = "sent"
            except updates.AlreadySent:
                db.rollback()
                outcomes[name] = "refused"
            finally:
                db.close()

    first = threading.Thread(target=send, args=("first", 0.5))
    first.start()
    assert first_holds.wait(10)
    second = threading.Thread(target=send, args=("second", 0))
    second.start()
    first.join(10)
    second.join(10)
    assert outcomes == {"first": "sent", "second": "refused"}
    assert len(_update_mail(world.store)) == 1 and len(_updates(world.store)) == 1


def test_a_letter_nobody_counts_on_has_nobody_to_send_to(world: World) -> None:
    world.campaign.state = "draft"
    world.store.commit()
    make_signature(world.store, world.campaign, "Ben Ode", "ben@example.org", confirmed=False)
    page = _text(world.client.get(PAGE).get_data(as_text=True))
    assert "Nobody to send to yet: no signature of this letter counts." in page
    preview = world.client.post(PAGE, data=_form(send=None, preview="1"))
    assert "Nobody to send to yet" in _text(preview.get_data(as_text=True))
    assert 'name="send"' not in preview.get_data(as_text=True)
    refused = world.client.post(PAGE, data=_form())
    assert refused.status_code == 409
    assert "Nobody to send it to: no signature of this letter counts." in flashes(refused)
    assert _updates(world.store) == [] and _update_mail(world.store) == []


# --- the list of updates and the public page -------------------------------------


def test_the_page_lists_the_updates_sent_and_how_many_went_out(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    make_signature(world.store, world.campaign, "Ed Fox", "ed@example.org")
    assert world.client.post(PAGE, data=_form(publish=None)).status_code == 303
    row = re.search(r"<tbody>.*</tbody>", world.client.get(PAGE).get_data(as_text=True), re.S)
    assert row is not None
    assert "alice@example.org The letter was delivered 2 0 not shown" in _text(row.group(0))
    assert mail.deliver_due(world.app) == 2
    row = re.search(r"<tbody>.*</tbody>", world.client.get(PAGE).get_data(as_text=True), re.S)
    assert row is not None and "The letter was delivered 2 2 not shown" in _text(row.group(0))
    nav = world.client.get("/admin/c/kem/signatures").get_data(as_text=True)
    assert f'href="{PAGE}"' in nav


def test_published_updates_show_on_the_letter_newest_first_and_escaped(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    reader = world.app.test_client()
    assert "Updates" not in _text(reader.get("/c/kem").get_data(as_text=True))
    world.client.post(PAGE, data=_form(subject="Delivered <b>today</b>"))
    world.client.post(PAGE, data=_form(subject="Not for the public", publish=None))
    world.client.post(PAGE, data=_form(subject="The answer came", body="She said no.\n\nWe go on."))
    html = reader.get("/c/kem").get_data(as_text=True)
    page = _text(html)
    today = utcnow()
    assert "Updates" in page and "Not for the public" not in page
    assert page.index("The answer came") < page.index("Delivered")
    assert f"{today:%B} {today.day}, {today.year}" in page
    assert "<p>She said no.</p>" in html and "<p>We go on.</p>" in html
    assert "Delivered &lt;b&gt;today&lt;/b&gt;" in html
    assert "She promised an answer." in page
    french = _text(reader.get("/c/kem?lang=fr").get_data(as_text=True))
    assert "The answer came" in french and str(today.year) in french


# --- stopping counting and erasure --------------------------------------------


def test_a_signer_who_stops_counting_before_the_mail_leaves_gets_nothing(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    ana = make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    make_signature(world.store, world.campaign, "Ed Fox", "ed@example.org")
    assert world.client.post(PAGE, data=_form()).status_code == 303
    withdrawn = world.store.get_one(Signature, ana.id)
    withdrawn.withdrawn_at = utcnow()
    from campaign import tally

    tally.refresh(world.store, withdrawn)
    world.store.commit()
    with caplog.at_level(logging.WARNING, logger="campaign.mail"):
        assert mail.deliver_due(world.app) == 1
    assert sorted(_mails(world.app)) == ["ed@example.org"]
    assert "to ana@example.org dropped, never retried: NoLongerCounts" in caplog.text
    assert mail.deliver_due(world.app, utcnow() + dt.timedelta(days=30)) == 0


def test_erasing_a_signer_deletes_their_queued_update(world: World) -> None:
    ana = make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    make_signature(world.store, world.campaign, "Ed Fox", "ed@example.org")
    assert world.client.post(PAGE, data=_form()).status_code == 303
    with world.app.app_context():
        db = Session(bind=world.app.extensions["engine"])
        review.erase(db, db.get_one(Organizer, world.organizer.id), db.get_one(Signature, ana.id))
        db.commit()
        db.close()
    assert [to for to, _ in _update_mail(world.store)] == ["ed@example.org"]
    assert mail.deliver_due(world.app) == 1
    assert sorted(_mails(world.app)) == ["ed@example.org"]


# --- stopping the updates, keeping the signature ----------------------------------

STOP_LINK = re.compile(r"http://campaign\.test(/c/kem/updates/stop/[A-Za-z0-9_.\-]+)")


def _stop_path(world: World, signature: Signature) -> str:
    token = signing.make_token(str(world.app.config["SECRET_KEY"]), signature.id, "stop_updates")
    return f"/c/kem/updates/stop/{token}"


def _declined_at(world: World, signature: Signature) -> dt.datetime | None:
    world.store.expire_all()
    return world.store.get_one(Signature, signature.id).updates_declined_at


def test_the_update_mail_carries_the_stop_link_and_one_click_headers(world: World) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    make_signature(world.store, world.campaign, "Jean Roy", "jean@example.org", locale="fr")
    assert world.client.post(PAGE, data=_form()).status_code == 303
    assert mail.deliver_due(world.app) == 2
    messages = {str(m["To"]): m for m in map(parse_file, eml_files(world.app))}

    ana = messages["ana@example.org"]
    plain, html = text_and_html(ana)
    stop = STOP_LINK.search(plain)
    assert stop is not None
    assert ana["List-Unsubscribe"] == f"<{stop.group(0)}>"
    assert ana["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (
        f"Stop receiving updates about this letter (your signature stays):\n{stop.group(0)}\n"
        in plain
    )
    assert plain.index(stop.group(0)) < plain.index("/c/kem/withdraw/")
    assert f'href="{stop.group(0)}"' in html

    jean = messages["jean@example.org"]
    plain, _html = text_and_html(jean)
    assert "Ne plus recevoir de nouvelles de cette lettre (votre signature reste) :" in plain
    assert jean["List-Unsubscribe"].startswith("<http://campaign.test/c/kem/updates/stop/")

    # The link leads to its page, which names the signer and offers the button.
    page = world.client.get(stop.group(1))
    assert page.status_code == 200
    assert "Ana Lopez" in page.text and "Stop the updates" in page.text


def test_the_stop_page_changes_nothing_until_posted_and_posting_twice_keeps_the_first(
    world: World,
) -> None:
    ana = make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org", public=True)
    path = _stop_path(world, ana)
    page = world.client.get(path)
    assert page.status_code == 200
    assert "The signature stays on the letter" in _text(page.text)
    assert _declined_at(world, ana) is None
    audited = world.store.scalar(select(func.count()).select_from(AuditEntry))

    posted = world.client.post(path)
    assert posted.status_code == 303 and posted.headers["Location"].endswith(path)
    done = world.client.get(path)
    assert "You will get no more updates about this letter" in done.text
    assert "<form" not in done.text.split("</header>")[-1]
    first = _declined_at(world, ana)
    assert first is not None
    assert world.client.post(path).status_code == 303
    assert _declined_at(world, ana) == first

    # The signature stays: it counts, it is listed, and its page says what the signer asked.
    signature = world.store.get_one(Signature, ana.id)
    assert (signature.status, signature.counted) == ("confirmed", True)
    assert tally.total(world.store, world.campaign) == 1
    assert "Ana Lopez" in world.client.get("/c/kem/signatories").text
    assert world.client.get("/c/kem/tally.json").get_json()["signatures"] == 1
    admin = world.client.get(f"/admin/c/kem/signatures/{ana.id}")
    assert "Asked for no updates" in admin.text
    # The signer's own act, as withdrawing is: no organizer's audit entry.
    assert world.store.scalar(select(func.count()).select_from(AuditEntry)) == audited


def test_one_click_needs_no_csrf_token_and_other_signer_links_still_do(
    app_factory: Any, backend: str
) -> None:
    app = app_factory(backend, WTF_CSRF_ENABLED=True)
    engine = create_engine(str(app.config["DATABASE_URL"]))
    store = Session(bind=engine, expire_on_commit=False)
    campaign = make_campaign(store, "kem")
    ana = make_signature(store, campaign, "Ana Lopez", "ana@example.org")
    secret = str(app.config["SECRET_KEY"])
    client = app.test_client()
    try:
        # As a mail provider posts it (RFC 8058): the one field, no cookie, no CSRF token.
        token = signing.make_token(secret, ana.id, "stop_updates")
        response = client.post(
            f"/c/kem/updates/stop/{token}", data={"List-Unsubscribe": "One-Click"}
        )
        assert response.status_code == 200
        assert "You will get no more updates about this letter" in response.text
        withdraw = client.post(f"/c/kem/withdraw/{signing.make_token(secret, ana.id, 'withdraw')}")
        assert withdraw.status_code == 400
        store.expire_all()
        signature = store.get_one(Signature, ana.id)
        assert signature.updates_declined_at is not None
        assert (signature.status, signature.withdrawn_at) == ("confirmed", None)
    finally:
        store.close()
        engine.dispose()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("kind", ["garbled", "withdraw token", "other letter", "expired"])
def test_a_bad_stop_link_is_the_bad_link_page_and_records_nothing(
    world: World, method: str, kind: str
) -> None:
    ana = make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    secret = str(world.app.config["SECRET_KEY"])
    make_campaign(world.store, "other")
    path = {
        "garbled": _stop_path(world, ana)[:-3] + "xyz",
        "withdraw token": f"/c/kem/updates/stop/{signing.make_token(secret, ana.id, 'withdraw')}",
        "other letter": _stop_path(world, ana).replace("/c/kem/", "/c/other/"),
        "expired": _stop_path(world, ana),
    }[kind]
    if kind == "expired":
        world.app.config["WITHDRAW_MAX_AGE_SECONDS"] = -1
    response = world.client.open(path, method=method, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert "This link cannot be used" in response.text
    expected = "This link has expired." if kind == "expired" else "This link is not valid."
    assert expected in response.text
    assert _declined_at(world, ana) is None


def test_a_signer_who_declined_is_not_sent_the_update_and_the_page_counts_them_apart(
    world: World,
) -> None:
    ana = make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    make_signature(world.store, world.campaign, "Ed Fox", "ed@example.org")
    make_signature(world.store, world.campaign, "Flo Gi", "flo@example.org")
    assert world.client.post(_stop_path(world, ana)).status_code == 303

    listed = _text(world.client.get(PAGE).text)
    assert "It would go to 2 signers now. 1 signer asked for no updates." in listed
    preview = _text(world.client.post(PAGE, data=_form(send=None, preview="1")).text)
    assert "This update goes to 2 signers. 1 signer asked for no updates." in preview
    assert "I have read it; send it to 2 signers" in preview

    assert world.client.post(PAGE, data=_form(audience="2")).status_code == 303
    assert flashes(world.client.get(PAGE)) == ["The update goes to 2 signers."]
    assert sorted(to for to, _ in _update_mail(world.store)) == [
        "ed@example.org",
        "flo@example.org",
    ]
    assert _updates(world.store)[0].recipients == 2


def test_when_every_counted_signer_declined_nobody_is_sent_it(world: World) -> None:
    ana = make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    assert world.client.post(_stop_path(world, ana)).status_code == 303
    listed = _text(world.client.get(PAGE).text)
    assert "Nobody to send to: the 1 signer who counts asked for no updates." in listed
    refused = world.client.post(PAGE, data=_form())
    assert refused.status_code == 409
    assert flashes(refused) == [
        "Nobody to send it to: every signer who counts asked for no updates."
    ]
    assert _updates(world.store) == [] and _update_mail(world.store) == []


def test_a_signer_who_declines_after_the_update_is_queued_gets_nothing(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    ana = make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    make_signature(world.store, world.campaign, "Ed Fox", "ed@example.org")
    assert world.client.post(PAGE, data=_form()).status_code == 303
    assert len(_update_mail(world.store)) == 2
    assert world.client.post(_stop_path(world, ana)).status_code == 303
    with caplog.at_level(logging.WARNING, logger="campaign.mail"):
        assert mail.deliver_due(world.app) == 1
    assert sorted(_mails(world.app)) == ["ed@example.org"]
    assert "to ana@example.org dropped, never retried: UpdatesDeclined" in caplog.text
    assert mail.deliver_due(world.app, utcnow() + dt.timedelta(days=30)) == 0


# --- who may -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_only_the_letters_organizers_reach_the_page(world: World, method: str) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    other = make_campaign(world.store, "other")
    make_organizer(world.store, "bob@example.org", campaigns=(other,))
    bob = world.store.scalar(select(Organizer).where(Organizer.email == "bob@example.org"))
    assert bob is not None
    stranger = login(world.app.test_client(), bob)
    assert stranger.open(PAGE, method=method, data=_form()).status_code == 404
    anonymous = world.app.test_client().open(PAGE, method=method, data=_form())
    assert anonymous.status_code in (302, 303)
    assert "/admin/login" in anonymous.headers["Location"]
    assert _updates(world.store) == [] and _update_mail(world.store) == []


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"subject": ""}, "This field is required."),
        ({"body": "  \r\n "}, "This field is required."),
        ({"subject": "x" * 151}, "Field cannot be longer than 150 characters."),
        ({"body": "x" * 10_001}, "Field cannot be longer than 10000 characters."),
        ({"subject": "Delivered\r\nBcc: all@example.org"}, "The subject must be one line."),
    ],
)
@pytest.mark.parametrize("step", ["preview", "send", "test"])
def test_bad_input_brings_the_form_back_with_its_error(
    world: World, changes: dict[str, str], error: str, step: str
) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    data = _form(**changes)
    data.pop("send")
    data[step] = "1"
    response = world.client.post(PAGE, data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert error in page and "There is a problem" in page
    assert _updates(world.store) == []
    world.store.expire_all()
    assert world.store.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_a_body_of_exactly_ten_thousand_characters_with_line_breaks_is_taken(
    world: World,
) -> None:
    make_signature(world.store, world.campaign, "Ana Lopez", "ana@example.org")
    body = ("x" * 99 + "\r\n") * 100  # 10,100 as sent, 9,999 once the line ends are one
    assert world.client.post(PAGE, data=_form(body=body)).status_code == 303
    [update] = _updates(world.store)
    assert len(update.body) == 9_999 and "\r" not in update.body


# --- the migration -----------------------------------------------------------------


def test_revision_0010_keeps_the_outbox_and_adds_updates(empty_database: str) -> None:
    url = empty_database
    upgrade(url, "0009")
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        insert_old_letter(conn, now)
        conn.execute(
            text(
                "INSERT INTO outbox_message (created_at, to_addr, kind, link_base, subject, "
                "body_text, message_id, attempts, next_attempt_at, last_error) VALUES "
                "(:now, 'a@example.org', 'receipt', 'http://x', '', '', '<m1@x>', 0, :now, '')"
            ),
            {"now": now},
        )
    upgrade(url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT kind, update_id FROM outbox_message")).all() == [
            ("receipt", None)
        ]
        conn.execute(
            text(
                "INSERT INTO letter_update (campaign_id, subject, body, published, created_at, "
                "recipients) SELECT id, 'Delivered', 'Text', true, :now, 1 FROM campaign"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO outbox_message (created_at, to_addr, kind, link_base, subject, "
                "body_text, message_id, attempts, next_attempt_at, last_error, update_id, "
                "sent_at) SELECT :now, 'b@example.org', 'update', 'http://x', 'Delivered', "
                "'Text', '<m2@x>', 1, :now, '', id, :now FROM letter_update"
            ),
            {"now": now},
        )
    command.downgrade(alembic_config(url), "0009")
    with engine.connect() as conn:
        # Both mails stay; the sent update reads as a stored mail.
        assert conn.execute(text("SELECT kind FROM outbox_message ORDER BY id")).all() == [
            ("receipt",),
            (None,),
        ]
    engine.dispose()


def test_revision_0012_adds_the_declined_column_and_0011_takes_it_away(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url, "0011")
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        insert_old_letter(conn, now)
        conn.execute(
            text(
                "INSERT INTO signature (campaign_id, signed_at, updated_at, name, title, "
                "parliament, party, country_code, continent_code, email, email_key, "
                "email_domain, name_key, comment, public, source, locale, letter_version, "
                "status, counted, rejected_reason, duplicate_notices) SELECT id, :now, :now, "
                "'Ana', 'MP', 'P', '', 'FR', 'EU', 'a@example.org', 'a@example.org', "
                "'example.org', 'ana', '', true, 'form', 'en', 1, 'confirmed', true, '', 0 "
                "FROM campaign"
            ),
            {"now": now},
        )
    upgrade(url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT name, updates_declined_at FROM signature")).all() == [
            ("Ana", None)
        ]
        conn.execute(text("UPDATE signature SET updates_declined_at = :now"), {"now": now})
    command.downgrade(alembic_config(url), "0011")
    with engine.connect() as conn:
        columns = conn.execute(text("SELECT * FROM signature")).keys()
        assert "updates_declined_at" not in columns
        assert conn.execute(text("SELECT name, status FROM signature")).all() == [
            ("Ana", "confirmed")
        ]
        # The table was not copied: its expression index (the public list's) is still there.
        if url.startswith("sqlite"):
            query = "SELECT name FROM sqlite_master WHERE tbl_name = 'signature'"
        else:
            query = "SELECT indexname FROM pg_indexes WHERE tablename = 'signature'"
        indexes = set(conn.execute(text(query)).scalars())
        assert "ix_signature_listed" in indexes
        assert "ix_signature_updates_declined" not in indexes
    upgrade(url)
    engine.dispose()


# --- links in the text, the preview of the HTML part, the test mail ----------------


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
    # Sandboxed: no script runs in it, no form posts from it, it cannot navigate the page.
    allowed = set((frame["sandbox"] or "").split())
    assert frame["sandbox"] is not None
    assert not allowed & {"allow-scripts", "allow-forms", "allow-top-navigation"}
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


def test_the_writing_page_says_addresses_become_links_and_keeps_the_strict_policy(
    world: World,
) -> None:
    response = world.client.get(PAGE)
    assert "Web addresses starting with http:// or https:// become links." in response.text
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
