"""Composing mail into the outbox and delivering it.

A mail is an ``OutboxMessage`` row inserted in the same transaction as the signature
that caused it, so a mail exists if and only if that signature committed. The rows of
confirmation mails, "already signed" notices, receipts (to a signer of a letter that
needs no confirmation) and organizers' updates (one per counted signature, queued by one
INSERT ... SELECT) only name what to send (a ``kind``, the signature, the site root
its links start with): the sender composes them as it sends them, so a signer's request
inserts one small row and renders nothing meanwhile.

Every serving process runs a sender thread, but one sender in the cluster delivers at a
time: the holder of a lease (a PostgreSQL advisory lock on a connection of its own, or
an flock on a file beside the SQLite database) that the database server or the kernel
releases when its process dies; the others stand by and try again every few seconds.
The leader polls with a plain read, claims up to ``CLAIM_BATCH`` due messages by one
atomic UPDATE (so even two senders never send one message twice), sends them over one
SMTP connection (or writes ``.eml`` files to ``instance/outbox/`` without ``SMTP_HOST``)
and marks them sent in one transaction. A failed delivery is retried with a doubling
delay and never dropped.

Composing and writing are the sender's CPU, so a batch is composed language by language
(translations looked up once, not per string), and a mail's bytes are written directly in
the layout the email package gives them (tests/test_mail_pinned.py holds them byte for
byte); the email package itself builds only the rare mail that needs more.

The package: ``outbox`` queues mail, ``composition`` composes a batch's mails, ``message``
writes a mail's bytes, ``transport`` hands them to the SMTP server or the folder, and
``lease`` elects the one sender. Delivery and the sender's thread are here, and so is every
name the rest of the app and the tests use (a test replacing ``mail._settle`` or
``mail.deliver_due`` replaces what the code here calls).
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import (
    ColumnElement,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.orm import joinedload

from campaign.db import reading, session_scope, utcnow
from campaign.mail import summary
from campaign.mail.composition import NoLongerCounts as NoLongerCounts
from campaign.mail.composition import SignatureGone as SignatureGone
from campaign.mail.composition import Undeliverable as Undeliverable
from campaign.mail.composition import UpdateGone as UpdateGone
from campaign.mail.composition import _compose_all
from campaign.mail.composition import compose as compose
from campaign.mail.composition import links_on as links_on
from campaign.mail.composition import sample_update as sample_update
from campaign.mail.lease import _Lease, _lease_for
from campaign.mail.lease import _PostgresLease as _PostgresLease
from campaign.mail.message import SMTP_LINE_MAX as SMTP_LINE_MAX
from campaign.mail.message import SUBJECT_MAX as SUBJECT_MAX
from campaign.mail.message import Composed as Composed
from campaign.mail.message import build_message as build_message
from campaign.mail.message import header_safe as header_safe
from campaign.mail.message import mail_bytes as mail_bytes
from campaign.mail.outbox import _OUTBOX, _wakeups
from campaign.mail.outbox import forget_signers as forget_signers
from campaign.mail.outbox import link_base as link_base
from campaign.mail.outbox import queue as queue
from campaign.mail.outbox import queue_already_signed as queue_already_signed
from campaign.mail.outbox import queue_confirmation as queue_confirmation
from campaign.mail.outbox import queue_confirmations as queue_confirmations
from campaign.mail.outbox import queue_receipt as queue_receipt
from campaign.mail.outbox import queue_update as queue_update
from campaign.mail.outbox import wake as wake
from campaign.mail.transport import _MESSAGE_ERRORS, _Outlet, remove_eml
from campaign.models import Campaign, LetterUpdate, OutboxMessage, Signature

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

ERROR_MAX = 2000

# The retry time of a message that must never be sent (its signature is gone, or an
# update's signer no longer counts).
NEVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


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


@dataclass(frozen=True)
class _Sent:
    """When a message left, and what it said."""

    sent_at: dt.datetime
    mail: Composed
    # The .eml file it was written to, without SMTP.
    path: str | None = None


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
    orphans: list[str] = []
    with session_scope(app) as db:
        if outcome.sent:
            written = {i: sent.path for i, sent in outcome.sent.items() if sent.path}
            if written:
                # A signer erased while their mail was being written: the erasure deleted
                # the row (and the files it found); the file written since goes too.
                kept = set(db.scalars(select(_OUTBOX.c.id).where(_OUTBOX.c.id.in_(written))))
                orphans = [path for i, path in written.items() if i not in kept]
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
    remove_eml(orphans)


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
        update_ids = {m.update_id for m in batch if m.kind == "update" and m.update_id}
        updates = (
            {
                u.id: u
                for u in db.scalars(select(LetterUpdate).where(LetterUpdate.id.in_(update_ids)))
            }
            if update_ids
            else {}
        )
        rows = [(message, signers.get(message.signature_id or 0)) for message in batch]
        mails = _compose_all(app, rows, updates)
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
            except Undeliverable as error:
                _failed(outcome, message, error, NEVER)
                continue
            except Exception as error:
                _failed(outcome, message, error, _retry_at(app, message, current))
                continue
            try:
                path = outlet.send(message, data)
            except Exception as error:
                _failed(outcome, message, error, _retry_at(app, message, current))
                if outlet.smtp_host and not isinstance(error, _MESSAGE_ERRORS):
                    # The server is unreachable or the connection broke: the rest of the
                    # batch fails with it, rather than spend a timeout on each, and all of
                    # it backs off together until the server answers a probe.
                    _server_away(app, state, outcome, message, batch[index + 1 :], error, current)
                    return sent, True
                continue
            outcome.sent[message.id] = _Sent(now or utcnow(), mail, path)
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


class Activity:
    """The requests this process is serving, and when the last one ended.

    The sender's CPU share is for sharing its worker (and the worker's interpreter lock)
    with signers; a process that serves no one has nothing to share, and its backlog goes
    out at full speed (see Pace).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.serving = 0
        self.ended = float("-inf")

    def begin(self) -> None:
        """A request came in."""
        with self._lock:
            self.serving += 1

    def end(self) -> None:
        """A request was answered."""
        with self._lock:
            self.serving -= 1
            self.ended = time.monotonic()

    def busy(self, quiet: float) -> bool:
        """Whether a request is in flight or one ended less than quiet seconds ago."""
        return self.serving > 0 or time.monotonic() - self.ended < quiet

    def wrap(self, wsgi_app: Callable[..., Any]) -> Callable[..., Any]:
        """The WSGI app, counting its requests here (until the app returns its response)."""

        def counted(environ: Any, start_response: Any) -> Any:
            self.begin()
            try:
                return wsgi_app(environ, start_response)
            finally:
                self.end()

        return counted


