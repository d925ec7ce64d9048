"""Composing mail into the outbox and delivering it.

A mail is an ``OutboxMessage`` row inserted in the same transaction as the signature
that caused it, so a mail exists if and only if that signature committed. A sender
thread in each serving process delivers due messages: by SMTP when ``SMTP_HOST`` is
set, otherwise as ``.eml`` files in ``instance/outbox/``. Each message is claimed by
an atomic UPDATE before it is sent, so two senders never send one message twice; a
failed delivery is retried with a doubling delay and never dropped.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import smtplib
import ssl
import tempfile
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from babel.core import Locale, UnknownLocaleError
from flask import Flask, current_app, has_app_context
from flask_babel import force_locale, format_timedelta
from flask_babel import gettext as _
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from campaign.db import session_scope, utcnow
from campaign.models import Campaign, OutboxMessage, Signature

# Its own logger at INFO, so "mail to X written to path" shows under `campaign run` and
# `campaign serve` whatever the app logger's level; logging config can still change it.
log = logging.getLogger("campaign.mail")

# A claimed message belongs to its sender this long; a sender that died mid-send
# releases it when the claim runs out, and another sender retries it.
CLAIM_SECONDS = 60
# Candidates read per claim attempt; another sender may win some of them.
CLAIM_CANDIDATES = 10
# How long an exiting process waits for its sender to finish the message in hand.
EXIT_JOIN_SECONDS = 5.0
SUBJECT_MAX = 300
ERROR_MAX = 2000
# RFC 5321: a line of a mail is at most 998 octets before its CRLF.
SMTP_LINE_MAX = 998

# SMTP errors about one message: the connection stays usable for the next one.
_MESSAGE_ERRORS: tuple[type[Exception], ...] = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
)


def header_safe(value: str) -> str:
    """The value with control characters and line breaks replaced, fit for one mail header."""
    # CR/LF (and their Unicode cousins) would start a new header; other control
    # characters have no place in a header either.
    cleaned = "".join(
        " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in value
    )
    return " ".join(cleaned.split())


def _mail_domain(mail_from: str) -> str:
    """The domain of the From address, for Message-IDs."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2]
    return header_safe(domain) or "localhost"


def queue(
    db: Session,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    signature_id: int | None = None,
) -> OutboxMessage:
    """Add a mail to the outbox in the caller's transaction (flush only)."""
    address = header_safe(to)
    if parseaddr(address)[1] != address or "@" not in address or " " in address:
        # Callers pass validated addresses; anything else is a bug, never a second recipient.
        raise ValueError(f"not a single mail address: {to!r}")
    mail_from = str(current_app.config["MAIL_FROM"]) if has_app_context() else "localhost"
    message = OutboxMessage(
        to_addr=address,
        subject=header_safe(subject)[:SUBJECT_MAX],
        body_text=text,
        body_html=html,
        message_id=make_msgid(domain=_mail_domain(mail_from)),
        signature_id=signature_id,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    db.add(message)
    db.flush()
    # Nudge this process's sender once the mail is committed; a rollback never wakes it.
    event.listen(db, "after_commit", _wake_after_commit, once=True)
    return message


def _wake_after_commit(_session: Session) -> None:
    wake()


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


def _compose(
    db: Session,
    signature: Signature,
    template: str,
    subject: Callable[[str], str],
    **context: Any,
) -> OutboxMessage:
    """Render templates/email/<template>.txt/.html in the signer's locale and queue the mail."""
    locale = _locale_of(signature)
    with force_locale(locale):
        title = _title_for(signature.campaign, locale)
        max_age = int(current_app.config["CONFIRM_MAX_AGE_SECONDS"])
        values = {
            "signature": signature,
            "campaign": signature.campaign,
            "title": title,
            "locale": locale.replace("_", "-"),
            "expires_in": format_timedelta(dt.timedelta(seconds=max_age), add_direction=False),
            **context,
        }
        # The app's Jinja environment (autoescape for .html, Babel's _), without the page
        # context processors: a mail is composed outside any request too (CLI, imports).
        env = current_app.jinja_env
        text = env.get_template(f"email/{template}.txt").render(values)
        html = env.get_template(f"email/{template}.html").render(values)
        rendered_subject = subject(header_safe(title))
    return queue(
        db,
        to=signature.email,
        subject=rendered_subject,
        text=text,
        html=html,
        signature_id=signature.id,
    )


def queue_confirmation(
    db: Session, signature: Signature, *, confirm_url: str, withdraw_url: str
) -> OutboxMessage:
    """Queue the mail asking a signer to confirm, with a withdraw link (needs an app context)."""
    return _compose(
        db,
        signature,
        "confirm",
        lambda title: str(_("Please confirm your signature: %(title)s", title=title)),
        confirm_url=confirm_url,
        withdraw_url=withdraw_url,
    )


def queue_already_signed(
    db: Session, signature: Signature, *, confirm_url: str | None, withdraw_url: str
) -> OutboxMessage:
    """Queue the notice to an address's owner that it already signed (confirm link if pending)."""
    return _compose(
        db,
        signature,
        "already_signed",
        lambda title: str(_("You have already signed: %(title)s", title=title)),
        confirm_url=confirm_url,
        withdraw_url=withdraw_url,
    )


@dataclass(frozen=True)
class _Claimed:
    """What a sender needs of a claimed message, read while it held the claim."""

    id: int
    created_at: dt.datetime
    to_addr: str
    subject: str
    body_text: str
    body_html: str | None
    message_id: str
    attempts: int


def _claim_next(app: Flask, now: dt.datetime) -> _Claimed | None:
    """Claim one due message for this sender and commit the claim, or None when none is due."""
    free = or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now)
    with session_scope(app) as db:
        candidates = db.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at <= now, free)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(CLAIM_CANDIDATES)
        ).all()
        for message_id in candidates:
            # The WHERE is checked again on the row's latest version (PostgreSQL waits for a
            # concurrent claimer's commit; SQLite's BEGIN IMMEDIATE serialises us), so of two
            # senders exactly one updates the row.
            result = db.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == message_id,
                    OutboxMessage.sent_at.is_(None),
                    OutboxMessage.next_attempt_at <= now,
                    free,
                )
                .values(claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS))
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue
            row = db.get_one(OutboxMessage, message_id)
            return _Claimed(
                id=row.id,
                created_at=row.created_at,
                to_addr=row.to_addr,
                subject=row.subject,
                body_text=row.body_text,
                body_html=row.body_html,
                message_id=row.message_id,
                attempts=row.attempts,
            )
    return None


