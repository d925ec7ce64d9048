"""Signatures as CSV: the contract's columns, formula-safe cells, streamed in chunks.

Every cell but the place names is formatted by the database (see _LINE), which also
joins each read's lines into one text (see _Read). Rows are read in ranges of ids by a
few reader threads, each on its own connection, handed back in id order (see _ranges);
rows added during the export are then read in keyset chunks (``id > last ORDER BY id
LIMIT n``). Every read is its own short transaction, begun DEFERRED on SQLite (a WAL
reader takes no lock): a download to a slow client can take minutes, and no read may
hold SQLite's write lock or keep signers waiting for it. Memory stays flat: a few
chunks of lines are held at a time.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import io
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Select,
    SQLColumnExpression,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.pool import SingletonThreadPool, StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from campaign import geo, listing, signing, tally
from campaign.db import reading
from campaign.models import SIGNATURE_STATUSES, SOURCES, Campaign, Signature
from campaign.signing import N_

# The public interface (DESIGN.md): these names, in this order.
CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "signed_at",
    "confirmed_at",
    "status",
    "counted",
    "verified",
    "name",
    "title",
    "parliament",
    "party",
    "country_code",
    "country",
    "continent_code",
    "continent",
    "email",
    "public",
    "comment",
    "source",
)

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Status filter values beyond the stored statuses: "counted" (what the public numbers count).
STATUS_CHOICES: tuple[str, ...] = ("counted", *SIGNATURE_STATUSES)
# Every status, as an empty status filter: the word of `campaign export-csv --status all`.
STATUS_ALL = "all"
CHUNK_ROWS = 2000
# Threads that read ranges of ids at once (the drivers let go of the GIL while the
# database works), and how many ranges they may have read ahead of the consumer.
READ_THREADS = 2
LOOK_AHEAD = 2 * READ_THREADS
READER_THREAD_NAME = "campaign-export"
# Marks the place codes in a line the database joined (the ASCII unit separator); a read
# whose fields hold one is read again row by row.
MARK = "\x1f"
BOM = "\ufeff"

# What the organizer's search looks in: a substring, each letter in any case as PostgreSQL's
# ILIKE folds them (é and e stay apart here; a name is also found without its accents, by
# its stored key: see name_words).
SEARCHED: tuple[SQLColumnExpression[str], ...] = (
    Signature.name,
    Signature.email,
    Signature.party,
    Signature.parliament,
)

_TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", "n"})

S = TypeVar("S", bound=Select[*tuple[Any, ...]])
_Select = Select[*tuple[Any, ...]]


def _flag(value: str | None) -> bool | None:
    """A yes/no query argument; anything else means "either"."""
    word = (value or "").strip().casefold()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


@dataclass(frozen=True)
class SignatureFilter:
    """What the organizer's list and the export show; empty or None means "any"."""

    q: str = ""
    status: str = ""
    country: str = ""
    continent: str = ""
    verified: bool | None = None
    held: bool | None = None
    source: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> SignatureFilter:
        """The filter from query arguments; unknown values are ignored, never an error
        (status "all" is every status, as no status)."""
        status = (args.get("status") or "").strip().casefold()
        country = (args.get("country") or "").strip().upper()
        continent = (args.get("continent") or "").strip().upper()
        source = (args.get("source") or "").strip().casefold()
        return cls(
            q=normalize_query(args.get("q") or "")[:200],
            status=status if status in STATUS_CHOICES else "",
            country=country if geo.is_known(country) else "",
            continent=continent if continent in geo.CONTINENTS else "",
            verified=_flag(args.get("verified")),
            held=_flag(args.get("held")),
            source=source if source in SOURCES else "",
        )

    def apply(self, stmt: S) -> S:
        """Narrow a SELECT over Signature to the rows this filter lets through.

        The search (see search_clause) is ILIKE '%q%' over SEARCHED, or every word of q
        without its accents in the name's key; on PostgreSQL the trigram index of
        migrations 0014 and 0019 serves it, on SQLite the rows are read.
        """
        if self.q:
            stmt = stmt.where(search_clause(self.q))
        if self.status == "counted":
            stmt = stmt.where(Signature.counted.is_(true()))
        elif self.status:
            stmt = stmt.where(Signature.status == self.status)
        if self.country:
            stmt = stmt.where(Signature.country_code == self.country)
        if self.continent:
            stmt = stmt.where(Signature.continent_code == self.continent)
        if self.verified is True:
            stmt = stmt.where(Signature.verified_at.is_not(None))
        elif self.verified is False:
            stmt = stmt.where(Signature.verified_at.is_(None))
        # Held means awaiting a decision: the status, as the list's counter and the
        # duplicates page count it. duplicate_state alone is not: a signature rejected as
        # a duplicate keeps "held" against the one kept (review.resolve_duplicate), so
        # that restoring it brings the pair back for a decision.
        if self.held is True:
            stmt = stmt.where(Signature.status == "held")
        elif self.held is False:
            stmt = stmt.where(Signature.status != "held")
        if self.source:
            stmt = stmt.where(Signature.source == self.source)
        return stmt


