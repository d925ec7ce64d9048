"""Composing mail into the outbox and delivering it.

A mail is an ``OutboxMessage`` row inserted in the same transaction as the signature
that caused it, so a mail exists if and only if that signature committed. The rows of
confirmation and "already signed" mails only name what to send (a ``kind``, the
signature, the site root its links start with): the sender composes them as it sends
them, so a signer's request inserts one small row and renders nothing meanwhile.

Every serving process runs a sender thread, but one sender in the cluster delivers at a
time: the holder of a lease (a PostgreSQL advisory lock on a connection of its own, or
an flock on a file beside the SQLite database) that the database server or the kernel
releases when its process dies; the others stand by and try again every few seconds.
The leader polls with a plain read, claims up to ``CLAIM_BATCH`` due messages by one
atomic UPDATE (so even two senders never send one message twice), sends them over one
SMTP connection (or writes ``.eml`` files to ``instance/outbox/`` without ``SMTP_HOST``)
and marks them sent in one transaction. A failed delivery is retried with a doubling
delay and never dropped.
"""

from __future__ import annotations

import atexit
import datetime as dt
import fcntl
import functools
import io
import logging
import os
import random
import re
import smtplib
import ssl
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32, EmailPolicy
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any, cast
from urllib.parse import urlsplit

from babel.core import Locale, UnknownLocaleError
from flask import Flask, current_app, has_app_context, has_request_context, url_for
from flask_babel import force_locale, format_timedelta, get_translations
from jinja2 import Template, pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.pool import NullPool
from werkzeug.routing import MapAdapter

from campaign import signing
from campaign.db import reading, session_scope, utcnow
from campaign.models import Campaign, OutboxMessage, Signature

# Its own logger at INFO, so "mail to X written to path" shows under `campaign run` and
# `campaign serve` whatever the app logger's level; logging config can still change it.
log = logging.getLogger("campaign.mail")

# A claimed message belongs to its sender this long; a sender that died mid-send
# releases it when the claim runs out, and another sender retries it.
CLAIM_SECONDS = 60
# Messages claimed in one transaction, composed and sent together, marked in one more.
CLAIM_BATCH = 50
# What a batch sent is marked at least this often, so a sender killed mid-batch (whose
# claims then run out) sends again at most the mail of this last second.
MARK_EVERY_SECONDS = 1.0
# A wake-up this soon after the last round waits for the rest of it: under load the next
# round then claims every mail committed meanwhile at once, rather than one each.
ROUND_GAP_SECONDS = 0.1
# While the database or the lease fails, the sender tries again this often.
FAILING_RETRY_SECONDS = 1.0
# How long an exiting process waits for its sender to finish the message in hand.
EXIT_JOIN_SECONDS = 5.0
SUBJECT_MAX = 300
ERROR_MAX = 2000
# RFC 5321: a line of a mail is at most 998 octets before its CRLF.
SMTP_LINE_MAX = 998
# The retry time of a message that can never be sent (its signature is gone).
NEVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
# The cluster's PostgreSQL advisory lock for the sender: "campmail" in ASCII.
LEASE_KEY = int.from_bytes(b"campmail", "big")
# TCP keepalives on the lease's connection, at both ends: libpq's, and (set on the
# session, since a pooler may refuse startup options) the server's. A leader whose machine
# dies says nothing: without them the server would keep its session, and the lock, until
# the kernel's keepalive gives up (two hours on Linux); with them it ends the session
# within about 5 + 3 x 2 = 11 s. Likewise a leader cut off from the server notices soon.
_LEASE_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
_LEASE_KEEPALIVES_SQL = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"
)

# SMTP errors about one message: the connection stays usable for the next one.
_MESSAGE_ERRORS: tuple[type[Exception], ...] = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
)

_OUTBOX = cast(Table, OutboxMessage.__table__)
_INSERT_ONE = insert(_OUTBOX).returning(_OUTBOX.c.id)
# Executed once per batch with one parameter set per message (executemany).
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("b_id"), _OUTBOX.c.sent_at.is_(None))
    .values(
        sent_at=bindparam("b_sent_at"),
        claimed_until=None,
        last_error="",
        # What was sent stays on the row, for the organizers and the signer's questions.
        subject=bindparam("b_subject"),
        body_text=bindparam("b_text"),
        body_html=bindparam("b_html"),
    )
)
_MARK_FAILED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("b_id"), _OUTBOX.c.sent_at.is_(None))
    .values(
        attempts=_OUTBOX.c.attempts + 1,
        last_error=bindparam("b_error"),
        next_attempt_at=bindparam("b_retry_at"),
        claimed_until=None,
    )
)


def header_safe(value: str) -> str:
    """The value with control characters and line breaks replaced, fit for one mail header."""
    # CR/LF (and their Unicode cousins) would start a new header; other control
    # characters have no place in a header either. A printable value has none of them.
    if not value.isprintable():
        value = "".join(
            " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in value
        )
    return " ".join(value.split())


@functools.lru_cache(maxsize=8)
def _mail_domain(mail_from: str) -> str:
    """The domain of the From address, for Message-IDs."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2]
    return header_safe(domain) or "localhost"


def _message_id() -> str:
    """A new unique Message-ID in the From address's domain."""
    mail_from = str(current_app.config["MAIL_FROM"]) if has_app_context() else "localhost"
    return make_msgid(domain=_mail_domain(mail_from))


def _single_address(to: str) -> str:
    """The address, header-safe; ValueError unless it is exactly one address."""
    address = header_safe(to)
    if parseaddr(address)[1] != address or "@" not in address or " " in address:
        # Callers pass validated addresses; anything else is a bug, never a second recipient.
        raise ValueError(f"not a single mail address: {to!r}")
    return address


