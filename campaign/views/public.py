"""The signer's and the public's pages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as babel_gettext
from flask_babel import ngettext as babel_ngettext
from markupsafe import Markup
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from werkzeug.wrappers import Response as BaseResponse

from campaign import campaigns, geo, mail, signing, tally
from campaign.db import get_session, utcnow
from campaign.extensions import limiter, rate
from campaign.forms.public import ActionForm, SignForm
from campaign.markup import render_markdown
from campaign.models import Campaign, Signature

bp = Blueprint("public", __name__)


def gettext(message: str, **values: Any) -> str:
    """The message in the reader's language (Flask-Babel, typed)."""
    return str(babel_gettext(message, **values))


def ngettext(singular: str, plural: str, num: int, **values: Any) -> str:
    """The singular or plural message for num in the reader's language (typed)."""
    return str(babel_ngettext(singular, plural, num, **values))


@bp.context_processor
def _helpers() -> dict[str, object]:
    """Names for country and continent codes, and dates, in the reader's language."""
    locale = _locale()
    return {
        "country_name": lambda code: geo.country_name(code, locale),
        "continent_name": geo.continent_name,
        "format_datetime": format_datetime,
    }


def _locale() -> str:
    """The reader's language as a string such as "fr" (Babel's choice for this request)."""
    return str(get_locale() or "en")


def _campaign_or_404(slug: str) -> Campaign:
    found = campaigns.get_by_slug(get_session(), slug)
    if found is None:
        abort(404)
    return found


@dataclass(frozen=True)
class Letter:
    """The letter as this reader sees it: in their language when a translation exists."""

    title: str
    body: Markup
    locale: str | None


def _letter(campaign: Campaign, locale: str) -> Letter:
    language = locale.split("_")[0]
    for translation in campaign.translations:
        if translation.locale in (locale, language):
            return Letter(
                translation.title, render_markdown(translation.letter), translation.locale
            )
    return Letter(campaign.title, render_markdown(campaign.letter), None)


def _state_message(campaign: Campaign) -> str | None:
    """Why the campaign takes no signature now, or None when it does."""
    now = utcnow()
    if campaigns.is_accepting(campaign, now):
        return None
    if campaign.state == "draft":
        return gettext("This letter is a draft: it is not open for signing yet.")
    if campaign.state == "closed" or (campaign.closes_at and now >= campaign.closes_at):
        return gettext("This letter is closed: it no longer takes signatures.")
    return gettext("This letter is not open for signing yet.")


def count_sentence(counts: tally.Tally) -> str:
    """'N signatures from N countries on N continents', pluralised for each number."""
    if counts.signatures == 0:
        return gettext("No signatures yet.")
    return gettext(
        "%(signatures)s from %(countries)s on %(continents)s",
        signatures=ngettext("%(num)d signature", "%(num)d signatures", counts.signatures),
        countries=ngettext("%(num)d country", "%(num)d countries", counts.countries),
        continents=ngettext("%(num)d continent", "%(num)d continents", counts.continents),
    )


def tally_sentence(counts: tally.Tally) -> str:
    """'Signed by N MPs from N countries on N continents', pluralised for each number."""
    if counts.signatures == 0:
        return gettext("No signatures yet.")
    return gettext(
        "Signed by %(signers)s from %(countries)s on %(continents)s",
        signers=ngettext("%(num)d MP", "%(num)d MPs", counts.signatures),
        countries=ngettext("%(num)d country", "%(num)d countries", counts.countries),
        continents=ngettext("%(num)d continent", "%(num)d continents", counts.continents),
    )


def _render_campaign(campaign: Campaign, form: SignForm | None, status: int = 200) -> Response:
    locale = _locale()
    db = get_session()
    counts = tally.tally(db, campaign, locale)
    blocked = _state_message(campaign)
    if form is None and blocked is None:
        form = SignForm(locale=locale)
    continent = None
    if form is not None and form.country.data and geo.is_country(str(form.country.data)):
        continent = gettext(geo.continent_name(geo.continent_of(str(form.country.data))))
    page = render_template(
        "public/campaign.html",
        campaign=campaign,
        letter=_letter(campaign, locale),
        counts=counts,
        count_sentence=count_sentence(counts),
        blocked=blocked,
        form=form if blocked is None else None,
        continent=continent,
        title_suggestions=signing.TITLE_SUGGESTIONS,
    )
    return make_response(page, status)


