"""The reader's language: remembering a choice, the switcher, and names in that language.

Flask-Babel picks the language per request (``extensions.select_locale``: ``?lang=``,
then the ``lang`` cookie, then Accept-Language). This module keeps a ``?lang=`` choice
in the cookie, builds the switcher's links and gives every template the active language
and the names of countries and continents in it. Translations live in
``campaign/translations/<lang>/LC_MESSAGES/messages.po`` (see ``babel.cfg``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Flask, current_app, g, request, url_for
from flask_babel import (
    format_date,
    format_datetime,
    format_number,
    get_locale,
    get_translations,
    refresh,
)
from flask_babel import gettext as babel_gettext
from flask_babel import lazy_gettext as _l
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from werkzeug.wrappers import Response

from campaign import charts, geo
from campaign.campaigns import translation_shown
from campaign.extensions import LANGUAGES, supported_language
from campaign.markup import render_markdown
from campaign.models import Campaign
from campaign.tally import Tally

COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
# Each language named in itself, so a reader finds theirs whatever the page's language.
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "id": "Bahasa Indonesia",
    "fr": "Français",
    "es": "Español",
}
# The one place continent names are marked for translation (geo.py keeps the English ones).
CONTINENT_NAMES = {
    "AF": _l("Africa"),
    "AN": _l("Antarctica"),
    "AS": _l("Asia"),
    "EU": _l("Europe"),
    "NA": _l("North America"),
    "OC": _l("Oceania"),
    "SA": _l("South America"),
}
# The sign form's title suggestions (signing.TITLE_SUGGESTIONS), marked for translation.
TITLE_NAMES = {
    "MP": _l("MP"),
    "Senator": _l("Senator"),
    "Member of Parliament": _l("Member of Parliament"),
    "Deputy": _l("Deputy"),
    "Councillor": _l("Councillor"),
}
# Responses other sites embed, or that caches share: a ?lang= there chooses the words of
# that response only and never changes the visitor's own choice on this site.
_NO_COOKIE_ENDPOINTS = frozenset(
    {"embed.widget", "embed.badge", "embed.share_image", "public.tally_json"}
)


def gettext(message: str, **values: Any) -> str:
    """The message in the reader's language (Flask-Babel, typed)."""
    return str(babel_gettext(message, **values))


