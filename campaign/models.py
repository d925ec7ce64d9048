"""The tables: columns and constraints only; behaviour lives in the service modules."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.db import Base, utcnow

CAMPAIGN_STATES = ("draft", "open", "closed")
# pending: awaiting email confirmation; held: possible duplicate awaiting an organizer;
# confirmed: counted; rejected/withdrawn/erased: never counted.
SIGNATURE_STATUSES = ("pending", "held", "confirmed", "rejected", "withdrawn", "erased")
SOURCES = ("form", "import")


class Campaign(Base):
    """One open letter and its settings."""

    __tablename__ = "campaign"
    __table_args__ = (CheckConstraint("state IN ('draft', 'open', 'closed')", name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    letter: Mapped[str] = mapped_column(Text, default="")
    recipient: Mapped[str] = mapped_column(String(200), default="")
    goal: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10), default="draft")
    require_confirmation: Mapped[bool] = mapped_column(Boolean, default=True)
    opens_at: Mapped[dt.datetime | None]
    closes_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The version of the title and text (every language) signers read now; a change after
    # someone signed keeps the replaced texts as LetterVersion rows and moves this on.
    letter_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    organizers: Mapped[list[Organizer]] = relationship(
        secondary="campaign_organizer", back_populates="campaigns"
    )
    translations: Mapped[list[LetterTranslation]] = relationship(
        back_populates="campaign", cascade="all, delete-orphan"
    )


class LetterTranslation(Base):
    """The letter in another language, shown to readers of that language."""

    __tablename__ = "letter_translation"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    locale: Mapped[str] = mapped_column(String(16), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    letter: Mapped[str] = mapped_column(Text)

    campaign: Mapped[Campaign] = relationship(back_populates="translations")


class CampaignSlug(Base):
    """An address the letter had before its slug changed, kept so that its links still lead
    to it: the confirmation and withdrawal links already mailed, shared links, embeds."""

    __tablename__ = "campaign_slug"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    replaced_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LetterVersion(Base):
    """The title and text in one language as they stood before a change replaced them."""

    __tablename__ = "letter_version"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "en" for the campaign's own title and letter, else a translation's locale.
    locale: Mapped[str] = mapped_column(String(16), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    letter: Mapped[str] = mapped_column(Text)
    replaced_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    replaced_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizer.id", ondelete="SET NULL")
    )

    replaced_by: Mapped[Organizer | None] = relationship()


class Signature(Base):
    """One signer on one letter; UNIQUE(campaign, email_key) refuses duplicate addresses."""

    __tablename__ = "signature"
    __table_args__ = (
        UniqueConstraint("campaign_id", "email_key"),
        CheckConstraint(
            "status IN ('pending', 'held', 'confirmed', 'rejected', 'withdrawn', 'erased')",
            name="status",
        ),
        CheckConstraint("source IN ('form', 'import')", name="source"),
        # Status counts read it as a covering index; the held duplicates (and any one status)
        # come from it in signing order, whatever the statistics say about the statuses.
        Index("ix_signature_campaign_status_signed", "campaign_id", "status", "signed_at"),
        Index("ix_signature_campaign_name_key", "campaign_id", "name_key", "country_code"),
        Index("ix_signature_campaign_signed_at", "campaign_id", "signed_at"),
        Index("ix_signature_campaign_country", "campaign_id", "country_code"),
        # The signers of each replaced version of the text (the edit page, a version's page):
        # a range each, without reading the signers of the current one.
        Index("ix_signature_campaign_version", "campaign_id", "letter_version", "status"),
        # The signatures held as resembling one (its page; the foreign key's checks when a
        # row goes): few rows have one, so the index holds only those.
        Index(
            "ix_signature_duplicate_of",
            "duplicate_of_id",
            sqlite_where=text("duplicate_of_id IS NOT NULL"),
            postgresql_where=text("duplicate_of_id IS NOT NULL"),
        ),
        # The verified signatures per status (the daily summary's "not yet verified" is the
        # counted total less these): organizers verify few, so the index stays small.
        Index(
            "ix_signature_verified",
            "campaign_id",
            "status",
            sqlite_where=text("verified_at IS NOT NULL"),
            postgresql_where=text("verified_at IS NOT NULL"),
        ),
        # The counted signers who asked for no updates (the update page's count): few.
        Index(
            "ix_signature_updates_declined",
            "campaign_id",
            "status",
            sqlite_where=text("updates_declined_at IS NOT NULL"),
            postgresql_where=text("updates_declined_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    signed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(100), default="")
    parliament: Mapped[str] = mapped_column(String(200), default="")
    party: Mapped[str] = mapped_column(String(200), default="")
    country_code: Mapped[str] = mapped_column(String(2))
    continent_code: Mapped[str] = mapped_column(String(2))
    email: Mapped[str] = mapped_column(String(254))
    # Casefolded, +tag dropped, gmail dots dropped: one key per mailbox.
    email_key: Mapped[str] = mapped_column(String(254))
    email_domain: Mapped[str] = mapped_column(String(254), default="")
    # Accents, case, punctuation and honorifics removed; words sorted.
    name_key: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(10), default="form")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    # The campaign's letter_version when this signature was made: the text its signer read.
    letter_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Keyed hash of the client address: groups bursts without storing the address.
    client_hash: Mapped[str | None] = mapped_column(String(64))

    status: Mapped[str] = mapped_column(String(10), default="pending")
    counted: Mapped[bool] = mapped_column(Boolean, default=False)
    confirmed_at: Mapped[dt.datetime | None]
    verified_at: Mapped[dt.datetime | None]
    rejected_at: Mapped[dt.datetime | None]
    rejected_reason: Mapped[str] = mapped_column(String(500), default="")
    withdrawn_at: Mapped[dt.datetime | None]
    erased_at: Mapped[dt.datetime | None]
    # When the signer asked for no more updates about the letter (their signature stays).
    updates_declined_at: Mapped[dt.datetime | None]
    # The signature this one resembles (same name key and country); held until resolved.
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("signature.id", ondelete="SET NULL")
    )
    # None: not a possible duplicate; "held": awaiting an organizer; "distinct": cleared.
    duplicate_state: Mapped[str | None] = mapped_column(String(10))
    # "You already signed" mails sent for this signature (capped).
    duplicate_notices: Mapped[int] = mapped_column(Integer, default=0)

    campaign: Mapped[Campaign] = relationship()
    duplicate_of: Mapped[Signature | None] = relationship(remote_side=[id])


# The public list of signatories: listed signers (counted and public) of one campaign and
# country in name order, so that each page of it is one range of this index. Partial: the
# rows nobody may list take no room in it and no time to skip.
_LISTED = and_(Signature.counted.is_(True), Signature.public.is_(True))
Index(
    "ix_signature_listed",
    Signature.campaign_id,
    Signature.country_code,
    func.lower(Signature.name),
    Signature.id,
    sqlite_where=_LISTED,
    postgresql_where=_LISTED,
)
# The organizer's list by name, either way: a page of it is a range of this index instead of
# a sort of every signer of the letter (2.6 s at a million signatures on SQLite).
Index(
    "ix_signature_campaign_name",
    Signature.campaign_id,
    func.lower(Signature.name),
    Signature.id,
)


class TallyCount(Base):
    """Counted (and listed) signatures per campaign and country, in step with every change."""

    __tablename__ = "tally_count"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    continent_code: Mapped[str] = mapped_column(String(2))
    signatures: Mapped[int] = mapped_column(Integer, default=0)
    # Of those, the ones who agreed to be listed publicly (counted AND public): the country
    # table of the public list of signatories reads these instead of counting the rows.
    listed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Organizer(Base):
    """Someone who runs campaigns; an admin runs all of them and the organizers."""

    __tablename__ = "organizer"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    # Sessions carry the epoch they were issued in; raising it ends every older session.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]
    # When the last "forgot your password" mail was queued: at most one per interval.
    password_reset_sent_at: Mapped[dt.datetime | None]
    # Whether they want the daily summary of their letters mailed (campaign/digest.py).
    digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The UTC day whose summary was last done (mailed, or nothing to say): claimed by one
    # conditional UPDATE in the transaction that queues the mail, so never twice a day.
    digest_day: Mapped[dt.date | None]
    # When the last summary was mailed: the next one counts what is new since then.
    digest_sent_at: Mapped[dt.datetime | None]
    # The language of their pages when they last saved that choice: the summary's language.
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    campaigns: Mapped[list[Campaign]] = relationship(
        secondary="campaign_organizer", back_populates="organizers"
    )


class LoginSession(Base):
    """One organizer's login on one device, from the login until logout or its lifetime's end.

    The session cookie holds a random secret; the table keeps only its SHA-256, so a copy of
    the table logs no one in. Deleting the row ends the session, whoever holds the cookie.
    """

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organizer_id: Mapped[int] = mapped_column(
        ForeignKey("organizer.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Moved on by a page view at most once a minute (auth.SEEN_EVERY_SECONDS).
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The browser and system named by the User-Agent at login, from a fixed list ("" when
    # unknown): what the account page shows. Neither the header itself nor an address is kept.
    browser: Mapped[str] = mapped_column(String(32), default="")
    system: Mapped[str] = mapped_column(String(32), default="")


class CampaignOrganizer(Base):
    """Which organizers run which campaign."""

    __tablename__ = "campaign_organizer"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    organizer_id: Mapped[int] = mapped_column(
        ForeignKey("organizer.id", ondelete="CASCADE"), primary_key=True
    )


class AuditEntry(Base):
    """One organizer action: who, when, on what, before and after."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_campaign_created", "campaign_id", "created_at"),
        # A signature's trail (its page; redacted when it is erased).
        Index(
            "ix_audit_entry_signature",
            "signature_id",
            "created_at",
            sqlite_where=text("signature_id IS NOT NULL"),
            postgresql_where=text("signature_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    organizer_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizer.id", ondelete="SET NULL")
    )
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    signature_id: Mapped[int | None] = mapped_column(
        ForeignKey("signature.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(64))
    # JSON text of the changed fields, before and after.
    before: Mapped[str] = mapped_column(Text, default="{}")
    after: Mapped[str] = mapped_column(Text, default="{}")

    organizer: Mapped[Organizer | None] = relationship()


class LetterUpdate(Base):
    """A message from a letter's organizers to its signers (what happened to the letter)."""

    __tablename__ = "letter_update"
    __table_args__ = (Index("ix_letter_update_campaign_created", "campaign_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(150))
    # Plain text as the organizer wrote it; blank lines separate paragraphs.
    body: Mapped[str] = mapped_column(Text)
    # Also shown on the letter's public page, under "Updates".
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizer.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The signatures that counted when it was sent: one mail queued for each.
    recipients: Mapped[int] = mapped_column(Integer, default=0)

    created_by: Mapped[Organizer | None] = relationship()


OUTBOX_KINDS = ("confirm", "already_signed", "receipt", "update")


class OutboxMessage(Base):
    """A mail queued in the same transaction as what caused it; sent by the sender loop."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_message_due", "sent_at", "next_attempt_at"),
        # A signature's mail, deleted when the signature is erased.
        Index("ix_outbox_message_signature", "signature_id"),
        CheckConstraint("kind IN ('confirm', 'already_signed', 'receipt', 'update')", name="kind"),
        # An update's mails (how many went out so far), and only rows that carry one.
        Index(
            "ix_outbox_message_update",
            "update_id",
            "sent_at",
            sqlite_where=text("update_id IS NOT NULL"),
            postgresql_where=text("update_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    to_addr: Mapped[str] = mapped_column(String(254))
    # None: subject and bodies were stored when queued. Otherwise the mail to compose from
    # the signature when it is sent (its subject and bodies are stored then).
    kind: Mapped[str | None] = mapped_column(String(20))
    # The site root its links start with (BASE_URL, or the signer's request's), for a kind.
    link_base: Mapped[str | None] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # Unique Message-ID, fixed at queue time so a retried send is recognisably the same mail.
    message_id: Mapped[str] = mapped_column(String(200))
    signature_id: Mapped[int | None] = mapped_column(
        ForeignKey("signature.id", ondelete="SET NULL")
    )
    # The organizers' update this mail carries (kind "update").
    update_id: Mapped[int | None] = mapped_column(
        ForeignKey("letter_update.id", ondelete="SET NULL")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A sender claims a message until this time, so two senders never send it both.
    claimed_until: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
