"""Importing signatures from a CSV file with the export's columns: check, preview, apply.

The file is checked as a whole first (size, text, UTF-8, header), so a bad file is
refused before anything is read into the database. Rows then go through the sign
form's own rules (signing.validate_entry) and its duplicate rules: an address whose
email key already signed, here or on an earlier row of the file, is a duplicate;
a new signer with the name key and country of an earlier live signer is held.

Rows are handled in chunks: the keys of a chunk are looked up with one query each,
the chunk's new signatures are inserted with one statement, and earlier chunks
are found in the database like any other signer, so memory does not grow with the
file. A preview is the import itself inside a savepoint that is rolled back: it
cannot disagree with the import it announces.
"""

from __future__ import annotations

import codecs
import csv
import ctypes
import datetime as dt
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import unicodedata
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing.connection import Connection
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    String,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import Select, Subquery

from campaign import audit, geo, signing, tally
from campaign.db import utcnow
from campaign.export import FORMULA_PREFIXES
from campaign.models import Campaign, Organizer, Signature

# The sign form's columns under the export's names; extra columns are ignored.
REQUIRED_COLUMNS = ("name", "title", "parliament", "country_code", "email")
OPTIONAL_COLUMNS = ("party", "comment", "public", "signed_at", "status")
PREVIEW_ROWS = 200
# Past the first PREVIEW_ROWS, the preview still lists this many rows with a problem (invalid,
# already signed or held): the ones an organizer must see, wherever they are in the file.
PROBLEM_ROWS = 1000
CHUNK_ROWS = 1000
# A file at least this large has its rows checked in a second process (see _checked_chunks).
PARALLEL_MIN_BYTES = 256 * 1024

IMPORTED = "imported"
DUPLICATE = "duplicate"
INVALID = "invalid"

# Rows an export marks as off the letter are never brought back by an import.
_OFF_THE_LETTER = frozenset({"rejected", "withdrawn", "erased"})
_SCAN_BYTES = 1 << 20
# What other files look like at their start, to say what they are.
_MAGIC = (
    (b"PK\x03\x04", "workbook"),  # .xlsx, .ods (zip)
    (b"\xd0\xcf\x11\xe0", "workbook"),  # .xls
    (b"%PDF", "pdf"),
    (b"\xff\xfe", "utf16"),
    (b"\xfe\xff", "utf16"),
)

N_ = signing.N_

# The other statuses an export writes: such a row is imported, with the status the
# import's mode gives it. Any other value is a mistake, never a status to trust.
_ON_THE_LETTER = ("pending", "held", "confirmed")
_UNKNOWN_STATUS = N_("Unknown status: use pending, held or confirmed, or leave it empty.")

# The public column's words, in any case: a file saved by a spreadsheet in the organizer's
# language says VRAI or FAUX (French Excel), so the four interface languages' words count
# too. The pairs are what the import page and the row error list (PUBLIC_WORDS); on/off,
# t/f and si without its accent are kept quietly, as files that worked before still do.
_PUBLIC_PAIRS = (
    ("true", "false"),
    ("yes", "no"),
    ("y", "n"),
    ("1", "0"),
    ("vrai", "faux"),
    ("oui", "non"),
    ("verdadero", "falso"),
    ("sí", "no"),
    ("benar", "salah"),
    ("ya", "tidak"),
)
PUBLIC_WORDS = ", ".join(f"{yes}/{no}" for yes, no in _PUBLIC_PAIRS)
_PUBLIC_YES = frozenset({yes for yes, _no in _PUBLIC_PAIRS} | {"on", "t", "si"})
_PUBLIC_NO = frozenset({no for _yes, no in _PUBLIC_PAIRS} | {"off", "f", ""})
# The words written out (the CLI prints msgids as they are); they are PUBLIC_WORDS, which the
# import page's hint shows, and tests/test_imports.py holds every catalog to that.
NOT_YES_OR_NO = N_(
    "Not yes or no: use true/false, yes/no, y/n, 1/0, vrai/faux, oui/non, verdadero/falso, "
    "sí/no, benar/salah, ya/tidak (in any case), or leave it empty for no."
)

# The sign form's messages speak to the signer ("Enter your email address."); a row's
# problem is the organizer's, so the preview says what is wrong with the cell instead.
_FOR_ORGANIZERS = {
    N_("Enter your email address."): N_("The email address is missing."),
    N_("This field is required."): N_("The cell is empty; this column is required."),
    N_("Choose a country."): N_("The country code is missing."),
    N_("Choose a country from the list."): N_(
        "Not the code of a country signers sign from: use a country's two-letter ISO code "
        "(FR, KH, ID...)."
    ),
    N_("Enter a valid email address, like name@example.org."): N_(
        "This is not a valid email address."
    ),
}


class ImportRefused(ValueError):
    """The whole file is refused and nothing was stored; .message (a msgid) % .values says why."""

    def __init__(self, message: str, **values: Any) -> None:
        super().__init__(message % values if values else message)
        self.message = message
        self.values = values


