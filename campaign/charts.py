"""Pictures of a tally, drawn on the server as SVG: world map, continent bars, badge, share image.

Pure functions (no Flask): the caller passes the words in its reader's language through
:class:`ChartText`. Every piece of text is escaped, and characters XML cannot carry are
dropped, so a hostile campaign title cannot break out of the markup. Colours are set with
presentation attributes (never ``style`` or ``<style>``) so a strict CSP keeps them.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import math
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from markupsafe import Markup, escape
from PIL import Image, ImageDraw, ImageFont

from campaign import geo
from campaign.tally import Tally

_log = logging.getLogger(__name__)

# Sequential shades, light to dark (ColorBrewer YlGnBu, its five darker steps of seven): the
# lightest is a clear teal, apart from the grey of countries without signatures even when a
# small country has a single signer; the darkest has 12:1 contrast on white. The legend
# repeats every step in words, and the tables give every number, so colour is never alone.
SHADES: tuple[str, ...] = ("#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#0c2c84")
NO_SIGNATURES = "#dfe3e8"
BORDER = "#ffffff"
INK = "#1b1f24"
BAR = "#2c7fb8"
LEGEND_FONT = 34
LEGEND_ROW = 48
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', sans-serif"

# Characters outside XML 1.0's Char production: even escaped they make a document invalid.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _signatures(count: int) -> str:
    return f"{count:,} signature" if count == 1 else f"{count:,} signatures"


def _countries(count: int) -> str:
    return f"{count:,} country" if count == 1 else f"{count:,} countries"


def _summary(signatures: int, countries: int, continents: int) -> str:
    places = "continent" if continents == 1 else "continents"
    return f"{_signatures(signatures)} from {_countries(countries)} on {continents} {places}"


def _share_line(signatures: int, countries: int, continents: int) -> str:
    noun = "signature" if signatures == 1 else "signatures"
    places = "continent" if continents == 1 else "continents"
    return f"{noun} from {_countries(countries)} on {continents} {places}"


def _signed(signatures: int) -> str:
    return "MP has signed" if signatures == 1 else "MPs have signed"


def _places(countries: int, continents: int) -> str:
    places = "continent" if continents == 1 else "continents"
    return f"from {_countries(countries)} on {continents} {places}"


@dataclass(frozen=True)
class ChartText:
    """The words on the pictures; English by default, the caller passes translated ones."""

    signatures: Callable[[int], str] = _signatures
    countries: Callable[[int], str] = _countries
    # "158 signatures from 23 countries on 6 continents"
    summary: Callable[[int, int, int], str] = _summary
    # What follows the big number on the share image: "signatures from 23 countries on ..."
    share_line: Callable[[int, int, int], str] = _share_line
    # The share image: the big number, then "MPs have signed", then "from 23 countries on ...".
    number: Callable[[int], str] = "{:,}".format
    signed: Callable[[int], str] = _signed
    places: Callable[[int, int], str] = _places
    first: str = "Be the first to sign."
    no_signatures: str = "no signatures"
    legend: str = "Signatures per country"
    legend_none: str = "None"
    empty: str = "No signatures yet."
    country_name: Callable[[str], str] = field(default=geo.country_name)
    continent_name: Callable[[str], str] = field(default=geo.continent_name)


ENGLISH = ChartText()


def clean(text: str) -> str:
    """Text with the characters XML cannot carry removed (escaping is separate)."""
    return _NOT_XML.sub("", text)


def _e(text: str) -> str:
    """Escaped, XML-safe text for an element or a quoted attribute."""
    return str(escape(clean(text)))


def _n(value: float) -> str:
    """A coordinate with at most one decimal."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


@cache
def world_data() -> dict[str, Any]:
    """The projected country shapes (campaign/data/world-110m.json, see scripts/README.md)."""
    source = resources.files("campaign").joinpath("data", "world-110m.json")
    data: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return data