class Pace:
    """Keeps a thread's CPU time under a share of one core by resting between batches.

    After each batch it rests (until ``stop`` is set) in proportion to the CPU the thread
    used since the last rest: with a share of 0.25, 10 ms of composing buys 30 ms of rest.
    Time spent waiting (on the database, the disk, an SMTP server) is not CPU and costs no
    rest, so a slow mail server is not slowed down further. With ``busy``, it rests only
    while busy() says the process is serving: after a surge of signers, the mail they
    queued goes out at full speed instead of at the share.
    """

    def __init__(
        self,
        share: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.thread_time,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.share = share
        self.stop = stop
        self.clock = clock
        self.busy = busy
        self.mark = clock()

    def rest(self) -> float:
        """Rest for what the CPU used since the last rest asks; the seconds asked."""
        used = self.clock() - self.mark
        wait = 0.0
        if 0 < self.share < 1 and used > 0 and (self.busy is None or self.busy()):
            wait = used * (1 - self.share) / self.share
            self.stop.wait(wait)
        self.mark = self.clock()
        return wait


def deliver_due(
    app: Flask,
    now: dt.datetime | None = None,
    *,
    stop: threading.Event | None = None,
    pace: Pace | None = None,
) -> int:
    """Send every due message, claimed in batches; return how many were sent.

    With ``stop``, the round ends between two messages once the event is set (shutdown).
    With ``pace``, it rests after each batch (the sender thread's CPU cap).
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
            if pace is not None:
                pace.rest()
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


@dataclass
class _Sender:
    """One process's sender thread and the events that steer it."""

    pid: int
    wakeup: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    # Whether this process's sender holds the lease and delivers for the cluster.
    leading: bool = False
    # What time it is (UTC), for the daily summaries; tests drive it.
    clock: Callable[[], dt.datetime] = utcnow
    # The UTC day whose summaries this process, as leader, has sent (or found sent).
    digest_day: dt.date | None = None


_senders_lock = threading.Lock()


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


def send_digests_due(app: Flask, sender: _Sender) -> int:
    """As leader, send the day's summaries once DIGEST_HOUR (UTC) has passed; how many were sent.

    A process looks once a day (the organizers' claimed days keep any other process, or
    `campaign send-digest`, from sending one twice); a failure is retried next round.
    """
    if not app.config.get("DIGEST_ENABLED", True):
        return 0
    now = sender.clock()
    if sender.digest_day == now.date() or now.hour < int(app.config.get("DIGEST_HOUR", 7)):
        return 0
    try:
        results = summary.send_digests(app, now)
    except summary.DigestError as error:
        log.warning("daily summaries not sent today: %s", error)
        results = []
    sender.digest_day = now.date()
    sent = sum(result.outcome == "sent" for result in results)
    if results:
        log.info("daily summaries: %d queued, %d with nothing to say", sent, len(results) - sent)
    return sent


def _sender_loop(app: Flask, sender: _Sender) -> None:
    """Lead or stand by; as leader deliver, then wait for a nudge or the poll; survive errors."""
    poll = float(app.config.get("MAIL_POLL_SECONDS") or 0.25)
    standby = float(app.config.get("MAIL_LEASE_RETRY_SECONDS") or 2.0)
    lease = _lease_for(app)
    activity: Activity | None = app.extensions.get("mail_activity")
    quiet = float(app.config["MAIL_SENDER_QUIET_SECONDS"])
    pace = Pace(
        float(app.config.get("MAIL_SENDER_CPU_SHARE") or 1.0),
        sender.stopping,
        busy=(lambda: activity.busy(quiet)) if activity is not None else None,
    )
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
                    deliver_due(app, stop=sender.stopping, pace=pace)
                    if send_digests_due(app, sender):
                        deliver_due(app, stop=sender.stopping, pace=pace)
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
    activity = Activity()
    app.extensions["mail_activity"] = activity
    app.wsgi_app = activity.wrap(app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request
    def _ensure_sender() -> None:
        start_sender(app)
