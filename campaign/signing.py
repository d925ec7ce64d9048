"""Signing a letter: validation rules, email and name keys, duplicates, confirmation, tokens.

Plain functions taking the session first; no Flask here. The database decides
duplicates: UNIQUE(campaign_id, email_key) refuses a second signature from one
mailbox, racing requests included.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

from email_validator import EmailNotValidError, EmailSyntaxError, validate_email
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
    LOCAL_PART_MAX_LENGTH,
)
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Table, bindparam, case, func, literal, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from campaign import geo, tally
from campaign.db import Direct, utcnow
from campaign.models import Campaign, OutboxMessage, Signature

NAME_MAX = 200
TITLE_MAX = 100
PARLIAMENT_MAX = 200
PARTY_MAX = 200
EMAIL_MAX = 254
COMMENT_MAX = 1000
# The most combining marks (Unicode categories Mn and Me) in a row after one base character.
# Real text stacks few: Vietnamese two (e + circumflex + dot below, decomposed), polytonic
# Greek three (omega + breathing + circumflex + iota subscript), Hebrew with points and
# cantillation three or four (letter + dagesh + vowel + accent), Thai and Lao two (vowel +
# tone mark), Arabic with harakat two or three (shadda + vowel + small alef), Tibetan
# stacks of subjoined consonants and vowels up to five in Sanskrit words (h + m + y + aa + u).
# Five keeps all of them; "Zalgo" text stacks dozens to draw over the lines around it.
MARKS_MAX = 5
# An "already signed" mail is not sent for a signature made this many seconds ago or less,
# nor this soon after the last such mail: a second POST so soon is a double tap on Sign, and
# the first mail (a confirmation, a receipt or that notice) answers it.
DUPLICATE_NOTICE_QUIET_SECONDS = 60

# Signatures in these states are no longer "on the letter": a new signer resembling
# them is not held as their duplicate.
GONE_STATUSES = ("rejected", "withdrawn", "erased")

TITLE_SUGGESTIONS = ("MP", "Senator", "Member of Parliament", "Deputy", "Councillor")


def N_(message: str) -> str:
    """Mark a message for translation; the form translates it when it is shown."""
    return message


# --------------------------------------------------------------------------- keys

_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


def email_key(email: str) -> str:
    """One key per mailbox: casefolded, +tag dropped, gmail dots dropped, googlemail as gmail."""
    address = email.strip().casefold()
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    local = local.split("+", 1)[0] or local
    domain = domain.rstrip(".")
    if domain in _GMAIL_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


# Honorifics and titles ignored when comparing names. Multi-word ones are matched as
# phrases so that a surname such as Tan (in "Tan Sri") or Sri is never dropped alone.
_HONORIFIC_WORDS = frozenset(
    [
        "hon",
        "honourable",
        "honorable",
        "rt",
        "dr",
        "doctor",
        "datuk",
        "dato",
        "datin",
        "yb",
        "yab",
        "ybhg",
        "ybrs",
        "sen",
        "senator",
        "rep",
        "representative",
        "mp",
        "mep",
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "mdm",
        "madam",
        "prof",
        "professor",
        "sir",
        "dame",
        "lord",
        "lady",
        "baroness",
        "baron",
        "tun",
        "toh",
        "puan",
        "haji",
        "hj",
        "hajjah",
        "hjh",
        "excellency",
        "deputy",
        "councillor",
    ]
)
# These are also surnames (Amartya Sen, Jack Lord): dropped only before the name begins.
_LEADING_ONLY = frozenset({"sen", "lord", "lady", "tun", "haji", "hajjah", "rep"})
_HONORIFIC_PHRASES = tuple(
    tuple(phrase.split())
    for phrase in (
        "the right honourable",
        "the right honorable",
        "the honourable",
        "the honorable",
        "the hon",
        "right honourable",
        "right honorable",
        "his excellency",
        "her excellency",
        "yang amat berhormat",
        "yang berhormat",
        "yang berbahagia",
        "tan sri",
        "puan sri",
        "datuk seri",
        "dato seri",
        "dato sri",
        "datuk sri",
        "datin seri",
        "h e",
    )
)
_APOSTROPHES = "'\u2019\u2018`\u00b4\u02bc"
# O'Brien and OBrien are one name: str.translate deletes the apostrophes.
_NO_APOSTROPHES = dict.fromkeys(map(ord, _APOSTROPHES))
# A run of letters and digits (str.isalnum: \w without the underscore); any other
# character separates words (Jean-Pierre, "Sen.").
_WORD = re.compile(r"[^\W_]+")
# The phrases by their first word, in the order above, so that a word starting none
# is passed over with one lookup.
_PHRASES_BY_FIRST: dict[str, tuple[tuple[str, ...], ...]] = {
    first: tuple(phrase for phrase in _HONORIFIC_PHRASES if phrase[0] == first)
    for first in dict.fromkeys(phrase[0] for phrase in _HONORIFIC_PHRASES)
}
_HONORIFIC_STARTS = _HONORIFIC_WORDS | frozenset(_PHRASES_BY_FIRST)


def name_key(name: str) -> str:
    """A name for comparison: accents, case, punctuation, honorifics ignored; words sorted."""
    if name.isascii():
        # NFKD leaves ASCII as it is, no ASCII character combines, and casefold is lower.
        letters = name.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", name)
        letters = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = _WORD.findall(letters.translate(_NO_APOSTROPHES))
    kept = _drop_honorifics(words) or words
    return " ".join(sorted(kept))[:NAME_MAX]


def _drop_honorifics(words: list[str]) -> list[str]:
    if _HONORIFIC_STARTS.isdisjoint(words):
        return words
    kept: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        for phrase in _PHRASES_BY_FIRST.get(word, ()):
            if tuple(words[i : i + len(phrase)]) == phrase:
                i += len(phrase)
                break
        else:
            honorific = word in _HONORIFIC_WORDS and not (kept and word in _LEADING_ONLY)
            if not honorific:
                kept.append(word)
            i += 1
    return kept


def client_hash(secret: str, address: str | None) -> str | None:
    """A keyed HMAC-SHA256 of the client address: groups bursts without storing the address."""
    if not address:
        return None
    return hmac.new(secret.encode(), address.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- validation


class FieldError(ValueError):
    """One field's value is refused; the message (an English msgid) says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidEntry(ValueError):
    """A signature entry is refused; .errors maps field names to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class SignatureEntry:
    """A valid signature as typed, before it is stored."""

    name: str
    title: str
    parliament: str
    party: str
    country_code: str
    email: str
    comment: str = ""
    public: bool = False
    locale: str = "en"
    source: str = "form"
    client_hash: str | None = None


# A link: a scheme, www., or a host name ending in a common top-level domain.
_LINK = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://|\bwww\.|[a-z0-9-]\.(?:com|org|net|info|biz|io|co|xyz|top|online|"
    r"site|app|dev|me|ru|cn|uk|de|fr|ly|gl|to|tk|ml|ga|cf|gq|pw|club|shop|store|link|click|"
    r"live|life|vip|win|bid|loan|work|tv|cc|ws|su|in|us|eu)\b)",
    re.IGNORECASE,
)
# What _LINK takes for a host name but is a name: an initial or a two-letter abbreviation,
# its dot, then a capitalised (or upper-case) name part that ends there ("A.De Silva",
# "Ma.De la Cruz", "A.DE SILVA"). A host name is written in lower case: "a.de", "x.com",
# "Foo.De" (a longer label) and anything followed by a path, a port or another label stay
# links, and so do .com, .org and .net, which are no one's name.
_NAME_INITIAL = re.compile(
    r"(?<![\w.@/-])[A-Z][a-z]?\.(?!(?i:com|org|net)\b)(?:[A-Z][a-z]+|[A-Z]{2,})\b(?![./:@])"
)
# Control characters (general category Cc: U+0000-U+001F, U+007F-U+009F), surrogates
# (Cs) and the Unicode line and paragraph separators. Unicode's stability policy fixes
# the Cc and Cs ranges, so one pattern stands for a unicodedata.category() per character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
# The same, allowing newline, carriage return and tab.
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
# The bidirectional embeddings, overrides (LRE RLE PDF LRO RLO) and isolates (LRI RLI FSI
# PDI): each reorders the text after it, up to the end of the line it is printed on, so a
# name holding one reads reversed on the letter. The marks (LRM, RLM, ALM) change no other
# text and come pasted with right-to-left names: allowed.
_DIRECTION = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
# What shows nothing: white space (str.isspace), the format characters (Cf) but the visible
# prepended concatenation marks (U+0600 ARABIC NUMBER SIGN...), the other default-ignorable
# code points (Unicode's DerivedCoreProperties.txt: the combining grapheme joiner, Hangul
# fillers, Khmer inherent vowels, variation selectors, unassigned ones) and U+2800 BRAILLE
# PATTERN BLANK. tests/test_signing.py holds this table to unicodedata for every character.
_INVISIBLE = (
    "\t-\r\x1c- \x85\xa0\xad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f"
    "\u2000-\u200f\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\ufff0-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U00013430-\U0001343f"
    "\U000e0000-\U000e0fff"
)
_LEADING_INVISIBLE = re.compile(f"[{_INVISIBLE}]+")
# Of those, the ones that belong to the visible character before them, kept after it: the
# variation selectors (U+2764 U+FE0F is the red heart emoji; ideographic variants of names)
# and the tags that end an emoji flag (England, Scotland, Wales).
_ATTACHED = re.compile(
    "[\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0020-\U000e007f\U000e0100-\U000e01ef]*"
)


def _text(value: object) -> str:
    if value is None:
        return ""
    # Anything else (a file part of a multipart POST, a number or a list from JSON, a bool)
    # is not text typed in the field: refused rather than stored as its str().
    if not isinstance(value, str):
        raise FieldError(N_("Enter text."))
    return value


def _check_text(value: str, *, multiline: bool = False) -> None:
    # Werkzeug decodes bytes that are not UTF-8 as U+FFFD: the sender's text was garbled.
    if "\ufffd" in value:
        raise FieldError(N_("This is not valid text (UTF-8)."))
    # Printable text (nearly all) holds none: control characters, surrogates, the
    # separators and the direction controls are all unprintable.
    if value.isprintable():
        return
    if (_CONTROL_MULTILINE if multiline else _CONTROL).search(value):
        raise FieldError(N_("Remove the control characters."))
    # A comment is printed as a paragraph of its own, which ends what it reorders.
    if not multiline and _DIRECTION.search(value):
        raise FieldError(N_("Remove the invisible text direction characters."))


def control_character(value: str, *, multiline: bool = False) -> int | None:
    """Where the value's first control character (or surrogate, or line or paragraph
    separator) is, or None; multiline allows tab and line ends."""
    found = (_CONTROL_MULTILINE if multiline else _CONTROL).search(value)
    return None if found is None else found.start()


def check_text(value: str, *, multiline: bool = False) -> None:
    """FieldError when text holds what no field of this site takes: control characters
    (line breaks allowed when multiline), direction controls on one line, or text that was
    not UTF-8. The dashboard's own text fields (a letter's title, an organizer's name) keep
    to it, as the signers' fields do."""
    _check_text(value, multiline=multiline)


