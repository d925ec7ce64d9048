"""Organizer pages that move data in and out: export, import, the letter for delivery."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator

from flask import (
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_template,
    url_for,
)
from flask_babel import format_number, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response
from wtforms import HiddenField, RadioField, SelectChoice
from wtforms.validators import InputRequired, Regexp

from campaign import audit, auth, campaigns, errors, export, i18n, imports, mail, signing, tally
from campaign.auth import current_organizer, login_required
from campaign.db import get_session, new_session, utcnow
from campaign.forms.admin import MAIL_LANGUAGE, SignatureAddForm
from campaign.models import Campaign, Signature
from campaign.views.admin import bp, status_label
from campaign.views.public import tally_sentence

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
    unknown = export.unknown_filters(request.args)
    if unknown:
        # A mistyped filter would otherwise export every row: say which, export nothing.
        lines = [
            _("Nothing was exported."),
            *(_(message, **values) for message, values in unknown.values()),
        ]
        return Response(
            "".join(line + "\n" for line in lines),
            status=400,
            content_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )
    signature_filter = export.from_args(request.args)
    bom = _yes("bom")
    name = export.filename(campaign, utcnow().date())
    campaign_id = campaign.id
    db = get_session()
    # Who took a copy of the signers' personal data, and which part of it.
    audit.record(
        db,
        current_organizer(),
        "signatures.export",
        campaign=campaign,
        after={"filter": export.describe(signature_filter), "bom": bom},
    )
    # Committed now: the request's session is closed at teardown, before the body is
    # sent; the body reads through its own session, chunk by chunk (see campaign.export).
    db.commit()
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    response = Response(
        _stream(app, campaign_id, signature_filter, bom), content_type="text/csv; charset=utf-8"
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


# --- import ----------------------------------------------------------------

# An upload waits between preview and apply in instance/imports/<campaign id>-<token>.csv
# (never in the session cookie); files nobody applied are removed after a day.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_STALE_SECONDS = 24 * 3600
COUNT_NOW = "count_now"
CONFIRMATION = "confirmation"


class ImportUploadForm(FlaskForm):  # type: ignore[misc]
    """The CSV file to preview."""

    file = FileField(
        _l("CSV file"),
        validators=[FileRequired(_l("Choose a CSV file."))],
        render_kw={"accept": ".csv,text/csv,text/plain"},
    )


class ImportApplyForm(FlaskForm):  # type: ignore[misc]
    """Apply a previewed upload: how the new signatures are to count."""

    token = HiddenField(validators=[InputRequired(), Regexp(_TOKEN.pattern)])
    mode = RadioField(
        _l("The imported signatures"),
        choices=[
            SelectChoice(COUNT_NOW, _l("count at once (I have checked them)")),
            SelectChoice(CONFIRMATION, _l("get a confirmation mail, and count once confirmed")),
        ],
        default=COUNT_NOW,
        validators=[InputRequired()],
    )
    locale = MAIL_LANGUAGE


def _imports_dir() -> str:
    path = os.path.join(current_app.instance_path, "imports")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _upload_path(campaign: Campaign, token: str) -> str:
    return os.path.join(_imports_dir(), f"{campaign.id}-{token}.csv")


def _remove_stale_uploads(now: float) -> None:
    """Remove previews nobody applied."""
    directory = _imports_dir()
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            if now - os.path.getmtime(path) > _STALE_SECONDS:
                os.unlink(path)
        except FileNotFoundError:
            continue  # another worker removed it first


def _refused(error: imports.ImportRefused) -> str:
    """The refusal in the reader's language."""
    return str(_(error.message, **error.values))


def _max_bytes() -> int:
    return int(current_app.config["IMPORT_MAX_BYTES"])


def _apply_form(token: str) -> ImportApplyForm:
    return ImportApplyForm(formdata=None, token=token)


def _render_upload(
    campaign: Campaign, form: ImportUploadForm, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    return render_template(
        "admin/import.html",
        campaign=campaign,
        form=form,
        error=error,
        required=imports.REQUIRED_COLUMNS,
        optional=imports.OPTIONAL_COLUMNS,
        public_words=imports.PUBLIC_WORDS,
        max_megabytes=imports.megabytes(_max_bytes()),
    ), status


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge) -> Response | tuple[str, int]:
    """An upload past the request limit (MAX_CONTENT_LENGTH): on the import page, the page
    again with the file limit; elsewhere on the dashboard, the error page."""
    slug = (request.view_args or {}).get("slug")
    if request.endpoint != "admin.import_csv" or not isinstance(slug, str):
        return errors.render_error(error)
    try:
        campaign = auth.campaign_or_404(slug)  # logged out, or not theirs: the plain 413
    except HTTPException:
        return errors.render_error(error)
    refusal = imports.ImportRefused(
        signing.N_("The file is larger than %(limit)s MB, the most that can be imported."),
        limit=imports.megabytes(_max_bytes()),
    )
    return _render_upload(campaign, ImportUploadForm(formdata=None), _refused(refusal), 413)


