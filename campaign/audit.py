"""The audit trail: every organizer action, who did it, when, on what, before and after."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from campaign.models import AuditEntry, Campaign, Organizer, Signature


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"cannot record {type(value).__name__} in the audit trail")


def dumps(fields: Mapping[str, Any] | None) -> str:
    """Fields as the JSON text an audit entry stores (sorted keys, dates in ISO 8601)."""
    return json.dumps(dict(fields or {}), default=_json_default, sort_keys=True, ensure_ascii=False)


def record(
    db: Session,
    organizer: Organizer | None,
    action: str,
    *,
    campaign: Campaign | None = None,
    signature: Signature | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry in the caller's transaction (flushes; the caller commits)."""
    campaign_id = campaign.id if campaign is not None else None
    if campaign_id is None and signature is not None:
        campaign_id = signature.campaign_id
    entry = AuditEntry(
        organizer_id=organizer.id if organizer is not None else None,
        campaign_id=campaign_id,
        signature_id=signature.id if signature is not None else None,
        action=action,
        before=dumps(before),
        after=dumps(after),
    )
    db.add(entry)
    db.flush()
    return entry


@dataclass(frozen=True)
class Change:
    """One field of an entry: its value before and after, as shown on the audit page."""

    field: str
    before: Any
    after: Any

    @property
    def unchanged(self) -> bool:
        """The same value on both sides: what the entry is about (the organizer, the
        language), shown once."""
        return type(self.before) is type(self.after) and self.before == self.after


def _blank(value: Any) -> bool:
    """No value, or empty text: a field that was never given one (a party of None or "")."""
    return value is None or value == ""


def changes(entry: AuditEntry) -> list[Change]:
    """The fields an entry names, each with its before and after value (None when absent),
    less those blank on both sides (an added signature's `duplicate_of_id: None`)."""
    before = json.loads(entry.before or "{}")
    after = json.loads(entry.after or "{}")
    return [
        Change(key, before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if not (_blank(before.get(key)) and _blank(after.get(key)))
    ]


def entries(
    db: Session, campaign: Campaign | None, *, page: int = 1, per_page: int = 50
) -> tuple[list[AuditEntry], int]:
    """One page of a campaign's entries (every entry when campaign is None), newest first."""
    where = [] if campaign is None else [AuditEntry.campaign_id == campaign.id]
    total = db.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    rows = db.scalars(
        select(AuditEntry)
        .where(*where)
        .options(joinedload(AuditEntry.organizer))
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    )
    return list(rows), int(total)


def redact_signature(db: Session, signature_id: int, fields: tuple[str, ...]) -> int:
    """Blank the named fields in a signature's earlier entries (erasure); returns how many."""
    changed = 0
    for entry in db.scalars(select(AuditEntry).where(AuditEntry.signature_id == signature_id)):
        for side in ("before", "after"):
            data = json.loads(getattr(entry, side) or "{}")
            hits = [key for key in fields if data.get(key)]
            if hits:
                data.update(dict.fromkeys(hits, "[erased]"))
                setattr(entry, side, dumps(data))
                changed += 1
    db.flush()
    return changed