def steps(maximum: int) -> list[tuple[int, int]]:
    """Five count ranges (inclusive) for the shades, from 1 up to the largest count.

    Counts are skewed (a few countries bring most signers), so the bounds grow
    geometrically; below five signatures each step is a single count.
    """
    if maximum <= len(SHADES):
        return [(i, i) for i in range(1, len(SHADES) + 1)]
    uppers: list[int] = []
    for i in range(1, len(SHADES) + 1):
        upper = max(math.ceil(maximum ** (i / len(SHADES))), (uppers[-1] + 1) if uppers else 1)
        uppers.append(upper)
    uppers[-1] = maximum
    ranges: list[tuple[int, int]] = []
    lower = 1
    for upper in uppers:
        ranges.append((lower, upper))
        lower = upper + 1
    return ranges


def shade(count: int, ranges: Sequence[tuple[int, int]]) -> str:
    """The fill of a country with this many signatures."""
    if count <= 0:
        return NO_SIGNATURES
    for index, (_, upper) in enumerate(ranges):
        if count <= upper:
            return SHADES[index]
    return SHADES[-1]


def _range_label(lower: int, upper: int) -> str:
    return f"{lower:,}" if lower == upper else f"{lower:,}\u2013{upper:,}"


def _svg_open(width: float, height: float, prefix: str, cls: str, labelled: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'class="{_e(cls)}" role="img" aria-labelledby="{_e(labelled)}" '
        f'font-family="{FONT}" id="{_e(prefix)}">'
    )


def world_map_svg(
    tally: Tally,
    *,
    title: str,
    desc: str | None = None,
    text: ChartText = ENGLISH,
    id_prefix: str = "world-map",
    legend: bool = True,
) -> Markup:
    """An inline SVG world map, each country shaded by its signatures, with a legend.

    Without the legend (legend=False) the page shows :func:`legend_items` as HTML, whose
    type keeps its size however small the map is drawn.
    """
    data = world_data()
    width, height = data["width"], data["height"]
    counts = {country.code: country.signatures for country in tally.by_country}
    ranges = steps(max(counts.values(), default=0))
    if desc is None:
        top = ", ".join(
            f"{text.country_name(c.code)} {c.signatures:,}" for c in tally.by_country[:10]
        )
        summary = text.summary(tally.signatures, tally.countries, tally.continents)
        desc = f"{summary}. {top}." if top else text.empty
    legend_top = height + 16
    legend_height = LEGEND_FONT + 16 + 2 * LEGEND_ROW
    parts = [
        _svg_open(
            width,
            legend_top + legend_height if legend else height,
            id_prefix,
            "chart chart-map",
            f"{id_prefix}-title {id_prefix}-desc",
        ),
        f'<title id="{_e(id_prefix)}-title">{_e(title)}</title>',
        f'<desc id="{_e(id_prefix)}-desc">{_e(desc)}</desc>',
        f'<g stroke="{BORDER}" stroke-width=".6" stroke-linejoin="round">',
    ]
    parts += [f'<path d="{d}" fill="{NO_SIGNATURES}"/>' for d in data["other"]]
    for code, d in data["countries"].items():
        count = counts.get(code, 0)
        words = text.signatures(count) if count else text.no_signatures
        parts.append(
            f'<path d="{d}" fill="{shade(count, ranges)}" data-country="{code}">'
            f"<title>{_e(text.country_name(code))}: {_e(words)}</title></path>"
        )
    parts.append("</g>")
    # Countries too small for the 1:110m shapes show as dots, only when they have signers.
    dots = [(code, data["dots"][code]) for code in counts if code in data["dots"]]
    if dots:
        parts.append(f'<g stroke="{INK}" stroke-width="1">')
        for code, (x, y) in sorted(dots, key=lambda item: counts[item[0]]):
            parts.append(
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="6" fill="{shade(counts[code], ranges)}" '
                f'data-country="{code}"><title>{_e(text.country_name(code))}: '
                f"{_e(text.signatures(counts[code]))}</title></circle>"
            )
        parts.append("</g>")
    if legend:
        parts.append(_legend(ranges, text, legend_top))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece of text went through _e()