@functools.cache
def _marks() -> frozenset[str]:
    """Every combining mark (general category Mn or Me), built on first use.

    They lie from U+0300 to the end of plane 1, and in plane 14's variation selectors
    (planes 2 and 3 hold ideographs, 15 and 16 private use): tests/test_signing_rules.py
    holds this set to unicodedata for every character.
    """
    ranges = (range(0x300, 0x20000), range(0xE0000, 0xE1000))
    return frozenset(
        char
        for codes in ranges
        for char in map(chr, codes)
        if unicodedata.category(char) in ("Mn", "Me")
    )


def _check_marks(value: str) -> None:
    """Refuse a run of more than MARKS_MAX combining marks (a tall streak over other lines)."""
    if value.isascii() or max(value) < "\u0300":
        return
    marks = _marks()
    run = 0
    for char in value:
        if char in marks:
            run += 1
            if run > MARKS_MAX:
                raise FieldError(N_("Use at most 5 accents or marks on one letter."))
        else:
            run = 0


def _trimmed(value: str) -> str:
    """value without what shows nothing at its ends; empty when nothing in it shows."""
    stripped = value.strip()
    if stripped.isascii():
        return stripped
    leading = _LEADING_INVISIBLE.match(stripped)
    if leading is not None:
        stripped = stripped[leading.end() :]
    # The trailing run, matched on the reversed text: a search for it from the start
    # would try every invisible run inside the text.
    trailing = _LEADING_INVISIBLE.match(stripped[::-1])
    if trailing is None:
        return stripped
    end = len(stripped) - trailing.end()
    kept = _ATTACHED.match(stripped, end)
    assert kept is not None  # "[...]*" matches everywhere
    return stripped[: kept.end()]


