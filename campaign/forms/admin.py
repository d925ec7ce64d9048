"""Forms of the admin pages: syntax and choices only, no queries."""

from __future__ import annotations

from typing import Any

from babel import Locale
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    EmailField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    widgets,
)
from wtforms.fields import Field
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from campaign import i18n, signing
from campaign.auth import MIN_PASSWORD_LENGTH
from campaign.forms.public import FieldsOnly, SignForm, country_choices, signature_entry
from campaign.models import CAMPAIGN_STATES
from campaign.signing import SignatureEntry

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
# datetime-local inputs send minutes, and seconds when the browser's step allows them.
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]

# Twenty times a long open letter (some 5,000 characters): a bound, not a style rule.
LETTER_MAX = 100_000
# Far beyond any passphrase; the bound keeps one request from hashing megabytes.
MAX_PASSWORD_LENGTH = 1024

ACTIONS = ("verify", "unverify", "reject", "restore", "resend", "erase", "unlist")


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class PlainText:
    """Text as every field of the site takes it (signing.check_text): no control characters
    (a NUL would make PostgreSQL refuse the row), no direction controls on one line."""

    def __init__(self, *, multiline: bool = False) -> None:
        self.multiline = multiline

    def __call__(self, form: FlaskForm, field: Field) -> None:
        if isinstance(field.data, str):
            try:
                signing.check_text(field.data, multiline=self.multiline)
            except signing.FieldError as error:
                raise ValidationError(_l(error.message)) from None


LINE = PlainText()
LINES = PlainText(multiline=True)


class LoginForm(FlaskForm):  # type: ignore[misc]
    """Email and password; no syntax check on the address, so every failure reads the same."""

    email = StringField(
        _l("Email address"),
        validators=[DataRequired(), Length(max=254)],
        filters=[_strip],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )


class PostForm(FlaskForm):  # type: ignore[misc]
    """A form with nothing but its CSRF token (logout, one-button actions)."""


def _new_version_field() -> BooleanField:
    """The organizer's agreement that a changed text people signed becomes a new version."""
    return BooleanField(_l("Save the changed text as a new version"))


class CampaignForm(FlaskForm):  # type: ignore[misc]
    """A campaign's settings; "preview" re-renders the page with the letter rendered."""

    # In the page's order: the error summary lists the errors so.
    title = StringField(
        _l("Title"), validators=[DataRequired(), Length(max=200), LINE], filters=[_strip]
    )
    slug = StringField(
        _l("Address (slug)"),
        validators=[
            DataRequired(),
            Length(min=2, max=64),
            Regexp(SLUG_PATTERN, message=_l("Lowercase letters, digits and hyphens only.")),
        ],
        filters=[_strip],
        render_kw={"spellcheck": "false", "autocapitalize": "none"},
    )
    recipient = StringField(_l("Recipient"), validators=[Length(max=200), LINE], filters=[_strip])
    letter = TextAreaField(
        _l("Letter (Markdown)"),
        validators=[Length(max=LETTER_MAX), LINES],
        render_kw={"rows": 16},
    )
    state = SelectField(
        _l("State"),
        choices=[
            SelectChoice("draft", _l("Draft: not public")),
            SelectChoice("open", _l("Open: accepting signatures")),
            SelectChoice("closed", _l("Closed: public, not accepting signatures")),
        ],
        default="draft",
        validators=[InputRequired()],
    )
    goal = IntegerField(
        _l("Goal (signatures)"), validators=[Optional(), NumberRange(min=1, max=10_000_000)]
    )
    require_confirmation = BooleanField(_l("Signers confirm by email"), default=True)
    opens_at = DateTimeLocalField(
        _l("Opens (UTC)"), format=DATETIME_FORMATS, validators=[Optional()]
    )
    closes_at = DateTimeLocalField(
        _l("Closes (UTC)"), format=DATETIME_FORMATS, validators=[Optional()]
    )
    new_version = _new_version_field()
    preview = SubmitField(_l("Preview"))
    save = SubmitField(_l("Save"))

    def validate_state(self, field: SelectField) -> None:
        """Only the model's states."""
        if field.data not in CAMPAIGN_STATES:
            raise ValidationError(_l("Choose a state."))

    def validate_letter(self, field: TextAreaField) -> None:
        """An open or closed letter is read by signers and the public: it needs its text."""
        if self.state.data != "draft" and not (field.data or "").strip():
            raise ValidationError(
                _l("Write the letter's text; only a draft can be saved without it.")
            )

    def validate_closes_at(self, field: DateTimeLocalField) -> None:
        """Closing must come after opening."""
        if field.data and self.opens_at.data and field.data <= self.opens_at.data:
            raise ValidationError(_l("The closing time must be after the opening time."))


