"""Site-wide pages that belong to no campaign: privacy, security.txt."""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr

from flask import Blueprint, Response, abort, current_app, render_template

bp = Blueprint("pages", __name__)


@bp.get("/privacy")
def privacy() -> str:
    """What this service keeps about signers, why, for how long, and how to have it removed."""
    config = current_app.config
    # The address alone: the page links it as mailto:, and MAIL_FROM may carry a name
    # ("Open Letter <letters@example.org>"). config.check made both one address.
    contact = parseaddr(str(config.get("PRIVACY_CONTACT") or config.get("MAIL_FROM") or ""))[1]
    return render_template(
        "pages/privacy.html",
        contact=contact,
        retention_days=int(config.get("RETENTION_DAYS_AFTER_CLOSE") or 0),
        log_days=int(config.get("LOG_RETENTION_DAYS") or 0),
    )


@bp.get("/.well-known/security.txt")
def security_txt() -> Response:
    """RFC 9116 contact for vulnerability reports; 404 until SECURITY_CONTACT is set.

    config.check made it a mail address or an https:// or mailto: one, on one line.
    """
    contact = current_app.config.get("SECURITY_CONTACT")
    if not contact:
        abort(404)
    contact = str(contact)
    uri = contact if ":" in contact else f"mailto:{contact}"
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).replace(microsecond=0)
    body = f"Contact: {uri}\nExpires: {expires.isoformat().replace('+00:00', 'Z')}\n"
    body += "Preferred-Languages: en\n"
    return Response(body, mimetype="text/plain")