def _legend_items(ranges: Sequence[tuple[int, int]], text: ChartText) -> list[tuple[str, str]]:
    return [(NO_SIGNATURES, text.legend_none)] + [
        (colour, _range_label(lower, upper))
        for colour, (lower, upper) in zip(SHADES, ranges, strict=True)
    ]


def legend_items(tally: Tally, text: ChartText = ENGLISH) -> list[tuple[Markup, str]]:
    """The map's legend for a page to write as HTML: (a colour swatch as SVG, its words)."""
    ranges = steps(max((c.signatures for c in tally.by_country), default=0))
    return [(swatch_svg(colour), label) for colour, label in _legend_items(ranges, text)]


def swatch_svg(colour: str) -> Markup:
    """A small square of colour, hidden from screen readers (the words beside it say it all)."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        raise ValueError(f"not a colour: {colour!r}")
    return Markup(  # noqa: S704 - a checked colour, nothing else is interpolated
        '<svg xmlns="http://www.w3.org/2000/svg" class="swatch" width="28" height="18" '
        f'viewBox="0 0 28 18" aria-hidden="true" focusable="false"><rect x=".5" y=".5" '
        f'width="27" height="17" fill="{colour}" stroke="{INK}"/></svg>'
    )


def _legend(ranges: Sequence[tuple[int, int]], text: ChartText, top: float) -> str:
    """The legend: a caption, then the "none" swatch and the five steps in three columns.

    Its type is large in map units because the whole map shrinks to a phone's width.
    """
    items = _legend_items(ranges, text)
    parts = [
        f'<g class="legend" font-size="{LEGEND_FONT}" fill="{INK}">',
        f'<text x="0" y="{_n(top + LEGEND_FONT)}" font-weight="600">{_e(text.legend)}</text>',
    ]
    for index, (colour, label) in enumerate(items):
        x = (index % 3) * 336
        y = top + LEGEND_FONT + 16 + (index // 3) * LEGEND_ROW
        parts.append(
            f'<rect x="{x + 1}" y="{_n(y)}" width="48" height="34" fill="{colour}" '
            f'stroke="{INK}" stroke-width="1"/>'
            f'<text x="{x + 60}" y="{_n(y + 29)}">{_e(label)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def continent_bars_svg(
    tally: Tally,
    *,
    title: str,
    text: ChartText = ENGLISH,
    id_prefix: str = "continent-bars",
) -> Markup:
    """A horizontal bar per continent, its name and numbers written beside the bar."""
    width, row, bar_height = 480, 66, 22
    rows = tally.by_continent
    height = max(len(rows), 1) * row
    parts = [
        _svg_open(width, height, id_prefix, "chart chart-bars", f"{id_prefix}-title"),
        f'<title id="{_e(id_prefix)}-title">{_e(title)}</title>',
    ]
    if not rows:
        parts.append(f'<text x="0" y="30" font-size="20" fill="{INK}">{_e(text.empty)}</text>')
    largest = max((c.signatures for c in rows), default=1)
    for index, continent in enumerate(rows):
        y = index * row
        numbers = f"{text.signatures(continent.signatures)}, {text.countries(continent.countries)}"
        bar = max(4.0, (width - 2) * continent.signatures / largest)
        parts.append(
            f'<g data-continent="{_e(continent.code)}">'
            f'<text x="0" y="{y + 22}" font-size="20" fill="{INK}">'
            f'<tspan font-weight="600">{_e(text.continent_name(continent.code))}</tspan> '
            f"{_e(numbers)}</text>"
            f'<rect x="1" y="{y + 32}" width="{_n(bar)}" height="{bar_height}" fill="{BAR}" '
            f'rx="3"/></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece of text went through _e()


# Approximate advance widths at 11px Verdana (the font shields-style badges use); the
# text is also given textLength, so a different fallback font still fits its box.
_NARROW = set("fijlrtI.,:;'!|()[] ")
_WIDE = set("mwMW@%")


def _text_width(text: str) -> float:
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 4.0
        elif char in _WIDE:
            width += 10.5
        elif char.isupper() or char.isdigit():
            width += 7.5
        else:
            width += 6.8
    return width


def badge_svg(count: int, label: str, *, message: str | None = None) -> str:
    """A shields-style badge: the label on grey, "N signatures" (or message) on blue."""
    label = clean(label)
    if len(label) > 40:
        label = label[:39].rstrip() + "\u2026"
    message = clean(message if message is not None else _signatures(count))
    left = round(_text_width(label) + 12)
    right = round(_text_width(message) + 12)
    total = left + right
    both = f"{label}: {message}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" '
        f'viewBox="0 0 {total} 20" role="img" aria-label="{_e(both)}">'
        f"<title>{_e(both)}</title>"
        f'<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        f'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="#0b5cad"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" '
        f'font-family="Verdana, Geneva, \'DejaVu Sans\', sans-serif" font-size="11">'
        f'<text x="{left / 2:.1f}" y="14" textLength="{left - 12}" '
        f'lengthAdjust="spacingAndGlyphs">{_e(label)}</text>'
        f'<text x="{left + right / 2:.1f}" y="14" textLength="{right - 12}" '
        f'lengthAdjust="spacingAndGlyphs">{_e(message)}</text></g></svg>'
    )


def _wrap(text: str, limit: int, lines: int) -> list[str]:
    """Words wrapped to lines of about limit characters, at most lines of them."""
    out: list[str] = []
    for word in text.split():
        if out and len(out[-1]) + 1 + len(word) <= limit:
            out[-1] += " " + word
        else:
            out.append(word)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: limit - 1].rstrip() + "\u2026"
    return out


def share_image_svg(campaign_title: str, tally: Tally, *, text: ChartText = ENGLISH) -> str:
    """A 1200x630 Open Graph picture: the title, the count in large type, the shaded map."""
    data = world_data()
    counts = {country.code: country.signatures for country in tally.by_country}
    ranges = steps(max(counts.values(), default=0))
    scale = 620 / data["width"]
    line = text.share_line(tally.signatures, tally.countries, tally.continents)
    summary = text.summary(tally.signatures, tally.countries, tally.continents)
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="630" '
        f'viewBox="0 0 1200 630" role="img" font-family="{FONT}" '
        f'aria-label="{_e(campaign_title)}: {_e(summary)}">',
        f"<title>{_e(campaign_title)}: {_e(summary)}</title>",
        '<rect width="1200" height="630" fill="#ffffff"/>',
        f'<rect width="1200" height="14" fill="{SHADES[-1]}"/>',
        f'<g transform="translate(560 250) scale({scale:.4f})" stroke="{BORDER}" stroke-width="1">',
    ]
    parts += [f'<path d="{d}" fill="{NO_SIGNATURES}"/>' for d in data["other"]]
    parts += [
        f'<path d="{d}" fill="{shade(counts.get(code, 0), ranges)}"/>'
        for code, d in data["countries"].items()
    ]
    parts.append("</g>")
    for index, title_line in enumerate(_wrap(clean(campaign_title), 30, 3)):
        parts.append(
            f'<text x="60" y="{100 + index * 60}" font-size="50" font-weight="700" '
            f'fill="{INK}">{_e(title_line)}</text>'
        )
    parts.append(
        f'<text x="60" y="410" font-size="150" font-weight="800" fill="{SHADES[-1]}">'
        f"{tally.signatures:,}</text>"
    )
    for index, words in enumerate(_wrap(clean(line), 26, 3)):
        parts.append(
            f'<text x="60" y="{470 + index * 44}" font-size="36" fill="{INK}">{_e(words)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- The share image as PNG (what Open Graph and Twitter cards show; they do not take SVG) ---

SHARE_WIDTH, SHARE_HEIGHT = 1200, 630
_MARGIN = 64
_MUTED = "#4a5561"
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_PATH_TOKEN = re.compile(r"[MLlz]|-?(?:\d+(?:\.\d*)?|\.\d+)")
Polygon = list[tuple[float, float]]


def polygons(d: str) -> list[Polygon]:
    """The rings of an SVG path as the map data writes them (M, l, L and z commands only)."""
    rings: list[Polygon] = []
    ring: Polygon = []
    x = y = 0.0
    command = "M"
    numbers: list[float] = []
    for token in [*_PATH_TOKEN.findall(d), "z"]:
        if not _NUMBER.fullmatch(token):
            command = token
            if command == "z" and ring:
                rings.append(ring)
                x, y = ring[0]
                ring = []
            continue
        numbers.append(float(token))
        if len(numbers) < 2:
            continue
        dx, dy = numbers
        numbers = []
        if command == "M":
            if ring:
                rings.append(ring)
            x, y = dx, dy
            ring = [(x, y)]
            command = "L"  # further pairs after M are lines (SVG's implicit lineto)
        elif command == "L":
            x, y = dx, dy
            ring.append((x, y))
        else:
            x, y = x + dx, y + dy
            ring.append((x, y))
    return [r for r in rings if len(r) >= 3]


@cache
def _map_rings() -> tuple[tuple[str, tuple[Polygon, ...]], ...]:
    """Every country's rings ("" for land without a country), parsed once per process."""
    data = world_data()
    shapes = [("", tuple(polygons(d))) for d in data["other"]]
    shapes += [(code, tuple(polygons(d))) for code, d in data["countries"].items()]
    return tuple(shapes)


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Font files tried, in this order, for text Pillow's own font (Latin letters only) cannot
# draw: a title in Cyrillic, Greek, Arabic, Hebrew, Khmer, Chinese... Debian's packages
# fonts-dejavu-core (Latin, Cyrillic, Greek, Arabic, Hebrew, Armenian, Georgian),
# fonts-noto-core (most other scripts, a file each) and fonts-noto-cjk, then the same
# families where Fedora and Arch put them. Operators name their own first: SHARE_FONTS.
SYSTEM_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans*-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/google-noto/NotoSans*-Regular.ttf",
    "/usr/share/fonts/google-noto-sans-cjk-fonts/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/noto/NotoSans*-Regular.ttf",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