def shows_nothing(value: str | None) -> bool:
    """Whether text has nothing visible: a name stored before the fields were trimmed so."""
    return not _trimmed(value or "")


def _line(value: object, *, required: bool, limit: int, links: bool = False) -> str:
    raw = _text(value)
    _check_text(raw)
    cleaned = _trimmed(raw)
    if required and not cleaned:
        raise FieldError(N_("This field is required."))
    if len(cleaned) > limit:
        raise FieldError(_too_long(limit))
    _check_marks(cleaned)
    # Every form of link _LINK finds holds a "." or "://".
    if not links and ("." in cleaned or "://" in cleaned) and _has_link(cleaned):
        raise FieldError(N_("Remove the link."))
    return cleaned


def _has_link(value: str) -> bool:
    """Whether the text holds a link: a match of _LINK that is not a name's initial."""
    found = _LINK.search(value)
    if found is None:
        return False
    initials = [initial.span() for initial in _NAME_INITIAL.finditer(value)]
    while found is not None:
        if not any(start <= found.start() and found.end() <= end for start, end in initials):
            return True
        found = _LINK.search(value, found.end())
    return False


def _too_long(limit: int) -> str:
    messages = {
        NAME_MAX: N_("Use at most 200 characters."),
        TITLE_MAX: N_("Use at most 100 characters."),
        EMAIL_MAX: N_("Use at most 254 characters."),
        COMMENT_MAX: N_("Use at most 1000 characters."),
    }
    return messages[limit]