# The words a yes/no filter is given in (the list's own links say yes and no).
_FLAG_CHOICES = ("yes", "no")
_UNKNOWN_VALUE = N_(
    "Unknown %(filter)s filter: %(value)s. Use one of: %(allowed)s; or leave it empty."
)
_UNKNOWN_COUNTRY = N_(
    "Unknown country filter: %(value)s. Use a two-letter country code such as FR, "
    "or leave it empty."
)


def unknown_filters(args: Mapping[str, str]) -> dict[str, tuple[str, dict[str, str]]]:
    """Each filter argument whose value is not one the filter knows: its name -> (msgid,
    values) saying so.

    The list ignores such a value (a link that no longer applies still shows the list),
    but an export must not hand over every row because a filter was mistyped. An empty
    value means "any"; case does not matter, as in SignatureFilter.from_args.
    """
    problems: dict[str, tuple[str, dict[str, str]]] = {}
    choices: dict[str, tuple[str, ...]] = {
        "status": (*STATUS_CHOICES, STATUS_ALL),
        "continent": tuple(geo.CONTINENTS),
        "verified": _FLAG_CHOICES,
        "held": _FLAG_CHOICES,
        "source": SOURCES,
    }
    for name in ("status", "country", "continent", "verified", "held", "source"):
        value = (args.get(name) or "").strip()
        if not value:
            continue
        if name == "country":
            # Any known country, those no one may choose now too (their rows stay findable).
            if not geo.is_known(value.upper()):
                problems[name] = (_UNKNOWN_COUNTRY, {"value": value})
            continue
        if name in ("verified", "held"):
            known = _flag(value) is not None
        elif name == "continent":
            known = value.upper() in geo.CONTINENTS
        else:
            known = value.casefold() in choices[name]
        if not known:
            allowed = ", ".join(choices[name])
            problems[name] = (_UNKNOWN_VALUE, {"filter": name, "value": value, "allowed": allowed})
    return problems


def describe(signature_filter: SignatureFilter) -> dict[str, Any]:
    """The filter's set fields, for the audit trail."""
    return {
        key: value
        for key, value in dataclasses.asdict(signature_filter).items()
        if value not in ("", None)
    }


def from_args(args: Mapping[str, str]) -> SignatureFilter:
    """The filter from query arguments (see SignatureFilter.from_args)."""
    return SignatureFilter.from_args(args)


def apply(stmt: S, signature_filter: SignatureFilter) -> S:
    """Narrow a SELECT over Signature by a filter (see SignatureFilter.apply)."""
    return signature_filter.apply(stmt)


def normalize_query(q: str) -> str:
    """The search as typed, in the form the rows are compared in: NFC (a keyboard that
    sends é as e and a combining accent finds the é the database holds), every run of
    white space one space, none at either end ("Person  2" finds Person 2)."""
    return " ".join(unicodedata.normalize("NFC", q).split())


def name_words(q: str) -> list[str]:
    """The words of q as a name key holds them (signing.name_key: accents, case,
    apostrophes and honorifics dropped), each once; none when q has no letter or digit.

    Each must begin a word of Signature.name_key, where signing stores every name folded
    so: Seamus, seamus and Séamus find "O'Brien Séamus" (key "obrien seamus"), so does
    "Seamus O'Brien" (any order of the words), with no function of the row's text run per
    row.
    """
    return list(dict.fromkeys(signing.name_key(q).split()))


