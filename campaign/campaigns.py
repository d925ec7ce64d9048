"""Campaigns: creating and changing letters, and whether one takes signatures now."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaign import tally
from campaign.models import CAMPAIGN_STATES, Campaign, Signature

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


class CampaignError(ValueError):
    """A campaign could not be created or changed; the message says why."""


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


def _flush_slug(db: Session, campaign: Campaign) -> None:
    """Flush in a savepoint; the UNIQUE slug refuses a taken one (racing creators too)."""
    slug = campaign.slug
    try:
        with db.begin_nested():
            db.add(campaign)
            db.flush()
    except IntegrityError:
        raise CampaignError(f"the slug {slug!r} is taken") from None


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


def update_campaign(db: Session, campaign: Campaign, **changes: Any) -> Campaign:
    """Change a campaign's settings; a changed confirmation rule re-derives every signature."""
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise CampaignError(f"cannot change {', '.join(sorted(unknown))}")
    _check(changes)
    old_rule = campaign.require_confirmation
    for key, value in changes.items():
        setattr(campaign, key, value.strip() if key in ("title", "recipient") else value)
    _check_window(campaign)
    _flush_slug(db, campaign)
    if "require_confirmation" in changes and bool(changes["require_confirmation"]) != old_rule:
        _rederive(db, campaign)
    return campaign


def _rederive(db: Session, campaign: Campaign) -> None:
    """Recount signatures whose status depends on the confirmation rule."""
    # Only unconfirmed signatures that are not held, rejected, withdrawn or erased
    # change status when the rule changes; the rest keep theirs.
    ids = db.scalars(
        select(Signature.id)
        .where(
            Signature.campaign_id == campaign.id,
            Signature.confirmed_at.is_(None),
            Signature.status.in_(("pending", "confirmed")),
        )
        .order_by(Signature.id)
    ).all()
    for signature_id in ids:
        signature = tally.lock(db, signature_id)
        if signature is not None:
            tally.refresh(db, signature)


def is_accepting(campaign: Campaign, now: dt.datetime) -> bool:
    """Whether the campaign takes signatures at this moment: open, and within its window."""
    if campaign.state != "open":
        return False
    if campaign.opens_at is not None and now < campaign.opens_at:
        return False
    return campaign.closes_at is None or now < campaign.closes_at


# Built once: every public page looks its campaign up by slug.
_BY_SLUG = select(Campaign).where(Campaign.slug == bindparam("slug"))


def get_by_slug(db: Session, slug: str) -> Campaign | None:
    """The campaign with this slug, if any."""
    return db.scalar(_BY_SLUG, {"slug": slug})
