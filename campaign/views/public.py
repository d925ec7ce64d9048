"""The signer's and the public's pages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    after_this_request,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_number, format_time
from flask_wtf.csrf import CSRFError
from sqlalchemy import inspect, select
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers import Response as BaseResponse

from campaign import (
    auth,
    campaigns,
    charts,
    errors,
    geo,
    hosts,
    i18n,
    listing,
    mail,
    markup,
    signing,
    tally,
    updates,
)
from campaign.db import Base, get_session, reading, utcnow
from campaign.extensions import csrf, limiter, rate
from campaign.forms.public import ActionForm, SignForm
from campaign.i18n import gettext
from campaign.models import Campaign, Signature
from campaign.views.embed import snippets

bp = Blueprint("public", __name__)

# The id of the thanks page's heading, the fragment of the redirect after signing. The sign
# form's action ends in #error-summary (a refused form then opens at its errors, scripts or
# not), and a browser keeps that fragment across a redirect without one of its own.
THANKS_HEADING = "thank-you"

# Registered through this blueprint but app-wide: every page (the dashboard's and the error
# pages too) gets the active language, the switcher and localised names, and a ?lang=
# choice is remembered in a cookie.
bp.app_context_processor(i18n.template_context)
bp.after_app_request(i18n.remember_choice)


@bp.before_app_request
def _canonical_letter_address() -> BaseResponse | None:
    """/c/Demo/tally or /c/demo/ (a capital typed, a slash pasted): a redirect to the page at
    the letter's own address, if that letter exists and this visitor may see it; otherwise
    nothing here, and the address is the 404 it was (a draft's existence stays untold)."""
    path = request.path
    if request.method not in ("GET", "HEAD") or not path.startswith("/c/"):
        return None
    endpoint: str | None = request.endpoint
    values: dict[str, Any] = dict(request.view_args or {})
    if request.routing_exception is not None:
        if not path.endswith("/"):
            return None
        adapter = current_app.create_url_adapter(request)
        try:
            if adapter is None:
                return None
            endpoint, matched = adapter.match(path.rstrip("/"), method="GET")
            values = dict(matched)
        except HTTPException:
            return None
    slug = values.get("slug")
    if not isinstance(slug, str) or endpoint is None or not endpoint.startswith("public."):
        return None
    canonical = slug.lower()
    if canonical == slug and request.routing_exception is None:
        return None
    found = campaigns.get_by_slug(get_session(), canonical)
    if found is None or not _may_see(found):
        return None
    target = url_for(endpoint, **{**values, "slug": canonical})
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    return redirect(target, 302)


def _letter_or_404(slug: str) -> Campaign:
    """The letter of the URL in any state, drafts too; 404 for an unknown slug."""
    found = campaigns.get_by_slug(get_session(), slug)
    if found is None:
        abort(404)
    return found


def _may_see(campaign: Campaign) -> bool:
    """Whether this visitor may see the letter's pages (auth.may_see)."""
    return auth.may_see(get_session(), campaign)


def _campaign_or_404(slug: str) -> Campaign:
    """The letter of a public page; a draft is a 404 like an unknown slug (its existence not
    told), but to its organizers, whose preview says so and stays out of every cache."""
    found = _letter_or_404(slug)
    if found.state == "draft":
        if not _may_see(found):
            abort(404)
        _mark_draft_preview()
    return found


def _mark_draft_preview() -> None:
    """Show the draft banner on this page, and keep the page out of shared caches."""
    g.draft_preview = True

    @after_this_request
    def private(response: BaseResponse) -> BaseResponse:
        response.headers["Cache-Control"] = "private, no-store"
        return response


def tally_sentence(counts: tally.Tally) -> str:
    """'Signed by N MPs from N countries on N continents' in the reader's language."""
    return i18n.tally_sentence(counts).text


def count_sentence(counts: tally.Tally) -> str:
    """'N signatures from N countries on N continents' in the reader's language."""
    return i18n.count_sentence(counts).text


def _state_message(campaign: campaigns.Window) -> str | None:
    """Why the campaign takes no signature now, or None when it does."""
    now = utcnow()
    if campaigns.is_accepting(campaign, now):
        return None
    if campaign.state == "draft":
        return gettext("This letter is a draft: it is not open for signing yet.")
    if campaign.state == "closed" or (campaign.closes_at and now >= campaign.closes_at):
        return gettext("This letter is closed: it no longer takes signatures.")
    if campaign.opens_at is not None:
        # In UTC, as every time on the site is written; the date and the time each the
        # reader's language's way.
        return gettext(
            "This letter opens for signing on %(date)s at %(time)s (UTC).",
            date=i18n.long_date(campaign.opens_at),
            time=format_time(campaign.opens_at, format="short"),
        )
    return gettext("This letter is not open for signing yet.")


@dataclass(frozen=True)
class ShareLink:
    """A link that shares a page on one network, needing no script of theirs."""

    network: str
    label: str
    href: str


@dataclass(frozen=True)
class Share:
    """How a page presents itself to link previews, and the links that share it."""

    url: str
    title: str
    description: str
    image: str | None
    image_alt: str
    links: list[ShareLink]


def share_links(url: str, title: str, sentence: str | None) -> list[ShareLink]:
    """Plain links sharing url on X, Facebook, LinkedIn, WhatsApp, Telegram and by email."""
    message = f"{title} \u2013 {sentence}" if sentence else title
    u, m = quote(url, safe=""), quote(message, safe="")
    return [
        ShareLink("x", "X (Twitter)", f"https://x.com/intent/tweet?text={m}&url={u}"),
        ShareLink("facebook", "Facebook", f"https://www.facebook.com/sharer/sharer.php?u={u}"),
        ShareLink(
            "linkedin", "LinkedIn", f"https://www.linkedin.com/sharing/share-offsite/?url={u}"
        ),
        ShareLink("whatsapp", "WhatsApp", f"https://wa.me/?text={m}%20{u}"),
        ShareLink("telegram", "Telegram", f"https://t.me/share/url?url={u}&text={m}"),
        ShareLink(
            "email",
            gettext("Email"),
            f"mailto:?subject={quote(title, safe='')}&body={m}%0A%0A{u}",
        ),
    ]


def _share(campaign: Campaign, title: str, counts: tally.Tally, endpoint: str) -> Share:
    """Open Graph and Twitter card values and share links for one of the letter's pages."""
    url = hosts.external_url(endpoint, slug=campaign.slug)
    sentence = i18n.tally_sentence(counts).text
    image = None
    if campaign.state != "draft":  # a draft's picture is not public (404)
        # The count in the URL: link previews cached elsewhere refresh as it grows.
        image = hosts.external_url(
            "embed.share_image", slug=campaign.slug, lang=i18n.current(), v=counts.signatures
        )
    return Share(
        url=url,
        title=title,
        description=sentence,
        image=image,
        image_alt=f"{title}: {sentence}",
        links=share_links(url, title, sentence if counts.signatures else None),
    )


@dataclass(frozen=True)
class PublishedUpdate:
    """An organizers' update as the letter's page shows it."""

    subject: str
    sent_at: dt.datetime
    date: str
    paragraphs: list[list[str]]


def _published_updates(campaign: Campaign) -> list[PublishedUpdate]:
    """The letter's published updates, newest first, dated in the reader's language."""
    return [
        PublishedUpdate(
            update.subject,
            update.created_at,
            i18n.long_date(update.created_at),
            markup.paragraphs(update.body),
        )
        for update in updates.published(get_session(), campaign)
    ]


def _render_campaign(
    campaign: Campaign, form: SignForm | None, status: int = 200, *, notice: str | None = None
) -> Response:
    """The letter's page; status 409 (a signature refused) says why at its top, focused.

    notice: why the form came back unsaved (a lost session), said above the form, whose
    fields keep what was typed.
    """
    locale = i18n.current()
    db = get_session()
    counts = tally.tally(db, campaign, locale)
    letter = i18n.letter_for(campaign, locale)
    # A text changed after signing began says so (one query, only then), in the language
    # it changed in.
    changed_at = campaigns.text_changed_at(db, campaign, locale)
    blocked = _state_message(campaign)
    if form is None and blocked is None:
        form = SignForm(locale=locale)
    continent = None
    if form is not None and form.country.data and geo.is_country(str(form.country.data)):
        continent = i18n.continent_name(geo.continent_of(str(form.country.data)))
    page = render_template(
        "public/campaign.html",
        campaign=campaign,
        letter=letter,
        counts=counts,
        sentence=i18n.count_sentence(counts),
        share=_share(campaign, letter.title, counts, "public.campaign"),
        blocked=blocked,
        refused=status == 409,
        notice=notice,
        form=form if blocked is None else None,
        continent=continent,
        title_suggestions=i18n.title_suggestions(signing.TITLE_SUGGESTIONS),
        changed_on=i18n.long_date(changed_at) if changed_at else None,
        published_updates=_published_updates(campaign),
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
    locale = i18n.current()
    counted = tally.totals(db, [campaign.id for campaign in open_campaigns])
    listed = [
        (campaign, i18n.letter_for(campaign, locale), counted[campaign.id])
        for campaign in open_campaigns
    ]
    return render_template("public/index.html", listed=listed)


@bp.get("/c/<slug>")
def campaign(slug: str) -> Response:
    """The letter, the live count and the signing form."""
    return _render_campaign(_campaign_or_404(slug), None)


def _csrf_refused() -> str | None:
    """Whether this POST fails the CSRF check, and why: "no-cookie" when it came without
    this site's session cookie (cleared: a phone's browser restarted, private browsing; or
    blocked), "stale" otherwise (a page kept open past the token's lifetime, a foreign
    Referer); None when it passes.

    The signer's forms check it here, not in CSRFProtect before the view (they are exempt
    there), so the view can show its page again, with what was typed and a fresh token (so
    a fresh session cookie), in plain words; nothing is stored.
    """
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return None
    try:
        csrf.protect()  # logs Flask-WTF's reason
    except CSRFError:
        if current_app.config["SESSION_COOKIE_NAME"] not in request.cookies:
            return "no-cookie"
        return "stale"
    return None


def _no_cookie_notice(done: str) -> str:
    """What a refused POST that came without the site's cookie tells the signer."""
    return gettext(
        "%(done)s Your browser did not send back this site's cookie: it may have been cleared, "
        "or cookies may be blocked for this site. Please press the button again; if this "
        "message comes back, allow cookies for this site.",
        done=done,
    )


@bp.post("/c/<slug>/sign")
@csrf.exempt  # type: ignore[untyped-decorator]  # checked in the view: _csrf_refused
@limiter.limit(lambda: rate("SIGN_RATE_LIMIT"))
def sign(slug: str) -> Response | BaseResponse:
    """Take a signature; success and duplicate answer alike, with a 303 to the thanks page."""
    locale = i18n.current()
    # The form's CPU work (CSRF, email syntax) before any query.
    form = SignForm(locale=locale)
    refused = _csrf_refused()
    if refused is not None:
        with reading():
            found = _letter_or_404(slug)
            if _state_message(found) is not None:
                return _refuse(found)
            if refused == "no-cookie":
                notice = _no_cookie_notice(gettext("We could not take your signature yet."))
            else:
                notice = gettext(
                    "Your page had been open a long time, so we could not take your signature: "
                    "please press the button again."
                )
            return _render_campaign(found, form, 400, notice=notice)
    valid = form.validate()
    db = get_session()
    if not valid or form.is_bot():
        # Nothing will be stored: the reads in a deferred transaction, no write lock.
        with reading():
            found = _letter_or_404(slug)
            if _state_message(found) is not None:
                return _refuse(found)
            if form.is_bot():
                # Answer a bot exactly like a person, so it learns nothing; store nothing.
                current_app.logger.info("honeypot filled on %s; nothing stored", found.slug)
                return redirect(_thanks_url(found), 303)
            return _render_campaign(found, form, 400)
    # What needs no database, before the write transaction: on SQLite every other writer
    # waits while it is open.
    secret = str(current_app.config["SECRET_KEY"])
    entry = form.entry(locale=locale, client_hash=signing.client_hash(secret, request.remote_addr))
    # A signature to store: the letter is read in the transaction that writes it (on SQLite
    # one BEGIN IMMEDIATE, not a deferred read, a commit, then a second transaction), as a
    # row of the columns signing needs, not the ORM object the pages render.
    admitted = campaigns.admission_by_slug(db, slug)
    if admitted is None:
        db.commit()
        abort(404)
    if _state_message(admitted) is not None:
        db.commit()  # nothing written; other writers need not wait while the page renders
        with reading():
            return _refuse(_letter_or_404(slug))
    config = current_app.config
    outcome = signing.sign(
        db,
        admitted,
        entry,
        notice_limit=int(config["DUPLICATE_NOTICE_LIMIT"]),
        notice_quiet_seconds=float(config["DUPLICATE_NOTICE_QUIET_SECONDS"]),
    )
    if outcome.created and admitted.require_confirmation:
        mail.queue_confirmation(db, outcome.signer)
    elif outcome.created:
        # It counts already: the receipt, with its withdraw link, is how the address's owner
        # learns of it, and undoes it if someone else signed in their name.
        mail.queue_receipt(db, outcome.signer)
    elif outcome.notify_existing:
        mail.queue_already_signed(db, outcome.signer)
    # The commit wakes this process's mail sender (mail.queue_* ask for it).
    db.commit()
    return redirect(_thanks_url(admitted), 303)


def _refuse(campaign: Campaign) -> Response:
    """The 409 answering a signature the letter does not take now (closed, not yet open, a
    draft): why, at the top. A draft's text stays hidden from all but its organizers."""
    if _may_see(campaign):
        if campaign.state == "draft":
            _mark_draft_preview()
        return _render_campaign(campaign, None, 409)
    page = render_template("public/refused.html", blocked=_state_message(campaign))
    return make_response(page, 409)


def _thanks_url(campaign: campaigns.Admission | Campaign) -> str:
    return i18n.with_language(url_for("public.thanks", slug=campaign.slug, _anchor=THANKS_HEADING))


@bp.get("/c/<slug>/thanks")
def thanks(slug: str) -> str:
    """The same page after every signature, new or duplicate."""
    found = _campaign_or_404(slug)
    locale = i18n.current()
    letter = i18n.letter_for(found, locale)
    counts = tally.tally(get_session(), found, locale)
    return render_template(
        "public/thanks.html",
        campaign=found,
        letter=letter,
        share=_share(found, letter.title, counts, "public.campaign"),
    )


def _signature_for_link(
    campaign: Campaign, token: str, purpose: str
) -> tuple[Signature, signing.Link] | str:
    """The signature a link names and what the link says, or why it cannot be used."""
    max_age = int(
        current_app.config[
            "CONFIRM_MAX_AGE_SECONDS" if purpose == "confirm" else "WITHDRAW_MAX_AGE_SECONDS"
        ]
    )
    try:
        link = signing.read_link(str(current_app.config["SECRET_KEY"]), token, purpose, max_age)
    except signing.ExpiredToken:
        return gettext("This link has expired.")
    except signing.BadToken:
        return gettext("This link is not valid. Please copy the whole link from the mail.")
    found = get_session().get(Signature, link.signature_id)
    if found is None or found.campaign_id != campaign.id or found.status == "erased":
        return gettext("This link is not valid. Please copy the whole link from the mail.")
    return found, link


def _link_page(slug: str, token: str, purpose: str) -> Response | BaseResponse:
    # A draft's signer pages open with a link naming one of its signatures (organizers may
    # add some to a draft); any other link is the 404 of an unknown letter.
    found = _letter_or_404(slug)
    result = _signature_for_link(found, token, purpose)
    if isinstance(result, str) and not _may_see(found):
        abort(404)
    if not isinstance(result, str):
        # The language the signer signed in (their mail's), in any browser the link opens,
        # unless this visitor chose one (?lang=, the cookie).
        i18n.prefer(result[0].locale)
    letter = i18n.letter_for(found, i18n.current())
    if isinstance(result, str):
        page = render_template(
            "public/bad_link.html", campaign=found, letter=letter, reason=result, purpose=purpose
        )
        return make_response(page, 400)
    signature, link = result
    # A confirm link mailed to a withdrawn signature's address when it signed again.
    again = purpose == "confirm" and signing.signs_again(signature, link)
    refused = _csrf_refused() if request.method == "POST" and purpose != "stop_updates" else None
    if refused is not None:
        # Nothing done: the same page, its button carrying a fresh token.
        if refused == "no-cookie":
            notice = _no_cookie_notice(gettext("Nothing was done yet."))
        else:
            notice = gettext(
                "Your page had been open a long time, so nothing was done yet: "
                "please press the button again."
            )
        page = _signer_link_page(found, letter, signature, purpose, again=again, notice=notice)
        return make_response(page, 400)
    if request.method == "POST":
        db = get_session()
        if purpose == "confirm":
            signing.confirm(db, signature.id, link=link)
        elif purpose == "withdraw":
            signing.withdraw(db, signature.id)
        else:
            updates.decline(db, signature.id)
        db.commit()
        if again:
            if signature.counted:
                flash(gettext("Your signature counts again."), "ok")
            else:
                flash(gettext("Your signature is on the letter again."), "ok")
        if purpose == "stop_updates" and request.form.get("List-Unsubscribe") == "One-Click":
            # RFC 8058: the mail provider posts this and follows no redirect; 200 is done.
            db.refresh(signature)
            return make_response(_signer_link_page(found, letter, signature, purpose))
        # Built, not request.path: a token the serializer accepts may carry a decoded
        # CR/LF (its base64 ignores stray characters), which no Location header may hold.
        return redirect(url_for(f"public.{purpose}", slug=found.slug, token=token), 303)
    return make_response(_signer_link_page(found, letter, signature, purpose, again=again))


def _signer_link_page(
    campaign: Campaign,
    letter: i18n.Letter,
    signature: Signature,
    purpose: str,
    *,
    again: bool = False,
    notice: str | None = None,
) -> str:
    """A signer's link page: what its button does, or that it is done.

    again: the confirm page of a withdrawn signature whose button puts it back on the letter.
    notice: why pressing the button did nothing (a lost session), above the button.
    """
    withdrawn_at = signature.withdrawn_at
    return render_template(
        f"public/{purpose}.html",
        campaign=campaign,
        letter=letter,
        signature=signature,
        form=ActionForm(),
        again=again,
        notice=notice,
        # Off the letter by its signer alone: signing again mails a link that brings it back.
        may_sign_again=signing.withdrawn_by_signer(signature),
        withdrawn_on=i18n.long_date(withdrawn_at) if withdrawn_at else None,
        # Signed while it was open: confirming counts it still (its page says so).
        closed_since=campaigns.phase(campaign, utcnow()) == "closed",
    )


@bp.route("/c/<slug>/confirm/<token>", methods=["GET", "POST"])
@csrf.exempt  # type: ignore[untyped-decorator]  # checked in the view: _csrf_refused
@limiter.limit(lambda: rate("CONFIRM_RATE_LIMIT"))
def confirm(slug: str, token: str) -> Response | BaseResponse:
    """GET shows what is being confirmed and a button; POST confirms (idempotent)."""
    return _link_page(slug, token, "confirm")


@bp.route("/c/<slug>/withdraw/<token>", methods=["GET", "POST"])
@csrf.exempt  # type: ignore[untyped-decorator]  # checked in the view: _csrf_refused
@limiter.limit(lambda: rate("CONFIRM_RATE_LIMIT"))
def withdraw(slug: str, token: str) -> Response | BaseResponse:
    """GET shows what would be withdrawn and a button; POST withdraws (idempotent)."""
    return _link_page(slug, token, "withdraw")


@bp.route("/c/<slug>/updates/stop/<token>", methods=["GET", "POST"])
@csrf.exempt  # type: ignore[untyped-decorator]  # Flask-WTF has no hints
@limiter.limit(lambda: rate("CONFIRM_RATE_LIMIT"))
def stop_updates(slug: str, token: str) -> Response | BaseResponse:
    """GET shows what stopping the updates does and a button; POST stops them (idempotent).

    The link's token authorises it, so no CSRF token is asked for: a mail provider's
    one-click unsubscribe (RFC 8058) posts "List-Unsubscribe=One-Click" and nothing else.
    """
    return _link_page(slug, token, "stop_updates")


@bp.get("/c/<slug>/tally", endpoint="tally")
def tally_page(slug: str) -> str:
    """Signed by N MPs from N countries on N continents, by continent and by country."""
    found = _campaign_or_404(slug)
    locale = i18n.current()
    counts = tally.tally(get_session(), found, locale)
    letter = i18n.letter_for(found, locale)
    words = i18n.chart_text()
    return render_template(
        "public/tally.html",
        campaign=found,
        letter=letter,
        counts=counts,
        sentence=i18n.tally_sentence(counts),
        world_map=charts.world_map_svg(
            counts, title=gettext("Map of the signatures by country"), text=words, legend=False
        ),
        legend=charts.legend_items(counts, words),
        legend_title=words.legend,
        continent_bars=charts.continent_bars_svg(
            counts, title=gettext("Signatures by continent"), text=words
        ),
        share=_share(found, letter.title, counts, "public.tally"),
        embed=snippets(found) if found.state != "draft" else None,
        # The widget's rule: "sign" only while the letter takes signatures.
        accepting=campaigns.is_accepting(found, utcnow()),
    )


# How long a shared cache may keep tally.json (no longer than the pages' polling interval).
TALLY_MAX_AGE_SECONDS = 10


@bp.get("/c/<slug>/tally.json")
@limiter.limit(lambda: rate("JSON_RATE_LIMIT"))
def tally_json(slug: str) -> BaseResponse:
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
    # Other sites may read the count from their visitors' browsers: security.py gives every
    # answer of this path (this one, its redirects and errors) the CORS headers.
    # Each open page polls it (LIVE_REFRESH_SECONDS): a shared cache may keep it a few
    # seconds, and a poll of an unchanged count gets a bodiless 304.
    max_age = min(TALLY_MAX_AGE_SECONDS, int(current_app.config.get("LIVE_REFRESH_SECONDS") or 15))
    response.headers["Cache-Control"] = f"public, max-age={max(1, max_age)}"
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/c/<slug>/signatories")
def signatories(slug: str) -> str | BaseResponse:
    """Counted signers who agreed to be listed, by country, a page at a time; never an email.

    Up to listing.PAGE_SIZE listed signers the page lists them all; past that it lists the
    countries, and ?country=FR lists one country's signers by pages (&after= or &before=
    a position that the page's own links carry).
    """
    found = _campaign_or_404(slug)
    locale = i18n.current()
    db = get_session()
    letter = i18n.letter_for(found, locale)
    asked = request.args.get("country")
    after, before = request.args.get("after"), request.args.get("before")
    if asked is None:
        if after is not None or before is not None:
            return _signatories_problem(
                found, letter, gettext("This link to a page of the list is damaged.")
            )
        countries = listing.countries(db, found.id, locale)
        listed = sum(country.signers for country in countries)
        small = listed <= listing.PAGE_SIZE
        return render_template(
            "public/signatories.html",
            campaign=found,
            letter=letter,
            listed=listed,
            listed_sentence=i18n.ngettext(
                "%(count)s signer agreed to be listed here.",
                "%(count)s signers agreed to be listed here.",
                listed,
                count=format_number(listed),
            ),
            countries=countries,
            groups=listing.everyone(db, found.id, locale) if small and listed else None,
            format_number=format_number,
        )
    code = asked.strip().upper()
    if code != asked or not code:  # ?country=fr, or none chosen: that list's one address
        if not code:
            return redirect(url_for("public.signatories", slug=slug))
        # url_for leaves out the None ones.
        return redirect(
            url_for("public.signatories", slug=slug, country=code, after=after, before=before)
        )
    if not geo.is_known(code):
        return _signatories_problem(found, letter, gettext("This list has no such country."))
    if after is not None and before is not None:
        return _signatories_problem(
            found, letter, gettext("This link to a page of the list is damaged.")
        )
    try:
        page = listing.country_page(
            db,
            found.id,
            code,
            after=listing.parse_cursor(after) if after is not None else None,
            before=listing.parse_cursor(before) if before is not None else None,
            listed=listing.listed_in(db, found.id, code),
        )
    except listing.BadCursor:
        return _signatories_problem(
            found, letter, gettext("This link to a page of the list is damaged.")
        )
    return render_template(
        "public/signatories.html",
        campaign=found,
        letter=letter,
        country=code,
        page=page,
        paged=after is not None or before is not None,
        where=_where_in_list(page, i18n.country_name(code)),
    )


def _where_in_list(page: listing.Page, country: str) -> str:
    """'France: showing 501-1,000 of 1,234 listed signatories', or the number alone.

    The country leads, before a colon: "from %(country)s" would need each name's article
    ("from the United Kingdom", "des États-Unis", "del Reino Unido").
    """
    if page.first is not None and page.last is not None and (page.previous or page.next):
        return i18n.ngettext(
            "%(country)s: showing %(first)s\u2013%(last)s of %(count)s listed signatory",
            "%(country)s: showing %(first)s\u2013%(last)s of %(count)s listed signatories",
            page.listed,
            first=format_number(page.first),
            last=format_number(page.last),
            count=format_number(page.listed),
            country=country,
        )
    # One page holds them all, or a link from before pages carried their place.
    return i18n.ngettext(
        "%(country)s: %(count)s listed signatory",
        "%(country)s: %(count)s listed signatories",
        page.listed,
        count=format_number(page.listed),
        country=country,
    )


def _signatories_problem(campaign: Campaign, letter: i18n.Letter, problem: str) -> BaseResponse:
    """A 400 page for a list address no link of ours makes, leading back to the list (the
    error as JSON to a client that asked for JSON, as every error answers it)."""
    if errors.wants_json():
        return errors.render_error(BadRequest(problem))
    page = render_template(
        "public/signatories.html", campaign=campaign, letter=letter, problem=problem
    )
    return make_response(page, 400)


@bp.get("/healthz")
def healthz() -> Response:
    """200 when the database answers and has the app's tables; 503 (and Retry-After) if not."""
    db = get_session()
    try:
        present = set(inspect(db.connection()).get_table_names())
    except DBAPIError:
        current_app.logger.warning("health check: the database does not answer", exc_info=True)
        return _unhealthy("down")
    missing = sorted(set(Base.metadata.tables) - present)
    if missing:
        current_app.logger.warning(
            "health check: the database lacks the tables %s; run `campaign db upgrade`",
            ", ".join(missing),
        )
        return _unhealthy("no schema")
    return jsonify(status="ok")


def _unhealthy(database: str) -> Response:
    try:
        get_session().rollback()
    except DBAPIError:
        current_app.logger.debug("rollback after a failed health check failed", exc_info=True)
    response = jsonify(status="unavailable", database=database)
    response.status_code = 503
    response.headers["Retry-After"] = str(errors.DATABASE_RETRY_SECONDS)
    return response
