"""Campaigns: creating and changing letters, and whether one takes signatures now."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Select, Table, bindparam, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaign import tally
from campaign.db import Direct, utcnow
from campaign.models import (
    CAMPAIGN_STATES,
    Campaign,
    CampaignSlug,
    LetterTranslation,
    LetterVersion,
    Organizer,
    Signature,
)

# Lowercase letters, digits and hyphens, 2-64 characters, no hyphen at either end.
SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]")
TITLE_MAX = 200
RECIPIENT_MAX = 200

_EDITABLE = frozenset(
    {
        "slug",
        "title",
        "letter",
        "recipient",
        "state",
        "require_confirmation",
        "goal",
        "opens_at",
        "closes_at",
    }
)


# The language of the campaign's own title and letter (translations are the others).
ORIGINAL_LOCALE = "en"
# What a change must touch to replace the text people signed.
_TEXT = ("title", "letter")
# The first key of PostgreSQL's advisory lock that rederive takes per letter (the second
# is the letter's id): an arbitrary number no other lock of this program uses.
_REDERIVE_LOCK = 7301


class CampaignError(ValueError):
    """A campaign could not be created or changed; the message says why."""


class NewVersionNeeded(CampaignError):
    """A change of a text people signed, not agreed to: saving it would make a new version."""

    def __init__(self, version: int, signers: int) -> None:
        super().__init__(
            f"{signers} people signed version {version} of the text: changing it makes a new "
            "version"
        )
        self.version = version
        self.signers = signers


def check_slug(slug: str) -> str:
    """The slug if it is 2-64 lowercase letters, digits and hyphens; CampaignError otherwise."""
    if not isinstance(slug, str) or not SLUG_PATTERN.fullmatch(slug):
        raise CampaignError(
            f"invalid slug {slug!r}: use 2-64 lowercase letters, digits and hyphens "
            "(not at either end)"
        )
    return slug


def _check(values: dict[str, Any]) -> None:
    """Refuse values the columns or the rules cannot hold."""
    if "slug" in values:
        check_slug(values["slug"])
    if "title" in values:
        title = values["title"]
        if not isinstance(title, str) or not title.strip():
            raise CampaignError("a campaign needs a title")
        if len(title) > TITLE_MAX:
            raise CampaignError(f"the title is longer than {TITLE_MAX} characters")
    if "recipient" in values and len(values["recipient"] or "") > RECIPIENT_MAX:
        raise CampaignError(f"the recipient is longer than {RECIPIENT_MAX} characters")
    if "letter" in values and not isinstance(values["letter"], str):
        raise CampaignError("the letter must be text")
    if "state" in values and values["state"] not in CAMPAIGN_STATES:
        raise CampaignError(f"unknown state {values['state']!r}: use {', '.join(CAMPAIGN_STATES)}")
    goal = values.get("goal")
    if goal is not None and (not isinstance(goal, int) or isinstance(goal, bool) or goal < 1):
        raise CampaignError("the goal must be a positive whole number")
    for key in ("opens_at", "closes_at"):
        when = values.get(key)
        if when is not None and (not isinstance(when, dt.datetime) or when.tzinfo is None):
            raise CampaignError(f"{key} must be a timezone-aware datetime")


def _check_window(campaign: Campaign) -> None:
    if (
        campaign.opens_at is not None
        and campaign.closes_at is not None
        and campaign.closes_at <= campaign.opens_at
    ):
        raise CampaignError("the campaign must close after it opens")


def _flush_slug(db: Session, campaign: Campaign, *, was: str | None = None) -> None:
    """Flush in a savepoint; the UNIQUE slug refuses a taken one (racing creators too).

    A slug another letter had before is taken too: its links (mailed confirmations, shared
    links, embeds) lead to that letter. A letter may take back one of its own. was: the
    letter's slug before this change, kept for its links when it changed.
    """
    slug = campaign.slug
    with db.no_autoflush:  # the new slug is flushed below, in the savepoint
        earlier = db.get(CampaignSlug, slug)
    if earlier is not None and earlier.campaign_id != campaign.id:
        raise CampaignError(
            f"the slug {slug!r} is taken: another letter had it, and its links still lead there"
        )
    try:
        with db.begin_nested():
            db.add(campaign)
            if earlier is not None:
                db.delete(earlier)
            if was is not None and was != slug:
                db.add(CampaignSlug(slug=was, campaign_id=campaign.id))
            db.flush()
    except IntegrityError:
        raise CampaignError(f"the slug {slug!r} is taken") from None


def renamed(db: Session, slug: str) -> str | None:
    """The slug of the letter that had this one before its slug changed, if any."""
    return db.scalar(
        select(Campaign.slug)
        .join(CampaignSlug, CampaignSlug.campaign_id == Campaign.id)
        .where(CampaignSlug.slug == slug)
    )


def create_campaign(
    db: Session,
    *,
    slug: str,
    title: str,
    letter: str = "",
    recipient: str = "",
    state: str = "draft",
    require_confirmation: bool = True,
    goal: int | None = None,
    opens_at: dt.datetime | None = None,
    closes_at: dt.datetime | None = None,
) -> Campaign:
    """Create a campaign; CampaignError for a bad or taken slug or a bad value. Flushes only."""
    values: dict[str, Any] = {
        "slug": slug,
        "title": title,
        "letter": letter,
        "recipient": recipient,
        "state": state,
        "require_confirmation": bool(require_confirmation),
        "goal": goal,
        "opens_at": opens_at,
        "closes_at": closes_at,
    }
    _check(values)
    values["title"] = title.strip()
    values["recipient"] = (recipient or "").strip()
    campaign = Campaign(**values)
    _check_window(campaign)
    _flush_slug(db, campaign)
    return campaign


def update_campaign(
    db: Session,
    campaign: Campaign,
    *,
    by: Organizer | None = None,
    new_version: bool = False,
    **changes: Any,
) -> Campaign:
    """Change a campaign's settings. Flushes only.

    A changed title or letter replaces a text people may have signed: see _text_changes.
    A changed confirmation rule waits for the signers storing a signature under the old
    rule (_hold_signers); after the commit, ``rederive`` moves the signatures it decides, in a
    transaction of its own.
    """
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise CampaignError(f"cannot change {', '.join(sorted(unknown))}")
    _check(changes)
    if any(key in changes for key in _TEXT):
        _lock_text(db, campaign)
        if (
            changes.get("title", campaign.title).strip() != campaign.title
            or changes.get("letter", campaign.letter) != campaign.letter
        ):
            _text_changes(db, campaign, by=by, new_version=new_version)
    if "require_confirmation" in changes and (
        bool(changes["require_confirmation"]) != campaign.require_confirmation
    ):
        _hold_signers(db, campaign)
    was = campaign.slug
    for key, value in changes.items():
        setattr(campaign, key, value.strip() if key in ("title", "recipient") else value)
    _check_window(campaign)
    _flush_slug(db, campaign, was=was)
    return campaign


def _hold_signers(db: Session, campaign: Campaign) -> None:
    """Wait for the signers storing a signature under the letter's rule as it stands, and
    hold back the next until this transaction ends; the rule read afresh.

    A signer reads the rule with the letter (admission_by_slug) and stores the status it
    gives. On PostgreSQL that read is FOR KEY SHARE, which this FOR UPDATE waits for: once
    the change commits, every signature stored under the old rule has committed too, so
    ``rederive``, run after it, sees them all; a signer arriving meanwhile reads the new rule.
    Without it, a signer who read the old rule and stored after rederive's snapshot kept the
    old rule's status for good. (SQLite's writers take turns already.) The wait is for the
    requests in flight: milliseconds, not the signatures' move, which rederive does later.
    """
    db.refresh(campaign, ["require_confirmation"], with_for_update=True)


def rederive(db: Session, campaign_id: int) -> int:
    """Move the signatures whose status the confirmation rule decides to the letter's rule
    as committed, and the counters by what moved, country by country; how many moved.

    Run after a changed rule commits (update_campaign), in a transaction of its own, which
    the caller commits; `campaign recount` runs it too, to finish a move that failed. Two at
    once take turns (PostgreSQL: an advisory lock per letter; SQLite: the write lock), each
    reading the rule after the other's move, so the last rule wins.

    Only the unconfirmed that are not held, rejected, withdrawn or erased change (see
    tally.derive_status): pending when the rule asks for confirmation, confirmed otherwise.
    One UPDATE moves them; row by row (each locked, refreshed, counted) a letter of 10,000
    took 24 s, while SQLite's write lock held every signer back (past 30 s they are turned
    away) and on PostgreSQL the counters' rows held back confirmations. On PostgreSQL the
    UPDATE returns what it moved to the count in the same statement, so a signer confirming
    meanwhile is either moved or counted by their confirmation, never both (the UPDATE skips
    a row whose confirmation committed first, and a confirmation waits for the UPDATE's row
    lock). On SQLite the writers take turns: counting the rows first is the same. Neither
    locks the letter's row: signers go on signing under the new rule while it runs.
    """
    postgres = db.get_bind().dialect.name == "postgresql"
    if postgres:
        db.execute(select(func.pg_advisory_xact_lock(_REDERIVE_LOCK, campaign_id)))
    rule = db.scalar(select(Campaign.require_confirmation).where(Campaign.id == campaign_id))
    if rule is None:
        return 0
    status = "pending" if rule else "confirmed"
    counts = status == "confirmed"
    signature = cast(Table, Signature.__table__)
    which = (
        signature.c.campaign_id == campaign_id,
        signature.c.confirmed_at.is_(None),
        signature.c.status == ("pending" if counts else "confirmed"),
    )
    moved = (
        update(signature).where(*which).values(status=status, counted=counts, updated_at=utcnow())
    )
    db.flush()
    if postgres:
        changed = moved.returning(signature.c.country_code, signature.c.public).cte("changed")
        per_country = db.execute(_per_country(changed.c)).all()
    else:
        per_country = db.execute(_per_country(signature.c).where(*which)).all()
        db.execute(moved)
    sign = 1 if counts else -1
    for country, number, listed in per_country:
        tally.bump(db, campaign_id, country, sign * int(number), listed=sign * int(listed or 0))
    # Signatures this session holds may have moved: read them afresh when next used.
    for held in [obj for obj in db.identity_map.values() if isinstance(obj, Signature)]:
        db.expire(held, ["status", "counted", "updated_at"])
    return sum(int(number) for _country, number, _listed in per_country)


def _per_country(columns: Any) -> Select[str, int, int]:
    """Rows and public rows per country, of a signature table or a statement returning rows."""
    public = func.sum(case((columns.public.is_(True), 1), else_=0))
    return select(columns.country_code, func.count(), public).group_by(columns.country_code)


def save_translation(
    db: Session,
    campaign: Campaign,
    locale: str,
    title: str,
    letter: str,
    *,
    by: Organizer | None = None,
    new_version: bool = False,
) -> tuple[dict[str, str], dict[str, str]]:
    """Add, change or (both empty) remove the letter in one language; its texts before and
    after, equal when nothing changed. Flushes only: IntegrityError when another organizer
    added this language a moment ago."""
    if locale == ORIGINAL_LOCALE:
        raise CampaignError(
            "the original letter is changed with the campaign, not as a translation"
        )
    _lock_text(db, campaign)
    existing = db.get(LetterTranslation, (campaign.id, locale))
    before = {"title": existing.title, "letter": existing.letter} if existing else {}
    after = {"title": title, "letter": letter} if title or letter else {}
    if before == after:
        return before, after
    _text_changes(db, campaign, by=by, new_version=new_version)
    if existing is None:
        db.add(
            LetterTranslation(campaign_id=campaign.id, locale=locale, title=title, letter=letter)
        )
    elif after:
        existing.title, existing.letter = title, letter
    else:
        db.delete(existing)
    db.flush()
    return before, after


def _lock_text(db: Session, campaign: Campaign) -> None:
    """Hold the campaign row, its texts' version read afresh: one text change at a time.

    (SQLite's writers take turns already; PostgreSQL's two organizers saving at once would
    otherwise both keep version N and both move on to N + 1.) FOR NO KEY UPDATE: signers,
    whose reads of the letter and foreign keys take KEY SHARE, do not wait for the save.
    """
    db.refresh(campaign, ["letter_version", "title", "letter"], with_for_update={"key_share": True})


def _text_changes(
    db: Session, campaign: Campaign, *, by: Organizer | None, new_version: bool
) -> None:
    """Before the title or text changes in any language: when a signature that is not erased
    carries the current version, keep every language's texts as that version and move the
    campaign to the next (NewVersionNeeded unless new_version agrees to it); otherwise the
    change is made in place (a draft being polished, fixes before anyone signed)."""
    signers = signers_of_version(db, campaign, campaign.letter_version)
    if not signers:
        return
    if not new_version:
        raise NewVersionNeeded(campaign.letter_version, signers)
    now = utcnow()
    texts = [(ORIGINAL_LOCALE, campaign.title, campaign.letter)] + [
        (t.locale, t.title, t.letter)
        for t in db.scalars(
            select(LetterTranslation)
            .where(LetterTranslation.campaign_id == campaign.id)
            .order_by(LetterTranslation.locale)
        )
    ]
    db.add_all(
        LetterVersion(
            campaign_id=campaign.id,
            number=campaign.letter_version,
            locale=locale,
            title=title,
            letter=letter,
            replaced_at=now,
            replaced_by_id=by.id if by is not None else None,
        )
        for locale, title, letter in texts
    )
    campaign.letter_version += 1


def signers_of_version(db: Session, campaign: Campaign, number: int) -> int:
    """Signatures that are not erased and were made on this version of the text."""
    if number == campaign.letter_version:
        return signers_by_version(db, campaign)[number]
    return int(
        db.scalar(
            select(func.count()).where(
                Signature.campaign_id == campaign.id,
                Signature.letter_version == number,
                Signature.status != "erased",
            )
        )
        or 0
    )


def signers_by_version(db: Session, campaign: Campaign) -> dict[int, int]:
    """The signatures that are not erased per version of the text signed (the current one
    always present).

    New signers sign the current text, so it is the current version whose signers grow: they
    are the letter's signers (tally.status_counts: the tally's counters and the statuses
    other than confirmed) less those of the replaced versions, which are counted row by row
    (ix_signature_campaign_version). A letter of a million signers is not read to say so.
    """
    counts = tally.status_counts(db, [campaign.id])[campaign.id]
    everyone = sum(n for status, n in counts.items() if status != "erased")
    found: dict[int, int] = {}
    if campaign.letter_version > 1:
        rows = db.execute(
            select(Signature.letter_version, func.count())
            .where(
                Signature.campaign_id == campaign.id,
                Signature.letter_version < campaign.letter_version,
                Signature.status != "erased",
            )
            .group_by(Signature.letter_version)
        )
        found = {int(number): int(n) for number, n in rows}
    found[campaign.letter_version] = everyone - sum(found.values())
    return found


@dataclass(frozen=True)
class VersionSummary:
    """One version of a letter's text: when and by whom it was replaced, and its signers."""

    number: int
    signers: int
    # None for the current version.
    replaced_at: dt.datetime | None
    replaced_by: str | None

    @property
    def current(self) -> bool:
        """Whether signers read this version now."""
        return self.replaced_at is None


