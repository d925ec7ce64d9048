"""Organizer pages of updates to a letter's signers: the updates sent, write, preview, send."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import re

from flask import current_app, flash, render_template
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from campaign import auth, i18n, mail, security, updates
from campaign.auth import login_required
from campaign.db import get_session
from campaign.forms.updates import UpdateForm
from campaign.i18n import ngettext
from campaign.models import Campaign, LetterUpdate
from campaign.views.admin import _organizer, bp, see_other_at_top

__all__ = ["bp"]

# A page, its status, and headers of its own (the preview's Content-Security-Policy).
_Page = tuple[str, int, dict[str, str]]


def _date_and_minute(value: dt.datetime) -> tuple[str, str]:
    """A UTC time as the dashboard's tables write it, its date and its time to the minute
    apart ("2026-12-01", "13:11"): a sentence puts words of its language between them."""
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d"), utc.strftime("%H:%M")


# The fields a tampered or stale preview may get wrong: then the writing form comes back.
_TEXT_FIELDS = ("subject", "body", "publish")


def _draft(form: UpdateForm, campaign: Campaign) -> LetterUpdate:
    """The update as written, not stored: what the preview and the test mail show."""
    return LetterUpdate(
        campaign_id=campaign.id,
        subject=form.subject.data or "",
        body=form.body.data or "",
        published=bool(form.publish.data),
    )


def _sample(form: UpdateForm, campaign: Campaign) -> mail.Composed:
    """The mail a signer gets, in the organizer's language, greeting the organizer."""
    organizer = _organizer()
    return mail.sample_update(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        campaign,
        _draft(form, campaign),
        name=organizer.name or organizer.email,
        locale=i18n.current(),
        base=mail.link_base(),
    )


def _list_page(campaign: Campaign, form: UpdateForm, status: int = 200) -> _Page:
    db = get_session()
    reach = updates.reach(db, campaign)
    return (
        render_template(
            "admin/updates.html",
            campaign=campaign,
            form=form,
            sent=updates.sent(db, campaign),
            audience=reach.audience,
            declined=reach.declined,
        ),
        status,
        {},
    )


# The templates' own style attributes: the organizer's text is escaped (its quotes too), so
# it can add none.
_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')
# Links in the framed mail open a new tab: the frame may show no other site (frame-src).
_NEW_TAB = '<base target="_blank">'


def _framed(composed: mail.Composed) -> str:
    """The mail's HTML part as the preview frame's document (srcdoc)."""
    document = composed.html or ""
    return document.replace("<head>", "<head>\n  " + _NEW_TAB, 1)


def _style_source(value: str) -> str:
    """A CSP source allowing one exact inline style (by its SHA-256, base64)."""
    digest = base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def _framing_policy(document: str) -> str:
    """The page's Content-Security-Policy, letting the framed mail's own style attributes apply.

    A srcdoc frame lives under its page's policy, which allows no inline style; mail has
    nothing but inline style. Only those exact values are allowed, by their hashes.
    """
    values = sorted({html.unescape(value) for value in _STYLE_ATTRIBUTE.findall(document)})
    if not values:
        return security.CONTENT_SECURITY_POLICY
    sources = " ".join(_style_source(value) for value in values)
    return security.content_security_policy(style=f"'unsafe-hashes' {sources}")


def _preview_page(campaign: Campaign, form: UpdateForm, status: int = 200) -> _Page:
    reach = updates.reach(get_session(), campaign)
    form.audience.data = str(reach.audience)
    form.confirm.label.text = ngettext(
        "I have read it; send it to %(num)d signer",
        "I have read it; send it to %(num)d signers",
        reach.audience,
    )
    composed = _sample(form, campaign)
    document = _framed(composed)
    page = render_template(
        "admin/updates_preview.html",
        campaign=campaign,
        form=form,
        mail=composed,
        mail_document=document,
        audience=reach.audience,
        declined=reach.declined,
    )
    return page, status, {"Content-Security-Policy": _framing_policy(document)}


def _shown_audience(form: UpdateForm) -> int | None:
    """The number of signers the preview said it would go to, if the page sent a number."""
    value = form.audience.data or ""
    return int(value) if value.isdigit() and len(value) < 10 else None


@bp.route("/c/<slug>/updates", methods=["GET", "POST"])
@login_required
def updates_page(slug: str) -> Response | _Page:
    """Updates sent to the letter's signers, and a new one: write, preview, then send or test."""
    campaign = auth.campaign_or_404(slug)
    form = UpdateForm()
    if not form.is_submitted():
        return _list_page(campaign, UpdateForm(formdata=None))
    if form.edit.data:
        return _list_page(campaign, form)
    form.validate()
    if any(form[name].errors for name in _TEXT_FIELDS):
        return _list_page(campaign, form, 400)
    if form.send.data:
        return _send(campaign, form)
    if form.test.data:
        return _test(campaign, form)
    return _preview_page(campaign, form)


def _send(campaign: Campaign, form: UpdateForm) -> Response | _Page:
    """Send the previewed update to every signature that counts now; refuse a repeat."""
    if form.errors:
        return _preview_page(campaign, form, 400)
    db = get_session()
    try:
        sent = updates.send(
            db,
            _organizer(),
            campaign,
            subject=form.subject.data or "",
            body=form.body.data or "",
            publish=bool(form.publish.data),
        )
    except updates.AlreadySent as refusal:
        db.rollback()
        date, time = _date_and_minute(refusal.sent.created_at)
        flash(
            _(
                "This update was already sent to the signers on %(date)s at %(time)s (UTC): it "
                "is not sent again.",
                date=date,
                time=time,
            ),
            "error",
        )
        return see_other_at_top("admin.updates_page", slug=campaign.slug)
    except updates.NobodyToSend:
        db.rollback()
        if updates.declined(db, campaign):
            flash(_("Nobody to send it to: every signer who counts asked for no updates."), "error")
        else:
            flash(_("Nobody to send it to: no signature of this letter counts."), "error")
        return _preview_page(campaign, form, 409)
    db.commit()
    shown = _shown_audience(form)
    if shown is not None and shown != sent.recipients:
        flash(
            ngettext(
                "The number of signers changed since the preview: the update goes to the "
                "%(num)d signer who counts now.",
                "The number of signers changed since the preview: the update goes to the "
                "%(num)d signers who count now.",
                sent.recipients,
            ),
            "ok",
        )
    else:
        flash(
            ngettext(
                "The update goes to %(num)d signer.",
                "The update goes to %(num)d signers.",
                sent.recipients,
            ),
            "ok",
        )
    return see_other_at_top("admin.updates_page", slug=campaign.slug)


def _test(campaign: Campaign, form: UpdateForm) -> _Page:
    """Mail the previewed update to the organizer alone, then show the preview again."""
    organizer = _organizer()
    db = get_session()
    updates.send_test(db, organizer, campaign, _sample(form, campaign))
    db.commit()
    flash(_("A test was mailed to %(email)s. Nobody else got it.", email=organizer.email), "ok")
    return _preview_page(campaign, form)
