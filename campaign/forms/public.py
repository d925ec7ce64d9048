"""Forms of the public pages: syntax and choices only, no queries.

The sign form's rules are signing's own (the CSV import applies the same ones);
this module only turns their messages into field errors in the reader's language.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from flask_babel import gettext, lazy_pgettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import BooleanField, EmailField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import Choice
from wtforms.meta import DefaultMeta
from wtforms.validators import StopValidation
from wtforms.widgets import Select, html_params

from campaign import geo, i18n, signing
from campaign.signing import FieldError, SignatureEntry

# Werkzeug decodes a urlencoded body's %XX escapes and, where the bytes are not UTF-8,
# puts the escapes back ("%ED") instead of U+FFFD; bytes from 0x80 up appear only there.
# (A raw undecodable body parses as an empty form, so its fields come back as required.)
_REQUOTED = re.compile(r"%[89A-F][0-9A-F]")


def _rule(clean: Callable[[Any], Any]) -> Callable[[Any, Any], None]:
    """A WTForms validator applying one of signing's rules; the cleaned value replaces the data."""

    def check(_form: Any, field: Any) -> None:
        if isinstance(field.data, str) and _REQUOTED.search(field.data):
            raise StopValidation(gettext(signing.N_("This is not valid text (UTF-8).")))
        try:
            field.data = clean(field.data)
        except FieldError as error:
            raise StopValidation(gettext(error.message)) from None

    return check


def _clean_email(value: Any) -> str:
    deliverability = bool(current_app.config.get("EMAIL_CHECK_DELIVERABILITY", False))
    return signing.clean_email(value, check_deliverability=deliverability)


class CountrySelect(Select):  # type: ignore[misc]
    """The country <select>, its ~250 options rendered once per language and choice.

    Rendering them one by one was more than half of the letter page's CPU, and the
    letter page is what every signer loads. The options are a function of the form's
    locale, the active language and the chosen code, which key the cache.
    """

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        key = getattr(field, "options_key", None)
        chosen = field.data
        if key is None or (chosen is not None and not geo.is_country(str(chosen))):
            # Any other value (a forged POST) is rendered the ordinary way, uncached.
            return Markup(super().__call__(field, **kwargs))  # noqa: S704 (WTForms escaped it)
        kwargs.setdefault("id", field.id)
        flags = field.flags
        for name in self.validation_attrs:
            if name not in kwargs and getattr(flags, name, False):
                kwargs[name] = getattr(flags, name)
        options = _options_html(key, None if chosen is None else str(chosen))
        # html_params escapes every value, as WTForms' own Select relies on.
        params = html_params(name=field.name, **kwargs)
        return Markup(f"<select {params}>{options}</select>")  # noqa: S704


@functools.lru_cache(maxsize=2048)
def _options_html(key: tuple[str | None, str], chosen: str | None) -> Markup:
    """The <option>s of the country choices for (form locale, active language), one chosen."""
    return Markup("").join(
        Select.render_option(
            Choice(value=code, label=label, selected=code == chosen, render_kw=render_kw)
        )
        for code, label, *rest in _country_choices(*key)
        for render_kw in [rest[0] if rest else None]
    )


class FieldsOnly(DefaultMeta):  # type: ignore[misc]
    """A FlaskForm's Meta for a form that takes no file: its data is request.form alone.

    Flask-WTF's own adds request.files (a file part named like a field then stands for the
    field, a FileStorage where text was expected) and takes a JSON body as the fields.
    """

    def wrap_formdata(self, form: Any, formdata: Any) -> Any:
        wrapped = super().wrap_formdata(form, formdata)
        if wrapped is None or wrapped is formdata:
            return wrapped  # nothing submitted, or the data the caller gave
        return request.form


