"""Counts of counted signatures by country and continent, kept in a counter table.

Every change of a signature's status goes through :func:`refresh`, which moves the
per-country counter in the same transaction; reading the tally then costs one
query over at most one row per country, however many signatures a letter has.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Table, and_, case, false, func, inspect, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaign import geo
from campaign.db import utcnow
from campaign.models import SIGNATURE_STATUSES, Campaign, Signature, TallyCount


@dataclass(frozen=True)
class CountryTally:
    """Counted signatures from one country."""

    code: str
    name: str
    continent: str
    signatures: int


@dataclass(frozen=True)
class ContinentTally:
    """Counted signatures and countries on one continent."""

    code: str
    name: str
    signatures: int
    countries: int


@dataclass(frozen=True)
class Tally:
    """The public numbers of one campaign."""

    signatures: int
    countries: int
    continents: int
    by_continent: list[ContinentTally]
    by_country: list[CountryTally]
    updated_at: dt.datetime


class StatusFacts(Protocol):
    """What decides a signature's status: a Signature, or a new one's facts before it exists."""

    @property
    def erased_at(self) -> dt.datetime | None: ...
    @property
    def withdrawn_at(self) -> dt.datetime | None: ...
    @property
    def rejected_at(self) -> dt.datetime | None: ...
    @property
    def duplicate_state(self) -> str | None: ...
    @property
    def confirmed_at(self) -> dt.datetime | None: ...


class Rules(Protocol):
    """The letter's setting that status depends on: a Campaign, or campaigns.Admission."""

    @property
    def require_confirmation(self) -> bool: ...


class _NewFacts(NamedTuple):
    erased_at: None
    withdrawn_at: None
    rejected_at: None
    duplicate_state: str | None
    confirmed_at: dt.datetime | None


def new_status(campaign: Rules, *, held: bool, confirmed_at: dt.datetime | None) -> str:
    """The status of a signature about to be stored (never erased, withdrawn or rejected yet)."""
    facts = _NewFacts(None, None, None, "held" if held else None, confirmed_at)
    return derive_status(facts, campaign)


def derive_status(signature: StatusFacts, campaign: Rules) -> str:
    """The status a signature's facts give it, most final first."""
    if signature.erased_at is not None:
        return "erased"
    if signature.withdrawn_at is not None:
        return "withdrawn"
    if signature.rejected_at is not None:
        return "rejected"
    if signature.duplicate_state == "held":
        return "held"
    if campaign.require_confirmation and signature.confirmed_at is None:
        return "pending"
    return "confirmed"


def hold_rule(session: Session, campaign: Campaign) -> bool:
    """The letter's confirmation rule read afresh, FOR KEY SHARE on PostgreSQL; returns it.

    Whoever stores a status the rule decides reads it so (a signer's request reads it with
    the letter, campaigns.admission_by_slug): a change of the rule waits for them, and the
    move of the signatures after it sees what they stored (campaigns.update_campaign).
    """
    session.refresh(
        campaign, ["require_confirmation"], with_for_update={"read": True, "key_share": True}
    )
    return campaign.require_confirmation


def lock(session: Session, signature_id: int) -> Signature | None:
    """Load a signature for change, row-locked where the database can (SELECT ... FOR UPDATE).

    Two requests changing one signature at once (a double-clicked confirm, an organizer
    rejecting while the signer confirms) then see each other's result, so the counter
    moves once. SQLite needs no lock: BEGIN IMMEDIATE already serialises writers.
    """
    return session.scalars(
        select(Signature)
        .where(Signature.id == signature_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def refresh(session: Session, signature: Signature) -> bool:
    """Recompute a signature's status and move the counters if counting changed; flushes.

    Returns whether the signature counts now. The signature must have been loaded
    with :func:`lock` (or be new) so that ``counted`` reflects what the counters hold.
    """
    # What the counters hold for it, read first: loading its campaign may autoflush the
    # caller's changes, after which their history (the old country, the old listing) is gone.
    was_counted = bool(signature.counted)
    attrs = inspect(signature).attrs
    history = attrs.country_code.history
    old_country = history.deleted[0] if history.deleted else signature.country_code
    history = attrs.public.history
    was_public = bool(history.deleted[0] if history.deleted else signature.public)
    campaign = signature.campaign or session.get(Campaign, signature.campaign_id)
    assert campaign is not None
    status = derive_status(signature, campaign)
    if status in ("pending", "confirmed") and signature.confirmed_at is None:
        # The rule decides it: the rule as committed, held until this change commits.
        hold_rule(session, campaign)
        status = derive_status(signature, campaign)
    counts = status == "confirmed"
    signature.status = status
    signature.counted = counts
    session.flush()
    country, public = signature.country_code, bool(signature.public)
    moved = old_country != country
    if was_counted and (not counts or moved):
        bump(session, signature.campaign_id, old_country, -1, listed=-int(was_public))
    if counts and (not was_counted or moved):
        bump(session, signature.campaign_id, country, +1, listed=int(public))
    elif counts and was_public != public:
        bump(session, signature.campaign_id, country, 0, listed=int(public) - int(was_public))
    return counts


def bump(
    session: Session, campaign_id: int, country_code: str, delta: int, *, listed: int = 0
) -> None:
    """Add delta (and listed) to one country's counters, making the row on first use (upsert)."""
    session.execute(
        _upsert(session.get_bind().dialect.name),
        {
            "campaign_id": campaign_id,
            "country_code": country_code,
            "continent_code": geo.continent_of(country_code),
            "signatures": delta,
            "listed": listed,
            "updated_at": utcnow(),
        },
    )


@functools.cache
def _upsert(dialect_name: str) -> Any:
    """The counter upsert, built once per dialect; its values come as parameters."""
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    table = cast(Table, TallyCount.__table__)
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.campaign_id, table.c.country_code],
        # excluded.* is the row this INSERT proposed: its delta and its time.
        set_={
            "signatures": table.c.signatures + stmt.excluded.signatures,
            "listed": table.c.listed + stmt.excluded.listed,
            "updated_at": stmt.excluded.updated_at,
        },
    )