@bp.get("/")
def index() -> str:
    """The open letters."""
    db = get_session()
    now = utcnow()
    open_campaigns = [
        campaign
        for campaign in db.scalars(
            select(Campaign).where(Campaign.state == "open").order_by(Campaign.created_at.desc())
        )
        if campaigns.is_accepting(campaign, now)
    ]
    locale = _locale()
    listed = [
        (campaign, _letter(campaign, locale).title, tally.total(db, campaign))
        for campaign in open_campaigns
    ]
    return render_template("public/index.html", listed=listed)


@bp.get("/c/<slug>")
def campaign(slug: str) -> Response:
    """The letter, the live count and the signing form."""
    return _render_campaign(_campaign_or_404(slug), None)


@bp.post("/c/<slug>/sign")
@limiter.limit(lambda: rate("SIGN_RATE_LIMIT"))
def sign(slug: str) -> Response | BaseResponse:
    """Take a signature; success and duplicate answer alike, with a 303 to the thanks page."""
    found = _campaign_or_404(slug)
    thanks = url_for("public.thanks", slug=found.slug)
    if _state_message(found) is not None:
        return _render_campaign(found, None, 409)
    locale = _locale()
    form = SignForm(locale=locale)
    if form.is_bot():
        # Answer a bot exactly like a person, so it learns nothing; store nothing.
        current_app.logger.info("honeypot filled on %s; nothing stored", found.slug)
        return redirect(thanks, 303)
    if not form.validate():
        return _render_campaign(found, form, 400)
    db = get_session()
    secret = str(current_app.config["SECRET_KEY"])
    entry = form.entry(locale=locale, client_hash=signing.client_hash(secret, request.remote_addr))
    outcome = signing.sign(
        db, found, entry, notice_limit=int(current_app.config["DUPLICATE_NOTICE_LIMIT"])
    )
    signature = outcome.signature
    if outcome.created and found.require_confirmation:
        mail.queue_confirmation(
            db,
            signature,
            confirm_url=_link(found, signature, "confirm"),
            withdraw_url=_link(found, signature, "withdraw"),
        )
    elif outcome.notify_existing:
        pending = found.require_confirmation and signature.confirmed_at is None
        mail.queue_already_signed(
            db,
            signature,
            confirm_url=_link(found, signature, "confirm") if pending else None,
            withdraw_url=_link(found, signature, "withdraw"),
        )
    db.commit()
    mail.wake()
    return redirect(thanks, 303)


def _link(campaign: Campaign, signature: Signature, purpose: str) -> str:
    """An absolute confirm or withdraw link: from BASE_URL when set, else this request's host."""
    token = signing.make_token(str(current_app.config["SECRET_KEY"]), signature.id, purpose)
    endpoint = f"public.{purpose}"
    base = current_app.config.get("BASE_URL")
    if base:
        return str(base).rstrip("/") + url_for(endpoint, slug=campaign.slug, token=token)
    return url_for(endpoint, slug=campaign.slug, token=token, _external=True)


@bp.get("/c/<slug>/thanks")
def thanks(slug: str) -> str:
    """The same page after every signature, new or duplicate."""
    found = _campaign_or_404(slug)
    return render_template("public/thanks.html", campaign=found, letter=_letter(found, _locale()))


def _signature_for_link(campaign: Campaign, token: str, purpose: str) -> Signature | str:
    """The signature a link names, or the reason the link cannot be used."""
    max_age = int(
        current_app.config[
            "CONFIRM_MAX_AGE_SECONDS" if purpose == "confirm" else "WITHDRAW_MAX_AGE_SECONDS"
        ]
    )
    try:
        signature_id = signing.read_token(
            str(current_app.config["SECRET_KEY"]), token, purpose, max_age
        )
    except signing.ExpiredToken:
        return gettext("This link has expired.")
    except signing.BadToken:
        return gettext("This link is not valid. Please copy the whole link from the mail.")
    found = get_session().get(Signature, signature_id)
    if found is None or found.campaign_id != campaign.id or found.status == "erased":
        return gettext("This link is not valid. Please copy the whole link from the mail.")
    return found


