"""Mail: queued with the signature, composed in the signer's language, delivered exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from email import policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from app_helpers import sqlite_statements
from flask import Flask
from serve_helpers import Server, free_port, serve_env
from sqlalchemy import func, make_url, select, text
from sqlalchemy.orm import Session

from campaign import hosts, mail, signing
from campaign.db import new_session, utcnow
from campaign.models import Campaign, OutboxMessage, Signature

# Any request starts the sender; a static file renders no template, so nothing else can break it.
ANY_PAGE = "/static/site.css"
# The links in mail: BASE_URL (tests/app_helpers.py), the letter, a signed token.
LINK = re.compile(r"http://campaign\.test/c/[\w-]+/(confirm|withdraw)/[\w-]+\.[\w-]+\.[\w-]+")


class Collector:
    """An aiosmtpd handler keeping every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.peers: list[Any] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.envelopes.append(envelope)
            self.peers.append(session.peer)
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server on loopback (aiosmtpd) that can be started late and stopped."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = Collector()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def envelopes(self) -> list[Any]:
        with self.handler.lock:
            return list(self.handler.envelopes)

    def messages(self) -> list[EmailMessage]:
        """Every received mail, parsed."""
        return [
            email.message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[misc]
            for envelope in self.envelopes
        ]

    def config(self) -> dict[str, Any]:
        """App settings that send mail to this server."""
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.port, "SMTP_TIMEOUT": 5.0}


def make_signature(
    db: Session,
    *,
    name: str = "Ada Lovelace",
    address: str = "ada@example.org",
    title: str = "Free the press",
    locale: str = "en",
) -> Signature:
    """A pending signature on a new open campaign, flushed."""
    campaign = Campaign(slug=f"c-{uuid.uuid4().hex[:8]}", title=title, state="open")
    signature = Signature(
        campaign=campaign,
        name=name,
        country_code="GB",
        continent_code="EU",
        email=address,
        email_key=address.casefold(),
        name_key=name.casefold(),
        locale=locale,
    )
    db.add(signature)
    db.flush()
    return signature


def queue_one(app: Flask, **signature: Any) -> int:
    """Commit one signature with its confirmation mail; return the mail's id."""
    with app.app_context():
        db = new_session(app)
        sig = make_signature(db, **signature)
        message_id = mail.queue_confirmation(db, sig)
        db.commit()
        db.close()
        return message_id


