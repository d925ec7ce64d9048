"""Suspicious activity: signatures per hour by client-address hash and by email domain.

Bots give themselves away by volume from one source: many signatures in one hour from
one address (its keyed hash) or one mail domain, where an ordinary hour brings one or
two. :func:`activity` counts the form's signatures per group and time bucket and flags a
group when one of its buckets is both above an absolute threshold and far above the
median of the campaign's other buckets; :func:`act_on_group` holds or rejects a group's
signatures through tally.lock/refresh, with an audit entry for each.

Only signatures made through the form (source "form") are grouped: an imported file or
an organizer's hand adds many from one domain in an hour, which says nothing about what
the form brings, and is no bot to stop.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from campaign import audit, tally
from campaign.db import utcnow
from campaign.models import Campaign, Organizer, Signature

Kind = Literal["client", "domain"]
Bucket = Literal["hour", "day"]
Action = Literal["hold", "reject"]

KINDS: tuple[Kind, ...] = ("client", "domain")
# A bucket is a burst when it holds at least this many signatures ...
BURST_MIN = 20
# ... and at least this many times the median of the campaign's other buckets of that kind
# (a typical hour from one source, the one judged left out: a letter's first burst is no
# yardstick for itself) ...
BURST_FACTOR = 5.0
# ... or of this many signatures, when no other bucket has any: an ordinary hour's one.
TYPICAL_FLOOR = 1.0
# Signatures in these states are settled; a bulk action leaves them alone.
_SETTLED = ("rejected", "withdrawn", "erased")
_FORMATS = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


class AbuseError(ValueError):
    """A bad kind, bucket or action was asked for."""


@dataclass(frozen=True)
class Count:
    """Signatures in one time bucket (its start, UTC)."""

    start: dt.datetime
    signatures: int


@dataclass(frozen=True)
class Group:
    """One source (an address hash or a mail domain) and its signatures per bucket."""

    kind: Kind
    key: str
    total: int
    # Signatures not yet rejected, withdrawn or erased: what a bulk action would touch.
    open: int
    counts: list[Count]
    peak: Count
    flagged: bool


@dataclass(frozen=True)
class Activity:
    """A campaign's signatures since a time, per bucket, grouped both ways."""

    since: dt.datetime
    bucket: Bucket
    timeline: list[Count]
    # Per kind, the typical bucket the busiest one is judged against: the median of the
    # others (TYPICAL_FLOOR when there is none), as any burst of the period would be.
    medians: dict[Kind, float]
    groups: dict[Kind, list[Group]]

    @property
    def flagged(self) -> list[Group]:
        """The flagged groups of both kinds, largest burst first."""
        found = [g for kind in KINDS for g in self.groups[kind] if g.flagged]
        return sorted(found, key=lambda g: (-g.peak.signatures, g.kind, g.key))


def _column(kind: Kind) -> Any:
    if kind == "client":
        return Signature.client_hash
    if kind == "domain":
        return Signature.email_domain
    raise AbuseError(f"unknown kind {kind!r}")


def _bucket_expr(db: Session, bucket: Bucket) -> Any:
    """SQL for the start of a signature's bucket, in UTC, on this database."""
    if bucket not in _FORMATS:
        raise AbuseError(f"unknown bucket {bucket!r}")
    if db.get_bind().dialect.name == "postgresql":
        return func.date_trunc(bucket, func.timezone("UTC", Signature.signed_at))
    # SQLite keeps UTC datetimes as ISO text: cut it at the hour (or the day).
    return func.strftime(_FORMATS[bucket], Signature.signed_at)