def queue(
    db: Session,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    signature_id: int | None = None,
) -> OutboxMessage:
    """Add a mail composed by the caller to the outbox in the caller's transaction (flush only)."""
    message = OutboxMessage(
        to_addr=_single_address(to),
        subject=header_safe(subject)[:SUBJECT_MAX],
        body_text=text,
        body_html=html,
        message_id=_message_id(),
        signature_id=signature_id,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    db.add(message)
    db.flush()
    _wake_on_commit(db)
    return message


def link_base() -> str:
    """The site root links in mail start with: BASE_URL, else this request's (app context)."""
    base = current_app.config.get("BASE_URL")
    if base:
        # As views.embed.absolute_url(): BASE_URL, then the script root url_for() puts before
        # every path. Outside a request (the CLI) there is none: links start at BASE_URL.
        script_root = url_for("public.index").rstrip("/") if has_request_context() else ""
        return str(base).rstrip("/") + script_root
    # The scheme, host and script root url_for() builds absolute links with (in a request:
    # its Host header or SERVER_NAME; outside one it needs SERVER_NAME, as url_for does).
    return url_for("public.index", _external=True).rstrip("/")


def _kind_row(kind: str, signature_id: int, to: str, base: str) -> dict[str, Any]:
    """The outbox row of a mail the sender composes from the signature when it sends it."""
    now = utcnow()
    return {
        "created_at": now,
        "to_addr": _single_address(to),
        "kind": kind,
        "link_base": base,
        "subject": "",
        "body_text": "",
        "body_html": None,
        "message_id": _message_id(),
        "signature_id": signature_id,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
    }


def _queue_kind(db: Session, kind: str, signature: Signature) -> int:
    """Insert one row to compose when sent; its id."""
    # A Core INSERT with its values as parameters (compiled once, cached): no unit-of-work
    # flush on the signer's request, and nothing rendered.
    message_id = db.scalar(_INSERT_ONE, _kind_row(kind, signature.id, signature.email, link_base()))
    _wake_on_commit(db)
    return int(message_id)


def queue_confirmation(db: Session, signature: Signature) -> int:
    """Queue the mail asking a signer to confirm (composed when sent); its outbox id."""
    return _queue_kind(db, "confirm", signature)


def queue_already_signed(db: Session, signature: Signature) -> int:
    """Queue the notice that an address already signed (composed when sent); its outbox id."""
    return _queue_kind(db, "already_signed", signature)


def queue_confirmations(db: Session, signature_ids: Sequence[int]) -> None:
    """Queue the confirmation mail of each of these signatures (an import's) in one INSERT."""
    if not signature_ids:
        return
    base = link_base()
    recipients = db.execute(
        select(Signature.id, Signature.email)
        .where(Signature.id.in_(signature_ids))
        .order_by(Signature.id)
    )
    rows = [_kind_row("confirm", sid, email, base) for sid, email in recipients]
    if rows:
        db.execute(insert(_OUTBOX), rows)
        _wake_on_commit(db)


def _wake_on_commit(db: Session) -> None:
    """Nudge this process's sender once the caller commits; a rollback never wakes it."""
    db.info["mail_queued"] = True
    if not event.contains(db, "after_commit", _wake_if_queued):
        event.listen(db, "after_commit", _wake_if_queued)
        event.listen(db, "after_rollback", _forget_queued)


def _wake_if_queued(session: Session) -> None:
    if session.info.pop("mail_queued", False):
        wake()


def _forget_queued(session: Session) -> None:
    session.info.pop("mail_queued", None)


@dataclass(frozen=True)
class Composed:
    """A mail's subject and bodies."""

    subject: str
    text: str
    html: str | None


class SignatureGone(Exception):
    """The signature a mail was to be composed from is erased or deleted."""


def compose(db: Session, message: OutboxMessage) -> Composed:
    """The mail an outbox row stands for: as stored, or composed now (needs an app context).

    The sender composes every mail it sends the same way, a batch at a time; a queued mail
    reads the same.
    """
    signature = None
    if message.kind is not None and message.sent_at is None and message.signature_id:
        signature = db.get(Signature, message.signature_id)
    [mail] = _compose_all(current_app, [(message, signature)])
    if isinstance(mail, Exception):
        raise mail
    return mail


def _compose_all(
    app: Flask, rows: Sequence[tuple[OutboxMessage, Signature | None]]
) -> list[Composed | Exception]:
    """Each row's stored mail, or its kind composed from the signature; or why it cannot be."""
    mails: list[Composed | Exception | None] = [None] * len(rows)
    by_locale: dict[str, list[int]] = {}
    locales: dict[str, str] = {}
    for index, (message, signature) in enumerate(rows):
        if message.kind is None or message.sent_at is not None:
            mails[index] = Composed(message.subject, message.body_text, message.body_html)
        elif signature is None:
            mails[index] = SignatureGone("the signature of this mail was deleted")
        elif signature.erased_at is not None:
            mails[index] = SignatureGone(f"signature {signature.id} was erased")
        else:
            if signature.locale not in locales:
                locales[signature.locale] = _locale_of(signature)
            by_locale.setdefault(locales[signature.locale], []).append(index)
    batch = _Batch(app)
    for locale, indexes in by_locale.items():
        try:
            # The mails of one language together: the translations, and what else does
            # not depend on the signer, are looked up once for all of them.
            with force_locale(locale):
                words = _words(app, locale)
                for index in indexes:
                    message, signature = rows[index]
                    try:
                        mails[index] = batch.compose(message, cast(Signature, signature), words)
                    except Exception as error:
                        mails[index] = error
        except Exception as error:
            for index in indexes:
                mails[index] = mails[index] or error
    return [cast(Composed | Exception, mail) for mail in mails]


@dataclass(frozen=True)
class _Words:
    """What mails in one language share: its translations and the links' lifetime in words."""

    locale: str
    # The language's translation of a message (named so pybabel extracts its calls).
    gettext: Callable[[str], str]
    expires_in: str


def _words(app: Flask, locale: str) -> _Words:
    """The words of the locale forced by the caller (flask_babel.force_locale)."""
    max_age = int(app.config["CONFIRM_MAX_AGE_SECONDS"])
    return _Words(
        locale=locale,
        gettext=get_translations().ugettext,
        expires_in=format_timedelta(dt.timedelta(seconds=max_age), add_direction=False),
    )


def _template_gettext(translate: Callable[[str], str]) -> Callable[..., str]:
    """Jinja's newstyle `_` (as its i18n extension builds it) over these translations.

    The app's `_` looks up Flask-Babel's translations again for every string; this one
    was given them, so a mail's dozen strings cost one look-up per language and batch.
    """

    @pass_context
    def gettext(context: Context, string: str, **variables: Any) -> str:
        translated = translate(string)
        if context.eval_ctx.autoescape:
            # The message is ours; Markup % escapes the values put into it.
            translated = Markup(translated)  # noqa: S704
        return translated % variables

    return gettext


class _Batch:
    """What composing a batch's mails needs once: the secret, templates, URL adapters."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.secret = str(app.config["SECRET_KEY"])
        self._templates: dict[str, Template] = {}
        self._adapters: dict[str, MapAdapter] = {}
        self._gettexts: dict[str, Callable[..., str]] = {}

    def compose(self, message: OutboxMessage, signature: Signature, words: _Words) -> Composed:
        """The mail of the message's kind to the signer, in the words' language."""
        kind = str(message.kind)
        campaign = signature.campaign
        base = message.link_base or ""

        def link(purpose: str) -> str:
            token = signing.make_token(self.secret, signature.id, purpose)
            return self._absolute(
                base, f"public.{purpose}", {"slug": campaign.slug, "token": token}
            )

        # A notice to a signer who already signed offers the confirm link only while the
        # signature waits for it (as the sign view decided when it queued the notice).
        waiting = campaign.require_confirmation and signature.confirmed_at is None
        confirm_url = link("confirm") if kind == "confirm" or waiting else None
        title = _title_for(campaign, words.locale)
        gettext = self._gettext(words)
        values = {
            "_": gettext,
            "gettext": gettext,
            "signature": signature,
            "campaign": campaign,
            "title": title,
            "locale": words.locale.replace("_", "-"),
            "expires_in": words.expires_in,
            "confirm_url": confirm_url,
            "withdraw_url": link("withdraw"),
        }
        text_body = self._template(f"email/{kind}.txt").render(values)
        html_body = self._template(f"email/{kind}.html").render(values)
        subject = _subject(words, kind, header_safe(title))
        return Composed(header_safe(subject)[:SUBJECT_MAX], text_body, html_body)

    def _gettext(self, words: _Words) -> Callable[..., str]:
        if words.locale not in self._gettexts:
            self._gettexts[words.locale] = _template_gettext(words.gettext)
        return self._gettexts[words.locale]

    def _template(self, name: str) -> Template:
        # The app's Jinja environment (autoescape for .html, Babel's _), without the page
        # context processors: mail is composed outside any request, in the sender.
        if name not in self._templates:
            self._templates[name] = self.app.jinja_env.get_template(name)
        return self._templates[name]

    def _absolute(self, base: str, endpoint: str, values: dict[str, Any]) -> str:
        """An absolute link: the base's scheme and host, then the path the URL map builds."""
        parts = urlsplit(base)
        if base not in self._adapters:
            # Bound to the base's script root, the map builds "<script root>/c/<slug>/...".
            # The origin is kept as stored, so the link is the one url_for() gave in the
            # request.
            self._adapters[base] = self.app.url_map.bind(
                parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme
            )
        return f"{parts.scheme}://{parts.netloc}{self._adapters[base].build(endpoint, values)}"


def _subject(words: _Words, kind: str, title: str) -> str:
    """The subject of a kind of mail about the letter titled title, in the words' language."""
    if kind == "confirm":
        return words.gettext("Please confirm your signature: %(title)s") % {"title": title}
    return words.gettext("You have already signed: %(title)s") % {"title": title}


def _locale_of(signature: Signature) -> str:
    """The signer's locale if Babel knows it, else the first configured language."""
    try:
        Locale.parse(signature.locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError, AttributeError):
        return str(current_app.config.get("LANGUAGES", ["en"])[0])
    return signature.locale.replace("-", "_")


def _title_for(campaign: Campaign, locale: str) -> str:
    """The letter's title in the signer's language when a translation exists."""
    language = locale.split("_")[0]
    for translation in campaign.translations:
        if translation.locale in (locale, language):
            return translation.title
    return campaign.title


class _MailPolicy(Compat32):
    """compat32, writing a header that needs neither folding nor encoding as it stands.

    compat32 puts every header through email.header.Header, the largest cost of writing a
    mail; a printable ASCII value that fits its line comes out of it unchanged, so it is
    written directly. Anything else (a long or non-ASCII value, a Header) goes through it.
    """

    def fold(self, name: str, value: Any) -> str:
        """The header as one line when it fits, else as compat32 folds it."""
        if self._fits(name, value):
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        """The header as one line when it fits, else as compat32 folds it; ASCII bytes."""
        if self._fits(name, value):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)

    def _fits(self, name: str, value: Any) -> bool:
        # Header.encode() splits a line only when it is longer than max_line_length, and
        # only at whitespace, which it keeps; it encodes only non-ASCII text.
        limit = self.max_line_length
        return (
            isinstance(value, str)
            and value.isascii()
            and value.isprintable()
            and bool(limit)
            and len(name) + 2 + len(value) <= cast(int, limit)
        )