def outbox(app: Flask) -> list[OutboxMessage]:
    """Every outbox row, by id."""
    with new_session(app) as db:
        return list(db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def composed(app: Flask) -> list[mail.Composed]:
    """Every outbox row's mail as the sender composes it (or as sent), by id."""
    with app.app_context(), new_session(app) as db:
        rows = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [mail.compose(db, row) for row in rows]


def links(body: str) -> dict[str, str]:
    """The confirm and withdraw links in a mail body, by purpose."""
    return {match.group(1): match.group(0) for match in LINK.finditer(body)}


def eml_files(app: Flask) -> list[Path]:
    """The .eml files written to the instance outbox."""
    folder = Path(app.instance_path) / "outbox"
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def parse_file(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    """The decoded plain-text and HTML parts of a mail."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())  # type: ignore[attr-defined]


# Queueing


def test_queue_in_a_rolled_back_transaction_leaves_no_mail(app: Flask) -> None:
    with app.app_context():
        db = new_session(app)
        sig = make_signature(db)
        mail.queue_confirmation(db, sig)
        assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        db.rollback()
        db.close()
    assert outbox(app) == []
    assert mail.deliver_due(app) == 0
    assert eml_files(app) == []


def test_queue_commits_with_the_signature_what_to_send_not_the_mail(app: Flask) -> None:
    message_id = queue_one(app)
    [row] = outbox(app)
    assert row.id == message_id
    assert row.to_addr == "ada@example.org"
    assert (row.kind, row.link_base) == ("confirm", "http://campaign.test")
    # Composed by the sender when it sends the mail, not by the signer's request.
    assert (row.subject, row.body_text, row.body_html) == ("", "", None)
    assert row.message_id.startswith("<") and row.message_id.endswith("@localhost>")
    assert row.sent_at is None and row.attempts == 0
    [queued] = composed(app)
    assert queued.subject == "Please confirm your signature: Free the press"


def test_a_sent_row_keeps_the_mail_it_sent(app: Flask) -> None:
    queue_one(app)
    assert mail.deliver_due(app) == 1
    [row] = outbox(app)
    [path] = eml_files(app)
    text, html = text_and_html(parse_file(path))
    assert row.subject == "Please confirm your signature: Free the press"
    assert (row.body_text.strip(), (row.body_html or "").strip()) == (text.strip(), html.strip())
    assert composed(app) == [mail.Composed(row.subject, row.body_text, row.body_html)]


def test_message_id_uses_the_mail_from_domain(app_factory: Any) -> None:
    app = app_factory(MAIL_FROM="Open Letter <letters@example.org>")
    queue_one(app)
    [row] = outbox(app)
    assert row.message_id.endswith("@example.org>")


def test_confirmation_carries_confirm_and_withdraw_links_and_expiry(app: Flask) -> None:
    queue_one(app)
    [row] = outbox(app)
    [queued] = composed(app)
    found = links(queued.text)
    assert set(found) == {"confirm", "withdraw"}
    secret = app.config["SECRET_KEY"]
    for purpose, link in found.items():
        assert link.startswith(f"http://campaign.test/c/{row_slug(app)}/{purpose}/")
        token = link.rsplit("/", 1)[1]
        assert signing.read_token(secret, token, purpose, 60) == row.signature_id
    assert "Hello Ada Lovelace," in queued.text
    assert "The link expires in 1 month." in queued.text  # CONFIRM_MAX_AGE_SECONDS: 30 days
    assert queued.html is not None
    assert f'href="{found["confirm"]}"' in queued.html
    assert f'href="{found["withdraw"]}"' in queued.html


def row_slug(app: Flask) -> str:
    """The slug of the only campaign."""
    with new_session(app) as db:
        return db.scalars(select(Campaign.slug)).one()


@pytest.mark.parametrize("base_url", [None, "https://letters.example"])
def test_links_start_where_the_requests_absolute_links_start(
    app_factory: Any, base_url: str | None
) -> None:
    app = app_factory(BASE_URL=base_url)
    # Mounted under /open, reached with the Host header a signer's browser sent.
    with app.test_request_context(base_url="http://Letters.Example:8080/open"):
        db = new_session(app)
        sig = make_signature(db)
        mail.queue_confirmation(db, sig)
        expected = hosts.external_url("public.confirm", slug=sig.campaign.slug, token="T")
        db.commit()
        db.close()
    [queued] = composed(app)
    [confirm] = [line for line in queued.text.splitlines() if "/confirm/" in line]
    assert confirm.rsplit("/", 1)[0] == expected.rsplit("/", 1)[0]
    assert expected.endswith(f"/open/c/{row_slug(app)}/confirm/T")


def test_links_queued_outside_a_request_start_at_base_url(app_factory: Any) -> None:
    # The command line (import --send-confirmation): BASE_URL as configured, path included.
    app = app_factory(BASE_URL="https://letters.example/open/")
    queue_one(app)
    [queued] = composed(app)
    slug = row_slug(app)
    assert f"https://letters.example/open/c/{slug}/confirm/" in queued.text
    assert f"https://letters.example/open/c/{slug}/withdraw/" in queued.text


def test_expiry_follows_the_configured_link_lifetime(app_factory: Any) -> None:
    app = app_factory(CONFIRM_MAX_AGE_SECONDS=2 * 24 * 3600)
    queue_one(app)
    [queued] = composed(app)
    assert "The link expires in 2 days." in queued.text


def test_html_part_escapes_the_name(app: Flask) -> None:
    queue_one(app, name="<b>Eve</b> & Co")
    [queued] = composed(app)
    assert queued.html is not None
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; Co" in queued.html
    assert "<b>Eve</b>" not in queued.html
    assert "Hello <b>Eve</b> & Co," in queued.text  # plain text is not HTML


def queue_notice(app: Flask, *, confirmed: bool) -> int:
    """Commit a signature, confirmed or pending, and an "already signed" notice to it."""
    with app.app_context():
        db = new_session(app)
        sig = make_signature(db)
        if confirmed:
            sig.status, sig.confirmed_at = "confirmed", utcnow()
        mail.queue_already_signed(db, sig)
        db.commit()
        db.close()
        return sig.id


@pytest.mark.parametrize(
    ("confirmed", "expected", "absent"),
    [
        (False, "Your signature is waiting for confirmation.", "already counts"),
        (True, "Your signature is confirmed and already counts.", "waiting for confirmation"),
    ],
)
def test_already_signed_notice(app: Flask, confirmed: bool, expected: str, absent: str) -> None:
    queue_notice(app, confirmed=confirmed)
    [row] = outbox(app)
    assert row.kind == "already_signed"
    [queued] = composed(app)
    assert queued.subject == "You have already signed: Free the press"
    assert expected in queued.text
    assert absent not in queued.text
    assert "withdraw" in links(queued.text)
    assert ("confirm" in links(queued.text)) is not confirmed


def test_already_signed_notice_offers_no_confirm_link_once_confirmed_meanwhile(
    app: Flask,
) -> None:
    signature_id = queue_notice(app, confirmed=False)
    with new_session(app) as db:
        signature = db.get_one(Signature, signature_id)
        signature.status, signature.confirmed_at = "confirmed", utcnow()
        db.commit()
    assert mail.deliver_due(app) == 1
    [row] = outbox(app)
    assert "Your signature is confirmed and already counts." in row.body_text
    assert set(links(row.body_text)) == {"withdraw"}


WITHDRAWN_AT = dt.datetime(2026, 3, 4, 23, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("locale", "subject", "withdrawn_on"),
    [
        ("en", "Sign again: Free the press", "was withdrawn on March 4, 2026"),
        ("es", "Firme de nuevo: Free the press", "se retiró el 4 de marzo de 2026"),
        ("fr", "Signer à nouveau : Free the press", "a été retirée le 4 mars 2026"),
        ("id", "Tanda tangani lagi: Free the press", "ditarik pada 4 Maret 2026"),
    ],
)
def test_a_withdrawn_signer_is_told_so_and_given_a_link_to_sign_again(
    app: Flask, locale: str, subject: str, withdrawn_on: str
) -> None:
    with app.app_context():
        db = new_session(app)
        sig = make_signature(db, locale=locale)
        sig.confirmed_at, sig.withdrawn_at, sig.status = utcnow(), WITHDRAWN_AT, "withdrawn"
        mail.queue_already_signed(db, sig)
        db.commit()
        db.close()
    [queued] = composed(app)
    assert queued.subject == subject
    assert queued.html is not None
    for body in (queued.text, queued.html):
        assert withdrawn_on in body
        assert set(links(body)) == {"confirm"}
        assert "already counts" not in body and "waiting for confirmation" not in body


def queue_receipt(
    app: Flask, *, status: str = "confirmed", public: bool = True, **values: Any
) -> int:
    """Commit a signature on a letter without confirmation, and its receipt; the signature's id."""
    with app.app_context():
        db = new_session(app)
        sig = make_signature(db, **values)
        sig.campaign.require_confirmation = False
        sig.status, sig.public = status, public
        if status == "held":
            sig.duplicate_state = "held"
        mail.queue_receipt(db, sig)
        db.commit()
        db.close()
        return sig.id


def test_receipt_says_the_signature_counts_and_carries_a_withdraw_link_only(app: Flask) -> None:
    signature_id = queue_receipt(app)
    [row] = outbox(app)
    assert (row.kind, row.signature_id, row.to_addr) == ("receipt", signature_id, "ada@example.org")
    [queued] = composed(app)
    assert queued.subject == "Receipt for your signature: Free the press"
    assert "Hello Ada Lovelace," in queued.text
    assert 'You signed the open letter "Free the press" with this address.' in queued.text
    assert "your signature counts now" in queued.text
    assert "If this was not you" in queued.text
    found = links(queued.text)
    assert set(found) == {"withdraw"}
    token = found["withdraw"].rsplit("/", 1)[1]
    secret = app.config["SECRET_KEY"]
    assert signing.read_token(secret, token, "withdraw", 60) == signature_id
    # The withdraw link's own lifetime (WITHDRAW_MAX_AGE_SECONDS), not the confirm link's.
    assert "The link expires in 1 year." in queued.text
    assert queued.html is not None
    assert f'href="{found["withdraw"]}"' in queued.html
    assert "If this was not you" in queued.html


def test_receipt_expiry_follows_the_withdraw_links_lifetime(app_factory: Any) -> None:
    app = app_factory(WITHDRAW_MAX_AGE_SECONDS=90 * 24 * 3600, CONFIRM_MAX_AGE_SECONDS=3600)
    queue_receipt(app)
    [queued] = composed(app)
    assert "The link expires in 3 months." in queued.text


@pytest.mark.parametrize(
    ("public", "expected", "absent"),
    [
        (True, "your name is shown on the public list", "is not shown"),
        (False, "your name is not shown on the public list", "is shown"),
    ],
)
def test_receipt_says_whether_the_name_is_listed(
    app: Flask, public: bool, expected: str, absent: str
) -> None:
    queue_receipt(app, public=public)
    [queued] = composed(app)
    assert expected in queued.text
    assert absent not in queued.text
    assert queued.html is not None and expected in queued.html


def test_receipt_of_a_held_signature_says_it_counts_once_checked(app: Flask) -> None:
    queue_receipt(app, status="held")
    [queued] = composed(app)
    assert "Your signature will count once the organizers have checked it." in queued.text
    assert "counts now" not in queued.text
    assert "public list" not in queued.text
    assert set(links(queued.text)) == {"withdraw"}


def test_receipt_is_composed_in_the_signers_language(app: Flask) -> None:
    queue_receipt(app, locale="fr", address="marie@example.fr", name="Marie Curie")
    [queued] = composed(app)
    # A header holds no no-break space: header_safe() makes it a space.
    assert queued.subject == "Reçu de votre signature : Free the press"
    assert "Bonjour Marie Curie," in queued.text
    assert "1\xa0an" in queued.text
    assert queued.html is not None and '<html lang="fr">' in queued.html


def test_mail_is_composed_in_the_signers_locale(app: Flask) -> None:
    queue_one(app, locale="fr", address="marie@example.fr")
    queue_one(app, locale="en", address="ada@example.org")
    french, english = composed(app)
    # No French catalogue yet, but Babel's own data shows force_locale took effect.
    assert "1\xa0mois" in french.text
    assert french.html is not None and '<html lang="fr">' in french.html
    assert "1 month" in english.text


def test_unknown_locale_falls_back_to_the_default_language(app: Flask) -> None:
    queue_one(app, locale="zz-not-a-locale")
    [queued] = composed(app)
    assert "The link expires in 1 month." in queued.text


def test_subject_uses_a_translated_title_when_the_letter_has_one(app: Flask) -> None:
    from campaign.models import LetterTranslation

    with app.app_context():
        db = new_session(app)
        sig = make_signature(db, locale="fr")
        sig.campaign.translations.append(
            LetterTranslation(locale="fr", title="Libérez la presse", letter="...")
        )
        db.flush()
        mail.queue_confirmation(db, sig)
        db.commit()
        db.close()
    [queued] = composed(app)
    assert queued.subject.endswith(": Libérez la presse")  # the wording may be translated too
    assert mail.deliver_due(app) == 1
    assert outbox(app)[0].subject == queued.subject


@pytest.mark.parametrize("gone", ["deleted", "erased"])
def test_mail_to_a_signature_gone_is_dropped_not_retried(
    app: Flask, gone: str, caplog: pytest.LogCaptureFixture
) -> None:
    message_id = queue_one(app)
    queue_one(app, address="other@example.org")
    with new_session(app) as db:
        signature = db.get_one(Signature, outbox(app)[0].signature_id)
        if gone == "deleted":
            db.delete(signature)  # the outbox row's signature_id becomes NULL
        else:
            # Erasure deletes the signer's queued mail; one that escaped it stays unsent.
            signature.erased_at = utcnow()
        db.commit()
    now = utcnow()
    assert mail.deliver_due(app, now) == 1  # the other mail still goes out
    dropped, sent = outbox(app)
    assert dropped.id == message_id and sent.sent_at is not None
    assert dropped.sent_at is None and dropped.claimed_until is None
    assert dropped.last_error.startswith("SignatureGone: ")
    assert dropped.next_attempt_at > now + dt.timedelta(days=365 * 1000)  # never retried
    assert f"mail {message_id} to ada@example.org dropped, never retried" in caplog.text
    assert mail.deliver_due(app, now + dt.timedelta(days=30)) == 0
    assert len(eml_files(app)) == 1


def test_queue_refuses_anything_but_one_address(app: Flask) -> None:
    with app.app_context(), new_session(app) as db:
        for bad in ("a@example.org, b@example.org", "a@example.org\r\nBcc: b@example.org", "x"):
            with pytest.raises(ValueError, match="not a single mail address"):
                mail.queue(db, to=bad, subject="s", text="t")


# Header injection


def test_crlf_in_name_or_title_cannot_add_a_header(
    app_factory: Any, smtp_server: SmtpServer
) -> None:
    app = app_factory(**smtp_server.config())
    queue_one(
        app,
        name="Eve\r\nBcc: victim@example.org\r\nX-Injected: name",
        title="Letter\r\nX-Injected: title\nBcc: other@example.org\u2028X-Sep: 1",
    )
    with app.app_context(), new_session(app) as db:
        mail.queue(
            db,
            to="ada@example.org",
            subject="Hi\r\nX-Injected: subject\r\n\r\nbody",
            text="Hello\r\nX-Injected: body",
        )
        db.commit()
    assert mail.deliver_due(app) == 2
    envelopes = smtp_server.envelopes
    assert [e.rcpt_tos for e in envelopes] == [["ada@example.org"], ["ada@example.org"]]
    for message in smtp_server.messages():
        headers = {key.lower() for key in message}
        assert "x-injected" not in headers
        assert "bcc" not in headers
        assert "x-sep" not in headers
        assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    first, second = smtp_server.messages()
    assert first["Subject"] == (
        "Please confirm your signature: Letter X-Injected: title Bcc: other@example.org X-Sep: 1"
    )
    assert second["Subject"] == "Hi X-Injected: subject body"


def test_header_safe_replaces_every_line_break_and_control_character() -> None:
    assert mail.header_safe("a\r\nb\nc\rd\x00e\x1bf\u2028g\u2029h\x85i\tj") == "a b c d e f g h i j"
    assert mail.header_safe("  Ünïcödé  title ") == "Ünïcödé title"


# The message


@pytest.mark.parametrize("to", ["ada@example.org", "zoë@example.org"])
@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        ("Hello Ada,\n\nhttp://campaign.test/c/x/confirm/MQ.abc.def\n", "7bit"),
        ("Bonjour Zoë,\n", "8bit"),
        # A line SMTP could not carry (over 998 octets): the only case for quoted-printable.
        ("x" * 1200 + "\n", "quoted-printable"),
    ],
)
def test_message_headers_and_transfer_encoding(to: str, body: str, encoding: str) -> None:
    sender = "Lettre ouverte — Zoë <letters@example.org>"
    subject = "Confirmez votre signature : Libérez la presse"
    row = OutboxMessage(
        id=1,
        to_addr=to,
        message_id="<1.2@example.org>",
        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )
    built = mail.build_message(sender, row, mail.Composed(subject, body, f"<p>{body}</p>"))
    # A non-ASCII address goes out only with SMTPUTF8 (UTF-8 headers), as smtplib sends it.
    utf8 = policy.default.clone(utf8=True)
    raw = built.as_bytes(policy=utf8) if isinstance(built, EmailMessage) else built.as_bytes()
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert (parsed["From"], parsed["To"], parsed["Subject"]) == (sender, to, subject)
    assert parsed["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"
    assert parsed["Message-ID"] == "<1.2@example.org>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert plain["Content-Transfer-Encoding"] == html["Content-Transfer-Encoding"] == encoding
    assert plain.get_content() == body  # type: ignore[attr-defined]
    assert html.get_content() == f"<p>{body}</p>\n"  # type: ignore[attr-defined]
    assert max(len(line) for line in raw.splitlines()) <= mail.SMTP_LINE_MAX


# Delivery to the outbox folder


def test_without_smtp_host_mail_is_written_to_the_outbox_folder(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    message_id = queue_one(app)
    caplog.set_level("INFO")
    assert mail.deliver_due(app) == 1
    [path] = eml_files(app)
    [row] = outbox(app)
    assert path.name == f"{row.created_at:%Y-%m-%d}-{message_id}.eml"
    assert f"mail to ada@example.org written to {path}" in caplog.text
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    parsed = parse_file(path)
    assert parsed["From"] == "campaign@localhost"
    assert parsed["To"] == "ada@example.org"
    assert parsed["Subject"] == "Please confirm your signature: Free the press"
    assert parsed["Message-ID"] == row.message_id
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = text_and_html(parsed)
    found = links(text)
    assert set(found) == {"confirm", "withdraw"}
    assert f'href="{found["confirm"]}"' in html
    # The raw file keeps the link whole, so a reader can copy it out of the .eml.
    assert found["confirm"].encode() in path.read_bytes()
    assert row.sent_at is not None and row.claimed_until is None
    assert mail.deliver_due(app) == 0
    assert len(eml_files(app)) == 1


def test_outbox_write_failure_is_retried_not_lost(app: Flask) -> None:
    queue_one(app)
    blocker = Path(app.instance_path) / "outbox"
    blocker.write_text("a file where the folder should be")
    now = utcnow()
    assert mail.deliver_due(app, now) == 0
    [row] = outbox(app)
    assert row.attempts == 1 and row.sent_at is None
    assert "FileExistsError" in row.last_error or "NotADirectoryError" in row.last_error
    blocker.unlink()
    assert mail.deliver_due(app, now + dt.timedelta(seconds=6)) == 1
    assert len(eml_files(app)) == 1


# Delivery by SMTP


def test_smtp_delivery_with_correct_headers(app_factory: Any, smtp_server: SmtpServer) -> None:
    app = app_factory(MAIL_FROM="Open Letter <letters@example.org>", **smtp_server.config())
    queue_one(app, name="Zoë Ångström", locale="fr", title="Libérez la presse")
    assert mail.deliver_due(app) == 1
    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "letters@example.org"
    assert envelope.rcpt_tos == ["ada@example.org"]
    [received] = smtp_server.messages()
    [row] = outbox(app)
    assert received["From"] == "Open Letter <letters@example.org>"
    assert received["To"] == "ada@example.org"
    # Non-ASCII survives the header encoding; the wording may be translated, the title not.
    assert received["Subject"] == row.subject
    assert row.subject.endswith(": Libérez la presse")
    assert received["Message-ID"] == row.message_id
    assert parsedate_to_datetime(received["Date"]) == row.created_at.replace(microsecond=0)
    text, html = text_and_html(received)
    assert "Zoë Ångström" in text and "1\xa0mois" in text
    found = links(text)
    assert set(found) == {"confirm", "withdraw"}
    assert f'href="{found["confirm"]}"' in html
    assert row.sent_at is not None
    assert eml_files(app) == []


def test_one_connection_carries_a_batch(app_factory: Any, smtp_server: SmtpServer) -> None:
    app = app_factory(**smtp_server.config())
    for n in range(5):
        queue_one(app, address=f"mp{n}@example.org")
    assert mail.deliver_due(app) == 5
    assert len(smtp_server.envelopes) == 5
    assert len(set(smtp_server.handler.peers)) == 1  # one client port: one connection
    assert len({m["Message-ID"] for m in smtp_server.messages()}) == 5


def test_smtp_down_backs_off_then_delivers_exactly_once(app_factory: Any) -> None:
    server = SmtpServer()  # not started: nothing listens on its port
    app = app_factory(MAIL_RETRY_BASE_SECONDS=5, MAIL_RETRY_MAX_SECONDS=600, **server.config())
    queue_one(app)
    t0 = utcnow()

    assert mail.deliver_due(app, t0) == 0
    [row] = outbox(app)
    assert row.attempts == 1
    assert row.next_attempt_at == t0 + dt.timedelta(seconds=5)
    assert row.claimed_until is None and row.sent_at is None
    assert "ConnectionRefusedError" in row.last_error

    assert mail.deliver_due(app, t0 + dt.timedelta(seconds=4)) == 0  # not due yet
    assert outbox(app)[0].attempts == 1

    delays = [10, 20, 40, 80, 160, 320, 600, 600]
    when = t0 + dt.timedelta(seconds=5)
    for attempts, delay in enumerate(delays, start=2):
        assert mail.deliver_due(app, when) == 0
        [row] = outbox(app)
        assert row.attempts == attempts
        assert row.next_attempt_at == when + dt.timedelta(seconds=delay)
        when = row.next_attempt_at

    server.start()
    try:
        assert mail.deliver_due(app, when) == 1
        assert mail.deliver_due(app, when + dt.timedelta(hours=1)) == 0
        assert len(server.envelopes) == 1
    finally:
        server.stop()
    [row] = outbox(app)
    assert row.sent_at == when and row.attempts == len(delays) + 1


def test_smtp_down_for_a_minute_loses_nothing_and_sends_nothing_twice(app_factory: Any) -> None:
    server = SmtpServer()
    app = app_factory(**server.config())
    for n in range(12):
        queue_one(app, address=f"mp{n}@example.org")
    t0 = utcnow()
    for second in range(0, 61):  # the sender polls every second while SMTP is down
        assert mail.deliver_due(app, t0 + dt.timedelta(seconds=second)) == 0
    rows = outbox(app)
    assert len(rows) == 12 and all(r.sent_at is None for r in rows)
    assert all(r.attempts >= 1 for r in rows)
    back = t0 + dt.timedelta(seconds=61)
    server.start()
    try:
        rounds = []
        when = back
        while sum(rounds) < 12 and when < t0 + dt.timedelta(hours=1):
            rounds.append(mail.deliver_due(app, when))
            when += dt.timedelta(seconds=1)
        for _ in range(5):  # more rounds, long after: nothing is sent again
            assert mail.deliver_due(app, when + dt.timedelta(hours=2)) == 0
        ids = [m["Message-ID"] for m in server.messages()]
    finally:
        server.stop()
    # Every mail's next retry is further off, but one held-back mail is probed every
    # MAIL_RETRY_BASE_SECONDS (5 s); its success releases the rest, all in that round.
    assert min(r.next_attempt_at for r in rows) > back + dt.timedelta(seconds=5)
    assert rounds[-1] == 12 and not any(rounds[:-1])
    assert len(rounds) <= 6
    assert sorted(ids) == sorted(r.message_id for r in rows)
    assert len(set(ids)) == 12
    assert all(r.sent_at is not None for r in outbox(app))


def test_a_refused_recipient_does_not_hold_up_the_others(
    app_factory: Any, smtp_server: SmtpServer
) -> None:
    class Refusing(Collector):
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if address.startswith("refused"):
                return "550 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    smtp_server.stop()
    smtp_server.handler = Refusing()
    smtp_server.start()
    app = app_factory(**smtp_server.config())
    queue_one(app, address="refused@example.org")
    queue_one(app, address="ada@example.org")
    assert mail.deliver_due(app) == 1
    refused, delivered = outbox(app)
    assert refused.sent_at is None and refused.attempts == 1
    assert "SMTPRecipientsRefused" in refused.last_error
    assert delivered.sent_at is not None
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [["ada@example.org"]]


def test_a_non_ascii_address_waits_for_a_server_with_smtputf8_and_holds_up_no_other(
    app_factory: Any,
) -> None:
    server = SmtpServer()
    server.controller = Controller(
        server.handler, hostname="127.0.0.1", port=server.port, enable_SMTPUTF8=False
    )
    server.controller.start()
    try:
        app = app_factory(**server.config())
        queue_one(app, address="zoë@example.org")
        queue_one(app, address="ada@example.org")
        assert mail.deliver_due(app) == 1
    finally:
        server.stop()
    waiting, delivered = outbox(app)
    assert waiting.sent_at is None and waiting.attempts == 1
    assert waiting.last_error.startswith("SMTPNotSupportedError: ")
    assert delivered.sent_at is not None
    assert [e.rcpt_tos for e in server.envelopes] == [["ada@example.org"]]


def _concurrent_senders(apps: list[Flask], per_app: int) -> list[int]:
    """Run deliver_due from several threads at once; return each call's count."""
    barrier = threading.Barrier(len(apps) * per_app)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run(app: Flask) -> None:
        try:
            barrier.wait()
            counts.append(mail.deliver_due(app))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(app,)) for app in apps for _ in range(per_app)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return counts


def test_concurrent_senders_never_send_one_message_twice(
    app_factory: Any, backend: str, smtp_server: SmtpServer
) -> None:
    # Two apps on one database stand for two processes: their own engines and pools.
    first = app_factory(backend, **smtp_server.config())
    second = app_factory(backend, **smtp_server.config())
    for n in range(40):
        queue_one(first, address=f"mp{n}@example.org")
    counts = _concurrent_senders([first, second], per_app=3)
    assert sum(counts) == 40
    ids = [m["Message-ID"] for m in smtp_server.messages()]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert all(r.sent_at is not None and r.claimed_until is None for r in outbox(first))


def test_concurrent_senders_write_each_file_once(app_factory: Any, backend: str) -> None:
    first = app_factory(backend)
    second = app_factory(backend)
    for n in range(30):
        queue_one(first, address=f"mp{n}@example.org")
    counts = _concurrent_senders([first, second], per_app=2)
    assert sum(counts) == 30
    assert len(eml_files(first)) == 30


def test_a_live_claim_is_respected_and_an_expired_one_is_taken_over(app: Flask) -> None:
    queue_one(app)
    now = utcnow()
    with new_session(app) as db:
        row = db.scalars(select(OutboxMessage)).one()
        row.claimed_until = now + dt.timedelta(seconds=30)  # another sender is on it
        db.commit()
    assert mail.deliver_due(app, now) == 0
    assert mail.deliver_due(app, now + dt.timedelta(seconds=31)) == 1  # that sender died


def test_a_sent_mail_not_yet_marked_is_marked_before_anything_is_claimed(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_one(app)
    real_settle = mail._settle
    calls = {"n": 0}

    def flaky_settle(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("database went away")
        real_settle(*args)

    monkeypatch.setattr(mail, "_settle", flaky_settle)
    now = utcnow()
    with pytest.raises(OSError, match="database went away"):
        mail.deliver_due(app, now)
    assert len(eml_files(app)) == 1
    # Long after the claim ran out, the sender marks the mail instead of sending it again.
    assert mail.deliver_due(app, now + dt.timedelta(minutes=5)) == 0
    assert len(eml_files(app)) == 1
    [row] = outbox(app)
    assert row.sent_at == now
    assert row.subject == "Please confirm your signature: Free the press"  # what was sent


def test_a_batch_is_claimed_in_one_transaction_and_marked_in_another(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(mail.CLAIM_BATCH + 5):
        queue_one(app, address=f"mp{n}@example.org")
    with sqlite_statements(app) as sent:
        assert mail.deliver_due(app) == mail.CLAIM_BATCH + 5
        assert mail.deliver_due(app) == 0
    begins = [statement.strip() for statement in sent if statement.startswith("BEGIN")]
    # Two batches: a claim and a mark each, the writes; every poll and compose only reads.
    assert begins.count("BEGIN IMMEDIATE") == 4
    assert all(r.sent_at is not None and r.claimed_until is None for r in outbox(app))
    assert len(eml_files(app)) == mail.CLAIM_BATCH + 5


# The sender thread


def request_any_page(app: Flask) -> None:
    """One request through the app, which starts its sender when MAIL_SENDER is on."""
    response = app.test_client().get(ANY_PAGE)
    assert response.status_code == 200
    response.close()


def _wait_for(predicate: Any, timeout: float = 10.0) -> float:
    """Poll until predicate() is true; return the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out")
        time.sleep(0.02)
    return time.monotonic() - start


def test_sender_thread_starts_on_a_request_and_delivers(app_factory: Any) -> None:
    app = app_factory(MAIL_SENDER=True, MAIL_POLL_SECONDS=0.1)
    queue_one(app)
    assert "mail_sender" not in app.extensions  # nothing runs before the first request
    try:
        request_any_page(app)
        sender = app.extensions["mail_sender"]
        assert sender.pid == os.getpid() and sender.thread.is_alive()
        request_any_page(app)
        assert app.extensions["mail_sender"] is sender  # one thread per process
        _wait_for(lambda: len(eml_files(app)) == 1)
    finally:
        mail.stop_sender(app)
    assert not sender.thread.is_alive()
    assert "mail_sender" not in app.extensions


def test_a_commit_wakes_the_sender_before_its_next_poll(app_factory: Any) -> None:
    app = app_factory(MAIL_SENDER=True, MAIL_POLL_SECONDS=30)
    try:
        request_any_page(app)
        time.sleep(0.2)  # the sender's first round finds nothing and waits 30 s
        queue_one(app)  # the commit wakes it
        # Well before the 30 s poll would have found it (a generous bound: the machine is shared).
        _wait_for(lambda: len(eml_files(app)) == 1, timeout=15)
    finally:
        mail.stop_sender(app)


def test_a_rollback_does_not_wake_the_sender(app_factory: Any) -> None:
    app = app_factory(MAIL_SENDER=True, MAIL_POLL_SECONDS=30)
    try:
        request_any_page(app)
        time.sleep(0.2)
        sender = app.extensions["mail_sender"]
        with app.app_context(), new_session(app) as db:
            mail.queue(db, to="ada@example.org", subject="s", text="t")
            db.rollback()
        assert not sender.wakeup.is_set()
    finally:
        mail.stop_sender(app)


def test_sender_survives_errors_in_its_loop(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(MAIL_SENDER=True, MAIL_POLL_SECONDS=0.05)
    real = mail.deliver_due
    failures = {"n": 0}

    def failing_twice(app: Flask, now: dt.datetime | None = None, **kwargs: Any) -> int:
        if failures["n"] < 2:
            failures["n"] += 1
            raise RuntimeError("database is down")
        return real(app, now, **kwargs)

    monkeypatch.setattr(mail, "deliver_due", failing_twice)
    caplog.set_level("INFO")
    queue_one(app)
    try:
        request_any_page(app)
        _wait_for(lambda: len(eml_files(app)) == 1)
    finally:
        mail.stop_sender(app)
    assert "mail sender: delivery failed; will retry" in caplog.text
    assert "mail sender: still failing: database is down" in caplog.text
    assert "mail sender: delivering again" in caplog.text


def test_sender_survives_a_database_that_is_gone(
    app_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(
        MAIL_SENDER=True,
        MAIL_POLL_SECONDS=0.05,
        DATABASE_URL=f"sqlite:///{tmp_path}/missing-dir/none.sqlite3",
    )
    try:
        request_any_page(app)
        _wait_for(lambda: "still failing" in caplog.text)
        assert app.extensions["mail_sender"].thread.is_alive()
    finally:
        mail.stop_sender(app)


def test_stopping_the_sender_ends_its_round_between_two_mails(
    app_factory: Any, smtp_server: SmtpServer
) -> None:
    class Slow(Collector):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(0.05)
            return await super().handle_DATA(server, session, envelope)

    smtp_server.stop()
    smtp_server.handler = Slow()
    smtp_server.start()
    app = app_factory(MAIL_SENDER=True, MAIL_POLL_SECONDS=0.05, **smtp_server.config())
    for n in range(60):
        queue_one(app, address=f"mp{n}@example.org")
    request_any_page(app)
    _wait_for(lambda: len(smtp_server.envelopes) >= 3)
    mail.stop_sender(app)
    rows = outbox(app)
    sent = [r for r in rows if r.sent_at is not None]
    assert 3 <= len(sent) < 60
    assert len(smtp_server.envelopes) == len(sent)  # the mail in hand was finished and marked
    assert all(r.claimed_until is None for r in rows)  # nothing left claimed
    assert mail.deliver_due(app) == 60 - len(sent)  # the rest goes out with the next sender
    assert len({m["Message-ID"] for m in smtp_server.messages()}) == 60


class _FakeClock:
    """A thread CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _RecordingStop(threading.Event):
    """A stop event whose waits return at once and are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def test_pace_rests_in_proportion_to_the_cpu_used_since_its_last_rest() -> None:
    clock, stop = _FakeClock(), _RecordingStop()
    pace = mail.Pace(0.25, stop, clock)
    clock.now += 0.010  # 10 ms of composing at a quarter of a core buys 30 ms of rest
    assert pace.rest() == pytest.approx(0.030)
    assert pace.rest() == 0  # no CPU since: no rest
    clock.now += 0.004
    assert pace.rest() == pytest.approx(0.012)
    assert stop.waits == [pytest.approx(0.030), pytest.approx(0.012)]
    uncapped = mail.Pace(1.0, stop, clock)
    clock.now += 1.0
    assert uncapped.rest() == 0 and len(stop.waits) == 2


def test_pace_rests_only_while_the_process_serves() -> None:
    clock, stop = _FakeClock(), _RecordingStop()
    serving = [True]
    pace = mail.Pace(0.25, stop, clock, busy=lambda: serving[0])
    clock.now += 0.010
    assert pace.rest() == pytest.approx(0.030)
    serving[0] = False  # no signer to yield to: the backlog goes out at full speed
    clock.now += 0.010
    assert pace.rest() == 0
    serving[0] = True  # what was used while quiet is not owed once signers come back
    assert pace.rest() == 0
    clock.now += 0.002
    assert pace.rest() == pytest.approx(0.006)
    assert stop.waits == [pytest.approx(0.030), pytest.approx(0.006)]


def test_activity_counts_requests_in_flight_and_a_quiet_spell_after_them() -> None:
    activity = mail.Activity()
    assert not activity.busy(60.0)  # never served
    activity.begin()
    assert activity.busy(0.0)  # one in flight, however long ago it began
    activity.end()
    assert activity.busy(60.0) and not activity.busy(0.0)


def _tiny_share_and_backlog(app_factory: Any, quiet: float, total: int) -> Flask:
    """An app whose sender keeps to a share so small that one rest outlasts a test, with
    total mails queued; quiet: MAIL_SENDER_QUIET_SECONDS."""
    app: Flask = app_factory(
        MAIL_SENDER=True,
        MAIL_POLL_SECONDS=0.05,
        MAIL_SENDER_CPU_SHARE=0.0001,
        MAIL_SENDER_QUIET_SECONDS=quiet,
    )
    for n in range(total):
        queue_one(app, address=f"mp{n}@example.org")
    return app


def test_a_quiet_server_sends_a_backlog_whole_whatever_its_share(app_factory: Any) -> None:
    # The share is for sharing the worker with signers: with no request served for the
    # quiet spell, a backlog is not held back by rests.
    total = mail.CLAIM_BATCH * 3
    app = _tiny_share_and_backlog(app_factory, 0.0, total)
    try:
        request_any_page(app)
        _wait_for(lambda: len(eml_files(app)) == total)
    finally:
        mail.stop_sender(app)


def test_the_sender_keeps_to_its_cpu_share_and_rests_between_batches(app_factory: Any) -> None:
    # A share this small turns a batch's CPU into a rest far longer than the test: the
    # first batch goes out, the rest of the backlog waits; stopping ends the rest at once.
    # The quiet spell is longer than the test: the page requested counts as serving.
    app = _tiny_share_and_backlog(app_factory, 600.0, mail.CLAIM_BATCH + 10)
    try:
        request_any_page(app)
        _wait_for(lambda: len(eml_files(app)) >= mail.CLAIM_BATCH)
        time.sleep(0.5)
        assert len(eml_files(app)) == mail.CLAIM_BATCH
    finally:
        started = time.monotonic()
        mail.stop_sender(app)
    assert time.monotonic() - started < 5  # the rest ended with the stop
    assert mail.deliver_due(app) == 10  # what waited goes out with the next round


def test_a_forked_worker_starts_its_own_sender(app_factory: Any) -> None:
    app = app_factory(MAIL_SENDER=True, MAIL_POLL_SECONDS=0.1)
    # What a worker forked after the parent started a sender inherits: a record, no thread.
    app.extensions["mail_sender"] = mail._Sender(pid=os.getpid() + 100000)
    try:
        assert mail.start_sender(app) is True
        assert app.extensions["mail_sender"].pid == os.getpid()
        assert mail.start_sender(app) is False
    finally:
        mail.stop_sender(app)


def test_no_sender_without_mail_sender(app: Flask) -> None:
    request_any_page(app)
    assert "mail_sender" not in app.extensions


# One sender per cluster


def leading(app: Flask) -> bool:
    """Whether the app's sender holds the cluster's lease."""
    sender = app.extensions.get("mail_sender")
    return sender is not None and bool(sender.leading)


def test_one_sender_delivers_and_another_takes_over_when_it_stops(
    app_factory: Any, backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    # Two apps on one database stand for two processes: their own engines and leases.
    apps = [
        app_factory(backend, MAIL_SENDER=True, MAIL_POLL_SECONDS=0.05, MAIL_LEASE_RETRY_SECONDS=0.2)
        for _ in range(2)
    ]
    apps[1].instance_path = str(tmp_path / "second")  # so each one's files tell who sent
    try:
        for app in apps:
            request_any_page(app)
        _wait_for(lambda: any(leading(app) for app in apps))
        time.sleep(0.5)  # the other one has tried the lease twice by now
        leader, standby = sorted(apps, key=lambda app: not leading(app))
        assert not leading(standby)
        for n in range(5):
            queue_one(standby, address=f"mp{n}@example.org")
        _wait_for(lambda: len(eml_files(leader)) == 5)
        assert eml_files(standby) == []
        mail.stop_sender(leader)  # a process exiting: its lease goes with it
        took_over = _wait_for(lambda: leading(standby))
        for n in range(5, 8):
            queue_one(leader, address=f"mp{n}@example.org")
        _wait_for(lambda: len(eml_files(standby)) == 3)
    finally:
        for app in apps:
            mail.stop_sender(app)
    assert took_over < 5
    assert len(eml_files(leader)) == 5
    assert all(r.sent_at is not None for r in outbox(leader))
    assert caplog.text.count("leads and delivers for the cluster") == 2
    assert "stands by while another leads" in caplog.text


_HOLD_THE_LEASE = """
import time
from campaign import create_app, mail
app = create_app()
mail.start_sender(app)
while not app.extensions["mail_sender"].leading:
    time.sleep(0.02)
print("leading", flush=True)
time.sleep(600)
"""


def test_a_killed_leader_is_replaced_within_seconds(
    app_factory: Any, backend: str, tmp_path: Path
) -> None:
    app = app_factory(
        backend, MAIL_SENDER=True, MAIL_POLL_SECONDS=0.05, MAIL_LEASE_RETRY_SECONDS=0.2
    )
    other = tmp_path / "other-process"
    env = {
        **os.environ,
        "CAMPAIGN_INSTANCE_PATH": str(other),
        "CAMPAIGN_DATABASE_URL": app.config["DATABASE_URL"],
        "CAMPAIGN_SECRET_KEY": app.config["SECRET_KEY"],
        "CAMPAIGN_BASE_URL": "http://campaign.test",
        "CAMPAIGN_MAIL_POLL_SECONDS": "0.05",
    }
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_LEASE], env=env, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"leading\n"
        request_any_page(app)
        for n in range(3):
            queue_one(app, address=f"mp{n}@example.org")
        _wait_for(lambda: len(list((other / "outbox").glob("*.eml"))) == 3)
        assert not leading(app) and eml_files(app) == []
        holder.kill()  # SIGKILL: nothing of it runs, the kernel or the server frees the lease
        holder.wait(10)
        took_over = _wait_for(lambda: leading(app))
        for n in range(3, 6):
            queue_one(app, address=f"mp{n}@example.org")
        _wait_for(lambda: len(eml_files(app)) == 3)
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
        mail.stop_sender(app)
    assert took_over < 5
    files = eml_files(app) + sorted((other / "outbox").glob("*.eml"))
    ids = [parse_file(path)["Message-ID"] for path in files]
    assert sorted(ids) == sorted(r.message_id for r in outbox(app))  # each mail once


def test_sender_with_smtp_down_then_up_delivers_each_mail_once(app_factory: Any) -> None:
    server = SmtpServer()
    app = app_factory(
        MAIL_SENDER=True,
        MAIL_POLL_SECONDS=0.05,
        MAIL_RETRY_BASE_SECONDS=0.1,
        MAIL_RETRY_MAX_SECONDS=0.5,
        **server.config(),
    )
    for n in range(10):
        queue_one(app, address=f"mp{n}@example.org")
    try:
        request_any_page(app)
        _wait_for(lambda: all(r.attempts >= 2 for r in outbox(app)))
        server.start()
        _wait_for(lambda: all(r.sent_at is not None for r in outbox(app)))
        time.sleep(0.5)  # a few more rounds: nothing is sent again
    finally:
        mail.stop_sender(app)
        server.stop()
    ids = [m["Message-ID"] for m in server.messages()]
    assert len(ids) == 10 and len(set(ids)) == 10


@pytest.mark.slow
def test_smtp_down_for_a_real_minute_two_senders_deliver_each_mail_once(
    app_factory: Any,
) -> None:
    server = SmtpServer()
    # Two apps on one database, each with its own sender thread: two serving processes.
    # The retry schedule is the default one (5 s doubling to 10 min).
    apps = [
        app_factory(MAIL_SENDER=True, MAIL_POLL_SECONDS=1.0, **server.config()) for _ in range(2)
    ]
    try:
        for app in apps:
            request_any_page(app)
        for n in range(20):
            queue_one(apps[n % 2], address=f"mp{n}@example.org")
            time.sleep(0.05)
        time.sleep(60)
        rows = outbox(apps[0])
        assert all(r.sent_at is None and r.attempts >= 1 for r in rows)
        # Every mail's own retry is still far off when the server comes back.
        own_retry = min(r.next_attempt_at for r in rows)
        assert own_retry > utcnow() + dt.timedelta(seconds=5)
        server.start()
        _wait_for(lambda: all(r.sent_at is not None for r in outbox(apps[0])), 120)
        time.sleep(3)  # more rounds: nothing is sent again
        sent = [r.sent_at for r in outbox(apps[0]) if r.sent_at is not None]
    finally:
        for app in apps:
            mail.stop_sender(app)
        server.stop()
    # The probe, not the doubling backoff, decides how soon mail flows again: the first mail
    # leaves before any mail's own retry falls due (a fact of order, not of machine speed).
    assert min(sent) < own_retry
    ids = [m["Message-ID"] for m in server.messages()]
    assert len(ids) == 20 and len(set(ids)) == 20


# The real servers


@pytest.mark.parametrize("server", ["serve", "run"])
def test_running_server_delivers_the_outbox(app: Flask, tmp_path: Path, server: str) -> None:
    env = serve_env(
        app.config["DATABASE_URL"],
        app.instance_path,
        CAMPAIGN_SECRET_KEY="test-secret-key-not-for-production",
        CAMPAIGN_MAIL_POLL_SECONDS="0.2",
        CAMPAIGN_RATELIMIT_ENABLED="false",
    )
    for n in range(6):
        queue_one(app, address=f"mp{n}@example.org")
    log_path = tmp_path / "server.log"
    with Server(env=env, log_path=log_path, threads=2, dev=server == "run") as process:
        page = f"http://127.0.0.1:{process.port}{ANY_PAGE}"

        def answered() -> bool:
            try:
                with urllib.request.urlopen(page, timeout=1):
                    return True
            except OSError:
                return False

        _wait_for(answered, timeout=20)
        for _ in range(8):  # reach every worker, most likely
            answered()
        _wait_for(lambda: len(eml_files(app)) == 6, timeout=10)
        queue_one(app, address="late@example.org")  # committed elsewhere: the poll finds it
        _wait_for(lambda: len(eml_files(app)) == 7, timeout=10)
        time.sleep(0.6)
        serving = log_path.read_bytes()
    log = log_path.read_bytes()
    assert len(eml_files(app)) == 7
    assert all(r.sent_at is not None for r in outbox(app))
    assert b"Traceback" not in log
    started = re.findall(rb"mail sender started in process (\d+)", log)
    assert started and len(set(started)) == len(started)  # one sender per serving process
    # One of them delivers; with two workers the other stands by.
    leads = re.findall(rb"mail sender: process (\d+) leads", serving)
    assert len(leads) == 1 and leads[0] in started
    standing_by = re.findall(rb"mail sender: process (\d+) stands by", serving)
    assert len(standing_by) == len(started) - 1


def test_the_lease_session_keeps_alive_so_a_dead_machine_frees_it_in_seconds(
    postgres_url: str,
) -> None:
    lease = mail._PostgresLease(make_url(postgres_url))
    try:
        assert lease.acquire()
        assert lease._conn is not None
        settings = {
            name: lease._conn.scalar(text(f"SHOW {name}"))
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        }
    finally:
        lease.release()
    assert settings == {
        "tcp_keepalives_idle": "5",
        "tcp_keepalives_interval": "2",
        "tcp_keepalives_count": "3",
    }


def test_the_lease_can_be_taken_past_a_transaction_pooler(app_factory: Any) -> None:
    # Behind PgBouncer in transaction pooling, a session lock needs PostgreSQL itself.
    direct = "postgresql+psycopg://campaign@db.internal:5432/campaign"
    app = app_factory("postgres", MAIL_LEASE_DATABASE_URL=direct)
    lease = mail._lease_for(app)
    assert isinstance(lease, mail._PostgresLease)
    assert lease._engine.url == make_url(direct)
    lease.release()
    default = mail._lease_for(app_factory("postgres"))
    assert isinstance(default, mail._PostgresLease)
    assert default._engine.url == app.extensions["engine"].url
    default.release()


def test_a_mail_being_written_is_not_yet_an_eml_file(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory()
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def look_while_writing(fd: int) -> None:
        seen.append(sorted(p.name for p in (Path(app.instance_path) / "outbox").glob("*.eml")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", look_while_writing)
    queue_one(app)
    assert mail.deliver_due(app) == 1
    # Mid-write (at the fsync) no *.eml existed; afterwards exactly the finished one does.
    assert seen and seen[0] == []
    assert len(eml_files(app)) == 1


def test_an_internationalized_domain_is_mailed_in_its_ascii_form(app: Flask) -> None:
    """The same mailbox, which every server takes: no SMTPUTF8 needed for a domain alone."""
    queue_one(app, address="ada@exämple.org")
    [row] = outbox(app)
    assert row.to_addr == "ada@xn--exmple-cua.org"
    assert mail.deliver_due(app) == 1
    [path] = eml_files(app)
    assert b"To: ada@xn--exmple-cua.org\n" in path.read_bytes()


def test_a_non_ascii_mailbox_is_written_in_utf8_not_encoded_words(app: Flask) -> None:
    """An address may not be RFC 2047-encoded: the .eml holds it in UTF-8, as SMTPUTF8
    sends it."""
    queue_one(app, address="тест@example.org")
    assert mail.deliver_due(app) == 1
    [path] = eml_files(app)
    raw = path.read_bytes()
    assert "To: тест@example.org\n".encode() in raw
    assert b"=?utf-8?" not in raw.split(b"\n\n", 1)[0].lower().replace(b"subject", b"")
    assert parse_file(path)["To"] == "тест@example.org"
