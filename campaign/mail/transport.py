"""Where mail goes: an SMTP server, or .eml files in instance/outbox/ without one."""

from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
import ssl
import tempfile
from collections.abc import Iterable
from email.utils import parseaddr

from flask import Flask

from campaign.models import OutboxMessage

# Its own logger at INFO, so "mail to X written to path" shows under `campaign run` and
# `campaign serve` whatever the app logger's level; logging config can still change it.
log = logging.getLogger("campaign.mail")

# SMTP errors about one message: the connection stays usable for the next one.
_MESSAGE_ERRORS: tuple[type[Exception], ...] = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
)


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


def outbox_folder(app: Flask) -> str:
    """instance/outbox/: where mail goes as .eml files when no SMTP server is set."""
    return os.path.join(app.instance_path, "outbox")


def eml_name(message_id: int, created_at: dt.datetime) -> str:
    """The file name an outbox message is written to: <created-date>-<id>.eml."""
    return f"{created_at:%Y-%m-%d}-{message_id}.eml"


def remove_eml(paths: Iterable[str]) -> int:
    """Delete these written mails (those that exist); how many were deleted."""
    removed = 0
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def _write_eml(app: Flask, message: OutboxMessage, data: bytes) -> str:
    """Write the mail to instance/outbox/<created-date>-<id>.eml atomically; return the path."""
    outbox = outbox_folder(app)
    os.makedirs(outbox, exist_ok=True)
    path = os.path.join(outbox, eml_name(message.id, message.created_at))
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

    def send(self, message: OutboxMessage, data: bytes) -> str | None:
        """Hand the mail (mail_bytes()) to the SMTP server, or write it to instance/outbox/.

        The path of the file written, without SMTP.
        """
        if not self.smtp_host:
            path = _write_eml(self.app, message, data)
            log.info("mail to %s written to %s", message.to_addr, path)
            return path
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
        return None

    def close(self) -> None:
        """Close the SMTP connection politely, or at least close it."""
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()
        self._smtp = None