class TranslationForm(FlaskForm):  # type: ignore[misc]
    """The letter in one other language, both fields or neither; neither removes it."""

    title = StringField(_l("Title"), validators=[Length(max=200), LINE], filters=[_strip])
    letter = TextAreaField(
        _l("Letter (Markdown)"),
        validators=[Length(max=LETTER_MAX), LINES],
        render_kw={"rows": 10},
    )
    new_version = _new_version_field()

    def validate_title(self, field: StringField) -> None:
        """A translated letter needs its title."""
        if self.letter.data and self.letter.data.strip() and not field.data:
            raise ValidationError(_l("Give the translated title too."))

    def validate_letter(self, field: TextAreaField) -> None:
        """A translated title needs its letter: readers in that language would get no text."""
        if self.title.data and not (field.data or "").strip():
            raise ValidationError(_l("Give the translated text too."))


class MultiCheckboxField(SelectMultipleField):  # type: ignore[misc]
    """A list of checkboxes."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _new_password_field(label: Any) -> PasswordField:
    """A field for a new password: the policy's minimum, and the browser may suggest one."""
    return PasswordField(
        label,
        validators=[
            DataRequired(
                message=_l("Enter a password of at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)
            ),
            Length(
                min=MIN_PASSWORD_LENGTH,
                message=_l("At least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            ),
            Length(
                max=MAX_PASSWORD_LENGTH,
                message=_l("At most %(n)d characters.", n=MAX_PASSWORD_LENGTH),
            ),
        ],
        render_kw={"autocomplete": "new-password"},
    )


# An organizer's address, checked with the project's own message: WTForms' built-in one
# ("Adresse électronique non valide.") reads unlike every other page ("Adresse e-mail").
ORGANIZER_EMAIL = Email(
    check_deliverability=False,
    message=_l("Enter a valid email address, like name@example.org."),
)


class OrganizerCreateForm(FlaskForm):  # type: ignore[misc]
    """A new organizer account."""

    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(), Length(max=254), ORGANIZER_EMAIL],
        filters=[_strip],
    )
    name = StringField(_l("Name"), validators=[Length(max=200), LINE], filters=[_strip])
    password = _new_password_field(_l("Password"))
    is_admin = BooleanField(_l("Admin: sees every campaign and manages organizers"))


# Made before the new-password fields: WTForms orders a form's fields by when each was made,
# so the current password comes first on the page and in the error summary.
_CURRENT_PASSWORD = PasswordField(
    _l("Current password"),
    validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)],
    render_kw={"autocomplete": "current-password"},
)