# A private-use code point no font maps: drawn, it is the font's missing-glyph box.
_NO_GLYPH = "\U0010fffd"
_PROBE_SIZE = 24


# Looking for glyphs shares one font object per file between requests; FreeType's are not
# for use by two threads at once, so the looking is done under this lock (and each drawing
# gets fonts of its own).
_PROBING = threading.Lock()


def _font(size: int, face: str | None = None) -> Font:
    """A font file at a size; None is Pillow's own scalable font (no file to ship or find)."""
    if face is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(face, size)


@lru_cache(maxsize=64)
def _probe_font(face: str | None) -> Font:
    """The font a glyph is looked for in (call with _PROBING held)."""
    return _font(_PROBE_SIZE, face)


@lru_cache(maxsize=8192)
def _ink(face: str | None, text: str) -> tuple[tuple[int, int], bytes]:
    """The pixels text makes in a font: what tells a letter from the missing-glyph box."""
    font = _probe_font(face)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (max(1, int(right - left)), max(1, int(bottom - top))))
    ImageDraw.Draw(image).text((-left, -top), text, font=font, fill=255)
    return image.size, image.tobytes()


def _has_glyph(face: str | None, char: str) -> bool:
    """Whether the font draws char as itself rather than as its missing-glyph box."""
    try:
        return _ink(face, char) != _ink(face, _NO_GLYPH)
    except (OSError, ValueError):  # a file that reads as a font but draws nothing
        return False