_POLICY = _MailPolicy()
# The email package's boundary: 15 "=", a random number of sys.maxsize's width, "==".
_BOUNDARY_WIDTH = len(str(sys.maxsize - 1))


def _boundary(*bodies: str) -> str:
    """A multipart boundary as the email package makes them, found in none of the bodies."""
    # Given none, the generator makes one and compiles a regular expression per mail to
    # check that no line of the encoded parts is the boundary. A boundary found nowhere
    # in the bodies is in none of their lines either: a 7bit or 8bit part is its body's
    # lines, and quoted-printable writes every "=" as "=3D", so it never has two in a row.
    while True:
        boundary = f"{'=' * 15}{random.randrange(sys.maxsize):0{_BOUNDARY_WIDTH}d}=="
        if not any(boundary in body for body in bodies):
            return boundary


@functools.lru_cache(maxsize=8)
def _from_header(mail_from: str) -> str | None:
    """The From header of a mail from this address; None unless the address is ASCII."""
    if not parseaddr(mail_from)[1].isascii():
        return None
    return formataddr(parseaddr(header_safe(mail_from)), charset="utf-8")


def build_message(mail_from: str, message: OutboxMessage, mail: Composed) -> Message:
    """The RFC 5322 message of a claimed outbox row: text, and HTML as an alternative."""
    sender = _from_header(mail_from)
    if sender is None or not message.to_addr.isascii():
        return _build_international(mail_from, message, mail)
    # The compat32 MIME classes build the same mail as EmailMessage with its default policy
    # in a quarter of the CPU (no header registry parsing each header): the sender's largest
    # cost after composing. Headers that may hold non-ASCII text are RFC 2047-encoded here.
    if mail.html:
        email: Message = MIMEMultipart(
            "alternative", boundary=_boundary(mail.text, mail.html), policy=_POLICY
        )
    else:
        email = _text_part(mail.text, "plain")
    email["From"] = sender
    email["To"] = header_safe(message.to_addr)
    subject = header_safe(mail.subject)
    # A Header RFC 2047-encodes a non-ASCII subject (typeshed allows only str here).
    email["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")  # type: ignore[assignment]
    # The queueing time and the fixed Message-ID make a retried mail recognisably the same.
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = header_safe(message.message_id)
    email["Auto-Submitted"] = "auto-generated"
    if mail.html:
        email.attach(_text_part(mail.text, "plain"))
        email.attach(_text_part(mail.html, "html"))
    return email


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 text part in the transfer encoding _transfer_encoding() picks."""
    charset = Charset("utf-8")
    # None: the body as it is, and set_payload() says 7bit or 8bit; else quoted-printable.
    # (typeshed types body_encoding as int, but None is the documented "no encoding".)
    qp = _transfer_encoding(body) == "quoted-printable"
    charset.body_encoding = QP if qp else None  # type: ignore[assignment]
    part = MIMENonMultipart("text", subtype, charset="utf-8", policy=_POLICY)
    # Ending in a line break, as EmailMessage.set_content() ends every text part.
    part.set_payload(body if body.endswith("\n") else body + "\n", charset)
    return part


# A body's line ends, as the email package's generator splits it into lines.
_LINE_END = re.compile(r"\r\n|\r|\n")
# What smtplib's generator writes as ">From " (mangle_from_), lest a mailbox split there.
_FROM_LINE = re.compile(r"^From ", re.MULTILINE)
_POLICY_SMTP = _POLICY.clone(linesep="\r\n")


def mail_bytes(mail_from: str, message: OutboxMessage, mail: Composed, *, smtp: bool) -> bytes:
    """The mail as build_message() builds it, in bytes: the outbox file's, or the SMTP data.

    With smtp, as smtplib's send_message() writes it: CRLF line ends, body lines starting
    "From " as ">From ". Most mails are written here directly, in the email package's
    layout (tests/test_mail_build.py compares the two); only a mail to or from a non-ASCII
    address, or with a body that needs quoted-printable, is built and flattened by it.
    """
    data = _direct_bytes(mail_from, message, mail, smtp)
    if data is not None:
        return data
    email = build_message(mail_from, message, mail)
    if not smtp:
        return email.as_bytes()
    with io.BytesIO() as buffer:
        # As smtplib writes it: the message's policy, CRLF, "From " escaped; a non-ASCII
        # address needs SMTPUTF8, and its UTF-8 headers (see _Outlet.send).
        utf8 = isinstance(email, EmailMessage)
        generator = BytesGenerator(
            buffer, policy=cast(EmailPolicy, email.policy).clone(utf8=True) if utf8 else None
        )
        generator.flatten(email, linesep="\r\n")
        return buffer.getvalue()


def _direct_bytes(
    mail_from: str, message: OutboxMessage, mail: Composed, smtp: bool
) -> bytes | None:
    """mail_bytes() written without the email package; None when the mail needs it."""
    sender = _from_header(mail_from)
    if sender is None or not message.to_addr.isascii():
        return None
    bodies = [(mail.text, "plain"), (mail.html, "html")] if mail.html else [(mail.text, "plain")]
    encodings = [_transfer_encoding(body) for body, _subtype in bodies]
    if "quoted-printable" in encodings:
        return None
    policy = _POLICY_SMTP if smtp else _POLICY
    newline = policy.linesep.encode()
    subject = header_safe(mail.subject)
    headers: list[tuple[str, Any]] = [
        ("From", sender),
        ("To", header_safe(message.to_addr)),
        # A Header RFC 2047-encodes a non-ASCII subject, as in build_message().
        ("Subject", subject if subject.isascii() else Header(subject, "utf-8")),
        ("Date", format_datetime(message.created_at)),
        ("Message-ID", header_safe(message.message_id)),
        ("Auto-Submitted", "auto-generated"),
    ]
    parts = [
        _direct_part(policy, body, subtype, encoding, smtp)
        for (body, subtype), encoding in zip(bodies, encodings, strict=True)
    ]
    if len(parts) == 1:
        # A text-only mail is its one part, the mail's headers after the part's.
        part_headers, body = parts[0]
        return part_headers + _headers(policy, headers) + newline + body
    boundary = _boundary(*(body for body, _subtype in bodies)).encode()
    top = [("Content-Type", f'multipart/alternative; boundary="{boundary.decode()}"')]
    layout = [_headers(policy, [*top, ("MIME-Version", "1.0"), *headers]), newline]
    for number, (part_headers, body) in enumerate(parts):
        # The generator's layout: "--boundary" on its own line, a line break before each
        # but the first, the closing "--boundary--" after the last part's line break.
        layout += [newline if number else b"", b"--", boundary, newline, part_headers, newline]
        layout.append(body)
    layout += [newline, b"--", boundary, b"--", newline]
    return b"".join(layout)


def _direct_part(
    policy: Compat32, body: str, subtype: str, encoding: str, smtp: bool
) -> tuple[bytes, bytes]:
    """A text part's headers and body in bytes, as _text_part() and the generator give them."""
    headers = _headers(
        policy,
        [
            ("Content-Type", f'text/{subtype}; charset="utf-8"'),
            ("MIME-Version", "1.0"),
            ("Content-Transfer-Encoding", encoding),
        ],
    )
    payload = body if body.endswith("\n") else body + "\n"
    if smtp:
        payload = _FROM_LINE.sub(">From ", payload)
    return headers, policy.linesep.join(_LINE_END.split(payload)).encode()


