"""Organizer pages about suspicious activity: bursts by address hash and email domain."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, ValidationError

from campaign import abuse, auth, tally
from campaign.auth import current_organizer, login_required
from campaign.db import get_session, utcnow
from campaign.i18n import ngettext
from campaign.models import Campaign
from campaign.views.admin import bp

__all__ = ["bp"]

# The periods an organizer can look at; None reaches back to the first signature.
PERIODS: dict[str, tuple[dt.timedelta | None, Any]] = {
    "24h": (dt.timedelta(hours=24), _l("Last 24 hours")),
    "7d": (dt.timedelta(days=7), _l("Last 7 days")),
    "all": (None, _l("All time")),
}
DEFAULT_PERIOD = "24h"
# Older than any signature: "all time" as a lower bound the database can compare.
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
BUCKET = dt.timedelta(hours=1)
# Hours listed in the timeline, newest first; the counts above cover the whole period.
TIMELINE_ROWS = 168
KIND_LABELS = {"client": _l("client address (keyed hash)"), "domain": _l("email domain")}
# How many characters of an address hash the page shows: enough to tell groups apart.
SHORT_HASH = 12


def _since(period: str, now: dt.datetime) -> dt.datetime:
    span = PERIODS[period][0]
    return _EPOCH if span is None else now - span


def _period_arg(value: str | None) -> str:
    return value if value in PERIODS else DEFAULT_PERIOD


@bp.app_template_global()
def group_label(kind: str, key: str) -> str:
    """A group as the page names it: a shortened address hash, or the mail domain."""
    if kind == "client":
        return key[:SHORT_HASH] + "…" if len(key) > SHORT_HASH else key
    return key


def _parse_time(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(_("Not a time.")) from None
    if moment.tzinfo is None:
        raise ValidationError(_("Not a time."))
    return moment.astimezone(dt.UTC)


class GroupActionForm(FlaskForm):  # type: ignore[misc]
    """Hold or reject one group's signatures; the button pressed (`scope`) picks the window."""

    kind = HiddenField(validators=[DataRequired(), AnyOf(abuse.KINDS)])
    key = HiddenField(validators=[DataRequired(), Length(max=255)])
    action = HiddenField(validators=[DataRequired(), AnyOf(("hold", "reject"))])
    period = HiddenField(validators=[DataRequired(), AnyOf(tuple(PERIODS))])
    # The start of the busiest hour and the moment the counts were shown: the action
    # touches only what the organizer saw, never a signature that arrived since.
    burst = HiddenField(validators=[DataRequired()])
    until = HiddenField(validators=[DataRequired()])
    reason = StringField(
        _l("Reason (kept with each rejected signature and in the audit trail)"),
        validators=[Length(max=500)],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )

    def validate_burst(self, field: HiddenField) -> None:
        _parse_time(field.data or "")

    def validate_until(self, field: HiddenField) -> None:
        _parse_time(field.data or "")

    def validate_reason(self, field: StringField) -> None:
        if self.action.data == "reject" and not field.data:
            raise ValidationError(_("Say why these signatures are rejected."))


@dataclass(frozen=True)
class Choice:
    """One window the action can cover, and how many signatures it would change."""

    scope: str
    since: dt.datetime
    until: dt.datetime
    count: int


def _choices(
    campaign: Campaign,
    kind: abuse.Kind,
    key: str,
    action: abuse.Action,
    period: str,
    burst: dt.datetime,
    until: dt.datetime,
) -> list[Choice]:
    """The busiest hour, and the whole period up to `until`, with their counts now."""
    db = get_session()
    windows = [
        ("burst", burst, min(burst + BUCKET, until)),
        ("period", _since(period, until), until),
    ]
    return [
        Choice(
            scope,
            since,
            end,
            abuse.affected(db, campaign, kind, key, action, since=since, until=end),
        )
        for scope, since, end in windows
    ]