def _letters(text: str) -> frozenset[str]:
    """The characters of text a font must have: not spaces, controls or invisible marks."""
    return frozenset(ch for ch in text if unicodedata.category(ch)[0] not in "ZC")


@cache
def _usable(face: str) -> bool:
    """Whether the file is a font Pillow can read (an operator's path may be wrong)."""
    try:
        _font(_PROBE_SIZE, face)
    except (OSError, ValueError):
        return False
    return True


def _faces(fonts: tuple[str, ...]) -> list[str]:
    """The operator's font files, then the system's that are installed, each once."""
    found: list[str] = []
    for pattern in (*fonts, *SYSTEM_FONTS):
        for path in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            if path not in found and os.path.isfile(path) and _usable(path):
                found.append(path)
    return found


def face_for(text: str, fonts: tuple[str, ...] = ()) -> str | None:
    """The font file to draw text with: None (Pillow's own) when it has every letter.

    Otherwise the first font found (fonts, then SYSTEM_FONTS) that has them all, or the one
    with the most; Pillow's own when none has more. Pillow lays out right-to-left and joined
    scripts (raqm).
    """
    letters = _letters(text)
    with _PROBING:
        if all(_has_glyph(None, ch) for ch in letters):
            return None
        return _best_face(letters, tuple(_faces(fonts)))


