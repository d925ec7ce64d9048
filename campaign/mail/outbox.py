"""Queueing mail: outbox rows inserted in the caller's transaction, and the nudge on commit."""

from __future__ import annotations

import functools
import os
import secrets
import threading
from collections.abc import Sequence
from email.utils import make_msgid, parseaddr
from typing import Any, Protocol
from typing import cast as typing_cast

import idna
from flask import current_app, has_app_context
from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    cast,
    delete,
    event,
    func,
    insert,
    literal,
    null,
    select,
)
from sqlalchemy.orm import Session

from campaign import hosts
from campaign.db import Direct, utcnow
from campaign.mail import transport
from campaign.mail.message import SUBJECT_MAX, header_safe
from campaign.models import LetterUpdate, OutboxMessage, Signature

_OUTBOX = typing_cast(Table, OutboxMessage.__table__)
_INSERT_ONE = Direct(insert(_OUTBOX).returning(_OUTBOX.c.id))


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
    """The address, header-safe, its domain in ASCII; ValueError unless it is exactly one
    address."""
    address = header_safe(to)
    if parseaddr(address)[1] != address or "@" not in address or " " in address:
        # Callers pass validated addresses; anything else is a bug, never a second recipient.
        raise ValueError(f"not a single mail address: {to!r}")
    return ascii_domain(address)


def ascii_domain(address: str) -> str:
    """The address with an internationalized domain in its ASCII form ("ada@exämple.org" ->
    "ada@xn--exmple-cua.org"): the same mailbox, which every mail server takes. Only a
    non-ASCII part before the @ needs a server that offers SMTPUTF8."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError:
        return address  # validated at signing; as it is, SMTPUTF8 carries it


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
    """The site root links in mail start with (app context): hosts.site_root()'s rule.

    BASE_URL; without it a request's own host only when it is a loopback one, so a spoofed
    Host header cannot send a genuine link to another site.
    """
    return hosts.site_root()


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


class Addressee(Protocol):
    """Whom a signer's mail goes to: a Signature, or signing.sign()'s Signer."""

    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str: ...


def _queue_kind(db: Session, kind: str, signature: Addressee) -> int:
    """Insert one row to compose when sent; its id."""
    # A Core INSERT with its values as parameters (compiled once, cached), on the session's
    # connection: no unit-of-work flush on the signer's request, and nothing rendered.
    row = _INSERT_ONE.first(db, _kind_row(kind, signature.id, signature.email, link_base()))
    assert row is not None
    message_id = row[0]
    _wake_on_commit(db)
    return int(message_id)


def queue_confirmation(db: Session, signature: Addressee) -> int:
    """Queue the mail asking a signer to confirm (composed when sent); its outbox id."""
    return _queue_kind(db, "confirm", signature)


def queue_already_signed(db: Session, signature: Addressee) -> int:
    """Queue the notice that an address already signed (composed when sent); its outbox id."""
    return _queue_kind(db, "already_signed", signature)


def queue_receipt(db: Session, signature: Addressee) -> int:
    """Queue the receipt of a signature that counts without confirmation (composed when sent)."""
    return _queue_kind(db, "receipt", signature)


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


def queue_update(db: Session, update: LetterUpdate, recipients: ColumnElement[bool]) -> int:
    """Queue the update's mail to each signature `recipients` selects, in one INSERT; how many.

    A letter may have tens of thousands of signers: one INSERT ... SELECT in the caller's
    transaction, no row built in Python. Each mail is composed when sent, like a receipt.
    """
    now = utcnow()
    # Unique Message-IDs made by the database: this update, the signature, a random part.
    mail_from = str(current_app.config["MAIL_FROM"]) if has_app_context() else "localhost"
    prefix = f"<update.{update.id}.{secrets.token_hex(6)}."
    suffix = f"@{_mail_domain(mail_from)}>"
    message_id = literal(prefix, String) + cast(Signature.id, String) + literal(suffix, String)
    columns = _OUTBOX.c
    values = {
        columns.created_at: literal(now, columns.created_at.type),
        columns.to_addr: Signature.email,
        columns.kind: literal("update", String),
        columns.link_base: literal(link_base(), String),
        columns.subject: literal("", String),
        columns.body_text: literal("", String),
        columns.body_html: null(),
        columns.message_id: message_id,
        columns.signature_id: Signature.id,
        columns.update_id: literal(update.id, columns.update_id.type),
        columns.attempts: literal(0, columns.attempts.type),
        columns.next_attempt_at: literal(now, columns.next_attempt_at.type),
        columns.last_error: literal("", String),
    }
    db.execute(
        insert(_OUTBOX).from_select(
            list(values),
            select(*values.values()).where(recipients).order_by(Signature.id),
        )
    )
    # Counted, not the INSERT's rowcount: psycopg reports -1 for this statement.
    queued = int(
        db.scalar(select(func.count()).select_from(_OUTBOX).where(_OUTBOX.c.update_id == update.id))
        or 0
    )
    if queued:
        _wake_on_commit(db)
    return queued


def _wake_on_commit(db: Session) -> None:
    """Nudge this process's sender once the caller commits; a rollback never wakes it."""
    db.info["mail_queued"] = True


# Listened to on the class, once: registering them on each request's new session cost
# more than the INSERT that queues the mail.
@event.listens_for(Session, "after_commit")
def _wake_if_queued(session: Session) -> None:
    if session.info.pop("mail_queued", False):
        wake()


@event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop("mail_queued", None)


# Every sender running in this process, so wake() can nudge them without an app.
_wakeups: set[threading.Event] = set()


def wake() -> None:
    """Nudge this process's sender so a just-committed mail leaves at once if it leads."""
    for wakeup in list(_wakeups):
        wakeup.set()


def forget_signers(db: Session, which: ColumnElement[bool]) -> None:
    """Delete the outbox rows of the signatures `which` selects (a condition on Signature).

    Sent or not, their mail named the signer: the rows go in the caller's transaction, and
    once it commits so do the .eml files this instance wrote for them without SMTP (an
    instance serving elsewhere keeps its own folder). A rollback keeps the files.
    """
    of_signers = _OUTBOX.c.signature_id.in_(select(Signature.id).where(which))
    folder = transport.outbox_folder(current_app) if has_app_context() else None
    if folder is not None and os.path.isdir(folder):
        written = db.execute(select(_OUTBOX.c.id, _OUTBOX.c.created_at).where(of_signers))
        paths = [os.path.join(folder, transport.eml_name(i, created)) for i, created in written]
        if paths:
            db.info.setdefault("mail_files_to_remove", []).extend(paths)
            if not event.contains(db, "after_commit", _remove_forgotten_files):
                event.listen(db, "after_commit", _remove_forgotten_files)
                event.listen(db, "after_rollback", _keep_forgotten_files)
    db.execute(delete(_OUTBOX).where(of_signers))


def _remove_forgotten_files(session: Session) -> None:
    transport.remove_eml(session.info.pop("mail_files_to_remove", ()))


def _keep_forgotten_files(session: Session) -> None:
    session.info.pop("mail_files_to_remove", None)