def versions(db: Session, campaign: Campaign) -> list[VersionSummary]:
    """Every version of the letter's text, the current one last, with its signers."""
    signers = signers_by_version(db, campaign)
    replaced = db.execute(
        select(LetterVersion.number, LetterVersion.replaced_at, Organizer.email)
        .outerjoin(Organizer, Organizer.id == LetterVersion.replaced_by_id)
        .where(
            LetterVersion.campaign_id == campaign.id,
            LetterVersion.locale == ORIGINAL_LOCALE,
        )
        .order_by(LetterVersion.number)
    )
    return [
        VersionSummary(number, signers.get(number, 0), when, email)
        for number, when, email in replaced
    ] + [
        VersionSummary(campaign.letter_version, signers.get(campaign.letter_version, 0), None, None)
    ]


def version_texts(db: Session, campaign: Campaign, number: int) -> list[LetterVersion]:
    """A replaced version's title and text in each language it had, the original first."""
    rows = db.scalars(
        select(LetterVersion).where(
            LetterVersion.campaign_id == campaign.id, LetterVersion.number == number
        )
    )
    return sorted(rows, key=lambda row: (row.locale != ORIGINAL_LOCALE, row.locale))


@dataclass(frozen=True)
class EarlierSigners:
    """How many counted signers signed one replaced version, and when it was replaced."""

    number: int
    signers: int
    replaced_at: dt.datetime