def clean_name(value: object) -> str:
    """The signer's name: required, one line, at most 200 characters, a letter, no links."""
    name = _line(value, required=True, limit=NAME_MAX)
    # A letter of any script (general category L*: str.isalpha); "." or "😀😀" names nobody.
    if not any(map(str.isalpha, name)):
        raise FieldError(N_("Enter a name with at least one letter."))
    return name


def clean_title(value: object) -> str:
    """The signer's title (MP, Senator...): required, at most 100 characters."""
    return _line(value, required=True, limit=TITLE_MAX)


def clean_parliament(value: object) -> str:
    """The parliament the signer sits in: required, at most 200 characters."""
    return _line(value, required=True, limit=PARLIAMENT_MAX)


def clean_party(value: object) -> str:
    """The signer's party: optional, at most 200 characters."""
    return _line(value, required=False, limit=PARTY_MAX)


def clean_country(value: object) -> str:
    """An ISO 3166-1 alpha-2 code this service knows, upper-cased."""
    raw = _text(value)
    _check_text(raw)
    code = _trimmed(raw).upper()
    if not code:
        raise FieldError(N_("Choose a country."))
    if not geo.is_country(code):
        raise FieldError(N_("Choose a country from the list."))
    return code


def clean_email(value: object, *, check_deliverability: bool = False) -> str:
    """The address in email-validator's normalized form; at most 254 characters."""
    raw = _text(value)
    _check_text(raw)
    address = _trimmed(raw)
    if not address:
        raise FieldError(N_("Enter your email address."))
    if len(address) > EMAIL_MAX:
        raise FieldError(_too_long(EMAIL_MAX))
    try:
        normalized = _normalized_email(address, check_deliverability)
    except EmailNotValidError:
        if len(address.rpartition("@")[0]) > LOCAL_PART_MAX_LENGTH:
            raise FieldError(N_("Use at most 64 characters before the @.")) from None
        raise FieldError(N_("Enter a valid email address, like name@example.org.")) from None
    if len(normalized) > EMAIL_MAX or len(email_key(normalized)) > EMAIL_MAX:
        raise FieldError(_too_long(EMAIL_MAX))
    return str(normalized)


_CASE_INSENSITIVE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def _normalized_email(address: str, check_deliverability: bool) -> str:
    """validate_email(address, strict=True).normalized, the domain's checks once per domain.

    strict: email-validator checks the local part's length (at most 64 characters, RFC 5321
    4.5.3.1.1) only when asked. An address whose local part is plain ASCII dot-atom (nearly
    all) is split at its only possible @ as email-validator splits it; that local part is
    valid if it is at most 64 characters long and stays as it is (RFC 2142 names
    lower-cased), and the rest of validate_email depends on the domain alone, apart from
    the length of the whole. Anything else (quotes, Unicode, display names, no @) goes
    through validate_email itself.
    """
    local, at, domain = address.partition("@")
    if not at or not DOT_ATOM_TEXT.match(local):
        checked = validate_email(address, check_deliverability=check_deliverability, strict=True)
        return str(checked.normalized)
    if len(local) > LOCAL_PART_MAX_LENGTH:
        raise EmailSyntaxError("The email address is too long before the @-sign.")
    domain_form, ascii_domain = _checked_domain(domain, check_deliverability)
    if local.lower() in _CASE_INSENSITIVE_MAILBOXES:
        local = local.lower()
    normalized = f"{local}@{domain_form}"
    # validate_email_length: the address as given, normalized, and with the ASCII domain.
    for form in (address, normalized, f"{local}@{ascii_domain}"):
        if len(form.encode()) > EMAIL_MAX_LENGTH:
            raise EmailSyntaxError("The email address is too long.")
    return normalized


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str, check_deliverability: bool) -> tuple[str, str]:
    """(normalized, ASCII) forms of a valid domain; EmailNotValidError (not cached) if not.

    The probe's local part "a" is valid and as short as any, so a domain refused here
    (for its length too) is refused with every local part. With deliverability on, a
    domain's positive DNS answer is kept for the life of the process.
    """
    checked = validate_email(f"a@{domain}", check_deliverability=check_deliverability, strict=True)
    return str(checked.domain), str(checked.ascii_domain)


