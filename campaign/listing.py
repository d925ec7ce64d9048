"""The public list of signatories: listed signers (counted and public) by country, by pages.

Plain functions taking the session first; no Flask here. No read returns more than a page,
whatever the size of the letter: the number of listed signers per country (tally's listed
counters, a row per country), every listed signer of a small letter (at most PAGE_SIZE rows),
or one page of one country: a range of ix_signature_listed found from the previous page's
last row (keyset), never an OFFSET, which would read and drop every row before the page.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import ColumnElement, Row, func, or_, select
from sqlalchemy.orm import Session

from campaign import geo
from campaign.models import Signature, TallyCount

# A letter with this many listed signers or fewer shows them all on one page, by country;
# past it, the page shows the countries, and a country's signers come this many at a time.
PAGE_SIZE = 500
# A cursor holds a lowercased name of at most 200 characters: far less than this, encoded.
CURSOR_MAX = 1200

# The order of a country's page, as ix_signature_listed holds it: the database's lowercase of
# the name (so that "de Souza" stands beside "Dean"), then the id, so equal names keep one
# order from page to page. SQLite lowers ASCII letters only, so there a name starting with
# "É" comes after the Zs (as it does in Python's casefolded order of a small letter's page).
name_order = func.lower(Signature.name)


class BadCursor(ValueError):
    """A page position that no page of this service produced."""


@dataclass(frozen=True)
class Cursor:
    """A position in a country's list: just after (or before) the signer with this key and id.

    It also carries that signer's place in the list (1 for the first), so the next page knows
    where it starts without counting the rows before it; links made before it carried one
    give None.
    """

    key: str
    id: int
    place: int | None = None

    def token(self) -> str:
        """The position as a short opaque text for a URL."""
        value: list[str | int] = [self.key, self.id]
        if self.place is not None:
            value.append(self.place)
        raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _whole(value: object) -> bool:
    """Whether value is a positive integer a database column holds (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def parse_cursor(token: str) -> Cursor:
    """The position a token names; BadCursor for anything Cursor.token did not write."""
    if not token or len(token) > CURSOR_MAX:
        raise BadCursor(token[:40])
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw.decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor(token[:40]) from None
    match value:
        case [str(key), int(id_)] if _storable(key) and _whole(id_):
            return Cursor(key, id_)
        case [str(key), int(id_), int(place)] if _storable(key) and _whole(id_) and _whole(place):
            return Cursor(key, id_, place)
    raise BadCursor(token[:40])


def _storable(text: str) -> bool:
    """Whether the databases take text as a parameter: UTF-8 (no lone surrogate), no NUL."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@dataclass(frozen=True)
class Signer:
    """A listed signer as the public sees them: never an email."""

    id: int
    name: str
    title: str
    parliament: str
    party: str
    country_code: str
    verified_at: dt.datetime | None


@dataclass(frozen=True)
class CountryListing:
    """One country's name in the reader's language and its number of listed signers."""

    code: str
    name: str
    signers: int


@dataclass(frozen=True)
class CountryGroup:
    """One country's listed signers, for a letter small enough to list on one page."""

    name: str
    signers: list[Signer]


@dataclass(frozen=True)
class Page:
    """Some of one country's listed signers in name order, and where its neighbours start.

    first is the place of its first signer in the country's list (1-based), None when the
    link that led here did not say; listed is the country's number of listed signers.
    """

    signers: list[Signer]
    previous: Cursor | None
    next: Cursor | None
    first: int | None = None
    listed: int = 0

    @property
    def last(self) -> int | None:
        """The place of the page's last signer, when the first one's is known."""
        return None if self.first is None else self.first + len(self.signers) - 1


def _listed(campaign_id: int) -> tuple[ColumnElement[bool], ...]:
    """Listed signers of one campaign: the terms ix_signature_listed's predicate repeats."""
    return (
        Signature.campaign_id == campaign_id,
        Signature.counted.is_(True),
        Signature.public.is_(True),
    )


def _signer(row: Row[Any]) -> Signer:
    return Signer(
        row.id,
        row.name,
        row.title,
        row.parliament,
        row.party,
        row.country_code,
        row.verified_at,
    )


_COLUMNS = (
    Signature.id,
    Signature.name,
    Signature.title,
    Signature.parliament,
    Signature.party,
    Signature.country_code,
    Signature.verified_at,
    name_order.label("sort_key"),
)


def countries(session: Session, campaign_id: int, locale: str | None) -> list[CountryListing]:
    """Each country with listed signers and their number, by name in the reader's language."""
    # The counters tally keeps with every change of a signature (one row per country), not
    # a count of the rows, which would read every listed signer of the letter.
    rows = session.execute(
        select(TallyCount.country_code, TallyCount.listed).where(
            TallyCount.campaign_id == campaign_id, TallyCount.listed > 0
        )
    )
    found = [CountryListing(code, geo.country_name(code, locale), n) for code, n in rows]
    return sorted(found, key=lambda country: geo.sort_key(country.name))


def listed_in(session: Session, campaign_id: int, country_code: str) -> int:
    """How many signers of one country are listed: its tally counter (one row), not a count."""
    found = session.scalar(
        select(TallyCount.listed).where(
            TallyCount.campaign_id == campaign_id, TallyCount.country_code == country_code
        )
    )
    return int(found or 0)


def everyone(session: Session, campaign_id: int, locale: str | None) -> list[CountryGroup]:
    """Every listed signer (at most PAGE_SIZE) by country, both by name in the reader's terms."""
    rows = session.execute(select(*_COLUMNS).where(*_listed(campaign_id)).limit(PAGE_SIZE))
    named = sorted(
        ((geo.country_name(row.country_code, locale), _signer(row)) for row in rows),
        key=lambda item: (geo.sort_key(item[0]), item[1].name.casefold()),
    )
    return [
        CountryGroup(country, [signer for _name, signer in members])
        for country, members in groupby(named, key=lambda item: item[0])
    ]


def country_page(
    session: Session,
    campaign_id: int,
    country_code: str,
    *,
    after: Cursor | None = None,
    before: Cursor | None = None,
    listed: int = 0,
) -> Page:
    """PAGE_SIZE listed signers of a country: the first ones, or those after or before a cursor.

    listed is the country's number of listed signers (listed_in), which pins the last page.
    """
    query = select(*_COLUMNS).where(*_listed(campaign_id), Signature.country_code == country_code)
    # Spelt as a range on the key plus a tie-break rather than a row value, (key, id) > (k, i):
    # SQLite searches its index by the range, where it would scan from the country's start.
    if before is not None:
        query = query.where(
            name_order <= before.key, or_(name_order < before.key, Signature.id < before.id)
        ).order_by(name_order.desc(), Signature.id.desc())
    else:
        if after is not None:
            query = query.where(
                name_order >= after.key, or_(name_order > after.key, Signature.id > after.id)
            )
        query = query.order_by(name_order, Signature.id)
    rows = list(session.execute(query.limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if before is not None:
        rows.reverse()
    has_previous = more if before is not None else after is not None
    has_next = True if before is not None else more
    place = _first_place(len(rows), listed, after, before, has_previous, has_next)
    last_place = None if place is None else place + len(rows) - 1
    first = Cursor(rows[0].sort_key, rows[0].id, place) if rows else None
    last = Cursor(rows[-1].sort_key, rows[-1].id, last_place) if rows else None
    return Page(
        [_signer(row) for row in rows],
        previous=first if has_previous else None,
        next=last if has_next else None,
        first=place if rows else None,
        # A link's place may run past a counter read a moment earlier: never "11-15 of 14".
        listed=max(listed, last_place or 0),
    )


def _first_place(
    size: int,
    listed: int,
    after: Cursor | None,
    before: Cursor | None,
    has_previous: bool,
    has_next: bool,
) -> int | None:
    """The place of a page's first signer: from the link's cursor, pinned at either end.

    The first page starts at 1 and the last ends at the country's listed counter, whatever a
    link said; between them the place comes from the cursor (the neighbouring page's edge),
    kept within the list, so an old or altered link shows plausible numbers, never others'.
    """
    if not has_previous:
        return 1
    if not has_next and before is None:
        return max(2, listed - size + 1)
    if after is not None and after.place is not None:
        place = after.place + 1
    elif before is not None and before.place is not None:
        place = before.place - size
    else:
        return None
    return max(2, min(place, max(2, listed - size)))