def signed_earlier(
    db: Session, campaign: Campaign, *, locale: str, verified_only: bool = False
) -> list[EarlierSigners]:
    """The counted (or counted and verified) signers of each replaced version whose text
    differs from the one shown in locale (changed_versions), oldest first."""
    changed = changed_versions(db, campaign, locale)
    if not changed:
        return []
    rows = db.execute(
        select(Signature.letter_version, func.count())
        .where(
            Signature.campaign_id == campaign.id,
            Signature.counted.is_(True),
            Signature.letter_version.in_(sorted(changed)),
            *((Signature.verified_at.is_not(None),) if verified_only else ()),
        )
        .group_by(Signature.letter_version)
        .order_by(Signature.letter_version)
    )
    return [EarlierSigners(number, signers, changed[number]) for number, signers in rows]


def translation_shown(campaign: Campaign, locale: str) -> LetterTranslation | None:
    """The translation a reader in locale ("pt_BR", "fr") is shown: the locale's own, else its
    language's; None when the original is shown. One stored without its text (the dashboard
    once let a title alone through) is never shown."""
    usable = {t.locale: t for t in campaign.translations if t.letter.strip()}
    return usable.get(locale) or usable.get(locale.split("_")[0])


def changed_versions(db: Session, campaign: Campaign, locale: str) -> dict[int, dt.datetime]:
    """The replaced versions whose text differs from what a reader in locale is shown now,
    each with when it was replaced.

    A version differs when its original title or text does, or when the translation the
    reader is shown existed then too and read otherwise. Adding or removing a translation
    changes the language a reader sees, not what the letter says: a version made by one
    alone differs in no language (readers of other languages, and the recipient of the
    letter as written, see the text its signers signed).
    """
    if campaign.letter_version <= 1:
        return {}
    shown = translation_shown(campaign, locale)
    now = {ORIGINAL_LOCALE: (campaign.title, campaign.letter)}
    if shown is not None:
        now[shown.locale] = (shown.title, shown.letter)
    rows = db.execute(
        select(
            LetterVersion.number,
            LetterVersion.locale,
            LetterVersion.title,
            LetterVersion.letter,
            LetterVersion.replaced_at,
        ).where(
            LetterVersion.campaign_id == campaign.id,
            LetterVersion.locale.in_(sorted(now)),
        )
    )
    replaced: dict[int, dt.datetime] = {}
    differs: set[int] = set()
    for number, row_locale, title, letter, replaced_at in rows:
        if row_locale == ORIGINAL_LOCALE:
            replaced[number] = replaced_at
        # A translation stored without its text was not shown: the original was.
        if (row_locale == ORIGINAL_LOCALE or letter.strip()) and (title, letter) != now[row_locale]:
            differs.add(number)
    return {number: replaced[number] for number in sorted(differs) if number in replaced}