@dataclass(frozen=True)
class Layout:
    """How a checked file is laid out: its delimiter and where each column is."""

    delimiter: str
    columns: Mapping[str, int]
    width: int


@dataclass(frozen=True)
class RowResult:
    """What happens to one row; reason % values and errors are msgids for the reader."""

    line: int
    outcome: str
    name: str
    email: str
    country_code: str
    errors: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)
    held: bool = False


@dataclass
class ImportReport:
    """Counts for every row; in detail, the first PREVIEW_ROWS rows and then the rows with a
    problem, up to PROBLEM_ROWS more."""

    imported: int = 0
    duplicate: int = 0
    invalid: int = 0
    held: int = 0
    counted: int = 0
    applied: bool = False
    rows: list[RowResult] = field(default_factory=list)
    # Rows with a problem past those limits, counted but not in rows.
    unshown_problems: int = 0

    @property
    def total(self) -> int:
        """Rows read (blank lines aside)."""
        return self.imported + self.duplicate + self.invalid


# --------------------------------------------------------------------------- the file


def check_file(path: str, *, max_bytes: int) -> Layout:
    """Refuse a file that is too large, empty, binary, not UTF-8 or missing columns."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            _scan(handle, size, max_bytes)
        with open(path, encoding="utf-8-sig", newline="") as text:
            # The header is the first line with more than blanks and delimiters on it.
            first = text.readline()
            while first and not first.strip(" \t\r\n,;"):
                first = text.readline()
            text.seek(0)
            delimiter = max((",", ";", "\t"), key=first.count)
            header = _header(csv.reader(text, delimiter=delimiter))
    except OSError as error:
        # A stream (a pipe) cannot be read twice: an OSError without an errno then.
        raise ImportRefused(
            N_("The file cannot be read: %(error)s."), error=error.strerror or str(error)
        ) from None
    except csv.Error as error:
        raise ImportRefused(
            N_("The first row cannot be read as CSV: %(error)s."), error=str(error)
        ) from None
    return _layout(header, delimiter)


def _scan(handle: Any, size: int, max_bytes: int) -> None:
    """Size, binary content and strict UTF-8, read a megabyte at a time."""
    if size > max_bytes:
        raise ImportRefused(
            N_("The file is %(size)s MB; files up to %(limit)s MB can be imported."),
            size=megabytes(size),
            limit=megabytes(max_bytes),
        )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0
    newlines = 0
    content = False
    while chunk := handle.read(_SCAN_BYTES):
        if offset == 0:
            for magic, kind in _MAGIC:
                if chunk.startswith(magic):
                    raise ImportRefused(_KIND_MESSAGES[kind])
        if b"\x00" in chunk:
            raise ImportRefused(_KIND_MESSAGES["binary"])
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as error:
            line = newlines + chunk.count(b"\n", 0, max(error.start, 0)) + 1
            raise ImportRefused(
                N_(
                    "The file is not UTF-8 text (line %(line)d). Save it as "
                    "\u201cCSV UTF-8\u201d and upload it again."
                ),
                line=line,
            ) from None
        content = content or bool(chunk.lstrip(b"\xef\xbb\xbf \t\r\n"))
        newlines += chunk.count(b"\n")
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ImportRefused(
            N_(
                "The file is not UTF-8 text (line %(line)d). Save it as "
                "\u201cCSV UTF-8\u201d and upload it again."
            ),
            line=newlines + 1,
        ) from None
    if not content:
        raise ImportRefused(N_("The file is empty."))


_KIND_MESSAGES = {
    "workbook": N_(
        "This is a spreadsheet workbook, not a CSV file. Save it as \u201cCSV UTF-8\u201d "
        "and upload that."
    ),
    "pdf": N_("This is a PDF document, not a CSV file."),
    "utf16": N_("The file is UTF-16 text. Save it as \u201cCSV UTF-8\u201d and upload it again."),
    "binary": N_("This is not a text file: it holds binary data. A CSV file is needed."),
}


def megabytes(size: int) -> str:
    """A size in MB as file managers count them (1024 x 1024 bytes): 50, 20.5."""
    return f"{size / 1024 / 1024:.1f}".removesuffix(".0")


def _layout(header: list[str], delimiter: str) -> Layout:
    """Where each known column is; refuse a header that lacks one or names one twice."""
    names = [cell.strip().casefold() for cell in header]
    if not any(names):
        raise ImportRefused(N_("The file is empty."))
    seen: set[str] = set()
    for name in names:
        if name in seen and name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
            raise ImportRefused(N_("The column %(column)s appears twice."), column=name)
        seen.add(name)
    missing = [name for name in REQUIRED_COLUMNS if name not in seen]
    if missing:
        raise ImportRefused(
            N_(
                "Missing columns: %(missing)s. The first row must name the columns, "
                "as in the export: %(required)s (and optionally %(optional)s)."
            ),
            missing=", ".join(missing),
            required=", ".join(REQUIRED_COLUMNS),
            optional=", ".join(OPTIONAL_COLUMNS),
        )
    wanted = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
    columns = {name: names.index(name) for name in wanted if name in seen}
    return Layout(delimiter=delimiter, columns=columns, width=len(names))


def _header(reader: Iterator[list[str]]) -> list[str]:
    """The first row that is not blank (blank lines before the header are skipped)."""
    return next((row for row in reader if "".join(row).strip()), [])


def _unguard(cell: str) -> str:
    """Undo the export's formula guard, so that an export imports as it was signed."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_PREFIXES:
        return cell[1:]
    return cell