def tally(session: Session, campaign: Campaign, locale: str | None = None) -> Tally:
    """The campaign's counts by country and continent, largest first."""
    rows = session.execute(
        select(TallyCount.country_code, TallyCount.continent_code, TallyCount.signatures).where(
            TallyCount.campaign_id == campaign.id, TallyCount.signatures > 0
        )
    ).all()
    updated_at = session.scalar(
        select(func.max(TallyCount.updated_at)).where(TallyCount.campaign_id == campaign.id)
    )
    by_country = sorted(
        (
            CountryTally(code, geo.country_name(code, locale), continent, count)
            for code, continent, count in rows
        ),
        key=lambda c: (-c.signatures, geo.sort_key(c.name)),
    )
    continents: dict[str, list[int]] = {}
    for country in by_country:
        entry = continents.setdefault(country.continent, [0, 0])
        entry[0] += country.signatures
        entry[1] += 1
    by_continent = sorted(
        (
            ContinentTally(code, geo.continent_name(code), total, countries)
            for code, (total, countries) in continents.items()
        ),
        # Ties by name in the reader's language (ContinentTally.name stays English, for JSON).
        key=lambda c: (-c.signatures, geo.sort_key(geo.continent_name(c.code, locale))),
    )
    return Tally(
        signatures=sum(c.signatures for c in by_country),
        countries=len(by_country),
        continents=len(by_continent),
        by_continent=by_continent,
        by_country=by_country,
        updated_at=updated_at or campaign.created_at,
    )


def total(session: Session, campaign: Campaign) -> int:
    """How many signatures count on a campaign (the sum of its country counters)."""
    return totals(session, [campaign.id])[campaign.id]


def totals(session: Session, campaign_ids: Iterable[int]) -> dict[int, int]:
    """How many signatures count on each of the campaigns (zero for one with none)."""
    ids = list(campaign_ids)
    found = dict.fromkeys(ids, 0)
    if ids:
        rows = session.execute(
            select(TallyCount.campaign_id, func.sum(TallyCount.signatures))
            .where(TallyCount.campaign_id.in_(ids))
            .group_by(TallyCount.campaign_id)
        )
        found.update({int(cid): int(n or 0) for cid, n in rows})
    return found