def build_message(mail_from: str, message: _Claimed) -> EmailMessage:
    """The RFC 5322 message of a claimed outbox row: text, and HTML as an alternative."""
    email = EmailMessage()
    email["From"] = header_safe(mail_from)
    email["To"] = header_safe(message.to_addr)
    email["Subject"] = header_safe(message.subject)
    # The queueing time and the fixed Message-ID make a retried mail recognisably the same.
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = header_safe(message.message_id)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.body_text, cte=_transfer_encoding(message.body_text))
    if message.body_html:
        email.add_alternative(
            message.body_html, subtype="html", cte=_transfer_encoding(message.body_html)
        )
    return email


def _transfer_encoding(body: str) -> str:
    """7bit or 8bit while lines fit SMTP's limit, so links stay whole in the raw mail and .eml."""
    # quoted-printable would break a long confirm link across lines with "=" soft breaks,
    # and a signer reading the .eml (no SMTP host) could not copy it.
    if all(len(line.encode()) <= SMTP_LINE_MAX for line in body.splitlines()):
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


def _write_eml(app: Flask, message: _Claimed, email: EmailMessage) -> str:
    """Write the mail to instance/outbox/<created-date>-<id>.eml atomically; return the path."""
    outbox = os.path.join(app.instance_path, "outbox")
    os.makedirs(outbox, exist_ok=True)
    path = os.path.join(outbox, f"{message.created_at:%Y-%m-%d}-{message.id}.eml")
    fd, tmp = tempfile.mkstemp(dir=outbox, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(email.as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        # A reader of the outbox sees the whole file or none of it.
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _mark_sent(app: Flask, message_ids: list[int], sent_at: dt.datetime) -> None:
    with session_scope(app) as db:
        db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(message_ids), OutboxMessage.sent_at.is_(None))
            .values(sent_at=sent_at, claimed_until=None, last_error="")
            .execution_options(synchronize_session=False)
        )


@dataclass
class _DeliveryState:
    """What one process remembers between delivery rounds."""

    # Sent, but not yet marked sent (the database was down): marked before any claim.
    unmarked: dict[int, dt.datetime] = field(default_factory=dict)
    # Failed because the SMTP server was unreachable: released together once it answers.
    held_back: set[int] = field(default_factory=set)
    # When this process last tried the server on behalf of the held-back mail.
    probed_at: dt.datetime | None = None


def _state(app: Flask) -> _DeliveryState:
    state: _DeliveryState = app.extensions.setdefault("mail_delivery", _DeliveryState())
    return state


