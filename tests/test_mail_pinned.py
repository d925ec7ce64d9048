"""The sender's mails, byte for byte: what it writes to the outbox and hands to SMTP.

Each case's mail is compared with tests/mail_golden/, written by the sender as it was
before its composing was made cheaper (the receipts' receipt-*.eml by the sender that
first sent them), so a change in a byte of any header, part or encoding fails here. Only
what differs between two sends of one mail is normalised: the multipart boundary (random)
and the links' tokens (timestamped). The rows' dates and Message-IDs are fixed before
sending. After a deliberate change of the mails, rewrite the golden files with
CAMPAIGN_WRITE_GOLDEN_MAIL=1 and read their diff.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from test_mail import SmtpServer, eml_files

from campaign import mail
from campaign.db import new_session
from campaign.models import Campaign, LetterTranslation, OutboxMessage, Signature

GOLDEN = Path(__file__).parent / "mail_golden"
WRITE_ENV = "CAMPAIGN_WRITE_GOLDEN_MAIL"
CREATED_AT = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
TOKEN = re.compile(rb"/(confirm|withdraw)/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
BOUNDARY = re.compile(rb'boundary="([^"]+)"')
FREE = "Free the press"
LONG_TITLE = (
    "An open letter to the government on the release of every journalist, lawyer and "
    "human rights defender held without trial, and on the freedom of the press"
)
LONG_ACCENTED_TITLE = (
    "Lettre ouverte au gouvernement sur la libération de tous les journalistes, avocats "
    "et défenseurs des droits humains détenus sans procès, et sur la liberté de la presse"
)
# (kind, name, address, locale, title, translated title or None, status)
SIGNERS: list[tuple[str, str, str, str, str, str | None, str]] = [
    ("confirm", "Ada Lovelace", "ada@example.org", "en", FREE, None, "pending"),
    (
        "confirm",
        "Zoë Ångström-Müller",
        "zoe@example.fr",
        "fr",
        FREE,
        "Libérez la presse",
        "pending",
    ),
    ("confirm", "نور الهدى بن علي", "nour@example.org", "en", FREE, None, "pending"),
    ("confirm", "דוד כהן", "david@example.org", "he", "שחררו את העיתונאים", None, "pending"),
    ("confirm", 'Eve <b>"the eve"</b> & Co', "eve@example.org", "en", "A & B <c>", None, "pending"),
    ("confirm", "Grace Hopper", "grace@example.org", "en", LONG_TITLE, None, "pending"),
    ("confirm", "Élise Dupré", "elise@example.fr", "fr", LONG_ACCENTED_TITLE, None, "pending"),
    ("confirm", "Ana Núñez", "ana@example.es", "es", FREE, "Liberad a la prensa", "pending"),
    ("confirm", "Budi Santoso", "budi@example.id", "id", FREE, None, "pending"),
    ("confirm", "Kim Lee", "kim@example.org", "zz-not-a-locale", FREE, None, "pending"),
    ("confirm", "Zoë Intl", "zoë@example.org", "en", FREE, None, "pending"),
    ("already_signed", "Ada Lovelace", "ada2@example.org", "en", FREE, None, "pending"),
    ("already_signed", "Ada Lovelace", "ada3@example.org", "en", FREE, None, "confirmed"),
    (
        "already_signed",
        "Zoë Ångström-Müller",
        "zoe2@example.fr",
        "fr",
        FREE,
        "Libérez la presse",
        "confirmed",
    ),
    ("already_signed", "نور الهدى", "nour2@example.org", "en", "حرية الصحافة", None, "pending"),
    ("confirm", "Per %(title)s 100%", "per@example.org", "en", "50% of the press", None, "pending"),
    ("confirm", "  Ada \n  Byron ", "byron@example.org", "en", FREE, None, "pending"),
]
# Receipts, to signers of a letter without confirmation:
# (name, address, locale, title, translated title or None, status, listed publicly).
RECEIPTS: list[tuple[str, str, str, str, str | None, str, bool]] = [
    ("Ada Lovelace", "ada@example.org", "en", FREE, None, "confirmed", True),
    ("Zoë Ångström-Müller", "zoe@example.fr", "fr", FREE, "Libérez la presse", "confirmed", False),
    ("Ana Núñez", "ana@example.es", "es", FREE, "Liberad a la prensa", "held", True),
]
# Mails the caller composed (mail.queue): (subject, text, html).
COMPOSED: list[tuple[str, str, str | None]] = [
    ("A plain notice", "Hello,\n\nplain text only.\n", None),
    ("Une notice accentuée", "Bonjour Zoë,\n", "<p>Bonjour Zoë,</p>"),
    ("A long line", "x" * 1200 + "\nthe end\n", "<p>" + "y" * 1100 + "</p>"),
    # SMTP's generator writes a line starting "From " as ">From "; line ends become CRLF.
    (
        "From the organisers",
        "From the organisers:\nFrom here on\r\nthank you.\rZoë\n>From here\n\n",
        "<p>\nFrom html</p>",
    ),
]
SENDERS = {
    "ascii": "campaign@localhost",
    "named": "Lettre ouverte — Zoë <letters@example.org>",
}


def queue_cases(app: Flask) -> None:
    """Commit every case's signature and mail, then fix each row's date and Message-ID.

    Signers of one title sign one campaign, which has every translation they name.
    """
    with app.app_context():
        db = new_session(app)
        campaigns: dict[str, Campaign] = {}
        for kind, name, address, locale, title, translated, status in SIGNERS:
            campaign = _campaign(campaigns, title, locale, translated)
            signature = _signature(db, campaign, name, address, locale, status)
            if kind == "confirm":
                mail.queue_confirmation(db, signature)
            else:
                mail.queue_already_signed(db, signature)
        for subject, text, html in COMPOSED:
            mail.queue(db, to="ada@example.org", subject=subject, text=text, html=html)
        _fix_rows(db)
        db.close()


def queue_receipts(app: Flask) -> None:
    """Commit each receipt case's signature and receipt, then fix each row's date and Message-ID."""
    with app.app_context():
        db = new_session(app)
        campaigns: dict[str, Campaign] = {}
        for name, address, locale, title, translated, status, listed in RECEIPTS:
            campaign = _campaign(campaigns, title, locale, translated, require_confirmation=False)
            signature = _signature(db, campaign, name, address, locale, status)
            signature.public = listed
            mail.queue_receipt(db, signature)
        _fix_rows(db)
        db.close()


def _campaign(
    campaigns: dict[str, Campaign],
    title: str,
    locale: str,
    translated: str | None,
    *,
    require_confirmation: bool = True,
) -> Campaign:
    """The campaign of this title (made on first use), with the translation named."""
    if title not in campaigns:
        campaigns[title] = Campaign(
            slug=f"pinned-{len(campaigns)}",
            title=title,
            state="open",
            require_confirmation=require_confirmation,
        )
    campaign = campaigns[title]
    if translated and all(t.locale != locale for t in campaign.translations):
        campaign.translations.append(
            LetterTranslation(locale=locale, title=translated, letter="...")
        )
    return campaign


def _fix_rows(db: Session) -> None:
    """Commit, then give every row the fixed date and a Message-ID named by its id."""
    db.commit()
    for row in db.scalars(select(OutboxMessage)):
        db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(created_at=CREATED_AT, message_id=f"<pinned-{row.id}@example.org>")
        )
    db.commit()


def _signature(db: Session, campaign: Campaign, *values: str) -> Signature:
    """A signature on the campaign, flushed."""
    name, address, locale, status = values
    signature = Signature(
        campaign=campaign,
        name=name,
        country_code="FR",
        continent_code="EU",
        email=address,
        email_key=address.casefold(),
        name_key=name.casefold(),
        locale=locale,
        status=status,
        confirmed_at=CREATED_AT if status == "confirmed" else None,
        duplicate_state="held" if status == "held" else None,
    )
    db.add(signature)
    db.flush()
    return signature


def normalised(raw: bytes) -> bytes:
    """The mail with its boundary and its links' tokens replaced by fixed words."""
    for boundary in set(BOUNDARY.findall(raw)):
        raw = raw.replace(boundary, b"BOUNDARY")
    return TOKEN.sub(rb"/\1/TOKEN", raw)