@bp.route("/c/<slug>/import", methods=["GET", "POST"])
@login_required
def import_csv(slug: str) -> Response | tuple[str, int]:
    """Upload a CSV, see what it would do, then apply it."""
    campaign = auth.campaign_or_404(slug)
    if request.method == "POST" and request.form.get("step") == "apply":
        return _apply_upload(campaign)
    form = ImportUploadForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return _render_upload(campaign, form, status=status)
    upload = form.file.data
    stream = upload.stream
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    max_bytes = _max_bytes()
    if size > max_bytes:
        # Refused before anything is written to disk.
        refusal = imports.ImportRefused(
            signing.N_("The file is %(size)s MB; files up to %(limit)s MB can be imported."),
            size=imports.megabytes(size),
            limit=imports.megabytes(max_bytes),
        )
        return _render_upload(campaign, form, _refused(refusal), 400)
    _remove_stale_uploads(time.time())
    token = secrets.token_urlsafe(24)
    path = _upload_path(campaign, token)
    upload.save(path)
    db = get_session()
    try:
        layout = imports.check_file(path, max_bytes=max_bytes)
        report = imports.preview(db, campaign, path, layout)
    except imports.ImportRefused as error:
        os.unlink(path)
        return _render_upload(campaign, form, _refused(error), 400)
    finally:
        db.rollback()  # a preview stores nothing
    return render_template(
        "admin/import_preview.html",
        campaign=campaign,
        report=report,
        form=_apply_form(token),
        filename=upload.filename or "",
        preview_rows=imports.PREVIEW_ROWS,
    ), 200


def _apply_upload(campaign: Campaign) -> Response | tuple[str, int]:
    """Import a previewed upload in one transaction, then forget the file."""
    form = ImportApplyForm()
    if not form.validate():
        flash(_("That import could not be applied. Upload the file again."), "error")
        return redirect(url_for("admin.import_csv", slug=campaign.slug), code=303)
    path = _upload_path(campaign, form.token.data)
    if not os.path.exists(path):
        flash(_("That upload is no longer here (it was applied or is too old)."), "error")
        return redirect(url_for("admin.import_csv", slug=campaign.slug), code=303)
    count_now = form.mode.data == COUNT_NOW
    db = get_session()
    mails = not count_now and tally.hold_rule(db, campaign)
    try:
        layout = imports.check_file(path, max_bytes=_max_bytes())
        report = imports.apply(
            db,
            campaign,
            path,
            layout,
            organizer=current_organizer(),
            count_now=count_now,
            locale=form.locale.data,
            on_created=mail.queue_confirmations if mails else None,
            source_name=request.form.get("filename", "")[:200],
        )
        db.commit()
    except imports.ImportRefused as error:
        db.rollback()
        os.unlink(path)
        return _render_upload(campaign, ImportUploadForm(formdata=None), _refused(error), 409)
    os.unlink(path)
    flash(
        _(
            "Import applied. Imported: %(imported)s (held for review: %(held)s). "
            "Skipped: %(duplicate)s already signed, %(invalid)s invalid.",
            # Digits grouped as the preview writes them ("3,000", "3 000").
            imported=format_number(report.imported),
            held=format_number(report.held),
            duplicate=format_number(report.duplicate),
            invalid=format_number(report.invalid),
        ),
        "ok",
    )
    return redirect(url_for("admin.import_csv", slug=campaign.slug), code=303)


# --- one signature by hand ------------------------------------------------


@bp.route("/c/<slug>/signatures/new", methods=["GET", "POST"])
@login_required
def add_signature(slug: str) -> Response | tuple[str, int]:
    """Add one signature collected outside the form; then its page, or the form again (400).

    It is stored as the form stores one (signing.sign: one signature per address, a
    namesake of the same country held as a possible duplicate), with source "import", the
    language chosen for the signer's mail and no client hash. A closed or draft letter
    takes it too: paper signatures arrive late, and the organizer is the one who decides.
    """
    campaign = auth.campaign_or_404(slug)
    form = SignatureAddForm(confirmation=campaign.require_confirmation)
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template(
            "admin/signature_new.html",
            campaign=campaign,
            form=form,
            title_suggestions=i18n.title_suggestions(signing.TITLE_SUGGESTIONS),
        ), status
    db = get_session()
    count_now = form.counts_now or not tally.hold_rule(db, campaign)
    # notice_limit=0: an address that already signed gets no "already signed" mail, and its
    # row is left as it is; the organizer is told instead.
    outcome = signing.sign(db, campaign, form.entry(), confirmed=count_now, notice_limit=0)
    signature = outcome.signature
    if not outcome.created:
        existing_id, existing_status = signature.id, signature.status
        db.rollback()
        flash(
            _(
                "This address already signed this letter: signature #%(id)d (%(status)s). "
                "Nothing was added.",
                id=existing_id,
                status=status_label(existing_status),
            ),
            "error",
        )
        return _to_signature(campaign, existing_id)
    if not count_now:
        mail.queue_confirmation(db, signature)
    audit.record(
        db,
        current_organizer(),
        "signature.add",
        campaign=campaign,
        signature=signature,
        after={
            "mode": "count_now" if count_now else "confirmation_mail",
            **{key: getattr(signature, key) for key in _ADDED_FIELDS},
        },
    )
    db.commit()
    _flash_added(signature, count_now)
    return _to_signature(campaign, signature.id)