def clean_comment(value: object) -> str:
    """An optional comment: at most 1000 characters; newlines and tabs allowed."""
    raw = _text(value)
    _check_text(raw, multiline=True)
    cleaned = _trimmed(raw).replace("\r\n", "\n").replace("\r", "\n")
    if len(cleaned) > COMMENT_MAX:
        raise FieldError(_too_long(COMMENT_MAX))
    _check_marks(cleaned)
    return cleaned


_TRUE = frozenset({"1", "true", "yes", "y", "on", "t"})
_FALSE = frozenset({"", "0", "false", "no", "n", "off", "f"})


def clean_public(value: object) -> bool:
    """Whether the signer agreed to be listed: a bool, or yes/no words as a CSV holds them."""
    if value is None or isinstance(value, bool):
        return bool(value)
    word = str(value).strip().casefold()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise FieldError(N_("Use yes or no."))


# The form's fields and their rules, in the form's order; by check_deliverability.
_RULES: dict[bool, tuple[tuple[str, Callable[[object], Any]], ...]] = {
    deliverability: (
        ("name", clean_name),
        ("title", clean_title),
        ("parliament", clean_parliament),
        ("party", clean_party),
        ("country", clean_country),
        ("email", functools.partial(clean_email, check_deliverability=deliverability)),
        ("comment", clean_comment),
        ("public", clean_public),
    )
    for deliverability in (False, True)
}


def validate_entry(
    raw: Mapping[str, str | bool | None], *, check_deliverability: bool = False
) -> SignatureEntry:
    """Apply the sign form's rules to raw values; InvalidEntry lists every refused field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, rule in _RULES[bool(check_deliverability)]:
        try:
            values[name] = rule(raw.get(name))
        except FieldError as error:
            errors[name] = error.message
    if errors:
        raise InvalidEntry(errors)
    return SignatureEntry(
        name=values["name"],
        title=values["title"],
        parliament=values["parliament"],
        party=values["party"],
        country_code=values["country"],
        email=values["email"],
        comment=values["comment"],
        public=values["public"],
    )


# --------------------------------------------------------------------------- signing


class Letter(tally.Rules, Protocol):
    """What sign() reads of the letter: a Campaign, or the signer's campaigns.Admission."""

    @property
    def id(self) -> int: ...
    @property
    def letter_version(self) -> int: ...


class Signer(NamedTuple):
    """A stored signature's id and address: what queueing its mail needs."""

    id: int
    email: str