def _headers(policy: Compat32, headers: list[tuple[str, Any]]) -> bytes:
    """The headers as the generator writes them with this policy."""
    return b"".join(policy.fold_binary(name, value) for name, value in headers)


def _build_international(mail_from: str, message: OutboxMessage, mail: Composed) -> Message:
    """build_message() for a non-ASCII address: SMTPUTF8 needs the default policy's headers."""
    email = EmailMessage()
    email["From"] = header_safe(mail_from)
    email["To"] = header_safe(message.to_addr)
    email["Subject"] = header_safe(mail.subject)
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = header_safe(message.message_id)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(mail.text, cte=_transfer_encoding(mail.text))
    if mail.html:
        email.add_alternative(mail.html, subtype="html", cte=_transfer_encoding(mail.html))
    return email


def _transfer_encoding(body: str) -> str:
    """7bit or 8bit while lines fit SMTP's limit, so links stay whole in the raw mail and .eml."""
    # quoted-printable would break a long confirm link across lines with "=" soft breaks,
    # and a signer reading the .eml (no SMTP host) could not copy it.
    lines = body.splitlines()
    # A character is at most 4 octets in UTF-8: most bodies need no encoding to tell.
    if max(map(len, lines), default=0) <= SMTP_LINE_MAX // 4 or all(
        len(line.encode()) <= SMTP_LINE_MAX for line in lines
    ):
        return "7bit" if body.isascii() else "8bit"
    return "quoted-printable"