_TOO_MANY_CELLS = N_("This row has more cells than the header.")
_UNCLOSED_QUOTE = N_(
    "A quotation mark in this row is not closed, so the rest of the file was read into it. "
    "Close or remove it and import the file again."
)


def _lines(text: Iterator[str], ended: list[bool]) -> Iterator[str]:
    """The file's lines, then True appended to ended.

    csv.reader reads past the last line in the middle of a row only when a quotation
    mark is never closed: it then gives the rest of the file as that row's last cell.
    """
    yield from text
    ended.append(True)


def read_rows(path: str, layout: Layout) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(line, cells by column) for each non-blank row; a row error's msgid instead of cells."""
    columns = list(layout.columns.items())
    line = 1
    ended: list[bool] = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(_lines(text, ended), delimiter=layout.delimiter)
            _header(reader)
            line = reader.line_num + 1
            for row in reader:
                start, line = line, reader.line_num + 1
                # One string per row: some cell holds more than blanks iff the whole does.
                joined = "".join(row)
                if not joined.strip():
                    continue
                if ended:
                    yield start, _UNCLOSED_QUOTE
                    continue
                if len(row) > layout.width and "".join(row[layout.width :]).strip():
                    yield start, _TOO_MANY_CELLS
                    continue
                if len(row) < layout.width:
                    row += [""] * (layout.width - len(row))
                cells = {name: row[i] for name, i in columns}
                # _unguard leaves a cell without a leading quote as it is.
                if "'" in joined:
                    cells = {name: _unguard(cell) for name, cell in cells.items()}
                yield start, cells
    except csv.Error as error:
        raise ImportRefused(
            N_("Line %(line)d cannot be read as CSV: %(error)s."), line=line, error=str(error)
        ) from None
    except (OSError, UnicodeDecodeError):
        raise ImportRefused(N_("The file changed or vanished while it was read.")) from None


# --------------------------------------------------------------------------- the rows


@dataclass(slots=True)
class _Row:
    """One row on its way in."""

    line: int
    cells: dict[str, str]
    entry: signing.SignatureEntry | None = None
    errors: dict[str, str] = field(default_factory=dict)
    signed_at: dt.datetime | None = None
    email_key: str = ""
    name_key: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as what the importer reads of it: a row's cells only where it is invalid.

        A checked row is a tuple of strings, a third of a dataclass's pickle and much
        faster to make and read, which is what sending rows between processes costs.
        """
        entry = self.entry
        if entry is None:
            cells = {k: self.cells[k] for k in ("name", "email", "country_code") if k in self.cells}
            return (_Row, (self.line, cells, None, self.errors))
        return (
            _checked_row,
            (
                self.line,
                entry.name,
                entry.title,
                entry.parliament,
                entry.party,
                entry.country_code,
                entry.email,
                entry.comment,
                entry.public,
                self.signed_at,
                self.email_key,
                self.name_key,
            ),
        )


def _checked_row(
    line: int,
    name: str,
    title: str,
    parliament: str,
    party: str,
    country_code: str,
    email: str,
    comment: str,
    public: bool,
    signed_at: dt.datetime | None,
    email_key: str,
    name_key: str,
) -> _Row:
    entry = signing.SignatureEntry(
        name=name,
        title=title,
        parliament=parliament,
        party=party,
        country_code=country_code,
        email=email,
        comment=comment,
        public=public,
    )
    return _Row(line, {}, entry, {}, signed_at, email_key, name_key)


def _parse_time(value: str, now: dt.datetime) -> dt.datetime | None:
    """A signing time as the export writes it (or a date); naive times are UTC."""
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise signing.FieldError(
            N_("Use a time like 2026-11-28T09:30:00Z or a date like 2026-11-28.")
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if when > now + dt.timedelta(days=1):
        raise signing.FieldError(N_("This time is in the future."))
    return when


def _public(cell: str) -> bool | None:
    """The public column's word as a yes or a no (None: neither); see _PUBLIC_PAIRS."""
    word = unicodedata.normalize("NFC", cell.strip()).casefold()
    if word in _PUBLIC_YES:
        return True
    if word in _PUBLIC_NO:
        return False
    return None