def text_changed_at(db: Session, campaign: Campaign, locale: str) -> dt.datetime | None:
    """When the text a reader in locale is shown replaced a different one (changed_versions);
    None while it is the text every signer signed."""
    changed = changed_versions(db, campaign, locale)
    return changed[max(changed)] if changed else None


class Window(Protocol):
    """When a letter takes signatures: a Campaign, or the Admission a signature reads."""

    @property
    def state(self) -> str: ...
    @property
    def opens_at(self) -> dt.datetime | None: ...
    @property
    def closes_at(self) -> dt.datetime | None: ...


def is_accepting(campaign: Window, now: dt.datetime) -> bool:
    """Whether the campaign takes signatures at this moment: open, and within its window."""
    if campaign.state != "open":
        return False
    if campaign.opens_at is not None and now < campaign.opens_at:
        return False
    return campaign.closes_at is None or now < campaign.closes_at


def phase(campaign: Window, now: dt.datetime) -> str:
    """Where the campaign is, as its readers see it: "draft", "scheduled" (open, its opening
    time to come), "open" or "closed" (closed, or its closing time passed)."""
    if campaign.state == "open" and campaign.closes_at is not None and now >= campaign.closes_at:
        return "closed"
    if campaign.state == "open" and campaign.opens_at is not None and now < campaign.opens_at:
        return "scheduled"
    return campaign.state