def _link_page(slug: str, token: str, purpose: str) -> Response | BaseResponse:
    found = _campaign_or_404(slug)
    result = _signature_for_link(found, token, purpose)
    letter = _letter(found, _locale())
    if isinstance(result, str):
        page = render_template("public/bad_link.html", campaign=found, letter=letter, reason=result)
        return make_response(page, 400)
    if request.method == "POST":
        db = get_session()
        if purpose == "confirm":
            signing.confirm(db, result.id)
        else:
            signing.withdraw(db, result.id)
        db.commit()
        return redirect(request.path, 303)
    page = render_template(
        f"public/{purpose}.html",
        campaign=found,
        letter=letter,
        signature=result,
        form=ActionForm(),
    )
    return make_response(page)


@bp.route("/c/<slug>/confirm/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: rate("CONFIRM_RATE_LIMIT"))
def confirm(slug: str, token: str) -> Response | BaseResponse:
    """GET shows what is being confirmed and a button; POST confirms (idempotent)."""
    return _link_page(slug, token, "confirm")


@bp.route("/c/<slug>/withdraw/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: rate("CONFIRM_RATE_LIMIT"))
def withdraw(slug: str, token: str) -> Response | BaseResponse:
    """GET shows what would be withdrawn and a button; POST withdraws (idempotent)."""
    return _link_page(slug, token, "withdraw")


@bp.get("/c/<slug>/tally", endpoint="tally")
def tally_page(slug: str) -> str:
    """Signed by N MPs from N countries on N continents, by continent and by country."""
    found = _campaign_or_404(slug)
    locale = _locale()
    counts = tally.tally(get_session(), found, locale)
    return render_template(
        "public/tally.html",
        campaign=found,
        letter=_letter(found, locale),
        counts=counts,
        sentence=tally_sentence(counts),
    )


@bp.get("/c/<slug>/tally.json")
@limiter.limit(lambda: rate("JSON_RATE_LIMIT"))
def tally_json(slug: str) -> Response:
    """The tally for machines: counted signatures only, English names, UTC time."""
    found = _campaign_or_404(slug)
    counts = tally.tally(get_session(), found, None)
    response = jsonify(
        slug=found.slug,
        signatures=counts.signatures,
        countries=counts.countries,
        continents=counts.continents,
        by_continent=[
            {"code": c.code, "name": c.name, "signatures": c.signatures, "countries": c.countries}
            for c in counts.by_continent
        ],
        by_country=[
            {"code": c.code, "name": c.name, "continent": c.continent, "signatures": c.signatures}
            for c in counts.by_country
        ],
        updated_at=counts.updated_at.astimezone(dt.UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
    )
    return response


@bp.get("/c/<slug>/signatories")
def signatories(slug: str) -> str:
    """Counted signers who agreed to be listed, grouped by country; never an email."""
    found = _campaign_or_404(slug)
    locale = _locale()
    rows = get_session().execute(
        select(
            Signature.country_code,
            Signature.name,
            Signature.title,
            Signature.parliament,
            Signature.party,
            Signature.verified_at,
        ).where(
            Signature.campaign_id == found.id,
            Signature.counted.is_(True),
            Signature.public.is_(True),
        )
    )
    named = sorted(
        ((geo.country_name(row.country_code, locale), row) for row in rows),
        key=lambda item: (item[0].casefold(), item[1].name.casefold()),
    )
    groups = [
        (country, [row for _name, row in members])
        for country, members in groupby(named, key=lambda item: item[0])
    ]
    return render_template(
        "public/signatories.html",
        campaign=found,
        letter=_letter(found, locale),
        groups=groups,
        listed=len(named),
    )


@bp.get("/healthz")
def healthz() -> Response:
    """200 when the database answers, 503 when it does not."""
    try:
        get_session().execute(text("SELECT 1"))
    except DBAPIError:
        current_app.logger.warning("health check: the database does not answer", exc_info=True)
        response = jsonify(status="unavailable", database="down")
        response.status_code = 503
        return response
    return jsonify(status="ok")
