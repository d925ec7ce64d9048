"""The organizer dashboard: login, campaigns, signatures, duplicates, audit, organizers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import Counter
from typing import Any

from babel import Locale, UnknownLocaleError
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_number, get_locale, lazy_pgettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from campaign import (
    audit,
    auth,
    campaigns,
    digest,
    export,
    geo,
    i18n,
    mail,
    markup,
    review,
    signing,
    tally,
)
from campaign import password_reset as resets
from campaign.auth import admin_required, current_organizer, login_required
from campaign.db import get_session, utcnow
from campaign.extensions import limiter, rate
from campaign.forms.admin import (
    ACTIONS,
    BulkActionForm,
    CampaignForm,
    DigestForm,
    DuplicateForm,
    LoginForm,
    OrganizerCreateForm,
    OrganizerForm,
    OrganizerPasswordForm,
    PasswordChangeForm,
    PasswordResetForm,
    PasswordResetRequestForm,
    PostForm,
    SignatureActionForm,
    SignatureDetailsForm,
    TranslationForm,
)
from campaign.i18n import ngettext
from campaign.models import (
    SIGNATURE_STATUSES,
    SOURCES,
    AuditEntry,
    Campaign,
    LoginSession,
    Organizer,
    Signature,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")

# How audit.dumps writes a datetime (isoformat, with its zone).
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)?$")

# One message for every failed login: unknown address, wrong password, locked or inactive.
LOGIN_FAILED = _l(
    "That email address and password do not match an account. After several failed "
    "attempts, logging in is paused for a while."
)
# What a skipped action on a signature says, by ReviewError code.
SKIPPED = {
    "gone": _l("it no longer exists"),
    "erased": _l("it was erased"),
    "already_verified": _l("it is already verified"),
    "not_verified": _l("it is not verified"),
    "already_rejected": _l("it is already rejected"),
    "not_rejected": _l("it is not rejected"),
    "not_pending": _l("it is not awaiting confirmation"),
    "recently_sent": _l("its confirmation was mailed less than 10 minutes ago"),
    "not_held": _l("it is no longer held as a possible duplicate"),
    "not_listed": _l("it is not on the public list"),
    "reason_required": _l("a reason is needed"),
    "bad_choice": _l("the choice is unknown"),
}
DONE = {
    "verify": _l("Verified: %(n)s."),
    "unverify": _l("Verified mark removed: %(n)s."),
    "reject": _l("Rejected: %(n)s."),
    "restore": _l("Restored: %(n)s."),
    "resend": _l("Confirmation mail queued: %(n)s."),
    "erase": _l("Personal data erased: %(n)s."),
    "unlist": _l("Taken off the public list: %(n)s."),
}
# The details an organizer corrects, as the flash after a correction names them.
DETAIL_LABELS = {
    "name": _l("Name"),
    "title": lazy_pgettext("signer", "Title"),
    "parliament": _l("Parliament"),
    "party": _l("Party"),
    "country_code": _l("Country"),
}
# The fields of a signature's audit entries as the dashboard names them elsewhere (its
# details, the flash after a correction); a field not named here shows its code.
AUDIT_FIELD_LABELS = {
    **DETAIL_LABELS,
    "email": _l("Email"),
    "comment": _l("Comment"),
    "public": _l("Listed publicly"),
    "status": _l("Status"),
    "counted": _l("Counts"),
    "verified_at": _l("Verified"),
    "rejected_at": _l("Rejected"),
    "rejected_reason": _l("Reason for rejection"),
    "erased_at": _l("Erased"),
    "duplicate_of_id": _l("Possible duplicate of"),
    "locale": _l("Language"),
}
# What review.erase and audit.redact_signature leave in an entry's personal fields.
_ERASED_MARK = "[erased]"
STATE_LABELS = {
    "draft": _l("draft"),
    "open": _l("open"),
    "closed": _l("closed"),
    "scheduled": _l("not open yet"),
}
SOURCE_LABELS = {
    "form": _l("signing form"),
    # A signature added on the dashboard by hand is stored as imported, as a CSV row is.
    "import": _l("added by organizers"),
}
STATUS_LABELS = {
    "pending": _l("pending"),
    "held": _l("held"),
    "confirmed": _l("confirmed"),
    "rejected": _l("rejected"),
    "withdrawn": _l("withdrawn"),
    "erased": _l("erased"),
}


def _see_other(endpoint: str, **values: Any) -> Response:
    """POST/redirect/GET."""
    return redirect(url_for(endpoint, **values), code=303)


def see_other_at_top(endpoint: str, **values: Any) -> Response:
    """POST/redirect/GET from a form whose address ends in a #fragment (to show its errors):
    the next page opens at its top, where the flash says what was done.

    A browser keeps the form's fragment across a redirect whose Location has none, so the
    next page would open scrolled to an element of that name, the message out of view;
    "#top" is the top of any page (HTML's fragment rules).
    """
    return _see_other(endpoint, **values, _anchor="top")


def _organizer() -> Organizer:
    """The logged-in organizer (views reach this only behind login_required)."""
    organizer = current_organizer()
    if organizer is None:
        abort(404)
    return organizer


def _page_arg() -> int:
    page = request.args.get("page", default=1, type=int) or 1
    return max(1, min(page, 1_000_000))


@bp.app_template_global()
def status_label(status: str) -> str:
    """A signature status in the reader's language."""
    return str(STATUS_LABELS.get(status, status))


@bp.app_template_global()
def status_heading(status: str) -> str:
    """A signature status as a column heading: capitalised, as the other headings are
    ("En attente" beside "Campagne"); status_label is the word inside a sentence."""
    label = status_label(status)
    return label[:1].upper() + label[1:]


@bp.app_template_global()
def source_label(source: str) -> str:
    """Where a signature came from, in the reader's language."""
    return str(SOURCE_LABELS.get(source, source))


@bp.app_template_global()
def state_label(state: str) -> str:
    """A campaign state in the reader's language."""
    return str(STATE_LABELS.get(state, state))


@bp.app_template_global()
def campaign_phase(campaign: Campaign) -> str:
    """The campaign's state as its readers see it now (campaigns.phase)."""
    return campaigns.phase(campaign, utcnow())


@bp.app_template_global()
def language_name(code: str) -> str:
    """A language's name in the reader's language, e.g. "français" -> "French" in English."""
    try:
        name = Locale.parse(code).get_display_name(get_locale() or "en")
    except (ValueError, UnknownLocaleError):
        return code
    return str(name or code)


@bp.app_template_global()
def audit_field(field: str) -> str:
    """An audit entry's field in the reader's language; "" for one without a label."""
    return str(AUDIT_FIELD_LABELS.get(field, ""))


@bp.app_template_global()
def audit_value(value: object, field: str = "") -> str:
    """One value of an audit entry as a person reads it: times to the minute, long text cut,
    yes/no, a status and the mark of erased data in the reader's language."""
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    text = str(value)
    if text == _ERASED_MARK:
        return str(_("[erased]"))
    if field == "status":
        return status_label(text)
    if _ISO_TIME.match(text):
        return text[:16].replace("T", " ")
    return text if len(text) <= 160 else text[:157] + "..."


@bp.app_template_global()
def has_endpoint(endpoint: str) -> bool:
    """Whether the app serves this endpoint (links to pages other helpers may not have added)."""
    return endpoint in current_app.view_functions


@bp.app_template_global()
def country_name(code: str) -> str:
    """A country's name from its alpha-2 code, in the reader's language.

    The template context's own (i18n.template_context) is the same; this global serves the
    macros imported without context (admin/_signature_bits.html).
    """
    return i18n.country_name(code)


# --- login -----------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: rate("LOGIN_RATE_LIMIT"), methods=["POST"])
def login() -> Response | tuple[str, int]:
    """The login form; success starts a fresh session and goes to `next` or the dashboard."""
    target = request.args.get("next")
    if not auth.is_safe_next(target):
        target = None
    form = LoginForm()
    if current_organizer() is not None and request.method == "GET":
        return redirect(target or url_for("admin.index"))
    failed = False
    if form.validate_on_submit():
        db = get_session()
        organizer = auth.authenticate(
            db,
            form.email.data or "",
            form.password.data or "",
            now=utcnow(),
            max_failures=int(current_app.config["LOGIN_MAX_FAILURES"]),
            lockout_seconds=int(current_app.config["LOGIN_LOCKOUT_SECONDS"]),
        )
        if organizer is not None:
            auth.login(db, organizer)
        db.commit()  # the session's row, or the failure count: it is what locks a guessed account
        if organizer is not None:
            return redirect(target or url_for("admin.index"), code=303)
        failed = True
    status = 200 if request.method == "GET" or failed else 400
    return render_template(
        "admin/login.html", form=form, failed=LOGIN_FAILED if failed else None, next=target
    ), status


@bp.post("/logout")
def logout() -> Response:
    """End the session (POST only, CSRF-protected, so a link cannot log anyone out)."""
    db = get_session()
    auth.logout(db)
    db.commit()
    flash(_("You are logged out."), "ok")
    return _see_other("admin.login")


# --- forgot your password ---------------------------------------------------


@bp.route("/password-reset", methods=["GET", "POST"])
@limiter.limit(lambda: rate("PASSWORD_RESET_RATE_LIMIT"), methods=["POST"])
def password_reset() -> Response | tuple[str, int]:
    """Ask for a reset link by mail; every address gets the same answer (no enumeration)."""
    form = PasswordResetRequestForm()
    if form.validate_on_submit():
        db = get_session()
        organizer = resets.claim_mail(
            db,
            form.email.data or "",
            now=utcnow(),
            interval_seconds=int(current_app.config["PASSWORD_RESET_MAIL_INTERVAL_SECONDS"]),
        )
        if organizer is not None:
            _queue_reset_mail(db, organizer)
        db.commit()
        return _see_other("admin.password_reset_sent")
    status = 400 if form.is_submitted() and form.errors else 200
    return render_template("admin/password_reset.html", form=form), status


def _queue_reset_mail(db: Session, organizer: Organizer) -> None:
    """Queue the mail with the reset link, in the language of the page it was asked on."""
    token = resets.make_token(str(current_app.config["SECRET_KEY"]), organizer)
    # On BASE_URL like every link in mail (never on a spoofed Host header: hosts.py).
    link = mail.links_on(current_app, mail.link_base())(
        "admin.password_reset_link", {"token": token}
    )
    text = render_template("email/password_reset.txt", organizer=organizer, link=link)
    mail.queue(db, to=organizer.email, subject=_("Reset your password"), text=text)


@bp.get("/password-reset/sent")
def password_reset_sent() -> str:
    """What everyone who asked for a reset link reads, whether the address has an account or not."""
    return render_template("admin/password_reset_sent.html")


@bp.route("/password-reset/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: rate("LOGIN_RATE_LIMIT"), methods=["POST"])
def password_reset_link(token: str) -> Response | tuple[str, int]:
    """A mailed reset link: GET shows the form and changes nothing; POST sets the password."""
    db = get_session()
    try:
        organizer = resets.read_token(
            db,
            str(current_app.config["SECRET_KEY"]),
            token,
            int(current_app.config["PASSWORD_RESET_MAX_AGE_SECONDS"]),
            for_update=request.method == "POST",
        )
    except resets.ExpiredResetToken:
        return _bad_reset_link(_("This link has expired."))
    except resets.BadResetToken:
        return _bad_reset_link(
            _(
                "This link is not valid: it has already been used, or it was not copied "
                "whole from the mail."
            )
        )
    form = PasswordResetForm()
    if form.validate_on_submit():
        try:
            auth.reset_password(db, organizer, form.new_password.data or "")
        except auth.AccountError as error:
            db.rollback()
            form.new_password.errors = [*form.new_password.errors, str(error)]
        else:
            db.commit()
            flash(_("Your password is changed. Log in with it."), "ok")
            return _see_other("admin.login")
    status = 400 if form.is_submitted() and form.errors else 200
    return render_template("admin/password_reset_form.html", form=form, token=token), status


def _bad_reset_link(reason: str) -> tuple[str, int]:
    """The page of a reset link that cannot be used, with the way to ask for a new one."""
    return render_template("admin/password_reset_bad_link.html", reason=reason), 400


# --- your account ----------------------------------------------------------


@bp.route("/account", methods=["GET", "POST"])
@limiter.limit(lambda: rate("LOGIN_RATE_LIMIT"), methods=["POST"])
@login_required
def account() -> Response | tuple[str, int]:
    """Who is logged in, their password, and logging out everywhere."""
    organizer = _organizer()
    form = PasswordChangeForm()
    if form.validate_on_submit():
        db = get_session()
        try:
            auth.change_password(
                db, organizer, form.current_password.data or "", form.new_password.data or ""
            )
        except auth.WrongPassword:
            db.rollback()
            form.current_password.errors = [
                *form.current_password.errors,
                _("The current password is wrong."),
            ]
        except auth.AccountError as error:
            db.rollback()
            form.new_password.errors = [*form.new_password.errors, str(error)]
        else:
            auth.login(db, organizer)  # this device goes on, in a new session
            db.commit()
            flash(_("Your password is changed. Every other session of yours is logged out."), "ok")
            return see_other_at_top("admin.account")
    status = 400 if form.is_submitted() and form.errors else 200
    return render_template(
        "admin/account.html",
        form=form,
        everywhere_form=PostForm(formdata=None),
        digest_form=DigestForm(formdata=None, data={"daily_summary": organizer.digest}),
        sessions=auth.open_sessions(get_session(), organizer),
        this_session=auth.current_login_session(),
        session_lifetime=_session_lifetime(),
    ), status


def _session_lifetime() -> str:
    """How long a session lasts after its login, in words ("12 hours")."""
    seconds = int(current_app.permanent_session_lifetime.total_seconds())
    if seconds % 3600 == 0:
        return ngettext("%(num)d hour", "%(num)d hours", seconds // 3600)
    return ngettext("%(num)d minute", "%(num)d minutes", max(1, seconds // 60))


@bp.app_template_global()
def device_name(login: LoginSession) -> str:
    """A session's device as the account page names it ("Firefox on Windows")."""
    if login.browser and login.system:
        return str(_("%(browser)s on %(system)s", browser=login.browser, system=login.system))
    return login.browser or login.system or str(_("Unknown device"))


@bp.post("/account/digest")
@login_required
def account_digest() -> Response:
    """Turn the daily summary mail of one's letters on or off."""
    form = DigestForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    wanted = bool(form.daily_summary.data)
    changed = digest.set_choice(db, _organizer(), wanted, i18n.current())
    db.commit()
    if not changed:
        flash(_("Nothing changed."), "ok")
    elif wanted:
        flash(_("You will get a daily summary of your letters by mail."), "ok")
    else:
        flash(_("You will no longer get a daily summary by mail."), "ok")
    return _see_other("admin.account", _anchor="digest")


@bp.post("/account/logout-everywhere")
@login_required
def logout_everywhere() -> Response:
    """End every session of the logged-in organizer, on every device, this one too."""
    db = get_session()
    auth.log_out_everywhere(db, _organizer())
    auth.logout(db)
    db.commit()
    flash(_("You are logged out everywhere: on this device and every other."), "ok")
    return _see_other("admin.login")


@bp.post("/account/sessions/<int:session_id>/end")
@login_required
def end_session(session_id: int) -> Response:
    """End one other session of the logged-in organizer's: another device is logged out."""
    this = auth.current_login_session()
    if this is not None and this.id == session_id:
        flash(_("This is the session you are using: to end it, log out."), "error")
        return _see_other("admin.account", _anchor="sessions")
    db = get_session()
    ended = auth.end_session(db, _organizer(), session_id)
    db.commit()
    if ended is None:
        # The same answer for another organizer's session: whether it exists is not told.
        flash(_("You have no such session: it may have ended already."), "error")
    else:
        flash(
            _(
                "The session on %(device)s, logged in %(when)s UTC, is ended.",
                device=device_name(ended),
                when=ended.created_at.strftime("%Y-%m-%d %H:%M"),
            ),
            "ok",
        )
    return _see_other("admin.account", _anchor="sessions")


# --- campaigns -------------------------------------------------------------


@bp.get("/")
@login_required
def index() -> str:
    """The organizer's campaigns with their counts per status."""
    db = get_session()
    organizer = _organizer()
    visible = auth.visible_campaigns(db, organizer)
    counts = tally.status_counts(db, [c.id for c in visible])
    return render_template(
        "admin/index.html",
        campaigns=visible,
        counts=counts,
        statuses=SIGNATURE_STATUSES,
        organizer=organizer,
    )


def _campaign_values(form: CampaignForm) -> dict[str, Any]:
    """The form's values as create_campaign/update_campaign take them (times in UTC)."""

    def utc(value: dt.datetime | None) -> dt.datetime | None:
        return value.replace(tzinfo=dt.UTC) if value is not None else None

    return {
        "slug": form.slug.data or "",
        "title": form.title.data or "",
        "letter": (form.letter.data or "").replace("\r\n", "\n"),
        "recipient": form.recipient.data or "",
        "goal": form.goal.data,
        "opens_at": utc(form.opens_at.data),
        "closes_at": utc(form.closes_at.data),
        "state": form.state.data or "draft",
        "require_confirmation": bool(form.require_confirmation.data),
    }


def _campaign_error(form: CampaignForm, error: campaigns.CampaignError) -> None:
    """Put a service refusal beside the field it is about."""
    message = str(error)
    if "another letter had it" in message:
        form.slug.errors = [
            *form.slug.errors,
            _("Another letter had that address before; its links still lead there."),
        ]
    elif "slug" in message:
        form.slug.errors = [*form.slug.errors, _("That address is taken or not allowed.")]
    elif "close" in message:
        form.closes_at.errors = [*form.closes_at.errors, message]
    else:
        form.title.errors = [*form.title.errors, message]


@bp.route("/campaigns/new", methods=["GET", "POST"])
@login_required
def new_campaign() -> Response | tuple[str, int]:
    """Create a campaign; its creator becomes one of its organizers."""
    form = CampaignForm()
    preview: Markup | None = None
    if form.is_submitted() and form.preview.data:
        form.validate()
        preview = markup.render_markdown(form.letter.data or "")
    elif form.validate_on_submit():
        db = get_session()
        organizer = _organizer()
        try:
            created = campaigns.create_campaign(db, **_campaign_values(form))
        except campaigns.CampaignError as error:
            db.rollback()
            _campaign_error(form, error)
        else:
            auth.add_to_campaign(db, organizer, created)
            audit.record(
                db, organizer, "campaign.create", campaign=created, after=_campaign_values(form)
            )
            db.commit()
            flash(_("Campaign created."), "ok")
            return _see_other("admin.edit_campaign", slug=created.slug)
    status = 400 if form.is_submitted() and form.errors else 200
    return render_template("admin/campaign_form.html", form=form, preview=preview), status


def _campaign_fields(campaign: Campaign) -> dict[str, Any]:
    return {
        "slug": campaign.slug,
        "title": campaign.title,
        "letter": campaign.letter,
        "recipient": campaign.recipient,
        "goal": campaign.goal,
        "opens_at": campaign.opens_at,
        "closes_at": campaign.closes_at,
        "state": campaign.state,
        "require_confirmation": campaign.require_confirmation,
        "letter_version": campaign.letter_version,
    }


def _translation_forms(campaign: Campaign) -> dict[str, TranslationForm]:
    """One form per configured language other than English, filled from what is stored."""
    stored = {t.locale: t for t in campaign.translations}
    forms = {}
    for locale in current_app.config["LANGUAGES"]:
        if locale == "en":
            continue
        existing = stored.get(locale)
        forms[locale] = TranslationForm(
            prefix=f"tr-{locale}",
            formdata=None,
            title=existing.title if existing else "",
            letter=existing.letter if existing else "",
        )
    return forms


def _new_version_message(signers: int, version: int) -> str:
    """What saving a changed text that people signed does to them, in the reader's language."""
    return str(
        ngettext(
            "%(num)d person signed the current text. Saving makes a new version; they stay "
            "recorded as signers of version %(version)d.",
            "%(num)d people signed the current text. Saving makes a new version; they stay "
            "recorded as signers of version %(version)d.",
            signers,
            version=version,
        )
    )


def _rule_moved_message(moved: int, require_confirmation: bool) -> str:
    """What a changed confirmation rule did to the signatures nobody confirmed by mail."""
    if require_confirmation:
        # They never had a confirmation link (a receipt instead): the list's "resend" sends it.
        return ngettext(
            "%(num)d signature that counted without confirmation now waits for it; the "
            "signatures list can send the confirmation mail.",
            "%(num)d signatures that counted without confirmation now wait for it; the "
            "signatures list can send them the confirmation mail.",
            moved,
        )
    return ngettext(
        "%(num)d signature that was waiting for confirmation counts now.",
        "%(num)d signatures that were waiting for confirmation count now.",
        moved,
    )


def _refuse_new_version(field: Any, refusal: campaigns.NewVersionNeeded) -> None:
    """The save changed a text people signed without the tick: say so beside the tick box."""
    field.errors = [*field.errors, _new_version_message(refusal.signers, refusal.version)]


def _version_field(moved: bool, version: int) -> dict[str, int]:
    """The audit's letter_version, when the save moved it."""
    return {"letter_version": version} if moved else {}


def _flash_new_version(campaign: Campaign) -> None:
    flash(_("The text is now version %(version)d.", version=campaign.letter_version), "ok")


def _edit_page(
    campaign: Campaign,
    form: CampaignForm,
    *,
    preview: Markup | None = None,
    translations: dict[str, TranslationForm] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The campaign's settings, letter, translations and versions of its text."""
    versions = campaigns.versions(get_session(), campaign)
    return render_template(
        "admin/campaign_form.html",
        form=form,
        campaign=campaign,
        preview=preview,
        translations=translations if translations is not None else _translation_forms(campaign),
        versions=versions,
        # Someone signed the current text: a change to it asks for the tick, saying this.
        version_note=_new_version_message(versions[-1].signers, campaign.letter_version)
        if versions[-1].signers
        else None,
    ), status


@bp.route("/c/<slug>/edit", methods=["GET", "POST"])
@login_required
def edit_campaign(slug: str) -> Response | tuple[str, int]:
    """Change a campaign's settings and letter, with a preview; its translations below.

    A changed title or letter that people signed becomes a new version of the text, and
    only with the form's tick (campaigns.update_campaign).
    """
    campaign = auth.campaign_or_404(slug)
    before = _campaign_fields(campaign)
    form = CampaignForm(obj=campaign)
    preview: Markup | None = None
    if form.is_submitted() and form.preview.data:
        form.validate()
        preview = markup.render_markdown(form.letter.data or "")
    elif form.validate_on_submit():
        db = get_session()
        values = _campaign_values(form)
        organizer = _organizer()
        try:
            campaigns.update_campaign(
                db, campaign, by=organizer, new_version=bool(form.new_version.data), **values
            )
        except campaigns.NewVersionNeeded as refusal:
            db.rollback()
            _refuse_new_version(form.new_version, refusal)
        except campaigns.CampaignError as error:
            db.rollback()
            _campaign_error(form, error)
        else:
            after = _campaign_fields(campaign)
            changed = [key for key in after if after[key] != before[key]]
            if changed:
                audit.record(
                    db,
                    organizer,
                    "campaign.update",
                    campaign=campaign,
                    before={key: before[key] for key in changed},
                    after={key: after[key] for key in changed},
                )
            campaign_id = campaign.id
            db.commit()
            moved = 0
            if "require_confirmation" in changed:
                # The signatures the rule decides move once it has committed (rederive).
                moved = campaigns.rederive(db, campaign_id)
                db.commit()
            flash(_("Campaign saved."), "ok")
            if moved:
                flash(_rule_moved_message(moved, campaign.require_confirmation), "ok")
            if after["letter_version"] != before["letter_version"]:
                _flash_new_version(campaign)
            return _see_other("admin.edit_campaign", slug=campaign.slug)
    status = 400 if form.is_submitted() and form.errors else 200
    return _edit_page(campaign, form, preview=preview, status=status)


def _translatable_or_404(locale: str) -> None:
    """404 unless the locale is one of the configured languages a letter is translated into."""
    if locale == "en" or locale not in current_app.config["LANGUAGES"]:
        abort(404)


@bp.get("/c/<slug>/translations/<locale>")
@login_required
def translation(slug: str, locale: str) -> Response:
    """The translation's section of the edit page (its form posts here: a reload asks here)."""
    auth.campaign_or_404(slug)
    _translatable_or_404(locale)
    return _see_other("admin.edit_campaign", slug=slug, _anchor=f"tr-{locale}")


@bp.post("/c/<slug>/translations/<locale>")
@login_required
def save_translation(slug: str, locale: str) -> Response | tuple[str, int]:
    """Add, change or (both fields empty) remove the letter in one language."""
    campaign = auth.campaign_or_404(slug)
    _translatable_or_404(locale)
    form = TranslationForm(prefix=f"tr-{locale}")
    if form.validate():
        db = get_session()
        organizer = _organizer()
        version = campaign.letter_version
        title = form.title.data or ""
        letter = (form.letter.data or "").replace("\r\n", "\n").strip()
        try:
            before, after = campaigns.save_translation(
                db,
                campaign,
                locale,
                title,
                letter,
                by=organizer,
                new_version=bool(form.new_version.data),
            )
        except campaigns.NewVersionNeeded as refusal:
            db.rollback()
            _refuse_new_version(form.new_version, refusal)
        except IntegrityError:
            # Another organizer added this language a moment ago: theirs stands.
            db.rollback()
            flash(_("Someone else saved this translation first; check it and try again."), "error")
            return _see_other("admin.edit_campaign", slug=slug, _anchor=f"tr-{locale}")
        else:
            moved = campaign.letter_version != version
            if before != after:
                audit.record(
                    db,
                    organizer,
                    "campaign.translation",
                    campaign=campaign,
                    before={"locale": locale} | before | _version_field(moved, version),
                    after={"locale": locale}
                    | after
                    | _version_field(moved, campaign.letter_version),
                )
                db.commit()
            flash(_("Translation saved."), "ok")
            if moved:
                _flash_new_version(campaign)
            return _see_other("admin.edit_campaign", slug=slug, _anchor=f"tr-{locale}")
    forms = _translation_forms(campaign)
    forms[locale] = form
    return _edit_page(
        campaign, CampaignForm(obj=campaign, formdata=None), translations=forms, status=400
    )


@bp.get("/c/<slug>/letter/versions/<int:number>")
@login_required
def letter_version(slug: str, number: int) -> Response | str:
    """A replaced version of the letter: its title and text in each language it had."""
    campaign = auth.campaign_or_404(slug)
    if number == campaign.letter_version:
        return _see_other("admin.letter", slug=campaign.slug)
    db = get_session()
    texts = campaigns.version_texts(db, campaign, number)
    if not texts:
        abort(404)
    return render_template(
        "admin/letter_version.html",
        campaign=campaign,
        number=number,
        texts=[(text, markup.render_markdown(text.letter)) for text in texts],
        signers=campaigns.signers_of_version(db, campaign, number),
    )


# --- signatures ------------------------------------------------------------


_FILTER_KEYS = ("status", "country", "continent", "verified", "held", "source")


def _list_args() -> dict[str, str]:
    """The list's filters, sort and page as they arrived, for links that keep them (not the
    ones the list ignores, export.unknown_filters, so that the export link exports what the
    list shows)."""
    keys = ("q", *_FILTER_KEYS, "sort", "dir")
    ignored = export.unknown_filters(request.args)
    return {
        key: value
        for key in keys
        if key not in ignored and (value := request.args.get(key, "").strip())
    }


def _known_total(flt: export.SignatureFilter, counts: dict[str, int]) -> int | None:
    """How many signatures the filter keeps, when the counts shown beside the list say it.

    The whole list and one status are the status counts; the counted ones are the confirmed
    (tally.status_counts). Anything else is counted by the list.
    """
    rest = dataclasses.replace(flt, status="")
    if rest != export.SignatureFilter():
        return None
    if not flt.status:
        return sum(counts.values())
    return counts.get("confirmed" if flt.status == "counted" else flt.status)


@bp.get("/c/<slug>/signatures")
@login_required
def signatures(slug: str) -> str:
    """The signatures: search, filters, sorting, 50 a page, counts per status, bulk actions."""
    campaign = auth.campaign_or_404(slug)
    db = get_session()
    flt = export.from_args(request.args)
    sort = request.args.get("sort", "signed_at")
    if sort not in review.SORTS:
        sort = "signed_at"
    descending = request.args.get("dir", "desc" if sort == "signed_at" else "asc") != "asc"
    counts = tally.status_counts(db, [campaign.id])[campaign.id]
    page = review.list_signatures(
        db,
        campaign,
        lambda stmt: export.apply(stmt, flt),
        sort=sort,
        descending=descending,
        page=_page_arg(),
        total=_known_total(flt, counts),
    )
    return render_template(
        "admin/signatures.html",
        campaign=campaign,
        page=page,
        flt=flt,
        sort=sort,
        descending=descending,
        args=_list_args(),
        counts=counts,
        counted=counts["confirmed"],  # the counted ones (tally.status_counts)
        form=BulkActionForm(formdata=None, data=_kept_selection()),
        statuses=export.STATUS_CHOICES,
        # Every known country, those no one may choose now too: stored rows stay findable.
        countries=geo.country_choices(i18n.current(), signable=False),
        continents=sorted(
            geo.CONTINENTS.items(), key=lambda item: geo.sort_key(i18n.continent_name(item[0]))
        ),
        sources=SOURCES,
        ignored=[
            str(_(message, **values))
            for message, values in export.unknown_filters(request.args).values()
        ],
    )


def _signature_or_404(campaign: Campaign, signature_id: int) -> Signature:
    signature = get_session().get(Signature, signature_id)
    if signature is None or signature.campaign_id != campaign.id:
        abort(404)
    return signature


def _act(db: Session, organizer: Organizer, signature: Signature, action: str, reason: str) -> None:
    """Run one review action; ReviewError when it does not apply to the signature."""
    if action == "verify":
        review.verify(db, organizer, signature)
    elif action == "unverify":
        review.unverify(db, organizer, signature)
    elif action == "reject":
        review.reject(db, organizer, signature, reason)
    elif action == "restore":
        review.restore(db, organizer, signature)
    elif action == "resend":
        review.resend_confirmation(
            db, organizer, signature, lambda s: mail.queue_confirmation(db, s)
        )
    elif action == "erase":
        review.erase(db, organizer, signature)
    elif action == "unlist":
        review.unlist(db, organizer, signature)
    else:
        raise review.ReviewError("bad_choice")


def _flash_outcome(action: str, done: int, skipped: Counter[str]) -> None:
    if done:
        # Counts as the reader's language writes them ("1,234", "1 234").
        flash(str(DONE[action] % {"n": format_number(done)}), "ok")
    for code, n in sorted(skipped.items()):
        flash(
            _("Skipped %(n)s: %(why)s.", n=format_number(n), why=SKIPPED.get(code, code)),
            "error" if not done else "ok",
        )


def _form_errors(form: Any) -> None:
    for errors in form.errors.values():
        for error in errors:
            flash(str(error), "error")


@bp.get("/c/<slug>/signatures/<int:signature_id>")
@login_required
def signature(slug: str, signature_id: int) -> str:
    """One signature in full: details, possible duplicates, actions and its audit trail."""
    campaign = auth.campaign_or_404(slug)
    found = _signature_or_404(campaign, signature_id)
    return _signature_page(campaign, found, _details_form(found))


def _details_form(found: Signature) -> SignatureDetailsForm:
    """The correction form, filled with the signature's details as stored."""
    return SignatureDetailsForm(
        formdata=None,
        data={
            "name": found.name,
            "title": found.title,
            "parliament": found.parliament,
            "party": found.party,
            "country": found.country_code,
        },
    )


def _signature_page(
    campaign: Campaign, found: Signature, details_form: SignatureDetailsForm
) -> str:
    """The signature's page, with the correction form as given (stored or as posted)."""
    db = get_session()
    resembling = list(
        db.scalars(
            select(Signature)
            .where(Signature.duplicate_of_id == found.id, Signature.campaign_id == campaign.id)
            .order_by(Signature.id)
        )
    )
    trail = list(
        db.scalars(
            select(AuditEntry)
            .where(AuditEntry.signature_id == found.id)
            .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
            .limit(100)
        )
    )
    return render_template(
        "admin/signature.html",
        campaign=campaign,
        sig=found,
        resembling=resembling,
        trail=trail,
        changes=audit.changes,
        form=SignatureActionForm(formdata=None),
        duplicate_form=DuplicateForm(formdata=None),
        details_form=details_form,
        continent=i18n.continent_name(found.continent_code),
        title_suggestions=i18n.title_suggestions(signing.TITLE_SUGGESTIONS),
    )


@bp.route("/c/<slug>/signatures/<int:signature_id>/details", methods=["GET", "POST"])
@login_required
def edit_details(slug: str, signature_id: int) -> Response | tuple[str, int]:
    """Correct a signer's details (not the address); the page again, 400, when refused.

    GET (a reloaded or bookmarked address) goes to the form on the signature's page,
    unfolded (?edit=details).
    """
    campaign = auth.campaign_or_404(slug)
    found = _signature_or_404(campaign, signature_id)
    back = {"slug": slug, "signature_id": signature_id}
    if request.method == "GET":
        return _see_other("admin.signature", **back, edit="details", _anchor="edit-details")
    if found.erased_at is not None:
        flash(_("Nothing changed: %(why)s.", why=SKIPPED["erased"]), "error")
        return see_other_at_top("admin.signature", **back)
    form = SignatureDetailsForm()
    if not form.validate():
        return _signature_page(campaign, found, form), 400
    details = review.Details(
        name=form.name.data,
        title=form.title.data,
        parliament=form.parliament.data,
        party=form.party.data,
        country_code=form.country.data,
    )
    db = get_session()
    try:
        edited = review.edit(db, _organizer(), found, details)
    except review.ReviewError as error:
        db.rollback()
        flash(_("Nothing changed: %(why)s.", why=SKIPPED.get(error.code, error.code)), "error")
    else:
        db.commit()
        _flash_edited(edited)
    return see_other_at_top("admin.signature", **back)


def _flash_edited(edited: review.Edited) -> None:
    """What a correction did: the details, and any change to the duplicate flags."""
    if not edited.changed:
        flash(_("Nothing changed."), "ok")
        return
    fields = ", ".join(str(DETAIL_LABELS[key]) for key in edited.changed)
    flash(_("Details corrected: %(fields)s.", fields=fields), "ok")
    if edited.released_from is not None:
        flash(
            _(
                "It no longer resembles #%(other)d (name and country): the possible-duplicate "
                "flag between them is removed.",
                other=edited.released_from,
            ),
            "ok",
        )
    if edited.resembles is not None:
        flash(
            _(
                "It now resembles #%(other)d (same name and country): it is held as a "
                "possible duplicate and does not count until you decide on the duplicates page.",
                other=edited.resembles,
            ),
            "ok",
        )
    if edited.still_held:
        flash(
            _(
                "Held as resembling this signature, though they no longer do: %(ids)s. They "
                "stay held until you decide on the duplicates page.",
                ids=", ".join(f"#{sid}" for sid in edited.still_held),
            ),
            "ok",
        )


@bp.post("/c/<slug>/signatures/<int:signature_id>")
@login_required
def act(slug: str, signature_id: int) -> Response:
    """Apply one action to one signature."""
    campaign = auth.campaign_or_404(slug)
    found = _signature_or_404(campaign, signature_id)
    form = SignatureActionForm()
    if not form.validate():
        _form_errors(form)
        return _see_other("admin.signature", slug=slug, signature_id=signature_id)
    db = get_session()
    action = form.action.data or ""
    try:
        _act(db, _organizer(), found, action, form.reason.data or "")
    except review.ReviewError as error:
        db.rollback()
        _flash_outcome(action, 0, Counter([error.code]))
    else:
        db.commit()
        if action == "restore" and found.status == "held" and found.duplicate_of_id:
            # Back on the letter beside a namesake: it waits for a decision, it does not count.
            flash(
                _(
                    "Restored, and held: it resembles #%(other)d. Decide on the duplicates"
                    " page whether it counts.",
                    other=found.duplicate_of_id,
                ),
                "ok",
            )
        else:
            _flash_outcome(action, 1, Counter())
    return _see_other("admin.signature", slug=slug, signature_id=signature_id)


def _selection_args(form: BulkActionForm) -> dict[str, str]:
    """A refused bulk action's ticks and action, for the list to show them again."""
    ids = [i for i in form.ids.data or [] if isinstance(i, int)][: review.PER_PAGE]
    kept = {"ticked": ",".join(map(str, ids))} if ids else {}
    if form.action.data in ACTIONS:
        kept["action"] = form.action.data
    return kept


def _kept_selection() -> dict[str, Any]:
    """The ticks and action _selection_args carried back, as the bulk form's data."""
    ticked = request.args.get("ticked", "").split(",")
    action = request.args.get("action", "")
    return {
        "ids": [int(i) for i in ticked if i.isascii() and i.isdigit()],
        "action": action if action in ACTIONS else None,
    }


@bp.post("/c/<slug>/signatures/bulk")
@login_required
def bulk(slug: str) -> Response:
    """Apply one action to every ticked signature; the ones it does not fit are skipped."""
    campaign = auth.campaign_or_404(slug)
    form = BulkActionForm()
    back = {k: v for k, v in request.args.items() if k in (*_list_args(), "page")}
    if not form.validate():
        _form_errors(form)
        return _see_other("admin.signatures", slug=slug, **back, **_selection_args(form))
    db = get_session()
    organizer = _organizer()
    action = form.action.data or ""
    ids = sorted(set(form.ids.data or []))
    # Only this campaign's signatures: an id from another campaign is as good as absent.
    rows = {
        s.id: s
        for s in db.scalars(
            select(Signature).where(Signature.id.in_(ids), Signature.campaign_id == campaign.id)
        )
    }
    done, skipped = 0, Counter[str]()
    for signature_id in ids:
        found = rows.get(signature_id)
        if found is None:
            skipped["gone"] += 1
            continue
        try:
            _act(db, organizer, found, action, form.reason.data or "")
        except review.ReviewError as error:
            skipped[error.code] += 1
        else:
            done += 1
    db.commit()
    _flash_outcome(action, done, skipped)
    return _see_other("admin.signatures", slug=slug, **back)


# --- duplicates ------------------------------------------------------------


@bp.get("/c/<slug>/duplicates")
@login_required
def duplicates(slug: str) -> str:
    """Held signatures, each beside the one it resembles, with the three decisions."""
    campaign = auth.campaign_or_404(slug)
    rows, total = review.held_duplicates(get_session(), campaign, page=_page_arg())
    return render_template(
        "admin/duplicates.html",
        campaign=campaign,
        rows=rows,
        total=total,
        page=_page_arg(),
        pages=max(1, -(-total // review.PER_PAGE)),
        form=DuplicateForm(formdata=None),
    )


@bp.post("/c/<slug>/duplicates/<int:signature_id>")
@login_required
def resolve(slug: str, signature_id: int) -> Response:
    """Settle one possible duplicate; the tally follows in the same transaction."""
    campaign = auth.campaign_or_404(slug)
    held = _signature_or_404(campaign, signature_id)
    form = DuplicateForm()
    if not form.validate():
        _form_errors(form)
        return _see_other("admin.duplicates", slug=slug)
    db = get_session()
    keep = form.keep.data
    try:
        done = review.resolve_duplicate(
            db,
            _organizer(),
            held,
            "both" if keep == "both" else "this" if keep == "this" else "other",
        )
    except review.ReviewError as error:
        db.rollback()
        if error.code == "other_gone":
            message = _(
                "Signature #%(id)d: nothing done, the signature it resembles no longer counts;"
                " keep this one, or restore #%(other)d first.",
                id=signature_id,
                other=held.duplicate_of_id or 0,
            )
        else:
            message = _(
                "Signature #%(id)d: nothing done, %(why)s.",
                id=signature_id,
                why=SKIPPED.get(error.code, error.code),
            )
        flash(message, "error")
    else:
        db.commit()
        flash(*_resolved_message(done, keep))
    return _see_other("admin.duplicates", slug=slug)


def _resolved_message(done: review.Resolution, keep: str) -> tuple[str, str]:
    """The flash, and its category, after a possible duplicate was settled."""
    this, other = done.this, done.other
    if done.gone is not None and other is not None:
        return _(
            "#%(gone)d, which #%(id)d resembled, no longer counts: #%(id)d now resembles"
            " #%(other)d. Compare the two again.",
            gone=done.gone.id,
            id=this.id,
            other=other.id,
        ), "error"
    if other is None:
        # Held as part of a burst (suspicious activity), or its namesake left the letter.
        if done.gone is None and this.duplicate_of_id is None:
            return _("#%(id)d is no longer held.", id=this.id), "ok"
        return _("Kept #%(kept)d.", kept=this.id), "ok"
    if keep == "both":
        if this.status == "pending":
            return _(
                "#%(a)d and #%(b)d are different people: #%(a)d counts once its address is"
                " confirmed.",
                a=this.id,
                b=other.id,
            ), "ok"
        return _("#%(a)d and #%(b)d both count.", a=this.id, b=other.id), "ok"
    kept = this if keep == "this" else other
    if done.rejected is None:
        return _("Kept #%(kept)d.", kept=kept.id), "ok"
    return _(
        "Kept #%(kept)d; #%(dropped)d rejected as its duplicate.",
        kept=kept.id,
        dropped=done.rejected.id,
    ), "ok"


# --- audit -----------------------------------------------------------------


@bp.get("/c/<slug>/audit")
@login_required
def campaign_audit(slug: str) -> str:
    """The campaign's audit trail, newest first."""
    campaign = auth.campaign_or_404(slug)
    return _audit_page(campaign)


@bp.get("/audit")
@admin_required
def all_audit() -> str:
    """Every audit entry, newest first (admins)."""
    return _audit_page(None)


def _audit_page(campaign: Campaign | None) -> str:
    page = _page_arg()
    rows, total = audit.entries(get_session(), campaign, page=page, per_page=review.PER_PAGE)
    return render_template(
        "admin/audit.html",
        campaign=campaign,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // review.PER_PAGE)),
        changes=audit.changes,
    )


# --- organizers ------------------------------------------------------------


@bp.route("/organizers", methods=["GET", "POST"])
@admin_required
def organizers() -> Response | tuple[str, int]:
    """Every organizer, and the form to add one."""
    db = get_session()
    form = OrganizerCreateForm()
    if form.validate_on_submit():
        try:
            created = auth.create_organizer(
                db,
                form.email.data or "",
                form.password.data or "",
                name=form.name.data or "",
                is_admin=bool(form.is_admin.data),
            )
        except auth.AccountError:
            db.rollback()
            form.email.errors = [*form.email.errors, _("An organizer has this address already.")]
        else:
            audit.record(
                db,
                _organizer(),
                "organizer.create",
                after={"organizer": created.email, "is_admin": created.is_admin},
            )
            db.commit()
            flash(_("Organizer %(email)s created.", email=created.email), "ok")
            return see_other_at_top("admin.organizer", organizer_id=created.id)
    people = list(db.scalars(select(Organizer).order_by(Organizer.email)))
    status = 400 if form.is_submitted() and form.errors else 200
    return render_template("admin/organizers.html", form=form, people=people), status


def _organizer_or_404(db: Session, organizer_id: int) -> Organizer:
    person = db.get(Organizer, organizer_id)
    if person is None:
        abort(404)
    return person


def _organizer_form(
    person: Organizer, everything: list[Campaign], *, posted: bool
) -> OrganizerForm:
    """The form of one organizer: as posted, or filled from what is stored."""
    if posted:
        form = OrganizerForm()
    else:
        # No obj=: its `campaigns` (Campaign objects) would win over these ids.
        form = OrganizerForm(
            formdata=None,
            data={
                "name": person.name,
                "is_admin": person.is_admin,
                "active": person.active,
                "campaigns": [c.id for c in person.campaigns],
            },
        )
    form.campaigns.choices = [SelectChoice(c.id, f"{c.title} ({c.slug})") for c in everything]
    return form


def _all_campaigns(db: Session) -> list[Campaign]:
    return list(db.scalars(select(Campaign).order_by(Campaign.title, Campaign.id)))


@bp.route("/organizers/<int:organizer_id>", methods=["GET", "POST"])
@admin_required
def organizer(organizer_id: int) -> Response | tuple[str, int]:
    """One organizer: name, admin role, active, the campaigns they run, a new password."""
    db = get_session()
    person = _organizer_or_404(db, organizer_id)
    everything = _all_campaigns(db)
    form = _organizer_form(person, everything, posted=request.method == "POST")
    if form.validate_on_submit():
        chosen = set(form.campaigns.data or [])
        try:
            auth.update_organizer(
                db,
                _organizer(),
                person,
                name=form.name.data or "",
                is_admin=bool(form.is_admin.data),
                active=bool(form.active.data),
                campaigns=[c for c in everything if c.id in chosen],
            )
        except auth.AccountError:
            # One's own admin role or active state (auth.update_organizer): said at the box
            # that was unticked.
            db.rollback()
            if not form.is_admin.data:
                form.is_admin.errors = [
                    *form.is_admin.errors,
                    _("You cannot remove your own admin role."),
                ]
            if not form.active.data:
                form.active.errors = [*form.active.errors, _("You cannot deactivate yourself.")]
        else:
            db.commit()
            flash(_("Organizer saved."), "ok")
            return _see_other("admin.organizer", organizer_id=person.id)
    status = 400 if form.is_submitted() and form.errors else 200
    return render_template(
        "admin/organizer.html",
        form=form,
        password_form=OrganizerPasswordForm(prefix="pw", formdata=None),
        person=person,
    ), status


@bp.post("/organizers/<int:organizer_id>/password")
@admin_required
def organizer_password(organizer_id: int) -> Response | tuple[str, int]:
    """Give another organizer a new password; every session of theirs ends."""
    db = get_session()
    person = _organizer_or_404(db, organizer_id)
    me = _organizer()
    if person.id == me.id:
        # Here an admin could replace their password without knowing it (a left-open session).
        flash(_("Change your own password here, with your current one."), "error")
        return _see_other("admin.account", _anchor="password")
    password_form = OrganizerPasswordForm(prefix="pw")
    if password_form.validate():
        try:
            auth.set_password(db, me, person, password_form.password.data or "")
        except auth.AccountError as error:
            db.rollback()
            password_form.password.errors = [*password_form.password.errors, str(error)]
        else:
            db.commit()
            flash(
                _(
                    "New password set for %(email)s; every session of theirs is ended.",
                    email=person.email,
                ),
                "ok",
            )
            return see_other_at_top("admin.organizer", organizer_id=person.id)
    return render_template(
        "admin/organizer.html",
        form=_organizer_form(person, _all_campaigns(db), posted=False),
        password_form=password_form,
        person=person,
    ), 400


@bp.app_context_processor
def _admin_context() -> dict[str, Any]:
    """The logged-in organizer and a logout form for the admin layout."""
    if request.blueprint != "admin":
        return {}
    return {"me": current_organizer(), "logout_form": PostForm(formdata=None)}
