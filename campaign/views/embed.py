"""What other sites show: the widget (a small page for an iframe), the badge, the share image."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    make_response,
    render_template,
    request,
)
from flask_babel import format_number
from markupsafe import escape
from werkzeug.wrappers import Response as BaseResponse

from campaign import auth, campaigns, charts, hosts, i18n, tally
from campaign.db import get_session, utcnow
from campaign.models import Campaign

bp = Blueprint("embed", __name__)

# Other sites show these; a minute's staleness spares us their visitors' every request.
CACHE_SECONDS = 60
# Link previews are fetched once per share; their URL carries the count, so it may be kept.
SHARE_IMAGE_CACHE_SECONDS = 300
# Drawn share images kept in memory, per (campaign, language, title, counts): a new
# signature makes a new image, every other request reuses one.
SHARE_IMAGE_CACHE_SIZE = 64
_share_images: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_share_images_lock = threading.Lock()


@dataclass(frozen=True)
class Snippets:
    """The HTML another site pastes to show the widget or the badge."""

    widget_url: str
    badge_url: str
    letter_url: str
    widget_code: str
    badge_code: str


def snippets(campaign: Campaign) -> Snippets:
    """The copy-paste code for the campaign's widget and badge, with absolute URLs."""
    widget = hosts.external_url("embed.widget", slug=campaign.slug)
    badge = hosts.external_url("embed.badge", slug=campaign.slug)
    letter = hosts.external_url("public.campaign", slug=campaign.slug)
    title = i18n.gettext("%(title)s: signatures", title=campaign.title)
    widget_code = (
        f'<iframe src="{escape(widget)}" title="{escape(title)}" width="320" height="380" '
        'loading="lazy"></iframe>'
    )
    badge_code = (
        f'<a href="{escape(letter)}"><img src="{escape(badge)}" alt="{escape(title)}" '
        'height="20"></a>'
    )
    return Snippets(widget, badge, letter, widget_code, badge_code)


@bp.app_context_processor
def _snippet_helper() -> dict[str, object]:
    """Templates anywhere (the tally page, the dashboard) may show a campaign's snippets."""
    return {"embed_snippets": snippets}


def _campaign(slug: str) -> Campaign:
    """The campaign of the URL; 404 for an unknown slug or a draft, but to the draft's own
    organizers (and admins), whose dashboard previews its widget and badge."""
    db = get_session()
    campaign = campaigns.get_by_slug(db, slug)
    if campaign is None or not auth.may_see(db, campaign):
        abort(404)
    if campaign.state == "draft":
        g.draft_preview = True  # _shareable keeps it out of caches
    return campaign


def _shareable(response: Response, seconds: int = CACHE_SECONDS) -> Response:
    """Cache briefly anywhere; the words follow the reader's language. A draft's, seen
    only by its organizers, is kept out of every cache."""
    if g.get("draft_preview"):
        response.headers["Cache-Control"] = "private, no-store"
        return response
    response.cache_control.public = True
    response.cache_control.max_age = seconds
    response.vary.update(("Accept-Language", "Cookie"))
    return response


@bp.get("/c/<slug>/widget")
def widget(slug: str) -> Response:
    """The count, countries and continents, and a link to sign, for other sites' iframes."""
    campaign = _campaign(slug)
    locale = i18n.current()
    counts = tally.tally(get_session(), campaign, locale)
    # security.py reads this flag: no X-Frame-Options, and frame-ancestors * in the CSP.
    g.allow_framing = True
    page = render_template(
        "embed/widget.html",
        campaign=campaign,
        letter=i18n.letter_for(campaign, locale),
        tally=counts,
        count=format_number(counts.signatures),
        accepting=campaigns.is_accepting(campaign, utcnow()),
        letter_url=hosts.external_url("public.campaign", slug=campaign.slug),
    )
    return _shareable(make_response(page))


@bp.get("/c/<slug>/badge.svg")
def badge(slug: str) -> Response:
    """The count as a shields-style SVG badge: "<title> | N signatures"."""
    campaign = _campaign(slug)
    count = tally.total(get_session(), campaign)
    message = i18n.ngettext(
        "%(count)s signature", "%(count)s signatures", count, count=format_number(count)
    )
    g.allow_framing = True
    response = make_response(charts.badge_svg(count, campaign.title, message=message))
    response.mimetype = "image/svg+xml"
    return _shareable(response)


def _share_fonts() -> tuple[str, ...]:
    """The operator's fonts for the share image (SHARE_FONTS: a list, or one path)."""
    fonts = current_app.config.get("SHARE_FONTS") or ()
    return (fonts,) if isinstance(fonts, str) else tuple(str(font) for font in fonts)


@bp.get("/c/<slug>/share.png")
def share_image(slug: str) -> BaseResponse:
    """The link-preview picture (Open Graph, Twitter cards): title, count, map; PNG. None for
    a draft, even to its organizers: nothing links it before the letter is published."""
    campaign = _campaign(slug)
    if campaign.state == "draft":
        abort(404)
    locale = i18n.current()
    counts = tally.tally(get_session(), campaign, locale)
    title = i18n.letter_for(campaign, locale).title
    letter = hosts.external_url("public.campaign", slug=campaign.slug)
    footer = letter.split("://", 1)[-1]
    key = (
        campaign.id,
        locale,
        title,
        footer,
        tuple((country.code, country.signatures) for country in counts.by_country),
    )
    with _share_images_lock:
        png = _share_images.get(key)
        if png is not None:
            _share_images.move_to_end(key)
    if png is None:
        png = charts.share_image_png(
            title, counts, text=i18n.chart_text(), footer=footer, fonts=_share_fonts()
        )
        with _share_images_lock:
            _share_images[key] = png
            while len(_share_images) > SHARE_IMAGE_CACHE_SIZE:
                _share_images.popitem(last=False)
    response = make_response(png)
    response.mimetype = "image/png"
    response.set_etag(hashlib.sha256(png).hexdigest()[:32])
    _shareable(response, SHARE_IMAGE_CACHE_SECONDS)
    return response.make_conditional(request)
