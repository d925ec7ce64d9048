"""What organizers do to signatures: verify, reject, restore, erase, correct, resolve duplicates.

Each operation reloads the signature row-locked (tally.lock), checks that it still
applies to the signature's current state, changes the facts, lets tally.refresh derive
status and counters, and writes one audit entry with the changed fields before and after.
Operations only flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, joinedload

from campaign import audit, geo, mail, signing, tally
from campaign.db import utcnow
from campaign.models import Campaign, Organizer, OutboxMessage, Signature

PER_PAGE = 50
# An organizer may mail a signer's confirmation again once this long after the last one.
RESEND_INTERVAL = dt.timedelta(minutes=10)
# Sort keys the list accepts (anything else falls back to the newest first), each the columns
# it orders by before the id; each order is an index's (ix_signature_campaign_*), so a page
# reads one range of it instead of sorting the letter. Within a status, signing order.
SORTS: dict[str, tuple[Any, ...]] = {
    "signed_at": (Signature.signed_at,),
    "name": (func.lower(Signature.name),),
    "country": (Signature.country_code,),
    "status": (Signature.status, Signature.signed_at),
}
# The personal data an erasure removes, and the neutral value each gets.
ERASED_VALUES: dict[str, Any] = {
    "name": "",
    "title": "",
    "parliament": "",
    "party": "",
    "email": "",
    "email_domain": "",
    "name_key": "",
    "comment": "",
    "client_hash": None,
    "rejected_reason": "",
    "public": False,
}
# Audit fields that may hold something personal (a reason naming the signer).
_PERSONAL_AUDIT_FIELDS = ("rejected_reason", *ERASED_VALUES)

Keep = Literal["both", "this", "other"]


class ReviewError(ValueError):
    """The action does not apply to the signature as it is now; .code says why."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _locked(db: Session, signature: Signature) -> Signature:
    fresh = tally.lock(db, signature.id)
    if fresh is None:
        raise ReviewError("gone")
    return fresh


def _change(
    db: Session,
    organizer: Organizer,
    signature: Signature,
    action: str,
    facts: Mapping[str, Any],
    *,
    derived: Mapping[str, Any] | None = None,
) -> Signature:
    """Set facts, re-derive status and counters, and audit what actually changed.

    derived: values that follow from the facts (a name's key, a country's continent),
    set with them but not audited.
    """
    before = {key: getattr(signature, key) for key in facts}
    before |= {"status": signature.status, "counted": signature.counted}
    for key, value in {**facts, **(derived or {})}.items():
        setattr(signature, key, value)
    tally.refresh(db, signature)
    after = {key: getattr(signature, key) for key in before}
    changed = [key for key in before if before[key] != after[key]]
    audit.record(
        db,
        organizer,
        action,
        signature=signature,
        before={key: before[key] for key in changed},
        after={key: after[key] for key in changed},
    )
    return signature


def verify(
    db: Session, organizer: Organizer, signature: Signature, *, now: dt.datetime | None = None
) -> Signature:
    """Mark the signer as checked to be who they say (the public list shows a mark)."""
    signature = _locked(db, signature)
    if signature.erased_at is not None:
        raise ReviewError("erased")
    if signature.verified_at is not None:
        raise ReviewError("already_verified")
    return _change(db, organizer, signature, "signature.verify", {"verified_at": now or utcnow()})


def unverify(db: Session, organizer: Organizer, signature: Signature) -> Signature:
    """Take the verified mark away."""
    signature = _locked(db, signature)
    if signature.verified_at is None:
        raise ReviewError("not_verified")
    return _change(db, organizer, signature, "signature.unverify", {"verified_at": None})