class PasswordResetForm(FlaskForm):  # type: ignore[misc]
    """A new password, typed twice (chosen through a mailed reset link)."""

    new_password = _new_password_field(_l("New password"))
    new_password_again = PasswordField(
        _l("New password again"),
        validators=[
            DataRequired(),
            EqualTo("new_password", message=_l("The two new passwords differ.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class PasswordChangeForm(PasswordResetForm):
    """One's own new password, typed twice, after the current one."""

    current_password = _CURRENT_PASSWORD

    def validate_new_password(self, field: PasswordField) -> None:
        """A change: the same password again would leave a leaked one in use."""
        if field.data and field.data == self.current_password.data:
            raise ValidationError(_l("Choose a password other than your current one."))


class DigestForm(FlaskForm):  # type: ignore[misc]
    """An organizer's choice of the daily summary mail (campaign/digest.py)."""

    daily_summary = BooleanField(_l("Mail me a daily summary of my letters"))


class PasswordResetRequestForm(FlaskForm):  # type: ignore[misc]
    """The address to mail a password reset link to; whether it has an account is never said."""

    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(), Length(max=254), ORGANIZER_EMAIL],
        filters=[_strip],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )


class OrganizerPasswordForm(FlaskForm):  # type: ignore[misc]
    """A new password an admin gives another organizer."""

    password = _new_password_field(_l("New password"))


class OrganizerForm(FlaskForm):  # type: ignore[misc]
    """An existing organizer's name, role, state and campaigns (choices set by the view)."""

    name = StringField(_l("Name"), validators=[Length(max=200), LINE], filters=[_strip])
    is_admin = BooleanField(_l("Admin: sees every campaign and manages organizers"))
    active = BooleanField(_l("Active: may log in"))
    campaigns = MultiCheckboxField(_l("Campaigns"), coerce=int)


class SignatureActionForm(FlaskForm):  # type: ignore[misc]
    """One action on one signature."""

    action = SelectField(_l("Action"), choices=[SelectChoice(a) for a in ACTIONS])
    reason = StringField(_l("Reason"), validators=[Length(max=500), LINE], filters=[_strip])
    confirm_erase = BooleanField(_l("The signer asked for erasure; this cannot be undone"))

    def validate_reason(self, field: StringField) -> None:
        """Rejecting needs a reason."""
        if self.action.data == "reject" and not field.data:
            raise ValidationError(_l("Say why the signature is rejected."))

    def validate_confirm_erase(self, field: BooleanField) -> None:
        """Erasing cannot be undone, so it is confirmed explicitly."""
        if self.action.data == "erase" and not field.data:
            raise ValidationError(_l("Tick the box to confirm the erasure."))


class BulkActionForm(SignatureActionForm):
    """One action on the ticked signatures of the list."""

    ids = SelectMultipleField(_l("Signatures"), coerce=int, validate_choice=False)

    def validate_ids(self, field: SelectMultipleField) -> None:
        """At least one signature, and not more than a page holds."""
        if not field.data:
            raise ValidationError(_l("Tick at least one signature."))
        if len(field.data) > 500:
            raise ValidationError(_l("Too many signatures at once."))


class DuplicateForm(FlaskForm):  # type: ignore[misc]
    """The organizer's decision on a possible duplicate."""

    keep = SelectField(
        _l("Decision"),
        choices=[
            SelectChoice("this", _l("Same person: keep this one")),
            SelectChoice("other", _l("Same person: keep the other")),
            SelectChoice("both", _l("Different people: count both")),
        ],
    )


class SignatureDetailsForm(FlaskForm):  # type: ignore[misc]
    """A signer's details as an organizer corrects them: the sign form's fields and rules.

    Not the email address (the signer's identity) nor the listing (the signer's consent).
    """

    class Meta(FieldsOnly):
        # The fields of the request's form alone: the page sends no file (the add form too).
        pass

    name = SignForm.name
    title = SignForm.title
    parliament = SignForm.parliament
    party = SignForm.party
    country = SignForm.country

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The countries named and sorted in the organizer's language, as the sign form does.
        locale = i18n.current()
        self.country.choices = country_choices(locale)
        self.country.options_key = (locale, locale)
        # Someone else's details: the browser must not offer the organizer's own.
        for field in (self.name, self.title, self.country):
            field.render_kw = {**field.render_kw, "autocomplete": "off"}


# How a signature an organizer adds counts: the import's two modes.
COUNT_NOW = "count_now"
CONFIRMATION = "confirmation"


def mail_languages() -> list[SelectChoice]:
    """The interface languages, each named in itself: the languages a signer's mail is in.

    The names are the language switcher's (i18n.LANGUAGE_NAMES: "Bahasa Indonesia", where
    Babel says "Indonesia"); a configured language it does not name gets Babel's own name.
    """
    return [
        SelectChoice(code, i18n.LANGUAGE_NAMES.get(code) or _own_name(code))
        for code in current_app.config["LANGUAGES"]
    ]


def _own_name(code: str) -> str:
    """A language's name in itself, capitalised as a choice is ("português", "Português")."""
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


# The language a signature added by the dashboard (imported, or added by hand) is stored in:
# its confirmation and every later mail are written in it. The organizer's by default.
MAIL_LANGUAGE = SelectField(
    _l("Language of the confirmation mail"), choices=mail_languages, default=i18n.current
)


class SignatureAddForm(SignatureDetailsForm):
    """A signature an organizer adds by hand (a phone call, a mail, a paper sheet).

    The sign form's fields and rules, then how it counts: at once, the organizer having
    checked it with the signer, or once the signer confirms through a mailed link (offered
    only on a letter that requires confirmation; otherwise it counts at once).
    """

    email = SignForm.email
    comment = SignForm.comment
    public = BooleanField(_l("Listed publicly: the signer agreed to appear on the public list"))
    locale = MAIL_LANGUAGE
    mode = RadioField(
        _l("The signature"),
        choices=[
            SelectChoice(COUNT_NOW, _l("counts now (I have checked it with the signer)")),
            SelectChoice(
                CONFIRMATION, _l("gets a confirmation mail, and counts once the signer confirms")
            ),
        ],
        default=COUNT_NOW,
        validators=[InputRequired()],
    )

    def __init__(self, *args: Any, confirmation: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not confirmation:
            # Nothing to confirm on this letter: the one choice, whatever was posted.
            self.mode.choices = [SelectChoice(COUNT_NOW, self.mode.choices[0].label)]
            self.mode.data = COUNT_NOW
        # Someone else's address: the browser must not offer the organizer's own.
        self.email.render_kw = {**self.email.render_kw, "autocomplete": "off"}

    @property
    def counts_now(self) -> bool:
        """Whether the signature counts at once (call after validate())."""
        return bool(self.mode.data == COUNT_NOW)

    def entry(self) -> SignatureEntry:
        """The validated entry, stored as the import stores its rows (call after validate())."""
        return signature_entry(self, locale=self.locale.data, source="import", client_hash=None)