@bp.get("/c/<slug>/activity")
@login_required
def activity(slug: str) -> str:
    """Signatures per hour by address hash and by mail domain, bursts flagged."""
    campaign = auth.campaign_or_404(slug)
    period = _period_arg(request.args.get("period"))
    now = utcnow()
    # The operator's rule (CAMPAIGN_ABUSE_BURST_MIN, CAMPAIGN_ABUSE_BURST_FACTOR).
    threshold = int(current_app.config.get("ABUSE_BURST_MIN", abuse.BURST_MIN))
    factor = float(current_app.config.get("ABUSE_BURST_FACTOR", abuse.BURST_FACTOR))
    seen = abuse.activity(
        get_session(), campaign, _since(period, now), "hour", threshold=threshold, factor=factor
    )
    timeline = list(reversed(seen.timeline))
    return render_template(
        "admin/activity.html",
        campaign=campaign,
        period=period,
        periods=PERIODS,
        seen=seen,
        now=now,
        timeline=timeline[:TIMELINE_ROWS],
        hidden_hours=max(0, len(timeline) - TIMELINE_ROWS),
        timeline_peak=max((c.signatures for c in timeline), default=0),
        total=sum(c.signatures for c in timeline),
        kind_labels=KIND_LABELS,
        threshold=threshold,
        factor=factor,
        counted=tally.total(get_session(), campaign),
    )


def _group_args(form: GroupActionForm | None = None) -> dict[str, str]:
    """The group, action and period from the form or the query string; 400 when unusable."""
    source = form.data if form is not None else request.args
    values = {name: str(source.get(name) or "") for name in ("kind", "key", "action", "period")}
    if (
        values["kind"] not in abuse.KINDS
        or values["action"] not in ("hold", "reject")
        or not values["key"]
        or len(values["key"]) > 255
    ):
        abort(400)
    values["period"] = _period_arg(values["period"])
    return values


def _render_confirm(
    campaign: Campaign,
    form: GroupActionForm,
    values: dict[str, str],
    burst: dt.datetime,
    until: dt.datetime,
    status: int = 200,
) -> tuple[str, int]:
    kind: abuse.Kind = values["kind"]  # type: ignore[assignment]
    action: abuse.Action = values["action"]  # type: ignore[assignment]
    choices = _choices(campaign, kind, values["key"], action, values["period"], burst, until)
    return render_template(
        "admin/activity_confirm.html",
        campaign=campaign,
        form=form,
        kind=kind,
        key=values["key"],
        action=action,
        period=values["period"],
        periods=PERIODS,
        kind_labels=KIND_LABELS,
        choices=choices,
    ), status


@bp.get("/c/<slug>/activity/group")
@login_required
def activity_group(slug: str) -> tuple[str, int]:
    """Ask before holding or rejecting a group: how many signatures each choice changes."""
    campaign = auth.campaign_or_404(slug)
    values = _group_args()
    now = utcnow()
    try:
        burst = _parse_time(request.args.get("burst", ""))
    except ValidationError:
        abort(400)
    burst = burst.replace(minute=0, second=0, microsecond=0)
    form = GroupActionForm(formdata=None, **values, burst=burst.isoformat(), until=now.isoformat())
    return _render_confirm(campaign, form, values, burst, now)


@bp.post("/c/<slug>/activity/group")
@login_required
def act_on_group(slug: str) -> Response | tuple[str, int]:
    """Hold or reject a group's signatures in the chosen window; the tally follows at once."""
    campaign = auth.campaign_or_404(slug)
    form = GroupActionForm()
    valid = form.validate()
    values = _group_args(form)
    try:
        burst = _parse_time(form.burst.data or "")
        until = min(_parse_time(form.until.data or ""), utcnow())
    except ValidationError:
        abort(400)
    scope = request.form.get("scope", "")
    if not valid or scope not in ("burst", "period"):
        return _render_confirm(campaign, form, values, burst, until, 400)
    since, end = (burst, min(burst + BUCKET, until))
    if scope == "period":
        since, end = _since(values["period"], until), until
    organizer = current_organizer()
    if organizer is None:
        abort(404)
    db = get_session()
    kind: abuse.Kind = values["kind"]  # type: ignore[assignment]
    action: abuse.Action = values["action"]  # type: ignore[assignment]
    changed = abuse.act_on_group(
        db,
        organizer,
        campaign,
        kind,
        values["key"],
        action,
        since=since,
        until=end,
        reason=form.reason.data or "",
    )
    db.commit()
    label = group_label(kind, values["key"])
    if action == "hold":
        message = ngettext(
            "Held %(num)d signature from %(group)s; it waits on the possible duplicates page.",
            "Held %(num)d signatures from %(group)s; they wait on the possible duplicates page.",
            changed,
            group=label,
        )
    else:
        message = ngettext(
            "Rejected %(num)d signature from %(group)s.",
            "Rejected %(num)d signatures from %(group)s.",
            changed,
            group=label,
        )
    flash(message, "ok")
    return redirect(url_for("admin.activity", slug=slug, period=values["period"]), code=303)