def reject(
    db: Session,
    organizer: Organizer,
    signature: Signature,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> Signature:
    """Stop counting a signature, saying why (shown to organizers only)."""
    reason = reason.strip()
    if not reason:
        raise ReviewError("reason_required")
    signature = _locked(db, signature)
    if signature.erased_at is not None:
        raise ReviewError("erased")
    if signature.rejected_at is not None:
        raise ReviewError("already_rejected")
    return _change(
        db,
        organizer,
        signature,
        "signature.reject",
        {"rejected_at": now or utcnow(), "rejected_reason": reason[:500]},
    )


def restore(db: Session, organizer: Organizer, signature: Signature) -> Signature:
    """Undo a rejection; the signature counts again if its other facts allow.

    While it was rejected it was off the letter, so a namesake of the same country could
    sign and count meanwhile: back on the letter, it is judged as signing would judge it
    now, held as that namesake's possible duplicate (a flag it already has, or a decision
    on it, stays), so that one person never counts twice.
    """
    # The person lock before the row lock, as signing and corrections take them.
    signing.lock_person(db, signature.campaign_id, signature.name_key, signature.country_code)
    signature = _locked(db, signature)
    if signature.erased_at is not None:
        raise ReviewError("erased")
    if signature.rejected_at is None:
        raise ReviewError("not_rejected")
    facts: dict[str, Any] = {"rejected_at": None, "rejected_reason": ""}
    facts |= signing.namesake_flags(
        db, signature, signature.name_key, signature.country_code, release=False
    )
    return _change(db, organizer, signature, "signature.restore", facts)


def unlist(db: Session, organizer: Organizer, signature: Signature) -> Signature:
    """Take a signer off the public list, at their request; it still counts.

    Only the signer agrees to be listed (when signing), so there is no way back here.
    """
    signature = _locked(db, signature)
    if signature.erased_at is not None:
        raise ReviewError("erased")
    if not signature.public:
        raise ReviewError("not_listed")
    return _change(db, organizer, signature, "signature.unlist", {"public": False})


def resend_confirmation(
    db: Session,
    organizer: Organizer,
    signature: Signature,
    queue: Callable[[Signature], object],
) -> Signature:
    """Queue the confirmation mail again through queue(signature); pending signatures only,
    and not while one queued in the last RESEND_INTERVAL is on its way: a mailbox that got
    four confirmations in a minute reads them as spam, and so do its filters."""
    signature = _locked(db, signature)
    if signature.status != "pending":
        raise ReviewError("not_pending")
    recent = db.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.signature_id == signature.id,
            OutboxMessage.kind == "confirm",
            OutboxMessage.created_at > utcnow() - RESEND_INTERVAL,
        )
    )
    if recent:
        raise ReviewError("recently_sent")
    queue(signature)
    audit.record(db, organizer, "signature.resend_confirmation", signature=signature)
    return signature


def erase(
    db: Session, organizer: Organizer, signature: Signature, *, now: dt.datetime | None = None
) -> Signature:
    """Remove the signer's personal data for good; the row stays, uncounted, for the history.

    What stays: the id, campaign, country and continent, source, locale and the dates
    (signed, confirmed, verified, rejected, withdrawn), so past counts remain explicable.
    The email key becomes "erased:<id>" so the same person can sign again later. Mail
    to the signer still in the outbox (or already sent) is deleted, and earlier audit
    entries of the signature lose any reason text that could name them.
    """
    signature = _locked(db, signature)
    if signature.erased_at is not None:
        raise ReviewError("erased")
    before = {"status": signature.status, "counted": signature.counted}
    for key, value in ERASED_VALUES.items():
        setattr(signature, key, value)
    signature.email_key = f"erased:{signature.id}"
    signature.erased_at = now or utcnow()
    tally.refresh(db, signature)
    mail.forget_signers(db, Signature.id == signature.id)
    audit.redact_signature(db, signature.id, _PERSONAL_AUDIT_FIELDS)
    audit.record(
        db,
        organizer,
        "signature.erase",
        signature=signature,
        before=before,
        after={
            "status": signature.status,
            "counted": signature.counted,
            "erased_at": signature.erased_at,
        },
    )
    return signature


# The details an organizer may correct, in the form's order. Not the email address (the
# signer's identity and the key refusing a second signature) nor the listing (consent).
DETAILS = ("name", "title", "parliament", "party", "country_code")


@dataclass(frozen=True)
class Details:
    """A signer's corrected details, already cleaned by signing's rules (the sign form's)."""

    name: str
    title: str
    parliament: str
    party: str
    country_code: str


@dataclass(frozen=True)
class Edited:
    """What a correction did, for the organizer to read."""

    signature: Signature
    # The details that changed, in DETAILS order; empty when nothing did (and nothing was audited).
    changed: tuple[str, ...] = ()
    # Newly held as a possible duplicate of this signature (same name and country now).
    resembles: int | None = None
    # It resembled this signature and no longer does: the flag between them is gone.
    released_from: int | None = None
    # Signatures held as resembling this one, which no longer do: they stay held.
    still_held: tuple[int, ...] = ()