def covers(text: str, fonts: tuple[str, ...] = ()) -> bool:
    """Whether face_for(text) draws every letter of text (else some come out as boxes)."""
    return _draws_all(face_for(text, fonts), text)


def _draws_all(face: str | None, text: str) -> bool:
    """Whether the font (None: Pillow's own) draws every letter of text."""
    with _PROBING:
        return all(_has_glyph(face, ch) for ch in _letters(text))


@lru_cache(maxsize=256)
def _best_face(letters: frozenset[str], faces: tuple[str, ...]) -> str | None:
    """The first of faces with every letter, or the one with the most (None: Pillow's own)."""
    best, most = None, sum(_has_glyph(None, ch) for ch in letters)
    for face in faces:
        has = sum(_has_glyph(face, ch) for ch in letters)
        if has == len(letters):
            return face
        if has > most:
            best, most = face, has
    return best


def _rtl(text: str) -> bool:
    """Whether text starts, in its first letter with a direction, right to left."""
    for ch in text:
        direction = unicodedata.bidirectional(ch)
        if direction in ("R", "AL"):
            return True
        if direction == "L":
            return False
    return False


def _wide(text: str) -> bool:
    """Whether text holds East Asian wide letters, which may be broken between any two."""
    return any(unicodedata.east_asian_width(ch) in ("W", "F") for ch in text)