def search_clause(q: str) -> ColumnElement[bool]:
    """SQL: whether a signature matches the organizer's search for q.

    Either q itself is a substring of the name, email, party or parliament, each letter
    in any case (see ilike), or every word of q, folded as names are (see name_words),
    begins a word of the name's key. The party and parliament are compared with their
    accents (Grunen does not find Grünen): folding them would take a function of every
    row's text, or columns of their own.
    """
    q = normalize_query(q)
    patterns = search_patterns(q)
    found: list[ColumnElement[bool]] = [ilike(column, *patterns) for column in SEARCHED]
    words = name_words(q)
    if words:
        found.append(and_(*(_begins_a_word(Signature.name_key, word) for word in words)))
    return or_(*found)


def _begins_a_word(key: SQLColumnExpression[str], word: str) -> ColumnElement[bool]:
    """SQL: whether a word of key (words joined by one space) begins with word.

    A beginning, not any substring: "oba" finds Obama, not Jacoba; Franc finds François.
    The two LIKEs are served by the trigram index on PostgreSQL (a space or the start of
    the text is a word's edge to pg_trgm too).
    """
    escaped = _escape_like(word)
    return or_(key.like(f"{escaped}%", escape="\\"), key.like(f"% {escaped}%", escape="\\"))


def _fold(char: str) -> str:
    """A character in lower case, as PostgreSQL's lower() writes it in a UTF-8 database:
    one character for one (glibc's towlower() makes İ an i, Python's lower() i and a dot)."""
    return char.lower()[0]


@functools.cache
def _case_variants() -> dict[str, str]:
    """Each lower-case letter that others fold to -> all of them, itself included, sorted.

    Read from planes 0 and 1 (U+0000-U+1FFFF), where Unicode puts every script that has
    case; a block whose text lower() leaves alone is skipped at C speed.
    """
    found: dict[str, set[str]] = {}
    every = "".join(map(chr, range(0x20000)))
    for start in range(0, len(every), 1024):
        block = every[start : start + 1024]
        if block.lower() == block:
            continue
        for char in block:
            folded = _fold(char)
            if folded != char:
                found.setdefault(folded, {folded}).add(char)
    return {folded: "".join(sorted(chars)) for folded, chars in found.items()}


def _variants(char: str) -> str:
    """Every character that folds to what char folds to (char itself when none other)."""
    return _case_variants().get(_fold(char), char)


def _like_folds(char: str) -> bool:
    """Whether SQLite's LIKE, which folds A-Z alone, matches char as PostgreSQL's ILIKE does."""
    alike = {char.lower(), char.upper()} if char.isascii() else {char}
    return set(_variants(char)) == alike


def _glob_class(chars: str) -> str:
    """GLOB for one character among chars (GLOB's own *, ? and [ written as themselves)."""
    if len(chars) > 1:
        return f"[{chars}]"  # only letters come in several cases: no ], - or ^ inside
    return f"[{chars}]" if chars in "*?[" else chars


def search_patterns(q: str) -> tuple[BindParameter[str], ...]:
    """The patterns of a search for q in any case (see ilike): PostgreSQL's ILIKE pattern,
    SQLite's LIKE pattern, and the GLOB patterns that check what that LIKE let through."""
    exact = "".join(_escape_like(char) for char in q)
    like = "".join(_escape_like(char) if _like_folds(char) else "_" for char in q)
    globs: list[str] = []
    if like != exact:
        # One GLOB per case of the first character, so that each begins with a plain
        # character: SQLite skips to where it occurs instead of trying every position.
        rest = "".join(_glob_class(_variants(char)) for char in q[1:])
        globs = [f"*{_glob_class(first)}{rest}*" for first in _variants(q[0])]
    values = (f"%{exact}%", f"%{like}%", *globs)
    return tuple(literal(value, String()) for value in values)


class ilike(FunctionElement[bool]):
    """SQL: column ILIKE '%q%' with every letter folded to lower case, as PostgreSQL's ILIKE
    folds them; the patterns come from search_patterns(q).

    SQLite's lower(), upper() and LIKE fold A-Z alone. There, a LIKE with "_" for each
    character it would not fold alike (any letter but A-Z, and i and k, which İ and the
    Kelvin sign fold to) reads the rows as fast as a plain LIKE and lets through every row
    that matches and a few more; GLOBs, where each such character is a class of the
    characters that fold alike ([iIİ], [ëË]), check those. When every character of q
    folds alike in LIKE, the LIKE alone is exact and no GLOB is written. The number of
    GLOBs is part of the statement (its clauses), so a cached compilation never serves a
    search of another shape.
    """

    inherit_cache = True