def edit(db: Session, organizer: Organizer, signature: Signature, details: Details) -> Edited:
    """Correct a signer's details; the counters and the duplicate flags follow, one audit entry.

    A new name or country gives a new person key, judged as signing judges a new signer:
    resembling another live signature of the letter (same key and country), a live
    signature is held as its possible duplicate and stops counting until an organizer
    decides; resembling none, a flag it had against another is removed (it counts again,
    as it would have had it been signed this way). A hold from the suspicious-activity page
    stays (it is not about names), and a rejected or withdrawn signature's flags stay as they
    are. Signatures held as resembling this one keep their hold: their details did not
    change, and the duplicates page shows how the pair now differs.
    """
    person = signing.name_key(details.name)
    # The person lock before the row lock, in the order signing takes them: a signer with
    # the new name and country waits for this correction, or this waits for them.
    signing.lock_person(db, signature.campaign_id, person, details.country_code)
    signature = _locked(db, signature)
    if signature.erased_at is not None:
        raise ReviewError("erased")
    wanted = {key: getattr(details, key) for key in DETAILS}
    facts = {key: value for key, value in wanted.items() if getattr(signature, key) != value}
    if not facts:
        return Edited(signature)
    derived: dict[str, Any] = {"name_key": person}
    if "country_code" in facts:
        derived["continent_code"] = geo.continent_of(details.country_code)
    moved = (person, details.country_code) != (signature.name_key, signature.country_code)
    flags: dict[str, Any] = {}
    was_against = signature.duplicate_of_id
    if moved and signature.status not in signing.GONE_STATUSES:
        # Read before any attribute changes: the query's autoflush would write the new
        # country, and with it the history tally.refresh moves the old country's counter by.
        flags = signing.namesake_flags(db, signature, person, details.country_code, release=True)
    _change(db, organizer, signature, "signature.edit", facts | flags, derived=derived)
    still_held: tuple[int, ...] = ()
    if moved:
        still_held = tuple(
            db.scalars(
                select(Signature.id)
                .where(
                    Signature.duplicate_of_id == signature.id,
                    Signature.status == "held",
                    or_(
                        Signature.name_key != person,
                        Signature.country_code != details.country_code,
                    ),
                )
                .order_by(Signature.id)
            )
        )
    return Edited(
        signature,
        changed=tuple(key for key in DETAILS if key in facts),
        resembles=flags.get("duplicate_of_id"),
        released_from=was_against if flags and was_against is not None else None,
        still_held=still_held,
    )


@dataclass(frozen=True)
class Resolution:
    """What settling a possible duplicate did.

    gone: the signature `this` was held against, which left the letter meanwhile (rejected,
    withdrawn or erased): nothing was decided, `this` is held against `other` now, the
    signature of that person that is still on the letter.
    """

    this: Signature
    other: Signature | None
    rejected: Signature | None = None
    gone: Signature | None = None