def _typical(sizes: list[int], size: int) -> float:
    """The median of the sorted `sizes` less one bucket of `size`, else TYPICAL_FLOOR.

    The bucket being judged is left out, or a burst would raise its own yardstick: on a
    new letter it may be most of the buckets, and the median would be the burst itself.
    """
    left = len(sizes) - 1
    if left <= 0:
        return TYPICAL_FLOOR
    gone = bisect_left(sizes, size)

    def other(k: int) -> int:
        # The k-th of the sizes once the one at `gone` is taken out.
        return sizes[k] if k < gone else sizes[k + 1]

    return (other((left - 1) // 2) + other(left // 2)) / 2


def _as_utc(value: dt.datetime | str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def activity(
    db: Session,
    campaign: Campaign,
    since: dt.datetime,
    bucket: Bucket = "hour",
    *,
    threshold: int = BURST_MIN,
    factor: float = BURST_FACTOR,
    limit: int | None = 50,
) -> Activity:
    """Signatures since `since` per bucket, by address hash and by domain, bursts flagged.

    Each kind lists its groups flagged first, then by their largest bucket; `limit` keeps
    that many per kind (None keeps all). A group is flagged when its busiest bucket holds
    at least `threshold` signatures and `factor` times the median of the kind's other
    buckets. Imported signatures (a file, or added by an organizer) and erased ones (no
    address hash or domain left) appear only in the timeline.
    """
    start = _bucket_expr(db, bucket)
    window = (Signature.campaign_id == campaign.id, Signature.signed_at >= since)
    timeline = [
        Count(_as_utc(moment), int(n))
        for moment, n in db.execute(
            select(start, func.count()).where(*window).group_by(start).order_by(start)
        )
    ]
    medians: dict[Kind, float] = {}
    groups: dict[Kind, list[Group]] = {}
    opened = func.sum(case((Signature.status.in_(_SETTLED), 0), else_=1))
    for kind in KINDS:
        column = _column(kind)
        present = (*window, Signature.source == "form", column.is_not(None), column != "")
        # One row per group and bucket, with its open signatures. At a million signers
        # from as many addresses these are a million rows: each is read once into plain
        # numbers, and Count and Group objects are made only for the groups listed.
        cells = db.execute(
            select(column, start, func.count(), opened).where(*present).group_by(column, start)
        ).all()
        sizes = sorted(int(n) for _, _, n, _ in cells)
        medians[kind] = _typical(sizes, sizes[-1]) if sizes else TYPICAL_FLOOR
        peaks: dict[str, int] = defaultdict(int)
        totals: dict[str, int] = defaultdict(int)
        for key, _, n, _ in cells:
            peaks[key] = max(peaks[key], n)
            totals[key] += n
        # Judging a group's peak is enough: its yardstick is the lowest of the group's
        # buckets. Groups share few peak sizes: each size is judged once.
        flagged = {
            peak: peak >= threshold and peak >= factor * _typical(sizes, peak)
            for peak in set(peaks.values())
        }
        order = sorted(peaks, key=lambda k: (not flagged[peaks[k]], -peaks[k], -totals[k], k))
        listed = order if limit is None else order[:limit]
        counts: dict[str, list[Count]] = {key: [] for key in listed}
        open_counts: dict[str, int] = defaultdict(int)
        for key, moment, n, still_open in cells:
            if key in counts:
                counts[key].append(Count(_as_utc(moment), int(n)))
                open_counts[key] += int(still_open or 0)
        found = []
        for key in listed:
            mine = sorted(counts[key], key=lambda c: c.start)
            peak = max(mine, key=lambda c: (c.signatures, -c.start.timestamp()))
            found.append(
                Group(
                    kind=kind,
                    key=str(key),
                    total=totals[key],
                    open=open_counts[key],
                    counts=mine,
                    peak=peak,
                    flagged=flagged[peak.signatures],
                )
            )
        groups[kind] = found
    return Activity(since=since, bucket=bucket, timeline=timeline, medians=medians, groups=groups)


def _targets(
    campaign: Campaign,
    kind: Kind,
    key: str,
    action: Action,
    since: dt.datetime,
    until: dt.datetime | None,
) -> list[Any]:
    """The WHERE clause of the signatures a bulk action on a group would change."""
    if action not in ("hold", "reject"):
        raise AbuseError(f"unknown action {action!r}")
    if not key:
        raise AbuseError("a group needs a key")
    column = _column(kind)
    where = [
        Signature.campaign_id == campaign.id,
        # The signatures the page grouped: an imported one is never part of a burst.
        Signature.source == "form",
        column == key,
        Signature.signed_at >= since,
        Signature.status.not_in(_SETTLED),
    ]
    if action == "hold":
        where.append(Signature.status != "held")
    if until is not None:
        where.append(Signature.signed_at < until)
    return where


def affected(
    db: Session,
    campaign: Campaign,
    kind: Kind,
    key: str,
    action: Action,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
) -> int:
    """How many signatures act_on_group would change now, for the organizer to confirm."""
    where = _targets(campaign, kind, key, action, since, until)
    return int(db.scalar(select(func.count()).select_from(Signature).where(*where)) or 0)


def act_on_group(
    db: Session,
    organizer: Organizer,
    campaign: Campaign,
    kind: Kind,
    key: str,
    action: Action,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
    reason: str = "",
    now: dt.datetime | None = None,
) -> int:
    """Hold or reject a group's open signatures signed in [since, until); returns how many.

    "hold" takes them out of the count until an organizer releases each (they join the
    held list, like possible duplicates); "reject" stops counting them, with the reason.
    Each goes through tally.lock/refresh and gets an audit entry, and the campaign one
    entry for the whole action. Flushes only.
    """
    where = _targets(campaign, kind, key, action, since, until)
    ids = list(db.scalars(select(Signature.id).where(*where).order_by(Signature.id)))
    moment = now or utcnow()
    note = reason.strip() or f"burst from one {'address' if kind == 'client' else 'domain'}"
    group = f"{kind}:{key}"
    changed = 0
    for signature_id in ids:
        signature = tally.lock(db, signature_id)
        # Re-checked under the lock: another organizer may have settled it meanwhile.
        if signature is None or signature.status in _SETTLED:
            continue
        if action == "hold" and signature.status == "held":
            continue
        before = {"status": signature.status, "counted": signature.counted}
        if action == "hold":
            before["duplicate_state"] = signature.duplicate_state
            signature.duplicate_state = "held"
        else:
            signature.rejected_at = moment
            signature.rejected_reason = note[:500]
        tally.refresh(db, signature)
        after: dict[str, Any] = {"status": signature.status, "counted": signature.counted}
        if action == "hold":
            after["duplicate_state"] = signature.duplicate_state
        else:
            after["rejected_reason"] = signature.rejected_reason
        audit.record(
            db,
            organizer,
            f"abuse.{action}",
            signature=signature,
            before=before | {"group": group},
            after=after | {"group": group},
        )
        changed += 1
    if changed:
        # One entry the campaign's trail shows for the decision as a whole.
        summary: dict[str, Any] = {"group": group, "signatures": changed, "since": since}
        if until is not None:
            summary["until"] = until
        if action == "reject":
            summary["reason"] = note[:500]
        audit.record(db, organizer, f"abuse.{action}_group", campaign=campaign, after=summary)
    return changed