def _validate(line: int, cells: dict[str, str] | str, now: dt.datetime) -> _Row:
    """The form's rules on one row, plus the columns only a file has."""
    if isinstance(cells, str):
        return _Row(line, {}, errors={"row": cells})
    row = _Row(line, cells)
    public = _public(cells.get("public", ""))
    raw: dict[str, str | bool | None] = {
        "name": cells["name"],
        "title": cells["title"],
        "parliament": cells["parliament"],
        "party": cells.get("party", ""),
        "country": cells["country_code"],
        "email": cells["email"],
        "comment": cells.get("comment", ""),
        "public": bool(public),  # a word that is neither is the row's error below
    }
    try:
        row.entry = signing.validate_entry(raw)
    except signing.InvalidEntry as error:
        row.errors.update(
            {
                ("country_code" if k == "country" else k): _FOR_ORGANIZERS.get(v, v)
                for k, v in error.errors.items()
            }
        )
    if public is None:
        row.errors["public"] = NOT_YES_OR_NO
    status = cells.get("status", "").strip().casefold()
    if status in _OFF_THE_LETTER:
        row.errors["status"] = N_("Rejected, withdrawn and erased signatures are not imported.")
    elif status and status not in _ON_THE_LETTER:
        row.errors["status"] = _UNKNOWN_STATUS
    if cells.get("signed_at", "").strip():
        try:
            row.signed_at = _parse_time(cells["signed_at"], now)
        except signing.FieldError as error:
            row.errors["signed_at"] = error.message
    if row.errors:
        row.entry = None
        return row
    assert row.entry is not None
    row.email_key = signing.email_key(row.entry.email)
    row.name_key = signing.name_key(row.entry.name)
    return row


def _chunks(rows: Iterator[_Row], size: int) -> Iterator[list[_Row]]:
    while chunk := list(islice(rows, size)):
        yield chunk


# Called with the ids of the signatures one chunk created (to queue confirmation mail).
OnCreated = Callable[[Session, list[int]], None]


