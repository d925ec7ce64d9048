"""Countries (ISO 3166-1 alpha-2, named by pycountry) and the continent of each.

Names: pycountry's English short name (its common name where it has one, "Bolivia" rather
than "Bolivia, Plurinational State of"), translated with iso-codes' catalogues, then
corrected by _NAMES where those are wrong. A name the catalogue of a language lacks is the
English short name, never the longer formal or inverted ISO name ("Taiwan", not
"Taiwan, Province of China").

Names sort with sort_key: accented letters with their base letter ("Égypte" among the Es,
"Brésil" before "Brunéi"), which plain code point order does not do.
"""

from __future__ import annotations

import gettext
import os
import unicodedata
from functools import cache

import pycountry

# The seven GeoNames continent codes and their English names.
CONTINENTS: dict[str, str] = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}

# One continent per country: the continent of its capital and of most of its people, as the
# UN geoscheme (M49) counts them, except that a member of the European Union counts in Europe.
# So Russia is in Europe; Türkiye, Georgia, Armenia, Azerbaijan and Kazakhstan in Asia; Egypt in
# Africa; Cyprus (an EU member, its parliament counted among Europe's) in Europe. Central
# America and the Caribbean are in North America. Kosovo (XK, a code ISO 3166-1 leaves for
# users and that the EU and most registries use) is in Europe. Places no one lives in keep
# a continent so that rows stored before UNINHABITED still read, but no signer can choose them.
_MEMBERS: dict[str, str] = {
    "AF": "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS "
    "LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA "
    "ZM ZW",
    "AN": "AQ BV GS HM TF",
    "AS": "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ "
    "LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE",
    "EU": "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT "
    "JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK",
    "NA": "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS "
    "MX NI PA PM PR SV SX TC TT US VC VG VI",
    "OC": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS",
    "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
}

CONTINENT_OF: dict[str, str] = {
    country: continent for continent, members in _MEMBERS.items() for country in members.split()
}

# Territories with no permanent population and so no parliament or MP: Antarctica, Bouvet
# Island, South Georgia and the South Sandwich Islands, Heard and McDonald Islands, the
# French Southern Territories, the US Minor Outlying Islands, the British Indian Ocean
# Territory (a military base). Not a signer's choice, on the form or in an import; rows
# stored with one still read (names, continents, lists, tally).
UNINHABITED = frozenset({"AQ", "BV", "GS", "HM", "IO", "TF", "UM"})

# Names that pycountry's English short name or the iso-codes catalogues get wrong, by code
# and language: inverted ISO forms ("Palestine, State of"), formal names where the short
# one is usual ("Russian Federation"), misspellings (es "Tunez", fr "Groënland") and names
# left in English (id "Czechia"). Codes pycountry lacks (XK) are named here in each language.
_NAMES: dict[str, dict[str, str]] = {
    "AX": {"es": "Islas Åland", "fr": "Îles Åland"},
    "BF": {"es": "Burkina Faso"},
    "BN": {"en": "Brunei", "es": "Brunéi", "fr": "Brunei"},
    "BQ": {"es": "Bonaire, San Eustaquio y Saba", "id": "Bonaire, Sint Eustatius, dan Saba"},
    "CC": {"fr": "Îles Cocos (Keeling)"},
    "CD": {
        "en": "Democratic Republic of the Congo",
        "es": "República Democrática del Congo",
        "id": "Republik Demokratik Kongo",
    },
    "CG": {"es": "República del Congo"},  # "Congo" alone beside the DRC's full name
    "CI": {"es": "Costa de Marfil"},
    "CX": {"fr": "Île Christmas"},
    "CZ": {"id": "Ceko"},
    "DZ": {"es": "Argelia"},
    "FK": {"fr": "Îles Malouines (Falkland)"},
    "FM": {"en": "Micronesia", "es": "Micronesia", "fr": "Micronésie", "id": "Mikronesia"},
    "GL": {"fr": "Groenland"},
    "GQ": {"fr": "Guinée équatoriale"},
    "KM": {"es": "Comoras"},
    "MO": {"fr": "Macao"},
    "NE": {"es": "Níger"},
    "PS": {"en": "Palestine", "es": "Palestina", "fr": "Palestine", "id": "Palestina"},
    "RE": {"fr": "La Réunion"},
    "RU": {"en": "Russia", "es": "Rusia", "fr": "Russie", "id": "Rusia"},
    "SB": {"fr": "Îles Salomon"},
    "SR": {"es": "Surinam"},
    "TF": {"id": "Wilayah Selatan Prancis"},
    "TN": {"es": "Túnez"},
    "VA": {"fr": "Saint-Siège (État de la Cité du Vatican)"},
    "VE": {"fr": "Venezuela"},
    "VG": {"en": "British Virgin Islands", "es": "Islas Vírgenes Británicas"},
    "VI": {
        "en": "U.S. Virgin Islands",
        "es": "Islas Vírgenes de los Estados Unidos",
        "fr": "Îles Vierges des États-Unis",
        "id": "Kepulauan Virgin Amerika Serikat",
    },
    "XK": {"en": "Kosovo", "es": "Kosovo", "fr": "Kosovo", "id": "Kosovo"},
}