def _counted(
    singular: str, plural: str, num: int, values: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The translated form for num, and its values with num as the reader's language writes it.

    "1,234 signatures", "1 234 signatures" (French), "1.234 tanda tangan" (Indonesian):
    Flask-Babel and Jinja put the bare digits in, which a count past 999 should not show.
    """
    message = str(get_translations().ungettext(singular, plural, num))
    return message.replace("%(num)d", "%(num)s"), {"num": str(format_number(num)), **values}


def ngettext(singular: str, plural: str, num: int, **values: Any) -> str:
    """The singular or plural message for num in the reader's language, num formatted."""
    message, values = _counted(singular, plural, num, values)
    return message % values


def install_template_ngettext(app: Flask) -> None:
    """Templates' ngettext writes its number as ngettext() above does (Flask-Babel's doesn't)."""
    app.jinja_env.globals["ngettext"] = _template_ngettext


@pass_context
def _template_ngettext(
    context: Context, singular: str, plural: str, num: int, **values: Any
) -> str:
    # As Jinja's own newstyle ngettext: the message is markup before the values go in, so
    # they are escaped where the template autoescapes.
    message, values = _counted(singular, plural, num, values)
    if context.eval_ctx.autoescape:
        return Markup(message) % values  # noqa: S704 (our translations; values escaped)
    return message % values


def languages() -> list[str]:
    """The configured interface languages, the fallback first."""
    return [str(code) for code in current_app.config.get("LANGUAGES", LANGUAGES)]


def prefer(locale: str | None) -> None:
    """Show the rest of this request in locale (a signer's stored language, on the pages their
    mailed links open, in whatever browser) unless the visitor chose one: ?lang= or the lang
    cookie. Call before anything is rendered."""
    if locale in languages():
        g.page_locale = locale
        refresh()


def current() -> str:
    """The active language as Babel names it ("fr", "pt_BR"); the fallback outside requests."""
    locale = get_locale()
    return str(locale) if locale is not None else languages()[0]


def html_lang() -> str:
    """The active language as a BCP 47 tag for lang attributes ("fr", "pt-BR")."""
    return current().replace("_", "-")


def continent_name(code: str) -> str:
    """A continent's name in the active language."""
    name = CONTINENT_NAMES.get(code)
    return str(name) if name is not None else geo.continent_name(code)


def title_suggestions(titles: tuple[str, ...]) -> list[str]:
    """Title suggestions for the sign form in the active language."""
    return [str(TITLE_NAMES[title]) if title in TITLE_NAMES else title for title in titles]


def country_name(code: str) -> str:
    """A country's name in the active language (pycountry's translations)."""
    return geo.country_name(code, current())


@dataclass(frozen=True)
class LanguageLink:
    """One entry of the language switcher."""

    code: str
    name: str
    url: str
    current: bool


def _switch_target() -> tuple[str, list[tuple[str, str]]]:
    """The path the switcher's links lead to, and the query arguments they keep.

    A page answering a POST (a refused form) cannot be fetched again by a link, so its
    switcher leads to the letter (or the start) instead.
    """
    path = request.script_root + request.path
    if request.method in ("GET", "HEAD"):
        kept = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
        return path, kept
    rule = request.url_rule
    if rule is not None and "GET" in (rule.methods or ()):
        return path, []
    slug = (request.view_args or {}).get("slug")
    if slug and current_app.view_functions.get("public.campaign"):
        return url_for("public.campaign", slug=slug), []
    return url_for("public.index"), []


def chosen() -> str | None:
    """The language the visitor chose (?lang=, else the lang cookie), or None."""
    for candidate in (request.args.get(COOKIE), request.cookies.get(COOKIE)):
        found = supported_language(candidate, languages())
        if found is not None:
            return found
    return None


def with_language(url: str) -> str:
    """url (a form's action) carrying the visitor's chosen language as ?lang=, if they chose one.

    A phone's browser can drop its cookies between showing a form and sending it; the page
    that answers (the form again, the thanks page) then stays in the language it was read in.
    """
    language = chosen()
    if language is None:
        return url
    parts = urlsplit(url)
    kept = [(key, value) for key, value in parse_qsl(parts.query) if key != COOKIE]
    query = urlencode([*kept, (COOKIE, language)])
    return urlunsplit(parts._replace(query=query))


def language_links() -> list[LanguageLink]:
    """The switcher: this page in each language, the active one marked."""
    path, kept = _switch_target()
    active = current()
    return [
        LanguageLink(
            code=code,
            name=LANGUAGE_NAMES.get(code, code),
            url=f"{path}?{urlencode([*kept, ('lang', code)])}",
            current=code == active,
        )
        for code in languages()
    ]


def remember_choice(response: Response) -> Response:
    """Keep a ?lang= choice in the lang cookie; mark pages as varying with the language."""
    chosen = supported_language(request.args.get(COOKIE), languages())
    if (
        chosen is not None
        and chosen != request.cookies.get(COOKIE)
        and request.endpoint not in _NO_COOKIE_ENDPOINTS
        and response.status_code < 400
    ):
        response.set_cookie(
            COOKIE,
            chosen,
            max_age=COOKIE_MAX_AGE,
            samesite="Lax",
            httponly=True,
            secure=request.is_secure,
        )
    if response.mimetype == "text/html":
        response.vary.update(("Accept-Language", "Cookie"))
    return response


def template_context() -> dict[str, object]:
    """What every template may use: the active language, the switcher, names and dates."""
    return {
        "html_lang": html_lang(),
        "language_links": language_links,
        "with_language": with_language,
        "country_name": country_name,
        "continent_name": continent_name,
        "format_datetime": date_time,
    }


# The language of a campaign's own title and text: the dashboard has them written in English
# and the other languages as translations (a LetterVersion keeps them under "en" too).
ORIGINAL_LOCALE = "en"


@dataclass(frozen=True)
class Letter:
    """The letter as this reader sees it: in their language when a translation exists."""

    title: str
    body: Markup
    # The language the title and text are written in ("en" for the original, or a
    # translation's locale).
    locale: str
    # That language as a lang attribute, when the page is in another language; else None.
    # Screen readers then read the letter in its own voice (WCAG 3.1.2).
    lang: str | None


def _letter(title: str, text: str, written_in: str, page_locale: str) -> Letter:
    tag = written_in.replace("_", "-")
    other = tag.casefold() != page_locale.replace("_", "-").casefold()
    return Letter(title, render_markdown(text), written_in, tag if other else None)


def _first_of_the_month(text: str) -> str:
    """French writes the first of a month as an ordinal: "1er décembre", not Babel's "1 "."""
    if text.startswith("1 ") and str(get_locale()).split("_")[0] == "fr":
        return "1er" + text[1:]
    return text


def long_date(value: dt.date) -> str:
    """A date written out in the reader's language: "December 3, 2026", "1er décembre 2026"."""
    return _first_of_the_month(str(format_date(value, format="long")))


def date_time(value: dt.datetime, format: str | None = None) -> str:
    """A moment in the reader's language, in Babel's medium format ("1er déc. 2026, 16:20:00")
    or a pattern of its own that starts with the day ("d MMM y, HH:mm")."""
    return _first_of_the_month(str(format_datetime(value, format)))


def letter_for(campaign: Campaign, locale: str) -> Letter:
    """The campaign's letter in locale ("fr", "pt_BR" or its language), else the original."""
    translation = translation_shown(campaign, locale)
    if translation is not None:
        return _letter(translation.title, translation.letter, translation.locale, locale)
    return _letter(campaign.title, campaign.letter, ORIGINAL_LOCALE, locale)


@dataclass(frozen=True)
class Noun:
    """A counted noun such as "%(num)d country", in both its forms (msgids)."""

    singular: str
    plural: str

    def text(self, num: int) -> str:
        """The noun with its number, in the reader's language: "3 pays"."""
        return ngettext(self.singular, self.plural, num)

    def forms(self) -> list[str]:
        """The translated forms, unformatted, for a script that re-counts in the browser.

        The first is the form for the numbers CLDR calls "one" (1 in English and Spanish,
        0 and 1 in French), the second for every other number; Intl.PluralRules picks.
        """
        translations = get_translations()
        return [
            str(translations.ungettext(self.singular, self.plural, 1)),
            str(translations.ungettext(self.singular, self.plural, 2)),
        ]


def noun(singular: str, plural: str) -> Noun:
    """Declare a counted noun; babel.cfg extracts both forms from this call."""
    return Noun(singular, plural)


SIGNATURES = noun("%(num)d signature", "%(num)d signatures")
MPS = noun("%(num)d MP", "%(num)d MPs")
COUNTRIES = noun("%(num)d country", "%(num)d countries")
CONTINENTS = noun("%(num)d continent", "%(num)d continents")
# Where each number goes in a sentence's template; the same keys as tally.json's.
_MARKERS = {"countries": "{countries}", "continents": "{continents}"}


@dataclass(frozen=True)
class Sentence:
    """A sentence stating the counts, and what the page's script needs to restate it."""

    text: str
    # With {signatures}, {countries} and {continents} where the counted nouns go.
    template: str
    forms: dict[str, list[str]]
    empty: str


def _sentence(template: str, nouns: Mapping[str, Noun], numbers: Mapping[str, int]) -> Sentence:
    empty = gettext("No signatures yet.")
    text = template
    for key, counted in nouns.items():
        text = text.replace("{" + key + "}", counted.text(numbers[key]))
    return Sentence(
        text=text if numbers["signatures"] else empty,
        template=template,
        forms={key: counted.forms() for key, counted in nouns.items()},
        empty=empty,
    )


def _count_sentence(signatures: int, countries: int, continents: int) -> Sentence:
    template = gettext(
        "%(signatures)s from %(countries)s on %(continents)s",
        signatures="{signatures}",
        **_MARKERS,
    )
    nouns = {"signatures": SIGNATURES, "countries": COUNTRIES, "continents": CONTINENTS}
    numbers = {"signatures": signatures, "countries": countries, "continents": continents}
    return _sentence(template, nouns, numbers)


def count_sentence(counts: Tally) -> Sentence:
    """'N signatures from N countries on N continents', pluralised for each number."""
    return _count_sentence(counts.signatures, counts.countries, counts.continents)


def tally_sentence(counts: Tally) -> Sentence:
    """'Signed by N MPs from N countries on N continents', pluralised for each number."""
    template = gettext(
        "Signed by %(signers)s from %(countries)s on %(continents)s",
        signers="{signatures}",
        **_MARKERS,
    )
    nouns = {"signatures": MPS, "countries": COUNTRIES, "continents": CONTINENTS}
    numbers = {
        "signatures": counts.signatures,
        "countries": counts.countries,
        "continents": counts.continents,
    }
    return _sentence(template, nouns, numbers)


def chart_text() -> charts.ChartText:
    """The words on the pictures (map, bars, share image) in the reader's language."""
    return charts.ChartText(
        signatures=SIGNATURES.text,
        countries=COUNTRIES.text,
        summary=lambda *numbers: _count_sentence(*numbers).text,
        number=lambda num: str(format_number(num)),
        signed=lambda num: ngettext("MP has signed", "MPs have signed", num),
        places=lambda countries, continents: gettext(
            "from %(countries)s on %(continents)s",
            countries=COUNTRIES.text(countries),
            continents=CONTINENTS.text(continents),
        ),
        first=gettext("Be the first to sign."),
        no_signatures=gettext("no signatures"),
        legend=gettext("Signatures per country"),
        legend_none=gettext("None"),
        empty=gettext("No signatures yet."),
        country_name=country_name,
        continent_name=continent_name,
    )