def _cut(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: float,
    suffix: str = "",
) -> str:
    """The longest start of text that fits the width with suffix after it (binary search)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if draw.textlength(text[:middle] + suffix, font=font) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _fit_lines(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: float,
    lines: int,
) -> list[str]:
    """Words wrapped to the pixel width, at most lines of them, the last cut with an ellipsis."""
    out: list[str] = []
    overflow = False
    words = text.split()
    while words:
        word = words.pop(0)
        candidate = f"{out[-1]} {word}" if out else word
        if out and draw.textlength(candidate, font=font) <= width:
            out[-1] = candidate
            continue
        if len(out) == lines:
            overflow = True
            break
        # A single word wider than the box (a long URL, a compound name) is cut too; Chinese
        # or Japanese, written without spaces, goes on on the next line.
        cut = _cut(draw, word, font, width)
        overflow = cut != word
        out.append(cut or word[:1])
        if overflow and cut and _wide(word):
            words.insert(0, word[len(cut) :])
            overflow = False
            continue
        if overflow:
            break
    if overflow:
        last = _cut(draw, out[-1], font, width, "\u2026").rstrip(" ,;:-\u2013\u2014")
        out[-1] = last + "\u2026"
    return out


def _draw_map(
    draw: ImageDraw.ImageDraw, tally: Tally, left: float, top: float, width: float
) -> None:
    """The shaded world map, width pixels wide, its top-left corner at (left, top)."""
    data = world_data()
    scale = width / data["width"]
    counts = {country.code: country.signatures for country in tally.by_country}
    ranges = steps(max(counts.values(), default=0))
    for code, rings in _map_rings():
        fill = shade(counts.get(code, 0), ranges) if code else NO_SIGNATURES
        for ring in rings:
            points = [(left + px * scale, top + py * scale) for px, py in ring]
            draw.polygon(points, fill=fill, outline=BORDER)
    for code, (px, py) in data["dots"].items():
        if counts.get(code):
            x, y = left + px * scale, top + py * scale
            draw.ellipse(
                (x - 5, y - 5, x + 5, y + 5), fill=shade(counts[code], ranges), outline=INK
            )


def share_image_png(
    campaign_title: str,
    tally: Tally,
    *,
    text: ChartText = ENGLISH,
    footer: str = "",
    fonts: Sequence[str] = (),
) -> bytes:
    """A 1200x630 PNG for link previews: the title, the count in large type, where signers are.

    Text Pillow's own font cannot draw is drawn with an installed font that can (fonts: the
    operator's font files, tried before SYSTEM_FONTS).
    """
    image = Image.new("RGB", (SHARE_WIDTH, SHARE_HEIGHT), "#ffffff")
    draw = ImageDraw.Draw(image)
    tried = tuple(fonts)

    def font(size: int, face: str | None) -> Font:
        """The face (face_for's choice) at size."""
        try:
            return _font(size, face)
        except OSError:  # the file went away since it was looked into
            return _font(size)

    def write(y: float, words: str, size: int, box: tuple[float, int, int], **style: Any) -> float:
        """Draw words in a box (width, lines, line height) from y; the y after them.

        Words no installed font draws whole are left out, not drawn as boxes on every
        link preview; the log says which font would draw them.
        """
        face = face_for(words, tried)
        if not _draws_all(face, words):
            _log.warning(
                "share image: no font here draws every letter of %r; it is left out (install"
                " fonts-noto-core and fonts-noto-cjk, or set CAMPAIGN_SHARE_FONTS)",
                words[:60],
            )
            return y
        chosen = font(size, face)
        width, lines, step = box
        right = _rtl(words)
        for line in _fit_lines(draw, words, chosen, width, lines):
            # Right to left, a line starts at the right of its column.
            x, anchor = (_MARGIN + width, "ra") if right else (_MARGIN, "la")
            draw.text((x, y), line, font=chosen, anchor=anchor, **style)
            y += step
        return y

    draw.rectangle((0, 0, SHARE_WIDTH, 14), fill=SHADES[-1])
    text_width = SHARE_WIDTH - 2 * _MARGIN
    title = clean(campaign_title)
    y = write(56.0, title, 52, (text_width, 3, 64), fill=INK, stroke_width=1, stroke_fill=INK)
    y += 24
    # The map sits right of the numbers, centred in the space the title leaves.
    map_width = 540
    map_height = map_width * world_data()["height"] / world_data()["width"]
    map_top = max(y, (y + SHARE_HEIGHT - 32) / 2 - map_height / 2)
    _draw_map(draw, tally, SHARE_WIDTH - _MARGIN - map_width, map_top, map_width)
    column = 600 - _MARGIN  # the words stay left of the map
    if tally.signatures:
        number = clean(text.number(tally.signatures))
        draw.text(
            (_MARGIN - 6, y),
            number,
            font=font(168, face_for(number, tried)),
            fill=SHADES[-1],
            stroke_width=3,
            stroke_fill=SHADES[-1],
        )
        y += 190
        signed = clean(text.signed(tally.signatures))
        y = write(y, signed, 44, (column, 2, 54), fill=INK, stroke_width=1, stroke_fill=INK)
        places = clean(text.places(tally.countries, tally.continents))
        write(y, places, 36, (column, 2, 46), fill=_MUTED)
    else:
        write(y + 40, clean(text.first), 56, (column, 3, 68), fill=SHADES[-1])
    if footer:
        write(SHARE_HEIGHT - 56, clean(footer), 28, (column, 1, 0), fill=_MUTED)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