@dataclass
class SignOutcome:
    """What sign() did: the signature (new or the existing one) and whether to notify.

    The ORM object of a new signature is built only when a caller asks for it: the signer's
    request needs only its id and address (signer), and building the object (thirty
    instrumented attributes, then adding it to the session) cost more than the INSERT.
    """

    signer: Signer
    created: bool
    notify_existing: bool = field(default=False)
    _signature: Signature | None = field(default=None, repr=False)
    _inserted: tuple[Session, Letter, dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def signature(self) -> Signature:
        """The signature, in the session: a new one as inserted, without reading it back."""
        if self._signature is None:
            assert self._inserted is not None
            db, campaign, values = self._inserted
            signature = Signature(id=self.signer.id, **values)
            make_transient_to_detached(signature)
            db.add(signature)
            if isinstance(campaign, Campaign):
                set_committed_value(signature, "campaign", campaign)
            self._signature = signature
        return self._signature


def sign(
    db: Session,
    campaign: Letter,
    entry: SignatureEntry,
    *,
    confirmed: bool = False,
    notice_limit: int = 3,
    notice_quiet_seconds: float = DUPLICATE_NOTICE_QUIET_SECONDS,
) -> SignOutcome:
    """Record a signature; UNIQUE(campaign, email_key) refuses duplicates. Flushes only.

    An address that signed already is told so by mail (notify_existing) at most notice_limit
    times per withdrawal, and not when its signature, or the last notice queued for it (since
    its withdrawal), is notice_quiet_seconds old or less.
    """
    key = email_key(entry.email)
    person = name_key(entry.name)
    # The statements below run on the session's connection, past the ORM's execution layer
    # (a third of their cost); it would have flushed pending changes first, so flush here.
    db.flush()
    conn = db.connection()
    lock_person(db, campaign.id, person, entry.country_code)
    found = _EARLIER_SIGNER.first(
        db, {"campaign_id": campaign.id, "name_key": person, "country_code": entry.country_code}
    )
    earlier = None if found is None else found[0]
    now = utcnow()
    confirmed_at = now if confirmed else None
    # The status by tally's one rule, decided before the row exists.
    status = tally.new_status(campaign, held=earlier is not None, confirmed_at=confirmed_at)
    counted = status == "confirmed"
    values: dict[str, Any] = {
        "campaign_id": campaign.id,
        "signed_at": now,
        "updated_at": now,
        "name": entry.name,
        "title": entry.title,
        "parliament": entry.parliament,
        "party": entry.party,
        "country_code": entry.country_code,
        "continent_code": geo.continent_of(entry.country_code),
        "email": entry.email,
        "email_key": key,
        "email_domain": key.rpartition("@")[2],
        "name_key": person,
        "comment": entry.comment,
        "public": entry.public,
        "source": entry.source,
        "locale": entry.locale,
        "client_hash": entry.client_hash,
        # The text the signer read: the campaign row is loaded already, no query.
        "letter_version": campaign.letter_version,
        "confirmed_at": confirmed_at,
        "verified_at": None,
        "rejected_at": None,
        "rejected_reason": "",
        "withdrawn_at": None,
        "erased_at": None,
        "duplicate_of_id": earlier,
        "duplicate_state": "held" if earlier is not None else None,
        "duplicate_notices": 0,
        "status": status,
        "counted": counted,
    }
    # One INSERT that yields nothing when the address already signed (a racing request's
    # row included: PostgreSQL waits for that transaction, SQLite's writers are serialised),
    # instead of an ORM flush in a savepoint that a duplicate rolls back.
    inserted = _insert_new(conn.dialect.name).first(db, values)
    new_id = None if inserted is None else inserted[0]
    if new_id is None:
        return _existing(db, campaign, key, notice_limit, notice_quiet_seconds)
    if counted:
        tally.bump(db, campaign.id, entry.country_code, +1, listed=int(entry.public))
    return SignOutcome(Signer(new_id, entry.email), created=True, _inserted=(db, campaign, values))


# The earliest live signer with this name key and country: whom a new signer is held for.
# Built once on the table (no ORM entity to process per call), values as parameters (the
# statuses one each: Direct runs no expanding IN list).
_EARLIER_SIGNER = Direct(
    select(Signature.__table__.c.id)
    .where(
        Signature.__table__.c.campaign_id == bindparam("campaign_id"),
        Signature.__table__.c.name_key == bindparam("name_key"),
        Signature.__table__.c.country_code == bindparam("country_code"),
        Signature.__table__.c.status.not_in([literal(status) for status in GONE_STATUSES]),
    )
    .order_by(Signature.__table__.c.id)
    .limit(1)
)


@functools.cache
def _insert_new(dialect_name: str) -> Direct:
    """INSERT INTO signature ... ON CONFLICT (campaign_id, email_key) DO NOTHING RETURNING id.

    On the table, not the mapped class, and built once: the values come as parameters, so
    neither the ORM's per-column processing nor a new statement runs per signature; on
    SQLite it runs past SQLAlchemy's execution (Direct), while the writer gate is held.
    """
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = cast(Table, Signature.__table__)
    return Direct(
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.campaign_id, table.c.email_key])
        .returning(table.c.id)
    )