def _record_failure(app: Flask, message: _Claimed, error: BaseException, now: dt.datetime) -> None:
    """Count the failed attempt, schedule the retry with a doubling delay, release the claim."""
    attempts = message.attempts + 1
    delay = min(
        float(app.config["MAIL_RETRY_BASE_SECONDS"]) * 2 ** (attempts - 1),
        float(app.config["MAIL_RETRY_MAX_SECONDS"]),
    )
    retry_at = now + dt.timedelta(seconds=delay)
    reason = f"{type(error).__name__}: {error}"[:ERROR_MAX]
    with session_scope(app) as db:
        db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id, OutboxMessage.sent_at.is_(None))
            .values(
                attempts=OutboxMessage.attempts + 1,
                last_error=reason,
                next_attempt_at=retry_at,
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
    log.warning(
        "mail %d to %s failed (attempt %d), retrying at %s: %s",
        message.id,
        message.to_addr,
        attempts,
        retry_at.isoformat(timespec="seconds"),
        reason,
    )


def deliver_due(
    app: Flask, now: dt.datetime | None = None, *, stop: threading.Event | None = None
) -> int:
    """Send every due message, each claimed atomically first; return how many were sent.

    With ``stop``, the round ends between two messages once the event is set (shutdown).
    """
    state = _state(app)
    pending = state.unmarked
    if pending:
        # Mark what an earlier round sent before claiming anything: once its claim ran
        # out, this sender would otherwise send it again.
        for sent_at, ids in _group_by_time(dict(pending)).items():
            _mark_sent(app, ids, sent_at)
            for message_id in ids:
                pending.pop(message_id, None)
    held_back = state.held_back
    mail_from = str(app.config["MAIL_FROM"])
    use_smtp = bool(app.config.get("SMTP_HOST"))
    if held_back:
        _probe(app, state, now or utcnow())
    smtp: smtplib.SMTP | None = None
    sent = 0
    try:
        while stop is None or not stop.is_set():
            current = now or utcnow()
            message = _claim_next(app, current)
            if message is None:
                break
            try:
                email = build_message(mail_from, message)
                if use_smtp:
                    if smtp is None:
                        smtp = _connect(app)
                    # An explicit envelope: the recipient is the stored address, whatever
                    # the headers say.
                    smtp.send_message(
                        email, from_addr=parseaddr(mail_from)[1], to_addrs=[message.to_addr]
                    )
                else:
                    path = _write_eml(app, message, email)
                    log.info("mail to %s written to %s", message.to_addr, path)
            except Exception as error:
                _record_failure(app, message, error, current)
                if use_smtp and not isinstance(error, _MESSAGE_ERRORS):
                    # The server is unreachable or the connection broke: leave the rest
                    # for the next round rather than spend a timeout on each of them.
                    held_back.add(message.id)
                    state.probed_at = current
                    break
                continue
            sent_at = now or utcnow()
            try:
                _mark_sent(app, [message.id], sent_at)
            except Exception:
                pending[message.id] = sent_at
                raise
            sent += 1
            if held_back:
                # The server is back: what its outage pushed down the retry schedule
                # goes out now, in this round, instead of after its backoff.
                _release(app, list(held_back), current)
                held_back.clear()
    finally:
        if smtp is not None:
            _quit(smtp)
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


def _group_by_time(pending: dict[int, dt.datetime]) -> dict[dt.datetime, list[int]]:
    groups: dict[dt.datetime, list[int]] = {}
    for message_id, sent_at in pending.items():
        groups.setdefault(sent_at, []).append(message_id)
    return groups


def _quit(smtp: smtplib.SMTP) -> None:
    """Close the connection politely, or at least close it."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


@dataclass
class _Sender:
    """One process's sender thread and the events that steer it."""

    pid: int
    wakeup: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


_senders_lock = threading.Lock()
# Every sender running in this process, so wake() can nudge them without an app.
_wakeups: set[threading.Event] = set()


def wake() -> None:
    """Nudge this process's sender so a just-committed mail leaves within a second."""
    for wakeup in list(_wakeups):
        wakeup.set()


def _sender_loop(app: Flask, sender: _Sender) -> None:
    """Deliver, then wait for a nudge or the poll interval; survive every error."""
    poll = float(app.config.get("MAIL_POLL_SECONDS") or 1.0)
    failing = False
    while not sender.stopping.is_set():
        # Cleared before delivering: a nudge that arrives during delivery is kept.
        sender.wakeup.clear()
        try:
            deliver_due(app, stop=sender.stopping)
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
        sender.wakeup.wait(poll)


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
