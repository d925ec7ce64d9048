"""The sender's shortcuts in writing a mail give the bytes the email package would."""

from __future__ import annotations

import copy
import email
import io
import itertools
import random
import string
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mail_pinned import normalised

from campaign import mail
from campaign.db import utcnow
from campaign.mail import message
from campaign.models import OutboxMessage

NAMES = ["Subject", "To", "From", "Message-ID", "Content-Transfer-Encoding", "X"]
# Printable ASCII and the characters Header treats specially: tab, CR/LF, ";" and ",".
VALUES = st.text(alphabet=string.printable + "\x7f\x0b\x0c\x1c", max_size=120) | st.text(
    max_size=60
)


@settings(max_examples=600, deadline=None)
@given(name=st.sampled_from(NAMES), value=VALUES, linesep=st.sampled_from(["\n", "\r\n"]))
def test_a_header_is_written_as_compat32_writes_it(name: str, value: str, linesep: str) -> None:
    ours, theirs = message._POLICY.clone(linesep=linesep), policy.compat32.clone(linesep=linesep)
    try:
        expected = theirs.fold_binary(name, value)
    except Exception as error:
        with pytest.raises(type(error)):
            ours.fold_binary(name, value)
        return
    assert ours.fold_binary(name, value) == expected
    assert ours.fold(name, value) == theirs.fold(name, value)


@pytest.mark.parametrize("words", ["word ", "a bc ", "x, y; ", "long" * 30])
@pytest.mark.parametrize("length", range(66, 92))
def test_a_header_is_folded_only_past_its_line(words: str, length: int) -> None:
    value = (words * 30)[: length - len("Subject: ")]
    assert message._POLICY.fold_binary("Subject", value) == policy.compat32.fold_binary(
        "Subject", value
    )


def test_the_boundary_occurs_in_no_body(monkeypatch: pytest.MonkeyPatch) -> None:
    numbers = itertools.chain([1, 1, 2], itertools.repeat(3))
    monkeypatch.setattr(random, "randrange", lambda _stop: next(numbers))
    taken = "=" * 15 + "1".zfill(19) + "=="
    assert message._boundary("plain", f"--{taken}") == "=" * 15 + "2".zfill(19) + "=="
    assert message._boundary(f"x{taken}", "html") == "=" * 15 + "3".zfill(19) + "=="


def test_a_multipart_mail_keeps_its_boundary_out_of_its_parts() -> None:
    row = OutboxMessage(
        id=1,
        to_addr="ada@example.org",
        message_id="<1@example.org>",
        created_at=utcnow(),
    )
    built = mail.build_message(
        "campaign@localhost", row, mail.Composed("Hi", "text\n", "<p>html</p>")
    )
    boundary = built.get_boundary()
    assert boundary is not None and boundary.startswith("=" * 15)
    parsed = email.message_from_bytes(built.as_bytes(), policy=policy.default)
    assert [part.get_content_type() for part in parsed.iter_parts()] == [  # type: ignore[attr-defined]
        "text/plain",
        "text/html",
    ]


LINES = st.lists(
    st.sampled_from(["From here", ">From", "", " ", "x" * 1000, "Zoë, vous", "--=="])
    | st.text(max_size=40),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    mail_from=st.sampled_from(
        [
            "campaign@localhost",
            "Lettre ouverte — Zoë <letters@example.org>",
            "Zoë <zoë@example.org>",
        ]
    ),
    to=st.sampled_from(["ada@example.org", "zoë@example.org"]),
    subject=st.text(max_size=150),
    text=LINES,
    html=st.none() | LINES,
    line_end=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_mail_bytes_are_what_the_email_package_writes(
    mail_from: str, to: str, subject: str, text: list[str], html: list[str] | None, line_end: str
) -> None:
    row = OutboxMessage(id=1, to_addr=to, message_id="<1@example.org>", created_at=utcnow())
    composed = mail.Composed(
        subject, line_end.join(text), None if html is None else line_end.join(html)
    )
    built = mail.build_message(mail_from, row, composed)
    outbox_file = mail.mail_bytes(mail_from, row, composed, smtp=False)
    smtp_data = mail.mail_bytes(mail_from, row, composed, smtp=True)
    # An international mail's file is in UTF-8 as SMTPUTF8 sends it (no encoded address).
    utf8 = isinstance(built, EmailMessage)
    as_file = built.as_bytes(policy=built.policy.clone(utf8=True)) if utf8 else built.as_bytes()
    assert normalised(outbox_file) == normalised(as_file)
    assert normalised(smtp_data) == normalised(smtplib_data(built))


def smtplib_data(message: Message) -> bytes:
    """What smtplib.SMTP.send_message() hands to sendmail() for this message."""
    copied = copy.copy(message)
    international = isinstance(message, EmailMessage)
    with io.BytesIO() as buffer:
        if international:
            generator = BytesGenerator(buffer, policy=message.policy.clone(utf8=True))
        else:
            generator = BytesGenerator(buffer)
        generator.flatten(copied, linesep="\r\n")
        return buffer.getvalue()