class _Importer:
    """One run over a file: classify each chunk, insert its new signatures, count."""

    def __init__(self, db: Session, campaign: Campaign, *, count_now: bool, locale: str) -> None:
        self.db = db
        self.campaign = campaign
        self.count_now = count_now
        self.now = utcnow()
        self.postgres = db.get_bind().dialect.name == "postgresql"
        self.report = ImportReport()
        # Ids of the signatures this run inserted, and the file line of each, in step:
        # 12 bytes a row, so that a duplicate of an earlier row can name its line.
        self.ids = array("q")
        self.lines = array("q")
        self.counted_by_country: Counter[str] = Counter()
        self.listed_by_country: Counter[str] = Counter()
        self._status = {held: self._derive(held) for held in (False, True)}
        # What every new signature of this run shares; _values gives the rest.
        self._insert = _Insert(
            db,
            campaign_id=campaign.id,
            updated_at=self.now,
            source="import",
            locale=locale,
            client_hash=None,
            # Signed on paper or elsewhere: recorded as the text of the moment of import.
            letter_version=campaign.letter_version,
            confirmed_at=self.now if count_now else None,
            rejected_reason="",
            duplicate_notices=0,
        )

    def _derive(self, held: bool) -> str:
        """The status tally.derive_status gives a new imported signature."""
        confirmed_at = self.now if self.count_now else None
        return tally.new_status(self.campaign, held=held, confirmed_at=confirmed_at)

    def line_of(self, signature_id: int) -> int | None:
        """The file line of a signature this run inserted, else None."""
        i = bisect_left(self.ids, signature_id)
        if i < len(self.ids) and self.ids[i] == signature_id:
            return self.lines[i]
        return None

    def run(self, chunks: Iterator[list[_Row]], on_created: OnCreated | None) -> ImportReport:
        """Import every chunk; IntegrityError when a racing signer took an address."""
        analyzed = not self.postgres
        for chunk in chunks:
            created = self._chunk(chunk)
            if created and on_created is not None:
                on_created(self.db, created)
            if not analyzed and created and len(chunk) == CHUNK_ROWS:
                # PostgreSQL plans the lookups of the next chunks from statistics that do
                # not know this letter's new rows: for a new letter it took any index on
                # campaign_id as good as the unique one and scanned all the letter's rows
                # for every key, an import quadratic in its size. ANALYZE counts this
                # transaction's own rows; once is enough, they are a sample of the rest;
                # a file of one chunk has no next lookups to plan. (Its lock, SHARE UPDATE
                # EXCLUSIVE, blocks no reads or writes, only another ANALYZE, VACUUM or
                # schema change until this import ends.)
                self.db.execute(text("ANALYZE signature"))
                analyzed = True
        for country, count in self.counted_by_country.items():
            tally.bump(
                self.db, self.campaign.id, country, count, listed=self.listed_by_country[country]
            )
        return self.report

    def _chunk(self, chunk: list[_Row]) -> list[int]:
        taken = self._taken({row.email_key for row in chunk if row.entry is not None})
        resembled = self._resembled(
            {(row.name_key, row.entry.country_code) for row in chunk if row.entry is not None}
        )
        in_chunk_keys: dict[str, int] = {}
        in_chunk_names: dict[tuple[str, str], int] = {}
        new: list[tuple[Any, ...]] = []
        new_keys: list[str] = []
        new_lines: list[int] = []
        # (index in new, line it resembles): held rows whose earlier twin is in this chunk.
        twins: list[tuple[int, int]] = []
        for row in chunk:
            if row.entry is None:
                self._result(row, INVALID, errors=row.errors)
                continue
            entry = row.entry
            if row.email_key in in_chunk_keys or row.email_key in taken:
                line = in_chunk_keys.get(row.email_key) or self.line_of(taken[row.email_key])
                if line is None:
                    self._result(row, DUPLICATE, reason=N_("This address has already signed."))
                else:
                    self._result(
                        row,
                        DUPLICATE,
                        reason=N_("The same address is on line %(line)d."),
                        values={"line": line},
                    )
                continue
            person = (row.name_key, entry.country_code)
            twin_id = resembled.get(person)
            twin_line = in_chunk_names.get(person) if twin_id is None else self.line_of(twin_id)
            held = twin_id is not None or twin_line is not None
            if twin_id is None and twin_line is not None:
                twins.append((len(new), twin_line))
            in_chunk_keys[row.email_key] = row.line
            in_chunk_names.setdefault(person, row.line)
            new.append(self._values(row, entry, twin_id, held))
            new_keys.append(row.email_key)
            new_lines.append(row.line)
            if held and twin_line is not None:
                reason = N_("Held for review: same name and country as line %(line)d.")
                self._result(row, IMPORTED, reason=reason, values={"line": twin_line}, held=True)
            elif held:
                reason = N_("Held for review: same name and country as an earlier signer.")
                self._result(row, IMPORTED, reason=reason, held=True)
            else:
                self._result(row, IMPORTED)
        if not new:
            return []
        # The email key, unique on the letter, says which row got which id.
        id_of = self._insert.run(self.db, new)
        ids = [id_of[key] for key in new_keys]
        for signature_id, line in sorted(zip(ids, new_lines, strict=True)):
            self.ids.append(signature_id)
            self.lines.append(line)
        if twins:
            by_line = dict(zip(new_lines, ids, strict=True))
            self.db.connection().execute(
                update(Signature)
                .where(Signature.id == bindparam("row_id"))
                .values(duplicate_of_id=bindparam("twin_id")),
                [{"row_id": ids[i], "twin_id": by_line[line]} for i, line in twins],
            )
        return ids

    def _taken(self, keys: set[str]) -> dict[str, int]:
        """Which of these email keys already signed this letter (what UNIQUE would refuse)."""
        if not keys:
            return {}
        campaign_id = self.campaign.id
        if self.postgres:
            wanted = _pg_keys(email_key=keys)
            found = (
                select(Signature.id)
                .where(
                    Signature.campaign_id == campaign_id,
                    Signature.email_key == wanted.c.email_key,
                )
                .scalar_subquery()
            )
            rows = self.db.connection().execute(select(wanted.c.email_key, found))
            return {
                key: signature_id for key, signature_id in rows.all() if signature_id is not None
            }
        rows = self.db.connection().execute(
            select(Signature.email_key, Signature.id).where(
                Signature.campaign_id == campaign_id, Signature.email_key.in_(_sqlite_keys(keys))
            )
        )
        return {key: signature_id for key, signature_id in rows.all()}

    def _resembled(self, people: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The earliest live signer per (name key, country): whom signing.sign() would hold for."""
        if not people:
            return {}
        campaign_id = self.campaign.id
        if self.postgres:
            names, countries = zip(*people, strict=True)
            wanted = _pg_keys(name_key=names, country_code=countries)
            first = (
                select(func.min(Signature.id))
                .where(
                    Signature.campaign_id == campaign_id,
                    Signature.name_key == wanted.c.name_key,
                    Signature.country_code == wanted.c.country_code,
                    Signature.status.not_in(signing.GONE_STATUSES),
                )
                .scalar_subquery()
            )
            rows = self.db.connection().execute(
                select(wanted.c.name_key, wanted.c.country_code, first)
            )
            return {(name, country): id_ for name, country, id_ in rows.all() if id_ is not None}
        rows = self.db.connection().execute(
            select(Signature.name_key, Signature.country_code, func.min(Signature.id))
            .where(
                Signature.campaign_id == campaign_id,
                Signature.name_key.in_(_sqlite_keys({name for name, _ in people})),
                Signature.status.not_in(signing.GONE_STATUSES),
            )
            .group_by(Signature.name_key, Signature.country_code)
        )
        return {(name, country): first for name, country, first in rows.all()}

    def _values(
        self, row: _Row, entry: signing.SignatureEntry, twin_id: int | None, held: bool
    ) -> tuple[Any, ...]:
        """The new signature's columns that vary (_VARYING), as signing.sign() would set them."""
        status = self._status[held]
        counted = status == "confirmed"
        if counted:
            self.counted_by_country[entry.country_code] += 1
            self.listed_by_country[entry.country_code] += bool(entry.public)
            self.report.counted += 1
        return (
            row.signed_at or self.now,
            entry.name,
            entry.title,
            entry.parliament,
            entry.party,
            entry.country_code,
            geo.continent_of(entry.country_code),
            entry.email,
            row.email_key,
            row.email_key.rpartition("@")[2],
            row.name_key,
            entry.comment,
            entry.public,
            status,
            counted,
            twin_id,
            "held" if held else None,
        )

    def _result(
        self,
        row: _Row,
        outcome: str,
        *,
        errors: Mapping[str, str] | None = None,
        reason: str = "",
        values: Mapping[str, Any] | None = None,
        held: bool = False,
    ) -> None:
        report = self.report
        if outcome == IMPORTED:
            report.imported += 1
            report.held += held
        elif outcome == DUPLICATE:
            report.duplicate += 1
        else:
            report.invalid += 1
        problem = outcome != IMPORTED or held
        shown = len(report.rows)
        if shown >= PREVIEW_ROWS and not (problem and shown < PREVIEW_ROWS + PROBLEM_ROWS):
            report.unshown_problems += problem
        else:
            entry = row.entry
            report.rows.append(
                RowResult(
                    line=row.line,
                    outcome=outcome,
                    name=entry.name if entry else row.cells.get("name", ""),
                    email=entry.email if entry else row.cells.get("email", ""),
                    country_code=entry.country_code if entry else row.cells.get("country_code", ""),
                    errors=dict(errors or {}),
                    reason=reason,
                    values=dict(values or {}),
                    held=held,
                )
            )


# The columns of a new signature that _Importer._values gives, in its order.
_VARYING = (
    "signed_at",
    "name",
    "title",
    "parliament",
    "party",
    "country_code",
    "continent_code",
    "email",
    "email_key",
    "email_domain",
    "name_key",
    "comment",
    "public",
    "status",
    "counted",
    "duplicate_of_id",
    "duplicate_state",
)


class _Insert:
    """INSERT of new signatures, compiled once, its values handed to the driver as they are.

    Through Connection.execute, SQLAlchemy's handling of 25 parameters a row cost nearly
    as much CPU as SQLite's own insert. Here each value goes through the bind processor
    SQLAlchemy would give it (UTC times, booleans) and the driver gets plain rows:
    SQLite's executemany runs one prepared INSERT per row; PostgreSQL gets one
    INSERT ... SELECT from a chunk's rows as one JSON parameter (_json_rows), RETURNING
    the ids. (SQLAlchemy's multi-row VALUES ... RETURNING for PostgreSQL, 25,000
    parameters a chunk, spent seconds in the driver building and parsing the statement.)
    """

    def __init__(self, db: Session, **shared: Any) -> None:
        dialect = db.get_bind().dialect
        names = (*_VARYING, *shared)
        columns = Signature.__table__.c
        self._postgres = dialect.name == "postgresql"
        if self._postgres:
            new = _json_rows(
                bindparam("rows", type_=String()),
                {name: columns[name].type for name in _VARYING},
                "new",
            )
            statement: Any = (
                insert(Signature)
                .from_select(
                    names,
                    select(
                        *(new.c[name] for name in _VARYING),
                        *(bindparam(name, type_=columns[name].type) for name in shared),
                    ),
                )
                .returning(Signature.email_key, Signature.id)
            )
            compiled = statement.compile(dialect=dialect)
        else:
            compiled = insert(Signature).compile(
                dialect=dialect, column_keys=list(names), for_executemany=True
            )
        self.sql = str(compiled)
        processors = {
            name: columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        }
        self._convert = [
            (i, processor)
            for i, name in enumerate(_VARYING)
            if (processor := processors[name]) is not None
        ]
        self._shared = tuple(
            value if (processor := processors[name]) is None else processor(value)
            for name, value in shared.items()
        )
        self._shared_by_name = dict(zip(shared, self._shared, strict=True))
        # SQLite takes each row as a tuple in the statement's order.
        order = compiled.positiontup if dialect.positional else names
        if order is None or sorted(order) != sorted(names):
            raise RuntimeError(f"unexpected INSERT parameters {order}")
        self._arrange: Callable[[tuple[Any, ...]], tuple[Any, ...]] = itemgetter(
            *(names.index(name) for name in order)
        )

    def _converted(self, row: tuple[Any, ...]) -> list[Any]:
        """A row's values as the driver takes them (each through its column's bind processor)."""
        values = list(row)
        for i, processor in self._convert:
            values[i] = processor(values[i])
        return values

    def run(self, db: Session, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        """Insert rows of _VARYING values; their ids by email key. IntegrityError as ever."""
        connection = db.connection()
        converted = [self._converted(row) for row in rows]
        if self._postgres:
            # Times as ISO 8601 text, which the statement casts back (to timestamptz).
            document = json.dumps(converted, default=dt.datetime.isoformat)
            returned = connection.exec_driver_sql(
                self.sql, {"rows": document, **self._shared_by_name}
            )
            return {key: signature_id for key, signature_id in returned.all()}
        # SQLite lets one transaction write at a time: the rows numbered above the last
        # id before this INSERT are its own (read back in id order, no index probes).
        before = connection.execute(select(func.max(Signature.id))).scalar() or 0
        shared, arrange = self._shared, self._arrange
        connection.exec_driver_sql(self.sql, [arrange((*values, *shared)) for values in converted])
        inserted = connection.execute(
            select(Signature.email_key, Signature.id).where(Signature.id > before)
        )
        return {key: signature_id for key, signature_id in inserted.all()}


def _pg_keys(**columns: Collection[str]) -> Subquery:
    """Keys as a PostgreSQL relation (one JSON parameter), for lookups by key.

    A lookup is a subquery per key, which PostgreSQL answers with one index probe.
    An IN list of a thousand keys let the planner, whose statistics predate the rows
    this import adds, scan every signature of the letter for each chunk instead: an
    import took time quadratic in its size.
    """
    rows = json.dumps(list(zip(*columns.values(), strict=True)))
    return _json_rows(bindparam("keys", rows), {name: String() for name in columns}, "wanted")


def _json_rows(rows: BindParameter[Any], types: Mapping[str, Any], name: str) -> Subquery:
    """A PostgreSQL relation of the JSON array of arrays in rows: column i of types is item i.

    One parameter, which json.dumps writes and PostgreSQL parses once, in C, as jsonb:
    psycopg dumped an array parameter a column element by element in Python (a regular
    expression each to quote it), a third of an import's time on PostgreSQL. (As json,
    not jsonb, PostgreSQL parsed each row's text again for each ->> of its columns,
    which cost as much on the server.)
    """
    each = func.jsonb_array_elements(cast(rows, JSONB)).table_valued("value").render_derived()
    return select(
        *(
            cast(each.c.value.op("->>")(literal_column(str(i))), type_).label(column)
            for i, (column, type_) in enumerate(types.items())
        )
    ).subquery(name)


def _sqlite_keys(keys: Collection[str]) -> Select[tuple[Any]]:
    """Keys as a SQLite subquery of one JSON parameter, for an IN lookup of each in an index.

    An IN list of a chunk's thousand keys had SQLAlchemy render a thousand parameters
    into each statement, which cost more than SQLite's lookups.
    """
    each = func.json_each(json.dumps(list(keys))).table_valued("value")
    return select(each.c.value)


def _rows(path: str, layout: Layout, now: dt.datetime) -> Iterator[_Row]:
    for line, cells in read_rows(path, layout):
        yield _validate(line, cells, now)


@contextmanager
def _checked_chunks(
    path: str, layout: Layout, now: dt.datetime, *, parallel: bool
) -> Iterator[Iterator[list[_Row]]]:
    """The file's rows, checked, a chunk at a time; in a second process if parallel.

    Reading and checking a row costs about what storing it does, so a large file on
    a machine of several cores is checked by a forked process while this one stores
    the chunks before: the two overlap. A pipe carries the chunks in the file's order
    (the duplicate rules need it) and holds about one, so the checker runs a chunk
    ahead at most and memory stays flat. The checker reads nothing but the file: it
    keeps none of this process's descriptors (locks, database connections) and dies with
    it, however this process ends (see _die_with, _drop_inherited).
    """
    if not (parallel and _forks() and os.path.getsize(path) >= PARALLEL_MIN_BYTES):
        yield _chunks(_rows(path, layout, now), CHUNK_ROWS)
        return
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    # What the checker must not keep: the database's files, the writer gate's lock, the
    # server connections, the pipe's read end (all but standard streams and its write end).
    inherited = _open_descriptors() - {0, 1, 2, sender.fileno()}
    checker = context.Process(
        target=_check_in_child,
        args=(path, layout, now, sender, os.getpid(), inherited),
        name="campaign import: row checker",
        daemon=True,
    )
    checker.start()
    sender.close()
    try:
        yield _received(receiver)
    finally:
        receiver.close()
        if checker.is_alive():
            checker.terminate()
        checker.join()


def _forks() -> bool:
    """Whether a second process is worth forking: Linux, and more than one core to run it."""
    return sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1


def _open_descriptors() -> set[int]:
    """The file descriptors this process has open."""
    try:
        return {int(name) for name in os.listdir("/proc/self/fd")}
    except OSError:
        return set(range(min(os.sysconf("SC_OPEN_MAX"), 4096)))


def _die_with(parent: int) -> None:
    """End this process when the importer ends, however it ends (SIGKILL, out of memory).

    Linux signals the checker when its parent dies (PR_SET_PDEATHSIG); where that cannot be
    asked for, a thread watches for the parent's end. A checker left behind would read on
    for no one, or wait forever to send a chunk nobody reads.
    """
    if not _parent_death_signal(signal.SIGKILL):
        threading.Thread(
            target=_watch_parent, args=(parent,), name="parent watch", daemon=True
        ).start()
    if os.getppid() != parent:  # it ended before the signal was asked for
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _parent_death_signal(signum: int) -> bool:
    """Ask Linux to send signum to this process when its parent dies; whether it could."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return bool(prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)


def _watch_parent(parent: int) -> None:
    """End this process once its parent has ended (it then has another parent)."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _drop_inherited(descriptors: Collection[int]) -> None:
    """Point the descriptors the fork copied at /dev/null, so that this process holds none.

    A copy of the writer gate's descriptor keeps its flock() held, and a copy of a server
    connection's socket keeps the session open, as long as this process lives, whatever
    the importer does. Pointed at /dev/null rather than closed, their numbers are not
    reused for the file this process opens, which an inherited object closing its
    descriptor would close.
    """
    null = os.open(os.devnull, os.O_RDWR)
    for fd in descriptors:
        if fd != null:
            with suppress(OSError):  # best effort: what cannot be replaced is left
                os.dup2(null, fd)
    os.close(null)


def _check_in_child(
    path: str,
    layout: Layout,
    now: dt.datetime,
    sender: Connection,
    parent: int,
    inherited: Collection[int],
) -> None:
    """The checker process: send each chunk of checked rows, then the end or the refusal."""
    _die_with(parent)
    _drop_inherited(inherited)
    # Ctrl-C reaches the whole process group: the importer rolls back and ends the checker,
    # which would otherwise print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for chunk in _chunks(_rows(path, layout, now), CHUNK_ROWS):
            sender.send(("rows", chunk))
        sender.send(("end", None))
    except ImportRefused as refused:
        sender.send(("refused", (refused.message, refused.values)))
    except BrokenPipeError:
        pass  # the importer stopped reading: it is refusing the file or rolling back
    finally:
        sender.close()


def _received(receiver: Connection) -> Iterator[list[_Row]]:
    """The chunks the checker sends, until it ends; its refusal raised here."""
    while True:
        try:
            kind, payload = receiver.recv()
        except EOFError:
            raise ImportRefused(
                N_(
                    "The process checking the rows stopped unexpectedly, so nothing was "
                    "imported. Import the file again."
                )
            ) from None
        if kind == "rows":
            yield payload
        elif kind == "refused":
            message, values = payload
            raise ImportRefused(message, **values)
        else:
            return


def _run(
    db: Session,
    campaign: Campaign,
    path: str,
    layout: Layout,
    *,
    count_now: bool,
    locale: str,
    on_created: OnCreated | None,
    parallel: bool,
) -> ImportReport:
    importer = _Importer(db, campaign, count_now=count_now, locale=locale)
    with _checked_chunks(path, layout, importer.now, parallel=parallel) as chunks:
        return importer.run(chunks, on_created)


def preview(
    db: Session,
    campaign: Campaign,
    path: str,
    layout: Layout,
    *,
    count_now: bool = True,
    parallel: bool = False,
) -> ImportReport:
    """What apply() would do with the file now; stores nothing (a rolled-back savepoint).

    parallel: check a large file's rows in a second process (see _checked_chunks); for
    a command, not for a web server's threads.
    """
    savepoint = db.begin_nested()
    try:
        return _run(
            db,
            campaign,
            path,
            layout,
            count_now=count_now,
            locale="en",
            on_created=None,
            parallel=parallel,
        )
    finally:
        savepoint.rollback()


def apply(
    db: Session,
    campaign: Campaign,
    path: str,
    layout: Layout,
    *,
    organizer: Organizer | None,
    count_now: bool,
    locale: str = "en",
    on_created: OnCreated | None = None,
    source_name: str = "",
    parallel: bool = False,
) -> ImportReport:
    """Import every new signer in one savepoint and audit it; flushes, the caller commits.

    ImportRefused, with nothing stored, when the file goes bad midway or a signer
    took one of its addresses while it was imported (UNIQUE decides, as for the form).
    parallel: as for preview().
    """
    savepoint = db.begin_nested()
    try:
        report = _run(
            db,
            campaign,
            path,
            layout,
            count_now=count_now,
            locale=locale,
            on_created=on_created,
            parallel=parallel,
        )
    except IntegrityError:
        savepoint.rollback()
        raise ImportRefused(
            N_(
                "Someone signed with an address in this file while it was imported, so "
                "nothing was imported. Import the file again."
            )
        ) from None
    except BaseException:
        savepoint.rollback()
        raise
    audit.record(
        db,
        organizer,
        "signatures.import",
        campaign=campaign,
        after={
            "file": source_name,
            "mode": "count_now" if count_now else "confirmation_mail",
            "imported": report.imported,
            "duplicate": report.duplicate,
            "invalid": report.invalid,
            "held": report.held,
            "counted": report.counted,
        },
    )
    savepoint.commit()
    report.applied = True
    return report