class SignForm(FlaskForm):  # type: ignore[misc]
    """The signing form: who signs, from where, and how to reach them.

    Its text fields take dir="auto": a name or comment typed in Arabic or Hebrew reads right
    to left in its field, on a page that is left to right.
    """

    class Meta(FieldsOnly):
        # CSRFProtect checks every POST's token before the view runs (a bad one never reaches
        # this form); the form checking it again, and signing a new token on each POST for a
        # field it then never renders, was a third of the form's cost. The page renders the
        # token with csrf_token().
        csrf = False

    name = StringField(
        _l("Full name"),
        validators=[_rule(signing.clean_name)],
        render_kw={
            "autocomplete": "name",
            "maxlength": signing.NAME_MAX,
            "required": True,
            "dir": "auto",
        },
    )
    title = StringField(
        # A signer's office ("MP"); the dashboard's "Title" is a letter's, another word in
        # some languages (Indonesian: jabatan, judul).
        lazy_pgettext("signer", "Title"),
        validators=[_rule(signing.clean_title)],
        render_kw={
            "list": "title-suggestions",
            "maxlength": signing.TITLE_MAX,
            "required": True,
            "autocomplete": "organization-title",
            "dir": "auto",
        },
    )
    parliament = StringField(
        _l("Parliament"),
        validators=[_rule(signing.clean_parliament)],
        render_kw={"maxlength": signing.PARLIAMENT_MAX, "required": True, "dir": "auto"},
    )
    party = StringField(
        _l("Party (optional)"),
        validators=[_rule(signing.clean_party)],
        render_kw={"maxlength": signing.PARTY_MAX, "dir": "auto"},
    )
    country = SelectField(
        _l("Country"),
        choices=[],
        widget=CountrySelect(),
        validate_choice=False,  # signing's rule gives the clearer message
        validators=[_rule(signing.clean_country)],
        render_kw={"required": True, "autocomplete": "country"},
    )
    email = EmailField(
        _l("Email address"),
        validators=[_rule(_clean_email)],
        render_kw={
            "autocomplete": "email",
            "maxlength": signing.EMAIL_MAX,
            "required": True,
            "spellcheck": "false",
            "autocapitalize": "none",
        },
    )
    comment = TextAreaField(
        _l("Comment (optional)"),
        validators=[_rule(signing.clean_comment)],
        render_kw={"maxlength": signing.COMMENT_MAX, "rows": 4, "dir": "auto"},
    )
    public = BooleanField(_l("List my name publicly on the list of signatories"))
    # Hidden from people (CSS and aria-hidden); bots that fill every field fill this one.
    # The view answers a filled one exactly like success and stores nothing.
    website = StringField(
        _l("Leave this field empty"),
        render_kw={"autocomplete": "off", "tabindex": "-1"},
    )

    def __init__(self, *args: Any, locale: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.country.choices = country_choices(locale)
        self.country.options_key = (locale, i18n.current())

    def is_bot(self) -> bool:
        """Whether the honeypot was filled."""
        return bool((self.website.data or "").strip())

    def entry(self, *, locale: str, client_hash: str | None) -> SignatureEntry:
        """The validated entry (call after validate())."""
        return signature_entry(self, locale=locale, source="form", client_hash=client_hash)


def signature_entry(
    form: Any, *, locale: str, source: str, client_hash: str | None
) -> SignatureEntry:
    """The entry a validated form with the sign form's fields holds (call after validate()).

    The sign form's, and the dashboard's form for a signature added by hand.
    """
    return SignatureEntry(
        name=form.name.data,
        title=form.title.data,
        parliament=form.parliament.data,
        party=form.party.data,
        country_code=form.country.data,
        email=form.email.data,
        comment=form.comment.data,
        public=bool(form.public.data),
        locale=locale,
        source=source,
        client_hash=client_hash,
    )


def country_choices(locale: str | None) -> list[Any]:
    """An empty first choice, then every country by name, each with its continent's name."""
    # The continent names and the first choice come from the active (Babel) language, the
    # country names from the form's locale: both key the cache.
    return list(_country_choices(locale, i18n.current()))


@functools.lru_cache(maxsize=64)
def _country_choices(locale: str | None, active: str) -> tuple[Any, ...]:
    """country_choices, built once per (form locale, active language) in this process."""
    choices: list[Any] = [("", gettext("Choose a country"))]
    for code, name in geo.country_choices(locale):
        continent = i18n.continent_name(geo.continent_of(code))
        choices.append((code, name, {"data-continent": continent}))
    return tuple(choices)


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button that only carries the CSRF token (confirm, withdraw)."""