def _existing(
    db: Session, campaign: Letter, key: str, notice_limit: int, quiet_seconds: float
) -> SignOutcome:
    found = db.scalar(
        select(Signature.id).where(Signature.campaign_id == campaign.id, Signature.email_key == key)
    )
    if found is None:  # the unique constraint fired, so the row exists; anything else is a bug
        raise RuntimeError(f"signature with email key {key!r} vanished")
    existing = tally.lock(db, found)
    assert existing is not None
    # A withdrawn signature is told so too, with a link to sign again (confirm); only its
    # stored address ever gets it. One the organizers rejected or erased is not.
    kept = existing.rejected_at is None and existing.erased_at is None
    now = utcnow()
    quiet = dt.timedelta(seconds=quiet_seconds)
    # A signature made moments ago and still on the letter: the same signer tapped Sign
    # twice, and the first mail (a confirmation or a receipt) answers both.
    double_tap = existing.withdrawn_at is None and now - existing.signed_at <= quiet
    notify = kept and not double_tap and existing.duplicate_notices < notice_limit
    if notify and quiet_seconds > 0:
        # Likewise moments after a notice (since the withdrawal, if any, which its mail
        # does not answer): the notice queued then answers this tap too.
        last = _LAST_NOTICE.first(db, {"signature_id": existing.id})
        since = None if last is None else last[0]
        if since is not None and now - since <= quiet:
            notify = existing.withdrawn_at is not None and since < existing.withdrawn_at
    if notify:
        existing.duplicate_notices += 1
        db.flush()
    return SignOutcome(
        Signer(existing.id, existing.email),
        created=False,
        notify_existing=notify,
        _signature=existing,
    )


# When the last "already signed" notice of a signature was queued (the outbox keeps a row per
# mail, sent or not, by signature_id): the quiet window counts from it too.
_LAST_NOTICE = Direct(
    select(func.max(OutboxMessage.__table__.c.created_at)).where(
        OutboxMessage.__table__.c.signature_id == bindparam("signature_id"),
        OutboxMessage.__table__.c.kind == literal("already_signed"),
    )
)


def lock_person(db: Session, campaign_id: int, person: str, country: str) -> None:
    """Serialise signers with one name and country, so that two at once cannot both count.

    PostgreSQL takes a transaction-scoped advisory lock; SQLite's BEGIN IMMEDIATE
    already serialises every writer.
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"{campaign_id}\0{person}\0{country}".encode(), digest_size=8)
    # On the session's connection, as sign()'s other statements: a text statement needs
    # nothing of the ORM's execution layer (no flush, no entities).
    db.connection().execute(
        text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": int.from_bytes(digest.digest(), "big", signed=True)},
    )


def namesake_flags(
    db: Session, signature: Signature, person: str, country: str, *, release: bool
) -> dict[str, Any]:
    """The duplicate flags signing would give the signature with this name key and country.

    Held as the possible duplicate of the earliest other live namesake, the one it is
    flagged against first, so that a flag and any decision on it stay; with release, a flag
    against a signature it no longer resembles is removed. {} when nothing changes, and
    under a hold from the suspicious-activity page, which is not about names.
    """
    flagged = signature.duplicate_of_id
    if signature.duplicate_state == "held" and flagged is None:
        return {}
    other = resembling(db, signature, person, country, prefer=flagged)
    if other is not None and other != flagged:
        return {"duplicate_of_id": other, "duplicate_state": "held"}
    if release and other is None and flagged is not None:
        return {"duplicate_of_id": None, "duplicate_state": None}
    return {}


def resembling(
    db: Session, signature: Signature, person: str, country: str, *, prefer: int | None
) -> int | None:
    """The earliest other live signature of the letter with this person key and country.

    As signing's: rejected, withdrawn and erased signatures are off the letter. One already
    held as (or judged not to be) this signature's duplicate is left out: that pair has
    its flag, from the other side. The one it is flagged against (prefer) comes first
    while it still resembles it, so the flag, and any decision on it, stays.
    """
    order: list[Any] = [Signature.id]
    if prefer is not None:
        order.insert(0, case((Signature.id == prefer, 0), else_=1))
    return db.scalar(
        select(Signature.id)
        .where(
            Signature.campaign_id == signature.campaign_id,
            Signature.name_key == person,
            Signature.country_code == country,
            Signature.status.not_in(GONE_STATUSES),
            Signature.id != signature.id,
            or_(Signature.duplicate_of_id.is_(None), Signature.duplicate_of_id != signature.id),
        )
        .order_by(*order)
        .limit(1)
    )


def withdrawn_by_signer(signature: Signature) -> bool:
    """Whether the signature is off the letter by its signer's withdrawal alone."""
    return (
        signature.withdrawn_at is not None
        and signature.rejected_at is None
        and signature.erased_at is None
    )


def signs_again(signature: Signature, link: Link) -> bool:
    """Whether a confirm link puts the withdrawn signature back on the letter.

    Only the link in the mail answering a new signing with the address does: it names the
    withdrawal it answers, and reinstates while that withdrawal stands. A link that names
    none (a first confirmation mail's, or a sign-again mail's made before links named it)
    does only if made after the withdrawal; as its time is in whole seconds, one made in the
    withdrawal's second is taken as older, so a first mail's link never undoes a withdrawal.
    """
    withdrawn_at = signature.withdrawn_at
    if not withdrawn_by_signer(signature) or withdrawn_at is None:
        return False
    if link.withdrawal is not None:
        return link.withdrawal == withdrawn_at
    return link.issued_at > withdrawn_at


