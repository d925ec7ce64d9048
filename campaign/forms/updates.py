"""The form of an update to a letter's signers: syntax only (who gets it is the service's)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from campaign.forms.admin import PlainText
from campaign.updates import BODY_MAX, SUBJECT_MAX, normalize


def _subject(value: Any) -> Any:
    # Outer spaces go; a line break stays, for the validator to refuse (never a header).
    return value.strip(" \t") if isinstance(value, str) else value


def _body(value: Any) -> Any:
    return normalize(value) if isinstance(value, str) else value


class UpdateForm(FlaskForm):  # type: ignore[misc]
    """Write an update, preview it, then send it (with the tick) or mail a test to oneself.

    The buttons say which step: `preview` shows the mail, `send` needs `confirm` ticked,
    `test` mails only the organizer, `edit` brings the fields back to change them.
    """

    subject = StringField(
        _l("Subject"),
        validators=[DataRequired(), Length(max=SUBJECT_MAX)],
        filters=[_subject],
        render_kw={"maxlength": SUBJECT_MAX},
    )
    body = TextAreaField(
        _l("Text"),
        validators=[DataRequired(), Length(max=BODY_MAX), PlainText(multiline=True)],
        filters=[_body],
        render_kw={"rows": 14},
    )
    publish = BooleanField(_l('Also show it on the letter\'s public page, under "Updates"'))
    confirm = BooleanField(_l("I have read it; send it to the signers"))
    # How many signers the preview said it goes to: the flash says so if that changed.
    audience = HiddenField()
    preview = SubmitField(_l("Preview"))
    send = SubmitField(_l("Send"))
    test = SubmitField(_l("Send a test to me"))
    edit = SubmitField(_l("Change it"))

    def validate_subject(self, field: StringField) -> None:
        if "\n" in (field.data or "") or "\r" in (field.data or ""):
            raise ValidationError(_l("The subject must be one line."))

    def validate_confirm(self, field: BooleanField) -> None:
        if self.send.data and not field.data:
            raise ValidationError(_l("Tick the box to say you have read it."))