# Letters that Unicode does not decompose, written as the letters they sort with.
_LIGATURES = str.maketrans(
    {"æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "\u0131": "i"}
)


def sort_key(name: str) -> tuple[str, str]:
    """A key that sorts names alphabetically in the languages this service speaks.

    Accents and case do not count ("Égypte" between "Écosse" and "Espagne", "Bélarus" before
    "Brésil"), ligatures count as their letters ("Œ" as "oe"); names equal under that are
    ordered by the name itself, so the order is stable.
    """
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    return base.translate(_LIGATURES), name


def is_known(code: str) -> bool:
    """Whether code is a country this service can name and place (stored rows use these)."""
    return code in CONTINENT_OF


def is_country(code: str) -> bool:
    """Whether code is a country a signer may choose: known, with people (and a parliament)."""
    return code in CONTINENT_OF and code not in UNINHABITED


def continent_of(country_code: str) -> str:
    """The continent code of a country; KeyError for an unknown country."""
    return CONTINENT_OF[country_code]


def _language(locale: str) -> str:
    return locale.replace("-", "_").split("_")[0].lower()


@cache
def _translations(locale: str) -> gettext.NullTranslations:
    return gettext.translation(
        "iso3166-1", pycountry.LOCALES_DIR, languages=[locale], fallback=True
    )


def _short_name(code: str) -> str | None:
    """pycountry's English short name: its common name where it has one."""
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return None
    return str(getattr(country, "common_name", None) or country.name)


def country_name(code: str, locale: str | None = None) -> str:
    """The country's name, in the locale's language when one is given (English otherwise)."""
    fixed = _NAMES.get(code, {})
    short = _short_name(code)
    english = fixed.get("en") or short or code
    language = _language(locale) if locale else "en"
    if language == "en":
        return english
    if language in fixed:
        return fixed[language]
    if short is None:
        return english
    translated = _translations(locale).gettext(short)
    # Not in the catalogue: the English short name, not the formal ISO one.
    return translated if translated != short else english


_CATALOGUES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "translations")


@cache
def _messages(locale: str) -> gettext.NullTranslations:
    return gettext.translation("messages", _CATALOGUES, languages=[locale], fallback=True)


def continent_name(code: str, locale: str | None = None) -> str:
    """The continent's name: English, or in the locale's language (this service's catalogue)."""
    name = CONTINENTS.get(code, code)
    if not locale or _language(locale) == "en":
        return name
    return _messages(locale).gettext(name)


@cache
def country_choices(
    locale: str | None = None, *, signable: bool = True
) -> tuple[tuple[str, str], ...]:
    """Countries as (code, name), sorted by name in the given language (sort_key).

    Those a signer may choose (is_country); with signable=False, every known one, as a
    filter of stored rows needs.
    """
    # Cached per locale: names do not change while a process runs, and building them
    # (about 250 gettext look-ups) was 40 % of a sign request's CPU.
    check = is_country if signable else is_known
    return tuple(
        sorted(
            ((code, country_name(code, locale)) for code in CONTINENT_OF if check(code)),
            key=lambda item: sort_key(item[1]),
        )
    )