def confirm(db: Session, signature_id: int, *, link: Link | None = None) -> Signature | None:
    """Mark a signature's address confirmed (idempotent); None when it does not exist.

    link: the confirm link followed. A withdrawn signature counts again (or is held beside
    a namesake who signed meanwhile) only by a link to sign again (signs_again).
    """
    if link is not None:
        seen = db.get(Signature, signature_id)
        if seen is not None and signs_again(seen, link):
            # The person lock before the row lock, as signing takes them: back on the
            # letter, it is judged beside its namesakes as a new signature would be.
            lock_person(db, seen.campaign_id, seen.name_key, seen.country_code)
    signature = tally.lock(db, signature_id)
    if signature is None:
        return None
    if link is not None and signs_again(signature, link):
        signature.withdrawn_at = None
        # Back on the letter: a later withdrawal gets its own "already signed" notices.
        signature.duplicate_notices = 0
        flags = namesake_flags(
            db, signature, signature.name_key, signature.country_code, release=False
        )
        for key, value in flags.items():
            setattr(signature, key, value)
    if signature.confirmed_at is None:
        signature.confirmed_at = utcnow()
    tally.refresh(db, signature)
    return signature


def withdraw(db: Session, signature_id: int) -> Signature | None:
    """Take a signature off the letter (idempotent); None when it does not exist."""
    signature = tally.lock(db, signature_id)
    if signature is None:
        return None
    if signature.withdrawn_at is None:
        signature.withdrawn_at = utcnow()
        # Signing again now mails a link to count it again (the withdrawn page says so):
        # notices spent before, by the signer or by someone trying the address, do not
        # use up this withdrawal's.
        signature.duplicate_notices = 0
    tally.refresh(db, signature)
    return signature


# --------------------------------------------------------------------------- tokens

PURPOSES = ("confirm", "withdraw", "stop_updates")


class BadToken(ValueError):
    """A link token that was not made by this site for this purpose."""


class ExpiredToken(BadToken):
    """A genuine link token that is too old."""


@functools.lru_cache(maxsize=16)
def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    # Built once per (secret, purpose): the sender signs two links per mail, and a
    # serializer is immutable once made (safe to share between threads).
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret, salt=f"campaign.signature.{purpose}")


def make_token(
    secret: str, signature_id: int, purpose: str, *, withdrawal: dt.datetime | None = None
) -> str:
    """A signed, timestamped token naming one signature for one purpose.

    withdrawal: the withdrawal a link to sign again answers (see signs_again).
    """
    if withdrawal is None:
        return _serializer(secret, purpose).dumps(signature_id)
    return _serializer(secret, purpose).dumps([signature_id, _microseconds(withdrawal)])


class Link(NamedTuple):
    """What a signer's link token says: the signature, when the link was made, and, for a
    link to sign again, the withdrawal it answers."""

    signature_id: int
    issued_at: dt.datetime
    withdrawal: dt.datetime | None = None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _microseconds(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


# The shape of every link token this site signs (signers' links, organizers' reset links).
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+){2}")


def read_token(secret: str, token: str, purpose: str, max_age: int) -> int:
    """The signature id in a token; ExpiredToken when too old, BadToken when forged."""
    return read_link(secret, token, purpose, max_age).signature_id


def read_link(secret: str, token: str, purpose: str, max_age: int) -> Link:
    """What a token says, its time in UTC whole seconds; errors as read_token."""
    # URL-safe base64 and dots only: itsdangerous's decoder would skip stray characters
    # (a CR/LF pasted after a link), so a mangled link would otherwise still verify.
    if not TOKEN_SHAPE.fullmatch(token):
        raise BadToken("this link is not valid")
    serializer = _serializer(secret, purpose)
    try:
        value, issued_at = serializer.loads(token, max_age=max_age, return_timestamp=True)
    except SignatureExpired:
        raise ExpiredToken("this link has expired") from None
    except BadSignature:
        raise BadToken("this link is not valid") from None
    match value:
        case int(signature_id) if not isinstance(value, bool):
            return Link(signature_id, issued_at)
        case [int(signature_id), int(withdrawal)] if not any(
            isinstance(part, bool) for part in value
        ):
            try:
                return Link(signature_id, issued_at, _EPOCH + withdrawal * _MICROSECOND)
            except OverflowError:
                pass
    raise BadToken("this link is not valid")