def status_counts(session: Session, campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Signatures per status for each campaign (every status present, zero when none).

    The confirmed signatures are the counted ones (refresh), whose number the counters hold,
    in step with every change (campaign recount verifies them): rows are counted only for
    the other statuses, each a range of an index, so the counts above the organizer's list
    of a million signers do not read a million index entries (0.1-0.2 s).
    """
    ids = list(campaign_ids)
    counts = {cid: dict.fromkeys(SIGNATURE_STATUSES, 0) for cid in ids}
    if not ids:
        return counts
    others = [status for status in SIGNATURE_STATUSES if status != "confirmed"]
    rows = session.execute(
        select(Signature.campaign_id, Signature.status, func.count())
        .where(Signature.campaign_id.in_(ids), Signature.status.in_(others))
        .group_by(Signature.campaign_id, Signature.status)
    ).all()
    for campaign_id, status, count in rows:
        counts[campaign_id][status] = int(count)
    for campaign_id, counted in totals(session, ids).items():
        counts[campaign_id]["confirmed"] = counted
    return counts


class StatusDrift(NamedTuple):
    """Signatures whose stored status or counted flag disagreed with their facts."""

    status: str
    counted: bool
    derived: str
    signatures: int


@dataclass(frozen=True)
class Repairs:
    """What :func:`repair` found wrong and set right (each empty when all was well)."""

    # {country: (was, now)}, and {"<country> listed": (was, now)} for the listed counters.
    counters: dict[str, tuple[int, int]]
    # {country: (stored continent, its continent)} of counter rows with the wrong one.
    continents: dict[str, tuple[str, str]]
    # The signatures whose status or counted flag was not what derive_status gives.
    statuses: list[StatusDrift]

    def __bool__(self) -> bool:
        return bool(self.counters or self.continents or self.statuses)


def derived_status(columns: Any, require_confirmation: bool) -> Any:
    """derive_status in SQL, over a signature table's (or subquery's) columns."""
    whens: list[tuple[Any, str]] = [
        (columns.erased_at.is_not(None), "erased"),
        (columns.withdrawn_at.is_not(None), "withdrawn"),
        (columns.rejected_at.is_not(None), "rejected"),
        (columns.duplicate_state == "held", "held"),
    ]
    if require_confirmation:
        whens.append((columns.confirmed_at.is_(None), "pending"))
    return case(*whens, else_="confirmed")


def recount(session: Session, campaign: Campaign) -> dict[str, tuple[int, int]]:
    """Rebuild the counters from the rows' counted flags; returns {country: (was, now)}.

    A listed counter that differed is returned as {"<country> listed": (was, now)}; a
    counter on the wrong continent is set right too. The flags are trusted (rows inserted
    around :func:`refresh` get their counters so): :func:`repair`, which `campaign recount`
    runs, sets them from each signature's dates first.
    """
    return repair(session, campaign, derive=False).counters


def repair(session: Session, campaign: Campaign, *, derive: bool = True) -> Repairs:
    """Set the campaign's signatures and counters to what the signatures' facts say.

    Each signature's status and counted flag become derive_status of its dates (as
    :func:`refresh` sets them), and each country's counters the number of signatures that
    count by that rule (and of those listed), with the country's own continent; flushes.
    One pass over the letter's rows counts them and finds any disagreeing flag; only those
    are rewritten. With derive=False the stored counted flags are counted as they are.
    On PostgreSQL the counter rows are locked first, so a change committing meanwhile is
    either counted here or moves the counters after this commits.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(TallyCount.country_code)
            .where(TallyCount.campaign_id == campaign.id)
            .with_for_update()
        )
    signature = cast(Table, Signature.__table__)
    derived = derived_status(signature.c, campaign.require_confirmation).label("derived")
    rows = (
        select(
            signature.c.country_code,
            signature.c.public,
            signature.c.status,
            signature.c.counted,
            derived,
        )
        .where(signature.c.campaign_id == campaign.id)
        .subquery()
    )
    if derive:
        counts = rows.c.derived == "confirmed"
        wrong = or_(rows.c.status != rows.c.derived, rows.c.counted.is_(True) != counts)
    else:
        counts, wrong = rows.c.counted.is_(True), false()
    per_country = session.execute(
        select(
            rows.c.country_code,
            func.sum(case((counts, 1), else_=0)),
            func.sum(case((and_(counts, rows.c.public.is_(True)), 1), else_=0)),
            func.sum(case((wrong, 1), else_=0)),
        ).group_by(rows.c.country_code)
    ).all()
    fresh = {code: (int(n or 0), int(listed or 0)) for code, n, listed, _wrong in per_country}
    statuses: list[StatusDrift] = []
    if any(int(bad or 0) for *_rest, bad in per_country):
        statuses = _repair_statuses(session, campaign)
    stored = {
        row.country_code: row
        for row in session.scalars(select(TallyCount).where(TallyCount.campaign_id == campaign.id))
    }
    drift: dict[str, tuple[int, int]] = {}
    continents: dict[str, tuple[str, str]] = {}
    for code in set(fresh) | set(stored):
        now, listed_now = fresh.get(code, (0, 0))
        continent = geo.continent_of(code)
        row = stored.get(code)
        was, listed_was = (row.signatures, row.listed) if row else (0, 0)
        if was != now:
            drift[code] = (was, now)
        if listed_was != listed_now:
            drift[f"{code} listed"] = (listed_was, listed_now)
        if row is not None and row.continent_code != continent:
            continents[code] = (row.continent_code, continent)
            row.continent_code = continent
        if (was, listed_was) == (now, listed_now):
            continue
        if row is None:
            session.add(
                TallyCount(
                    campaign_id=campaign.id,
                    country_code=code,
                    continent_code=continent,
                    signatures=now,
                    listed=listed_now,
                )
            )
        else:
            row.signatures, row.listed = now, listed_now
    session.flush()
    return Repairs(drift, continents, statuses)


def _repair_statuses(session: Session, campaign: Campaign) -> list[StatusDrift]:
    """Rewrite the status and counted flag of the signatures whose facts say otherwise."""
    signature = cast(Table, Signature.__table__)
    derived = derived_status(signature.c, campaign.require_confirmation)
    counts = derived == "confirmed"
    which = (
        signature.c.campaign_id == campaign.id,
        or_(signature.c.status != derived, signature.c.counted.is_(True) != counts),
    )
    found = [
        StatusDrift(str(status), bool(counted), str(now), int(n))
        for status, counted, now, n in session.execute(
            select(signature.c.status, signature.c.counted, derived, func.count())
            .where(*which)
            .group_by(signature.c.status, signature.c.counted, derived)
            .order_by(signature.c.status, signature.c.counted, derived)
        )
    ]
    session.execute(update(signature).where(*which).values(status=derived, counted=counts))
    # Signatures this session holds may have changed: read them afresh when next used.
    for held in [obj for obj in session.identity_map.values() if isinstance(obj, Signature)]:
        session.expire(held, ["status", "counted", "updated_at"])
    return found
