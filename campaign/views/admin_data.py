"""Organizer pages that move data in and out: export, import, the letter for delivery."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, current_app, request
from werkzeug.wrappers import Response

from campaign import auth, export
from campaign.auth import login_required
from campaign.db import get_session, new_session, utcnow
from campaign.models import Campaign
from campaign.views.admin import bp

__all__ = ["bp"]

_YES = frozenset({"1", "true", "yes", "on"})


def _yes(name: str) -> bool:
    """Whether a query argument is switched on (?bom=1)."""
    return request.args.get(name, "").strip().casefold() in _YES


# --- export ----------------------------------------------------------------


@bp.get("/c/<slug>/export.csv")
@login_required
def export_csv(slug: str) -> Response:
    """The list's signatures as CSV, streamed; the list's filters apply (?status=counted...)."""
    campaign = auth.campaign_or_404(slug)
    signature_filter = export.from_args(request.args)
    bom = _yes("bom")
    name = export.filename(campaign, utcnow().date())
    campaign_id = campaign.id
    # The request's session is closed at teardown, before the body is sent; the body
    # reads through its own session, chunk by chunk (see campaign.export).
    get_session().rollback()
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    response = Response(
        _stream(app, campaign_id, signature_filter, bom), mimetype="text/csv; charset=utf-8"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    # Personal data: no shared cache may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    return response


def _stream(
    app: Flask, campaign_id: int, signature_filter: export.SignatureFilter, bom: bool
) -> Iterator[str]:
    """The CSV text through a session of its own, closed when the download ends or stops."""
    db = new_session(app)
    try:
        campaign = db.get(Campaign, campaign_id)
        if campaign is None:  # deleted between the check and the first chunk
            return
        yield from export.csv_lines(db, campaign, signature_filter, bom=bom)
    finally:
        db.close()