def _connect(app: Flask) -> smtplib.SMTP:
    """An SMTP connection per the app's SMTP_* settings, logged in when a username is set."""
    config = app.config
    smtp = smtplib.SMTP(
        str(config["SMTP_HOST"]),
        int(config.get("SMTP_PORT") or 25),
        timeout=float(config.get("SMTP_TIMEOUT") or 10),
    )
    try:
        if config.get("SMTP_STARTTLS"):
            smtp.starttls(context=ssl.create_default_context())
        if config.get("SMTP_USERNAME"):
            smtp.login(str(config["SMTP_USERNAME"]), str(config.get("SMTP_PASSWORD") or ""))
    except BaseException:
        smtp.close()
        raise
    return smtp


def _write_eml(app: Flask, message: OutboxMessage, data: bytes) -> str:
    """Write the mail to instance/outbox/<created-date>-<id>.eml atomically; return the path."""
    outbox = os.path.join(app.instance_path, "outbox")
    os.makedirs(outbox, exist_ok=True)
    path = os.path.join(outbox, f"{message.created_at:%Y-%m-%d}-{message.id}.eml")
    # Not named *.eml until whole: a reader globbing the outbox (pathlib's "*" matches dot
    # files) must never pick up a mail still being written.
    fd, tmp = tempfile.mkstemp(dir=outbox, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # A reader of the outbox sees the whole file or none of it.
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class _Outlet:
    """Where a round's mail goes: one SMTP connection, opened on first use, or the folder."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.mail_from = str(app.config["MAIL_FROM"])
        self.smtp_host = bool(app.config.get("SMTP_HOST"))
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: OutboxMessage, data: bytes) -> None:
        """Hand the mail (mail_bytes()) to the SMTP server, or write it to instance/outbox/."""
        if not self.smtp_host:
            path = _write_eml(self.app, message, data)
            log.info("mail to %s written to %s", message.to_addr, path)
            return
        if self._smtp is None:
            self._smtp = _connect(self.app)
        sender = parseaddr(self.mail_from)[1]
        options: tuple[str, ...] = ()
        self._smtp.ehlo_or_helo_if_needed()
        if not (sender + message.to_addr).isascii():
            # As send_message() does for a non-ASCII address (its server must offer it).
            if not self._smtp.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError(
                    "One or more source or delivery addresses require internationalized "
                    "email support, but the server does not advertise the required SMTPUTF8 "
                    "capability"
                )
            options = ("SMTPUTF8", "BODY=8BITMIME")
        # An explicit envelope: the recipient is the stored address, whatever the headers say.
        self._smtp.sendmail(sender, [message.to_addr], data, options)

    def close(self) -> None:
        """Close the SMTP connection politely, or at least close it."""
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()
        self._smtp = None


@dataclass(frozen=True)
class _Sent:
    """When a message left, and what it said."""

    sent_at: dt.datetime
    mail: Composed


@dataclass
class _Outcome:
    """What part of a batch did, written back in one transaction by _settle()."""

    sent: dict[int, _Sent] = field(default_factory=dict)
    # Parameter sets of _MARK_FAILED.
    failed: list[dict[str, Any]] = field(default_factory=list)
    # Claimed but not attempted (shutdown, the server went away): free for the next claim.
    released: list[int] = field(default_factory=list)

    def fail(self, message: OutboxMessage, reason: str, retry_at: dt.datetime) -> None:
        """Count a failed attempt at message; retry it at retry_at."""
        self.failed.append({"b_id": message.id, "b_error": reason, "b_retry_at": retry_at})

    def __bool__(self) -> bool:
        return bool(self.sent or self.failed or self.released)


def _settle(app: Flask, outcome: _Outcome) -> None:
    """Mark sent, count failures and release claims, all in one transaction."""
    if not outcome:
        return
    with session_scope(app) as db:
        if outcome.sent:
            db.execute(
                _MARK_SENT,
                [
                    {
                        "b_id": message_id,
                        "b_sent_at": sent.sent_at,
                        "b_subject": sent.mail.subject,
                        "b_text": sent.mail.text,
                        "b_html": sent.mail.html,
                    }
                    for message_id, sent in outcome.sent.items()
                ],
            )
        if outcome.failed:
            db.execute(_MARK_FAILED, outcome.failed)
        if outcome.released:
            db.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(outcome.released), _OUTBOX.c.sent_at.is_(None))
                .values(claimed_until=None)
            )


@dataclass
class _DeliveryState:
    """What one process remembers between delivery rounds."""

    # Sent, but not yet marked sent (the database was down): marked before any claim.
    unmarked: dict[int, _Sent] = field(default_factory=dict)
    # Failed because the SMTP server was unreachable: released together once it answers.
    held_back: set[int] = field(default_factory=set)
    # When this process last tried the server on behalf of the held-back mail.
    probed_at: dt.datetime | None = None


def _state(app: Flask) -> _DeliveryState:
    state: _DeliveryState = app.extensions.setdefault("mail_delivery", _DeliveryState())
    return state


def _settle_or_remember(app: Flask, state: _DeliveryState, outcome: _Outcome) -> None:
    """Settle the outcome; if the database refuses, remember what was sent, then re-raise."""
    try:
        _settle(app, outcome)
    except Exception:
        state.unmarked.update(outcome.sent)
        raise


def _due(now: dt.datetime) -> tuple[ColumnElement[bool], ...]:
    """The conditions of a message to send now: unsent, due, and unclaimed or claim expired."""
    return (
        OutboxMessage.sent_at.is_(None),
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )


def _any_due(app: Flask, now: dt.datetime) -> bool:
    """Whether any message is due: a plain read, so an idle poll takes no write lock."""
    with reading(), session_scope(app) as db:
        return db.scalar(select(OutboxMessage.id).where(*_due(now)).limit(1)) is not None


def _claim(app: Flask, now: dt.datetime) -> list[OutboxMessage]:
    """Claim up to CLAIM_BATCH due messages in one transaction; those this sender now holds."""
    due = _due(now)
    candidates = (
        select(OutboxMessage.id)
        .where(*due)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(CLAIM_BATCH)
        # PostgreSQL: leave rows another claimer is updating to it (ignored on SQLite).
        .with_for_update(skip_locked=True)
    )
    with session_scope(app) as db:
        # The WHERE is checked again on each row's latest version (SQLite's BEGIN IMMEDIATE
        # serialises claimers; PostgreSQL re-checks a row another claimer committed
        # meanwhile), so of two senders exactly one updates a row, and RETURNING names
        # the rows this one holds.
        claimed = db.scalars(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(candidates), *due)
            .values(claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS))
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False)
        ).all()
    return sorted(claimed, key=lambda message: (message.next_attempt_at, message.id))


def _compose_batch(app: Flask, batch: list[OutboxMessage]) -> dict[int, Composed | Exception]:
    """Each claimed message's mail, or why it cannot be composed."""
    wanted = {m.signature_id for m in batch if m.kind is not None and m.signature_id}
    with app.app_context(), reading(), session_scope(app) as db:
        # One query for the batch's signers, their letters and the letters' translations.
        signers = {
            signature.id: signature
            for signature in db.scalars(
                select(Signature)
                .where(Signature.id.in_(wanted))
                .options(joinedload(Signature.campaign).selectinload(Campaign.translations))
            )
        }
        rows = [(message, signers.get(message.signature_id or 0)) for message in batch]
        mails = _compose_all(app, rows)
    return {message.id: mail for message, mail in zip(batch, mails, strict=True)}


def _retry_at(app: Flask, message: OutboxMessage, now: dt.datetime) -> dt.datetime:
    """When to try a message again after this failure: a doubling delay, capped."""
    delay = min(
        float(app.config["MAIL_RETRY_BASE_SECONDS"]) * 2**message.attempts,
        float(app.config["MAIL_RETRY_MAX_SECONDS"]),
    )
    return now + dt.timedelta(seconds=delay)


def _failed(
    outcome: _Outcome,
    message: OutboxMessage,
    error: BaseException,
    retry_at: dt.datetime,
) -> None:
    """Record and log a failed attempt."""
    reason = f"{type(error).__name__}: {error}"[:ERROR_MAX]
    outcome.fail(message, reason, retry_at)
    if retry_at == NEVER:
        log.warning("mail %d to %s dropped, never retried: %s", message.id, message.to_addr, reason)
        return
    log.warning(
        "mail %d to %s failed (attempt %d), retrying at %s: %s",
        message.id,
        message.to_addr,
        message.attempts + 1,
        retry_at.isoformat(timespec="seconds"),
        reason,
    )


def _server_away(
    app: Flask,
    state: _DeliveryState,
    outcome: _Outcome,
    failed: OutboxMessage,
    rest: list[OutboxMessage],
    error: BaseException,
    now: dt.datetime,
) -> None:
    """Count an attempt at the rest of the batch too, and hold all of it back."""
    reason = f"{type(error).__name__}: {error}"[:ERROR_MAX]
    for message in rest:
        outcome.fail(message, reason, _retry_at(app, message, now))
    if rest:
        log.warning("%d more mails wait for the SMTP server too", len(rest))
    state.held_back.add(failed.id)
    state.held_back.update(message.id for message in rest)
    state.probed_at = now


def _deliver(
    app: Flask,
    state: _DeliveryState,
    outlet: _Outlet,
    batch: list[OutboxMessage],
    now: dt.datetime | None,
    stop: threading.Event | None,
) -> tuple[int, bool]:
    """Compose and send a claimed batch; (how many were sent, whether the server is away)."""
    claimed_at = time.monotonic()
    mails = _compose_batch(app, batch)
    outcome = _Outcome()
    unsettled_since = claimed_at
    sent = 0
    try:
        for index, message in enumerate(batch):
            if (stop is not None and stop.is_set()) or (
                time.monotonic() - claimed_at > CLAIM_SECONDS / 2
            ):
                # Shutting down, or a slow server would outlast the claim: the rest waits
                # for the next claim, by this sender or another.
                outcome.released.extend(m.id for m in batch[index:])
                break
            current = now or utcnow()
            mail = mails[message.id]
            try:
                if isinstance(mail, Exception):
                    raise mail
                data = mail_bytes(outlet.mail_from, message, mail, smtp=outlet.smtp_host)
            except SignatureGone as error:
                _failed(outcome, message, error, NEVER)
                continue
            except Exception as error:
                _failed(outcome, message, error, _retry_at(app, message, current))
                continue
            try:
                outlet.send(message, data)
            except Exception as error:
                _failed(outcome, message, error, _retry_at(app, message, current))
                if outlet.smtp_host and not isinstance(error, _MESSAGE_ERRORS):
                    # The server is unreachable or the connection broke: the rest of the
                    # batch fails with it, rather than spend a timeout on each, and all of
                    # it backs off together until the server answers a probe.
                    _server_away(app, state, outcome, message, batch[index + 1 :], error, current)
                    return sent, True
                continue
            outcome.sent[message.id] = _Sent(now or utcnow(), mail)
            sent += 1
            if state.held_back:
                # The server is back: what its outage pushed down the retry schedule
                # goes out now, in this round, instead of after its backoff.
                _release(app, list(state.held_back), current)
                state.held_back.clear()
            if time.monotonic() - unsettled_since >= MARK_EVERY_SECONDS:
                _settle_or_remember(app, state, outcome)
                outcome = _Outcome()
                unsettled_since = time.monotonic()
    finally:
        _settle_or_remember(app, state, outcome)
    return sent, False


def deliver_due(
    app: Flask, now: dt.datetime | None = None, *, stop: threading.Event | None = None
) -> int:
    """Send every due message, claimed in batches; return how many were sent.

    With ``stop``, the round ends between two messages once the event is set (shutdown).
    """
    state = _state(app)
    if state.unmarked:
        # Mark what an earlier round sent before claiming anything: once its claim ran
        # out, this sender would otherwise send it again.
        _settle(app, _Outcome(sent=dict(state.unmarked)))
        state.unmarked.clear()
    if state.held_back:
        _probe(app, state, now or utcnow())
    outlet = _Outlet(app)
    sent = 0
    try:
        while stop is None or not stop.is_set():
            current = now or utcnow()
            # Most polls find nothing: a read answers them, and only then a write claims.
            if not _any_due(app, current):
                break
            batch = _claim(app, current)
            if not batch:
                break  # another sender claimed them first
            count, server_away = _deliver(app, state, outlet, batch, now, stop)
            sent += count
            if server_away:
                break
    finally:
        outlet.close()
    return sent


def _probe(app: Flask, state: _DeliveryState, now: dt.datetime) -> None:
    """While the server is away, make one held-back mail due every MAIL_RETRY_BASE_SECONDS.

    Each mail's own retry delay doubles up to MAIL_RETRY_MAX_SECONDS, so without this
    probe a server back after a minute's outage would wait for the next retry to fall
    due; with it, the mail goes out within seconds and its success releases the rest.
    """
    interval = dt.timedelta(seconds=float(app.config["MAIL_RETRY_BASE_SECONDS"]))
    if state.probed_at is not None and now - state.probed_at < interval:
        return
    state.probed_at = now
    first = min(state.held_back)
    if _release(app, [first], now) == 0:
        # Sent by another process, or due anyway: nothing for this process to hold.
        state.held_back.discard(first)


def _release(app: Flask, message_ids: list[int], now: dt.datetime) -> int:
    """Make unsent messages due now (the server failed, not they); return how many."""
    with session_scope(app) as db:
        result = db.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(message_ids),
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


class _Lease:
    """Leadership of the cluster's mail: one holder at a time. This one: the process alone.

    The base class serves a database no other process shares (SQLite in memory).
    """

    def acquire(self) -> bool:
        """Take the lease if it is free; True when this process holds it."""
        return True

    def check(self) -> bool:
        """Whether this process still holds the lease it took."""
        return True

    def release(self) -> None:
        """Give the lease up (exiting); the next standby sender takes it."""

    def __str__(self) -> str:
        return "a database of this process alone"


class _FileLease(_Lease):
    """An flock on a file beside the SQLite database: the kernel drops it when we die."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Lock the file without waiting; write our pid in it for whoever looks."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        return True

    def check(self) -> bool:
        """An flock lasts while its file stays open: always held."""
        return self._fd is not None

    def release(self) -> None:
        """Close the file, which drops the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __str__(self) -> str:
        return f"flock on {self.path}"


class _PostgresLease(_Lease):
    """A session advisory lock on a connection of its own: the server drops it with the session."""

    def __init__(self, url: URL) -> None:
        # Not pooled: closing the connection must end the session, and the lock with it.
        self._engine = create_engine(url, poolclass=NullPool, connect_args=_LEASE_KEEPALIVES)
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        """Try the advisory lock without waiting."""
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
                self._conn.exec_driver_sql(_LEASE_KEEPALIVES_SQL)
            held = bool(self._conn.scalar(select(func.pg_try_advisory_lock(LEASE_KEY))))
            self._conn.commit()
        except Exception:
            self.release()
            raise
        return held

    def check(self) -> bool:
        """Whether the lock's connection still answers (the lock lives as long as it)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
        except Exception:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Close the connection: the server ends the session and its lock."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:
                conn.invalidate()
        self._engine.dispose()

    def __str__(self) -> str:
        return f"PostgreSQL advisory lock {LEASE_KEY}"


def _lease_for(app: Flask) -> _Lease:
    """The lease that elects one sender among the processes sharing the app's database."""
    url: URL = app.extensions["engine"].url
    backend = url.get_backend_name()
    if backend == "postgresql":
        return _PostgresLease(make_url(app.config.get("MAIL_LEASE_DATABASE_URL") or url))
    database = url.database or ""
    if backend == "sqlite" and database not in ("", ":memory:") and "mode" not in url.query:
        # All processes of one SQLite deployment share the database's folder.
        return _FileLease(os.path.abspath(database) + ".mail-sender.lock")
    return _Lease()


@dataclass
class _Sender:
    """One process's sender thread and the events that steer it."""

    pid: int
    wakeup: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    # Whether this process's sender holds the lease and delivers for the cluster.
    leading: bool = False


_senders_lock = threading.Lock()
# Every sender running in this process, so wake() can nudge them without an app.
_wakeups: set[threading.Event] = set()


def wake() -> None:
    """Nudge this process's sender so a just-committed mail leaves at once if it leads."""
    for wakeup in list(_wakeups):
        wakeup.set()


def _lead(sender: _Sender, lease: _Lease, checked_at: float, interval: float) -> float:
    """Take the lease, or check the one held every interval; when it was last checked."""
    pid = os.getpid()
    now = time.monotonic()
    if not sender.leading:
        sender.leading = lease.acquire()
        if sender.leading:
            log.info("mail sender: process %d leads and delivers for the cluster (%s)", pid, lease)
        return now
    if now - checked_at < interval:
        return checked_at
    if not lease.check():
        sender.leading = False
        log.warning("mail sender: process %d lost the lease (%s); standing by", pid, lease)
    return now


def _sender_loop(app: Flask, sender: _Sender) -> None:
    """Lead or stand by; as leader deliver, then wait for a nudge or the poll; survive errors."""
    poll = float(app.config.get("MAIL_POLL_SECONDS") or 0.25)
    standby = float(app.config.get("MAIL_LEASE_RETRY_SECONDS") or 2.0)
    lease = _lease_for(app)
    failing = False
    standing_by = False
    checked_at = 0.0
    try:
        while not sender.stopping.is_set():
            # Cleared before delivering: a nudge that arrives during delivery is kept.
            sender.wakeup.clear()
            started = time.monotonic()
            try:
                checked_at = _lead(sender, lease, checked_at, standby)
                if sender.leading:
                    standing_by = False
                    deliver_due(app, stop=sender.stopping)
                elif not standing_by:
                    standing_by = True
                    log.info(
                        "mail sender: process %d stands by while another leads (%s)",
                        os.getpid(),
                        lease,
                    )
            except Exception as error:
                # The database or the disk is away; say so once with the traceback, then briefly.
                if failing:
                    log.warning("mail sender: still failing: %s", error)
                else:
                    log.exception("mail sender: delivery failed; will retry")
                failing = True
            else:
                if failing:
                    log.info("mail sender: delivering again")
                failing = False
            if failing:
                sender.stopping.wait(max(poll, FAILING_RETRY_SECONDS))
            elif sender.leading:
                # Another process's commits do not wake us: the poll finds their mail.
                sender.wakeup.wait(poll)
                sender.stopping.wait(max(0.0, started + ROUND_GAP_SECONDS - time.monotonic()))
            else:
                # Standing by: nudges are for the leader; try the lease again later.
                sender.stopping.wait(standby)
    finally:
        lease.release()
        sender.leading = False


def start_sender(app: Flask) -> bool:
    """Start this process's sender thread for the app unless it runs; True when started."""
    current: _Sender | None = app.extensions.get("mail_sender")
    pid = os.getpid()
    if current is not None and current.pid == pid:
        return False
    with _senders_lock:
        current = app.extensions.get("mail_sender")
        if current is not None and current.pid == pid:
            return False
        # A forked worker inherits its parent's record but not its thread: start its own.
        sender = _Sender(pid=pid)
        sender.thread = threading.Thread(
            target=_sender_loop, args=(app, sender), name="campaign-mail-sender", daemon=True
        )
        app.extensions["mail_sender"] = sender
        _wakeups.add(sender.wakeup)
        sender.thread.start()
        # On a normal exit (gunicorn worker restart, Ctrl-C) finish the message in hand
        # rather than die mid-send, which would send it again once its claim runs out.
        atexit.register(stop_sender, app, EXIT_JOIN_SECONDS)
    log.info("mail sender started in process %d", pid)
    return True


def stop_sender(app: Flask, timeout: float = 10.0) -> None:
    """Stop this process's sender thread for the app and wait for it (tests, shutdown)."""
    with _senders_lock:
        sender: _Sender | None = app.extensions.pop("mail_sender", None)
        if sender is None or sender.pid != os.getpid():
            return
        _wakeups.discard(sender.wakeup)
    sender.stopping.set()
    sender.wakeup.set()
    if sender.thread is not None:
        sender.thread.join(timeout)


def init_app(app: Flask) -> None:
    """Start the sender in serving processes (on their first request) when MAIL_SENDER is true."""
    _state(app)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not app.config.get("MAIL_SENDER"):
        return

    @app.before_request
    def _ensure_sender() -> None:
        start_sender(app)
