"""Countries (ISO 3166-1 alpha-2, named by pycountry) and the continent of each."""

from __future__ import annotations

import gettext
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

# One continent per country, as GeoNames assigns them (Turkey, Cyprus and the
# Caucasus in Asia; Russia in Europe; Central America and the Caribbean in North America).
_MEMBERS: dict[str, str] = {
    "AF": "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS "
    "LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA "
    "ZM ZW",
    "AN": "AQ BV GS HM TF",
    "AS": "AE AF AM AZ BD BH BN BT CC CN CX CY GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ "
    "LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE",
    "EU": "AD AL AT AX BA BE BG BY CH CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE "
    "LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA",
    "NA": "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS "
    "MX NI PA PM PR SV SX TC TT US VC VG VI",
    "OC": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS",
    "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
}

CONTINENT_OF: dict[str, str] = {
    country: continent for continent, members in _MEMBERS.items() for country in members.split()
}


def is_country(code: str) -> bool:
    """Whether code is an ISO 3166-1 alpha-2 country code this service knows."""
    return code in CONTINENT_OF


def continent_of(country_code: str) -> str:
    """The continent code of a country; KeyError for an unknown country."""
    return CONTINENT_OF[country_code]


@cache
def _translations(locale: str) -> gettext.NullTranslations:
    return gettext.translation(
        "iso3166-1", pycountry.LOCALES_DIR, languages=[locale], fallback=True
    )


def _english_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    # "Bolivia" reads better on a letter than "Bolivia, Plurinational State of".
    return str(getattr(country, "common_name", None) or country.name)


def country_name(code: str, locale: str | None = None) -> str:
    """The country's name, translated when a locale is given and pycountry has it."""
    name = _english_name(code)
    if not locale or locale.startswith("en"):
        return name
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return name
    translations = _translations(locale)
    translated = translations.gettext(name)
    if translated == name and name != country.name:
        translated = translations.gettext(country.name)
    return translated


def continent_name(code: str) -> str:
    """The continent's English name (translated in templates)."""
    return CONTINENTS.get(code, code)


@cache
def country_choices(locale: str | None = None) -> tuple[tuple[str, str], ...]:
    """Every country as (code, name), sorted by name in the given language."""
    # Cached per locale: names do not change while a process runs, and building them
    # (about 250 gettext look-ups) was 40 % of a sign request's CPU.
    return tuple(
        sorted(
            ((code, country_name(code, locale)) for code in CONTINENT_OF),
            key=lambda item: item[1].casefold(),
        )
    )