@compiles(ilike, "sqlite")
def _ilike_sqlite(element: ilike, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, *patterns = element.clauses  # the ILIKE pattern is PostgreSQL's
    column_sql = compiler.process(column, **kw)
    like, *globs = (compiler.process(pattern, **kw) for pattern in patterns)
    sql = f"{column_sql} LIKE {like} ESCAPE '\\'"
    if not globs:
        return sql
    checks = " OR ".join(f"{column_sql} GLOB {glob}" for glob in globs)
    return f"({sql} AND ({checks}))"


@compiles(ilike)
def _ilike_default(element: ilike, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern, *_ = element.clauses
    return compiler.process(column.ilike(pattern, escape="\\"), **kw)


def _escape_like(text: str) -> str:
    """Make LIKE's wildcards in user text match literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class iso_utc(FunctionElement[str]):
    """SQL: a UTC datetime as ISO 8601 text to the second ("2026-11-28T09:30:00Z"), "" for NULL."""

    type = String()
    inherit_cache = True


@compiles(iso_utc, "sqlite")
def _iso_utc_sqlite(element: iso_utc, compiler: SQLCompiler, **kw: Any) -> str:
    return _printf([_printf_part(element, compiler, **kw)])


@compiles(iso_utc)
def _iso_utc_default(element: iso_utc, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"""coalesce(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '')"""


class csv_field(FunctionElement[str]):
    """SQL: user text as one CSV field, formula-guarded (see FORMULA_PREFIXES), then quoted
    as RFC 4180 and the csv module do it: only when it holds a quote, a comma or a line break.
    """

    type = String()
    inherit_cache = True


_QUOTE = "'\"'"  # SQL for the one-character string "
_QUOTED_QUOTE = "'\"\"'"  # SQL for ""
_TRIGGER_CODES = ", ".join(str(ord(char)) for char in FORMULA_PREFIXES)
_TRIGGER_CHARS = ", ".join(f"chr({ord(char)})" for char in FORMULA_PREFIXES)


@compiles(csv_field, "sqlite")
def _csv_field_sqlite(element: csv_field, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    # unicode() is the code point of the first character.
    guarded = (
        f"CASE WHEN unicode({text}) IN ({_TRIGGER_CODES}) THEN char(39) || {text} ELSE {text} END"
    )
    return (
        f"CASE WHEN {text} GLOB '*[\",' || char(10, 13) || ']*' "
        f"THEN {_QUOTE} || replace({guarded}, {_QUOTE}, {_QUOTED_QUOTE}) || {_QUOTE} "
        f"ELSE {guarded} END"
    )


@compiles(csv_field)
def _csv_field_default(element: csv_field, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    guarded = (
        f"CASE WHEN left({text}, 1) IN ({_TRIGGER_CHARS}) THEN chr(39) || {text} ELSE {text} END"
    )
    return (
        f"CASE WHEN {text} ~ ('[\",' || chr(10) || chr(13) || ']') "
        f"THEN {_QUOTE} || replace({guarded}, {_QUOTE}, {_QUOTED_QUOTE}) || {_QUOTE} "
        f"ELSE {guarded} END"
    )


def _true_false(condition: SQLColumnExpression[bool]) -> ColumnElement[str]:
    """SQL: "true" or "false"."""
    return case((condition, "true"), else_="false")


class place_codes(FunctionElement[str]):
    """SQL: a country and a continent code, each between two marks (MARK)."""

    type = String()
    inherit_cache = True


@compiles(place_codes, "sqlite")
def _place_codes_sqlite(element: place_codes, compiler: SQLCompiler, **kw: Any) -> str:
    return _printf([_printf_part(element, compiler, **kw)])


@compiles(place_codes)
def _place_codes_default(element: place_codes, compiler: SQLCompiler, **kw: Any) -> str:
    country, continent = (compiler.process(clause, **kw) for clause in element.clauses)
    mark = f"chr({ord(MARK)})"
    return f"{mark} || {country} || {mark} || {continent} || {mark}"


def _printf_part(element: Any, compiler: SQLCompiler, **kw: Any) -> tuple[str, list[str]]:
    """SQLite: a field as a piece of a printf() format, and the piece's arguments.

    Dates and place codes are written by printf() itself: every string SQLite makes
    for a row is a malloc(), and in its default builds each malloc() takes one global
    mutex, which the export's reader threads would otherwise queue for.
    """
    if isinstance(element, iso_utc):
        # SQLite stores UTC as text "YYYY-MM-DD HH:MM:SS.ffffff": the date, "T", the time
        # to the second and "Z"; "" for NULL (printf() writes NULL as "").
        (column,) = (compiler.process(clause, **kw) for clause in element.clauses)
        t, z = (f"CASE WHEN {column} IS NULL THEN '' ELSE '{c}' END" for c in "TZ")
        return "%.10s%s%.8s%s", [column, t, f"substr({column}, 12)", z]
    if isinstance(element, place_codes):
        country, continent = (compiler.process(clause, **kw) for clause in element.clauses)
        mark = f"char({ord(MARK)})"  # a constant: SQLite makes it once per statement
        return "%s%s%s%s%s", [mark, country, mark, continent, mark]
    return "%s", [compiler.process(element, **kw)]


def _printf(parts: list[tuple[str, list[str]]], separator: str = "") -> str:
    """SQLite: one printf() call writing the parts, separated."""
    template = separator.join(template for template, _ in parts)
    return f"printf('{template}', {', '.join(arg for _, args in parts for arg in args)})"


class csv_line(FunctionElement[str]):
    """SQL: fields (none NULL) joined by commas into (part of) a CSV line, in one pass."""

    type = String()
    inherit_cache = True


@compiles(csv_line, "sqlite")
def _csv_line_sqlite(element: csv_line, compiler: SQLCompiler, **kw: Any) -> str:
    # printf builds the line in one buffer; a chain of || copies it once per field.
    return _printf([_printf_part(field, compiler, **kw) for field in element.clauses], ",")


@compiles(csv_line)
def _csv_line_default(element: csv_line, compiler: SQLCompiler, **kw: Any) -> str:
    fields = [compiler.process(field, **kw) for field in element.clauses]
    return f"concat_ws(',', {', '.join(fields)})"


# The database writes each line but the two place names, which only Python knows:
# formatting in SQL runs in C, several times faster than the csv module over Python
# values, and the export's target is 200,000 rows a second.
_HEAD = (  # id ... country_code
    Signature.id,
    iso_utc(Signature.signed_at),
    iso_utc(Signature.confirmed_at),
    Signature.status,
    _true_false(Signature.counted),
    _true_false(Signature.verified_at.is_not(None)),
    csv_field(Signature.name),
    csv_field(Signature.title),
    csv_field(Signature.parliament),
    csv_field(Signature.party),
    Signature.country_code,
)
_TAIL = (  # email ... source
    csv_field(Signature.email),
    _true_false(Signature.public),
    csv_field(Signature.comment),
    Signature.source,
)

# A whole line, the place codes standing between marks where the names go:
# "...,FR,<M>FR<M>EU<M>,email,..." becomes "...,FR,France,EU,Europe,email,...".
_LINE = csv_line(
    *_HEAD, place_codes(Signature.country_code, Signature.continent_code), *_TAIL
).label("line")

# The same line in parts, for the rows of a read whose fields hold a mark.
_SELECTED = (
    Signature.id,
    csv_line(*_HEAD, literal_column("''", String())),  # ends with the comma before the name
    Signature.country_code,
    Signature.continent_code,
    csv_line(*_TAIL),
)


class joined_lines(FunctionElement[str]):
    """SQL aggregate: the lines (line, id) of a subquery joined by CRLF, in id order."""

    type = String()
    inherit_cache = True


@compiles(joined_lines, "sqlite")
def _joined_lines_sqlite(element: joined_lines, compiler: SQLCompiler, **kw: Any) -> str:
    # group_concat() takes the rows in the order the subquery's ORDER BY delivers them;
    # SQLite keeps a subquery's ORDER BY under an aggregate other than count(), min() or
    # max() for this reason (select.c, the OmitOrderBy rule). ORDER BY inside the call
    # (SQLite 3.44 and later) would sort the rows a second time.
    line, _ = element.clauses
    return f"group_concat({compiler.process(line, **kw)}, char(13, 10))"


@compiles(joined_lines)
def _joined_lines_default(element: joined_lines, compiler: SQLCompiler, **kw: Any) -> str:
    line, order = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"string_agg({line}, chr(13) || chr(10) ORDER BY {order})"


# The table's lowest and highest ids: two lookups at the ends of the primary key (one
# min() and one max() in a single SELECT would scan the table on SQLite).
_ID_SPAN = select(
    select(func.min(Signature.id)).scalar_subquery(),
    select(func.max(Signature.id)).scalar_subquery(),
)
_AFTER = bindparam("after", type_=Integer)
_UPTO = bindparam("upto", type_=Integer)


def _csv_text(text: str) -> str:
    """One CSV field of trusted text (a place name), quoted as the csv module would."""
    if any(char in text for char in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


class _CountryFields(dict[str, str]):
    """Country code -> its name as a CSV field, looked up once per code."""

    def __missing__(self, code: str) -> str:
        field = self[code] = _csv_text(geo.country_name(code))
        return field


class _ContinentFields(dict[str, str]):
    """Continent code -> ",code,name" as CSV fields, looked up once per code."""

    def __missing__(self, code: str) -> str:
        fields = self[code] = f",{code},{_csv_text(geo.continent_name(code))}"
        return fields


class _Lines:
    """Finishes the database's lines with the place names, which only Python knows."""

    def __init__(self) -> None:
        # Shared by the reader threads: a name looked up twice in a race is still the same.
        self.countries = _CountryFields()
        self.continents = _ContinentFields()

    def joined(self, count: int, text: str) -> str | None:
        """count _LINEs joined, named; None if a field holds a mark (the parts are off)."""
        parts = text.split(MARK)
        if len(parts) != 3 * count + 1:
            return None
        countries, continents = self.countries, self.continents
        parts[1::3] = [countries[code] for code in parts[1::3]]
        parts[2::3] = [continents[code] for code in parts[2::3]]
        return "".join(parts)

    def rows(self, rows: Sequence[Any]) -> str:
        """Rows selected as _SELECTED as lines joined by CRLF."""
        countries, continents = self.countries, self.continents
        return "\r\n".join(
            f"{head}{countries[country]}{continents[continent]},{tail}"
            for _, head, country, continent, tail in rows
        )


# A read's lines joined by CRLF and its last id; None when it found no rows.
_Chunk = tuple[str, int] | None


@dataclass(frozen=True)
class _Read:
    """One kind of read (ids in a range, or the next rows after an id) in its two forms."""

    joined: _Select  # count, last id, the lines joined by the database
    rows: _Select  # _SELECTED, a row per signature

    @classmethod
    def of(cls, narrow: Callable[[_Select], _Select]) -> _Read:
        """The read of the rows that narrow() keeps, in id order."""
        lines = narrow(select(Signature.id, _LINE)).subquery()
        return cls(
            select(func.count(), func.max(lines.c.id), joined_lines(lines.c.line, lines.c.id)),
            narrow(select(*_SELECTED)),
        )

    def run(self, connection: Connection, params: dict[str, int], lines: _Lines) -> _Chunk:
        """The rows' lines joined by CRLF and the last id, or None for no rows.

        The database joins a read's lines into one text, so the driver hands over one
        value instead of a row per signature (and lets go of the GIL once per read).
        """
        count, last_id, text = connection.execute(self.joined, params).one()
        if not count:
            return None
        joined = lines.joined(count, text)
        if joined is not None:
            return joined, last_id
        # Every selected value is text or an int with no result processing to do, so
        # the driver's own tuples are read: Row objects would cost a fifth of the time.
        result = connection.execute(self.rows, params)
        rows: Sequence[Any] = result.cursor.fetchall()
        result.close()
        return (lines.rows(rows), rows[-1][0]) if rows else None


def _reader_engine(db: Session) -> Engine | None:
    """The engine reader threads may take connections from, or None: db reads alone."""
    bind = db.get_bind()
    if READ_THREADS < 2 or not isinstance(bind, Engine):
        return None
    # These pools give every thread the same connection, or (in-memory SQLite) its own
    # empty database: only a pool of independent connections to one database will do.
    if isinstance(bind.pool, SingletonThreadPool | StaticPool):
        return None
    return bind


def _ranges(engine: Engine, read: _Read, first: int, last: int, lines: _Lines) -> Iterator[str]:
    """The lines of ids first..last, read in ranges by READ_THREADS threads, in order.

    A range spans CHUNK_ROWS ids, so it never holds more than CHUNK_ROWS rows, and is
    read in its own transaction on a connection of its own, begun DEFERRED on SQLite (a
    reader thread's transaction would otherwise begin IMMEDIATE and queue for the write
    lock). A few ranges are read ahead of the consumer, no more: memory stays flat.
    """
    width = CHUNK_ROWS

    def read_range(after: int) -> _Chunk:
        with reading(), engine.connect() as connection:
            upto = min(after + width, last)  # rows added since are the keyset's to read
            chunk = read.run(connection, {"after": after, "upto": upto}, lines)
            connection.rollback()
        return chunk

    starts = iter(range(first - 1, last, width))  # each range's ids: after < id <= upto
    pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix=READER_THREAD_NAME)
    try:
        ahead = deque(pool.submit(read_range, after) for after in islice(starts, LOOK_AHEAD))
        while ahead:
            chunk = ahead.popleft().result()
            for after in islice(starts, 1):
                ahead.append(pool.submit(read_range, after))
            if chunk is not None:
                yield chunk[0]
    finally:
        # On an error, or when the consumer stops early (a client that went away closes
        # the generator): queued ranges are dropped, running ones finish, and every
        # thread has ended and given its connection back before this returns.
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(
    db: Session, campaign_id: int, signature_filter: SignatureFilter | None
) -> Iterator[str]:
    """The export's CSV lines joined by CRLF (no line end after the last), oldest first.

    The ids the table holds when the export begins are read in ranges by reader threads
    (see _ranges); then rows added since, in keyset chunks on db (``id > last ORDER BY id
    LIMIT n``), each in its own transaction, ended before it is handed on. With no reader
    threads to be had, db reads every row that way.
    """
    signature_filter = signature_filter or SignatureFilter()

    def ours(stmt: _Select) -> _Select:
        # "+ 0" keeps the planner on the primary key: with a plain campaign_id = ? SQLite
        # picks a campaign index and sorts every remaining row for each read (quadratic);
        # by the key, a read of ids where other campaigns' rows lie is a short range scan.
        stmt = stmt.where(Signature.campaign_id + 0 == campaign_id, Signature.id > _AFTER)
        return signature_filter.apply(stmt).order_by(Signature.id)

    lines = _Lines()
    last_id = 0
    engine = _reader_engine(db)
    if engine is not None:
        with reading():
            first, last = db.execute(_ID_SPAN).one()
        db.rollback()
        if last is not None:
            ranged = _Read.of(lambda stmt: ours(stmt).where(Signature.id <= _UPTO))
            yield from _ranges(engine, ranged, first, last, lines)
            last_id = last
    keyset = _Read.of(lambda stmt: ours(stmt).limit(CHUNK_ROWS))
    while True:
        with reading():
            chunk = keyset.run(db.connection(), {"after": last_id}, lines)
        db.rollback()  # end the read transaction before handing rows to a slow consumer
        if chunk is None:
            return
        text, last_id = chunk
        yield text


def signature_rows(
    db: Session, campaign: Campaign, signature_filter: SignatureFilter | None = None
) -> Iterator[list[str]]:
    """The campaign's signatures as CSV cells in CSV_COLUMNS order, oldest first.

    Reads CHUNK_ROWS rows per short transaction and ends the session's transaction
    before the first row and between chunks, so pass a session with no pending work.
    """
    campaign_id = campaign.id
    db.rollback()  # no transaction stays open while the consumer holds a row
    for chunk in _chunks(db, campaign_id, signature_filter):
        # The export's own lines, read back: exactly its cells.
        yield from csv.reader(io.StringIO(chunk, newline=""))


def csv_lines(
    db: Session,
    campaign: Campaign,
    signature_filter: SignatureFilter | None = None,
    *,
    bom: bool = False,
) -> Iterator[str]:
    """The CSV text in pieces of whole lines: the header first, then a piece per chunk.

    RFC 4180: CRLF line ends, fields quoted only when they hold a comma, a quote or
    a line break. ``bom`` prepends a UTF-8 byte order mark so Excel reads UTF-8.
    Same reading rules as signature_rows.
    """
    campaign_id = campaign.id
    db.rollback()  # no transaction stays open while the consumer holds the header
    yield (BOM if bom else "") + ",".join(CSV_COLUMNS) + "\r\n"
    for chunk in _chunks(db, campaign_id, signature_filter):
        yield chunk + "\r\n"


def filename(campaign: Campaign, today: dt.date) -> str:
    """The download's name: <slug>-signatures-YYYY-MM-DD.csv."""
    return f"{campaign.slug}-signatures-{today.isoformat()}.csv"


# --------------------------------------------------------------------------- the letter


@dataclass(frozen=True)
class Signatory:
    """A counted signer as the delivered letter lists them."""

    name: str
    title: str
    parliament: str
    party: str
    # The version of the text they signed (the letter marks the earlier ones).
    letter_version: int


@dataclass(frozen=True)
class CountrySigners:
    """A country's counted signers by name, read from the database only as they are iterated.

    The letter is written while they are read, a batch of rows at a time, so a letter of a
    million signers never holds them (or itself) in memory at once.
    """

    db: Session
    where: tuple[Any, ...]
    country_code: str

    BATCH = 500

    def __iter__(self) -> Iterator[Signatory]:
        stmt = (
            select(
                Signature.name,
                Signature.title,
                Signature.parliament,
                Signature.party,
                Signature.letter_version,
            )
            .where(*self.where, Signature.country_code == self.country_code)
            # As the public list of signatories orders a country.
            .order_by(listing.name_order, Signature.name, Signature.id)
            .execution_options(yield_per=self.BATCH)
        )
        for name, title, parliament, party, version in self.db.execute(stmt):
            yield Signatory(name, title, parliament, party, version)


@dataclass(frozen=True)
class CountryGroup:
    """The signers from one country: how many, and the signers themselves (lazily)."""

    code: str
    name: str
    count: int
    signatories: CountrySigners


@dataclass(frozen=True)
class ContinentGroup:
    """The countries of one continent that have signers."""

    code: str
    name: str
    countries: list[CountryGroup]

    @property
    def signatures(self) -> int:
        """Signers on this continent."""
        return sum(country.count for country in self.countries)


def signatories_by_place(
    db: Session,
    campaign: Campaign,
    *,
    verified_only: bool = False,
    locale: str | None = None,
    reader: Session | None = None,
) -> list[ContinentGroup]:
    """Every counted signer, grouped by continent then country, each country by name.

    The numbers come at once (one GROUP BY); each country's signers are read when its
    ``signatories`` are iterated (see CountrySigners), through reader (default: db).
    """
    where: tuple[Any, ...] = (
        Signature.campaign_id == campaign.id,
        Signature.counted.is_(true()),
    )
    if verified_only:
        where += (Signature.verified_at.is_not(None),)
    counts = db.execute(
        select(Signature.continent_code, Signature.country_code, func.count())
        .where(*where)
        .group_by(Signature.continent_code, Signature.country_code)
    )
    places: dict[str, list[CountryGroup]] = {}
    for continent, code, count in counts:
        places.setdefault(continent, []).append(
            CountryGroup(
                code,
                geo.country_name(code, locale),
                int(count),
                CountrySigners(reader or db, where, code),
            )
        )
    groups = [
        ContinentGroup(
            code=continent,
            name=geo.continent_name(continent),
            countries=sorted(countries, key=lambda c: geo.sort_key(c.name)),
        )
        for continent, countries in places.items()
    ]
    return sorted(groups, key=lambda g: geo.sort_key(geo.continent_name(g.code, locale)))


def tally_of(groups: list[ContinentGroup], updated_at: dt.datetime) -> tally.Tally:
    """The numbers of a list of signers (the verified ones, say) in tally's terms."""
    by_country = [
        tally.CountryTally(country.code, country.name, group.code, country.count)
        for group in groups
        for country in group.countries
    ]
    by_continent = [
        tally.ContinentTally(group.code, group.name, group.signatures, len(group.countries))
        for group in groups
    ]
    return tally.Tally(
        signatures=sum(c.signatures for c in by_country),
        countries=len(by_country),
        continents=len(by_continent),
        by_continent=by_continent,
        by_country=by_country,
        updated_at=updated_at,
    )
