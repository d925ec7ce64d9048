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
    """A position in a country's list: just after (or before) the signer with this key and id."""

    key: str
    id: int

    def token(self) -> str:
        """The position as a short opaque text for a URL."""
        raw = json.dumps([self.key, self.id], ensure_ascii=False, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


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
        case [str(key), int(id_)] if (
            _storable(key) and not isinstance(id_, bool) and 0 < id_ < 2**63
        ):
            return Cursor(key, id_)
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
    """Some of one country's listed signers in name order, and where its neighbours start."""

    signers: list[Signer]
    previous: Cursor | None
    next: Cursor | None


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
    return sorted(found, key=lambda country: country.name.casefold())


def everyone(session: Session, campaign_id: int, locale: str | None) -> list[CountryGroup]:
    """Every listed signer (at most PAGE_SIZE) by country, both by name in the reader's terms."""
    rows = session.execute(select(*_COLUMNS).where(*_listed(campaign_id)).limit(PAGE_SIZE))
    named = sorted(
        ((geo.country_name(row.country_code, locale), _signer(row)) for row in rows),
        key=lambda item: (item[0].casefold(), item[1].name.casefold()),
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
) -> Page:
    """PAGE_SIZE listed signers of a country: the first ones, or those after or before a cursor."""
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
    first = Cursor(rows[0].sort_key, rows[0].id) if rows else None
    last = Cursor(rows[-1].sort_key, rows[-1].id) if rows else None
    signers = [_signer(row) for row in rows]
    if before is not None:
        return Page(signers, previous=first if more else None, next=last)
    return Page(signers, previous=first if after is not None else None, next=last if more else None)