def check_golden(name: str, mails: list[tuple[str, bytes]]) -> None:
    """Compare the mails, each under a line naming it, with the golden file (or write it)."""
    got = b"".join(f"=== {label}\n".encode() + normalised(raw) for label, raw in mails)
    path = GOLDEN / name
    if os.environ.get(WRITE_ENV):
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(got)
    assert got == path.read_bytes()


@pytest.mark.parametrize("sender", sorted(SENDERS))
def test_outbox_files_are_the_pinned_mails(app_factory: Any, sender: str) -> None:
    app = app_factory(MAIL_FROM=SENDERS[sender])
    queue_cases(app)
    assert mail.deliver_due(app) == len(SIGNERS) + len(COMPOSED)
    files = eml_files(app)
    assert len(files) == len(SIGNERS) + len(COMPOSED)
    check_golden(f"outbox-{sender}.eml", [(path.name, path.read_bytes()) for path in files])


@pytest.mark.parametrize("sender", sorted(SENDERS))
def test_smtp_data_is_the_pinned_mails(
    app_factory: Any, smtp_server: SmtpServer, sender: str
) -> None:
    app = app_factory(MAIL_FROM=SENDERS[sender], **smtp_server.config())
    queue_cases(app)
    assert mail.deliver_due(app) == len(SIGNERS) + len(COMPOSED)
    envelopes = smtp_server.envelopes
    assert [e.rcpt_tos for e in envelopes] == [[row[2]] for row in SIGNERS] + [
        ["ada@example.org"]
    ] * len(COMPOSED)
    check_golden(
        f"smtp-{sender}.eml",
        [(str(number), bytes(e.content)) for number, e in enumerate(envelopes, 1)],
    )


@pytest.mark.parametrize("sender", sorted(SENDERS))
def test_receipts_in_the_outbox_are_the_pinned_mails(app_factory: Any, sender: str) -> None:
    app = app_factory(MAIL_FROM=SENDERS[sender])
    queue_receipts(app)
    assert mail.deliver_due(app) == len(RECEIPTS)
    files = eml_files(app)
    check_golden(f"receipt-outbox-{sender}.eml", [(path.name, path.read_bytes()) for path in files])


@pytest.mark.parametrize("sender", sorted(SENDERS))
def test_receipts_over_smtp_are_the_pinned_mails(
    app_factory: Any, smtp_server: SmtpServer, sender: str
) -> None:
    app = app_factory(MAIL_FROM=SENDERS[sender], **smtp_server.config())
    queue_receipts(app)
    assert mail.deliver_due(app) == len(RECEIPTS)
    envelopes = smtp_server.envelopes
    assert [e.rcpt_tos for e in envelopes] == [[row[1]] for row in RECEIPTS]
    check_golden(
        f"receipt-smtp-{sender}.eml",
        [(str(number), bytes(e.content)) for number, e in enumerate(envelopes, 1)],
    )