# Built once: every public page looks its campaign up by slug.
_BY_SLUG = select(Campaign).where(Campaign.slug == bindparam("slug"))


def get_by_slug(db: Session, slug: str) -> Campaign | None:
    """The campaign with this slug, if any."""
    return db.scalar(_BY_SLUG, {"slug": slug})


class Admission(NamedTuple):
    """What storing a signature needs to know of its letter: a row, not the ORM object."""

    id: int
    slug: str
    state: str
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None
    require_confirmation: bool
    letter_version: int


_CAMPAIGN = Campaign.__table__.c
# FOR KEY SHARE on PostgreSQL (SQLite has no row locks and renders none): the lock the
# signature's foreign key takes anyway, taken with the rule it is stored under, so that a
# change of the rule waits for this signer (_hold_signers). Signers do not wait for each
# other, nor for an organizer's save that leaves the rule alone.
_ADMISSION_BY_SLUG = Direct(
    select(*(_CAMPAIGN[name] for name in Admission._fields))
    .where(_CAMPAIGN.slug == bindparam("slug"))
    .with_for_update(read=True, key_share=True)
)


def admission_by_slug(db: Session, slug: str) -> Admission | None:
    """The columns of the campaign with this slug that a signature needs, if it exists.

    Read on the session's connection in its transaction: loading the whole ORM object (its
    fourteen attributes, the identity map) cost twice the SELECT on the signer's request.
    """
    row = _ADMISSION_BY_SLUG.first(db, {"slug": slug})
    return None if row is None else Admission(*row)
