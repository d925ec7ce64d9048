"""A mail in bytes: headers and text and HTML parts, laid out as the email package does."""

from __future__ import annotations

import functools
import io
import random
import re
import sys
import unicodedata
from dataclasses import dataclass
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32, EmailPolicy
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any, cast

from campaign.models import OutboxMessage

SUBJECT_MAX = 300
# RFC 5321: a line of a mail is at most 998 octets before its CRLF.
SMTP_LINE_MAX = 998
# Headers that hold one link (RFC 2369, RFC 8058): written on one line while it fits 998.
ONE_LINE_HEADERS = frozenset({"List-Unsubscribe", "List-Unsubscribe-Post"})


@dataclass(frozen=True)
class Composed:
    """A mail's subject and bodies, and any headers of its own (List-Unsubscribe)."""

    subject: str
    text: str
    html: str | None
    headers: tuple[tuple[str, str], ...] = ()


def header_safe(value: str) -> str:
    """The value with control characters and line breaks replaced, fit for one mail header."""
    # CR/LF (and their Unicode cousins) would start a new header; other control
    # characters have no place in a header either. A printable value has none of them.
    if not value.isprintable():
        value = "".join(
            " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in value
        )
    return " ".join(value.split())


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
        # Header.encode() changes printable ASCII (no line break, no tab) only to fold a
        # line longer than max_line_length; it encodes only non-ASCII text.
        limit = self.max_line_length
        if name in ONE_LINE_HEADERS:
            # A link has no space to fold at: compat32 would move it whole to a line of its
            # own, and a parser may keep that line's leading space in the value.
            limit = SMTP_LINE_MAX
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
    for name, value in _mail_headers(sender, message, mail):
        # typeshed allows only str values; a Header (the subject's) is what compat32 takes.
        email[name] = value
    if mail.html:
        email.attach(_text_part(mail.text, "plain"))
        email.attach(_text_part(mail.html, "html"))
    return email


def _mail_headers(sender: str, message: OutboxMessage, mail: Composed) -> list[tuple[str, Any]]:
    """The mail's own headers, in order, for build_message() and _direct_bytes() alike."""
    subject = header_safe(mail.subject)
    return [
        ("From", sender),
        ("To", header_safe(message.to_addr)),
        # A Header RFC 2047-encodes a non-ASCII subject.
        ("Subject", subject if subject.isascii() else Header(subject, "utf-8")),
        # The queueing time and the fixed Message-ID make a retried mail recognisably the same.
        ("Date", format_datetime(message.created_at)),
        ("Message-ID", header_safe(message.message_id)),
        ("Auto-Submitted", "auto-generated"),
        *((name, header_safe(value)) for name, value in mail.headers),
    ]


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
        if isinstance(email, EmailMessage):
            # A non-ASCII address in UTF-8 (RFC 6532), as SMTPUTF8 sends it: the default
            # policy would RFC 2047-encode it, which no address may be.
            return email.as_bytes(policy=cast(EmailPolicy, email.policy).clone(utf8=True))
        return email.as_bytes()
    with io.BytesIO() as buffer:
        # As smtplib writes it: the message's policy, CRLF, "From " escaped; a non-ASCII
        # address needs SMTPUTF8, and its UTF-8 headers (see transport._Outlet.send).
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
    headers = _mail_headers(sender, message, mail)
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
    for name, value in mail.headers:
        email[name] = header_safe(value)
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