# What the audit entry of an added signature holds (the personal ones are blanked there
# when the signer's data is erased).
_ADDED_FIELDS = (
    "name",
    "title",
    "parliament",
    "party",
    "country_code",
    "email",
    "public",
    "status",
    "counted",
    "duplicate_of_id",
)


def _to_signature(campaign: Campaign, signature_id: int) -> Response:
    return redirect(
        url_for("admin.signature", slug=campaign.slug, signature_id=signature_id), code=303
    )


def _flash_added(signature: Signature, count_now: bool) -> None:
    """What adding did: counted, awaiting confirmation, held as a possible duplicate."""
    if signature.status == "held":
        flash(
            _(
                "Signature #%(id)d added. It resembles #%(other)d (same name and country): it "
                "is held as a possible duplicate and does not count until you decide on the "
                "duplicates page.",
                id=signature.id,
                other=signature.duplicate_of_id,
            ),
            "ok",
        )
    elif signature.counted:
        flash(_("Signature #%(id)d added. It counts now.", id=signature.id), "ok")
    else:
        flash(_("Signature #%(id)d added.", id=signature.id), "ok")
    if not count_now:
        flash(
            _(
                "A confirmation mail is queued to %(email)s; the signature counts once the "
                "signer confirms.",
                email=signature.email,
            ),
            "ok",
        )


# --- the letter for delivery ----------------------------------------------


@bp.get("/c/<slug>/letter")
@login_required
def letter(slug: str) -> Response:
    """The letter with its counted signers by continent and country, ready to print as PDF.

    Streamed: each country's signers are read and written a batch at a time, so a letter of
    any size goes out in constant memory.
    """
    campaign = auth.campaign_or_404(slug)
    db = get_session()
    verified_only = _yes("verified")
    locale = str(get_locale() or "en")
    # The page is written after this request's session has closed (teardown comes before
    # the body): the signers are read through a session of the body's own, closed with it.
    reader = new_session(current_app._get_current_object())  # type: ignore[attr-defined]
    groups = export.signatories_by_place(
        db, campaign, verified_only=verified_only, locale=locale, reader=reader
    )
    # Signers of a text since replaced, as this page shows it: each is marked, and the marks
    # explained under the list.
    earlier = campaigns.signed_earlier(db, campaign, locale=locale, verified_only=verified_only)
    now = utcnow()
    # The public numbers come from the counters; a verified-only letter counts its own list.
    counts = export.tally_of(groups, now) if verified_only else tally.tally(db, campaign, locale)
    # The letter in the page's language when it has a translation there, else as written
    # (in English); the page's language links offer each text it has.
    text = i18n.letter_for(campaign, locale)
    languages = ["en", *sorted(t.locale for t in campaign.translations if t.letter.strip())]
    # What the page shows of the campaign (and the organizer, in the layout) is loaded now;
    # detached from the request's session, it is not expired when that one rolls back.
    db.expunge_all()
    page = stream_template(
        "admin/letter.html",
        campaign=campaign,
        letter=text,
        letter_lang=(text.locale or "en").replace("_", "-"),
        languages=languages,
        groups=groups,
        counts=counts,
        sentence=tally_sentence(counts),
        today=i18n.long_date(now.date()),
        verified_only=verified_only,
        earlier=[
            (_version_mark(i), group, i18n.long_date(group.replaced_at))
            for i, group in enumerate(earlier)
        ],
        marks={group.number: _version_mark(i) for i, group in enumerate(earlier)},
    )
    return Response(_in_pieces(page, reader), mimetype="text/html")


# Footnote marks for the signers of replaced versions, oldest version first.
_MARKS = ("*", "†", "‡", "§", "‖", "¶")


def _version_mark(i: int) -> str:
    """The footnote mark of the i-th replaced version that has signers on the letter."""
    return _MARKS[i] if i < len(_MARKS) else "*" * (i - len(_MARKS) + 2)


def _in_pieces(parts: Iterator[str], reader: Session, size: int = 32 * 1024) -> Iterator[str]:
    """Jinja's many small strings joined into pieces of about size characters; then
    closes the session the parts were read through (also when the download stops early)."""
    try:
        held: list[str] = []
        length = 0
        for part in parts:
            held.append(part)
            length += len(part)
            if length >= size:
                yield "".join(held)
                held, length = [], 0
        if held:
            yield "".join(held)
    finally:
        reader.close()