def resolve_duplicate(db: Session, organizer: Organizer, held: Signature, keep: Keep) -> Resolution:
    """Settle a possible duplicate: keep "this" (held) one, the "other", or count "both".

    Keeping one rejects the other with the reason "duplicate of #<kept id>". A decision is
    only taken against a signature still on the letter: when the one it was held against
    left it meanwhile (rejected, say as the duplicate of a third with the same name), keeping
    or counting this one could count the person twice. It is then held against the earliest
    namesake still on the letter, to be compared again; with none left, it may be kept (it
    is the person's only signature), but not rejected for the one that left.
    """
    ids = sorted({held.id} | ({held.duplicate_of_id} if held.duplicate_of_id else set()))
    # Lock in id order so two organizers resolving crossing pairs cannot deadlock.
    locked = {sid: tally.lock(db, sid) for sid in ids}
    this = locked.get(held.id)
    if this is None:
        raise ReviewError("gone")
    if this.status != "held":
        raise ReviewError("not_held")
    if keep not in ("both", "this", "other"):
        raise ReviewError("bad_choice")
    other = locked.get(this.duplicate_of_id) if this.duplicate_of_id else None
    if other is not None and other.status in signing.GONE_STATUSES:
        live = signing.resembling(db, this, this.name_key, this.country_code, prefer=None)
        if live is not None:
            _change(db, organizer, this, "duplicate.flag", {"duplicate_of_id": live})
            return Resolution(this, db.get(Signature, live), gone=other)
        if keep == "other":
            raise ReviewError("other_gone")
    now = utcnow()
    rejected: Signature | None = None
    if keep == "both":
        _change(db, organizer, this, "duplicate.count_both", {"duplicate_state": "distinct"})
    elif keep == "this":
        # The person's signature: no longer a possible duplicate. The one rejected for it is
        # held against it instead, as "other" leaves the held one, so that restoring the
        # rejected one brings the pair back for a decision rather than counting both.
        _change(
            db,
            organizer,
            this,
            "duplicate.keep",
            {"duplicate_state": None, "duplicate_of_id": None},
        )
        if other is not None and other.status not in signing.GONE_STATUSES:
            rejected = _change(
                db,
                organizer,
                other,
                "duplicate.reject",
                {
                    "rejected_at": now,
                    "rejected_reason": f"duplicate of #{this.id}",
                    "duplicate_of_id": this.id,
                    "duplicate_state": "held",
                },
            )
    else:
        if other is None:
            raise ReviewError("gone")
        # duplicate_state stays "held": should the rejection be undone, the pair is back
        # in the duplicates list for a decision.
        rejected = _change(
            db,
            organizer,
            this,
            "duplicate.reject",
            {"rejected_at": now, "rejected_reason": f"duplicate of #{other.id}"},
        )
    return Resolution(this, other, rejected)


def list_order(sort: str, descending: bool) -> list[Any]:
    """The ORDER BY of the list sorted by sort (one of SORTS, else newest first), ties by id."""
    columns = (*SORTS.get(sort, SORTS["signed_at"]), Signature.id)
    return [column.desc() if descending else column.asc() for column in columns]


@dataclass(frozen=True)
class Page:
    """One page of the signature list."""

    rows: list[Signature]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the list has (at least one)."""
        return max(1, -(-self.total // self.per_page))


def list_signatures(
    db: Session,
    campaign: Campaign,
    narrow: Callable[[Select[Any]], Select[Any]],
    *,
    sort: str = "signed_at",
    descending: bool = True,
    page: int = 1,
    per_page: int = PER_PAGE,
    total: int | None = None,
) -> Page:
    """One page of the campaign's signatures that narrow() keeps, in the chosen order.

    The page is read first: when it is the list's last (some rows, fewer than a page; or
    none on the first page) the total is known without a COUNT. A search few rows match
    reads every row of the letter to fill its page, and used to read them all again to
    count. A caller that knows how many rows narrow() keeps (the status counts it shows
    anyway) passes total, and no COUNT runs. Past the last page, the last one is shown.
    """
    base = narrow(select(Signature).where(Signature.campaign_id == campaign.id))
    order = list_order(sort, descending)

    def read(number: int) -> list[Signature]:
        offset = (number - 1) * per_page
        return list(db.scalars(base.order_by(*order).limit(per_page).offset(offset)))

    page = max(1, page)
    if total is not None:
        page = min(page, max(1, -(-total // per_page)))
        return Page(read(page), total, page, per_page)
    rows = read(page)
    if 0 < len(rows) < per_page or (page == 1 and not rows):
        return Page(rows, (page - 1) * per_page + len(rows), page, per_page)
    total = int(db.scalar(select(func.count()).select_from(base.order_by(None).subquery())) or 0)
    last = max(1, -(-total // per_page))
    if page > last:
        page = last
        rows = read(page)
    return Page(rows, total, page, per_page)


def held_duplicates(
    db: Session, campaign: Campaign, *, page: int = 1, per_page: int = PER_PAGE
) -> tuple[list[Signature], int]:
    """Held signatures, oldest first, each with the signature it resembles loaded."""
    where = (Signature.campaign_id == campaign.id, Signature.status == "held")
    total = db.scalar(select(func.count()).select_from(Signature).where(*where)) or 0
    rows = db.scalars(
        select(Signature)
        .where(*where)
        .options(joinedload(Signature.duplicate_of))
        .order_by(Signature.signed_at, Signature.id)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    )
    return list(rows), int(total)
