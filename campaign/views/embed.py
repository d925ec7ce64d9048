"""What other sites embed: the widget (a small page made for an iframe) and the badge."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, make_response, render_template
from flask_babel import format_number, get_locale, ngettext

from campaign import campaigns, charts, tally
from campaign.db import get_session, utcnow
from campaign.models import Campaign

bp = Blueprint("embed", __name__)

# Other sites show these; a minute's staleness spares us their visitors' every request.
CACHE_SECONDS = 60


def _campaign(slug: str) -> Campaign:
    """The campaign of the URL; 404 for an unknown slug or a letter not yet published."""
    campaign = campaigns.get_by_slug(get_session(), slug)
    if campaign is None or campaign.state == "draft":
        abort(404)
    return campaign


def _shareable(response: Response) -> Response:
    """Cache briefly anywhere; the words follow the reader's language."""
    response.cache_control.public = True
    response.cache_control.max_age = CACHE_SECONDS
    response.vary.update(("Accept-Language", "Cookie"))
    return response


@bp.get("/c/<slug>/widget")
def widget(slug: str) -> Response:
    """The count, countries and continents, and a link to sign, for other sites' iframes."""
    campaign = _campaign(slug)
    locale = str(get_locale() or "en")
    counts = tally.tally(get_session(), campaign, locale)
    # security.py reads this flag: no X-Frame-Options, and frame-ancestors * in the CSP.
    g.allow_framing = True
    page = render_template(
        "embed/widget.html",
        lang=locale,
        campaign=campaign,
        tally=counts,
        count=format_number(counts.signatures),
        accepting=campaigns.is_accepting(campaign, utcnow()),
    )
    return _shareable(make_response(page))


@bp.get("/c/<slug>/badge.svg")
def badge(slug: str) -> Response:
    """The count as a shields-style SVG badge: "<title> | N signatures"."""
    campaign = _campaign(slug)
    count = tally.total(get_session(), campaign)
    message = ngettext(
        "%(count)s signature", "%(count)s signatures", count, count=format_number(count)
    )
    g.allow_framing = True
    response = make_response(charts.badge_svg(count, campaign.title, message=message))
    response.mimetype = "image/svg+xml"
    return _shareable(response)
