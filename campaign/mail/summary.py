"""The organizers' daily summary as mail: composing it and sending the day's summaries.

``send_digests`` is the one way summaries leave: ``campaign send-digest`` calls it, and
so does the mail sender once the day's ``DIGEST_HOUR`` has passed. Each organizer's
summary is counted in a read-only transaction and composed outside any; a short write
transaction then claims the day and queues the mail together (``digest.record``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_babel import force_locale

from campaign import digest, i18n
from campaign.db import reading, session_scope
from campaign.mail.composition import links_on
from campaign.mail.message import SUBJECT_MAX, Composed, header_safe
from campaign.mail.outbox import link_base, queue
from campaign.models import Organizer


class DigestError(RuntimeError):
    """The summaries cannot be sent as configured (no absolute address for their links)."""


@dataclass(frozen=True)
class Result:
    """What became of one organizer's summary today."""

    email: str
    outcome: digest.Outcome
    # The mail, when there was something to say (sent, or shown by a dry run).
    mail: Composed | None = None


def _base(app: Flask) -> str:
    """The site root the summary's links start with (BASE_URL, or SERVER_NAME)."""
    with app.app_context():
        try:
            return link_base()
        except RuntimeError:
            raise DigestError(
                "set CAMPAIGN_BASE_URL: the summary's links must be absolute"
            ) from None


def _locale(app: Flask, organizer: Organizer) -> str:
    """The organizer's language (their pages' when they chose the summary), else the site's."""
    languages = [str(code) for code in app.config.get("LANGUAGES", ["en"])]
    return organizer.locale if organizer.locale in languages else languages[0]


def compose(app: Flask, summary: digest.Summary, base: str, locale: str) -> Composed:
    """The summary's subject, plain text and HTML, with absolute links on base."""
    link = links_on(app, base)

    def admin_links(slug: str) -> dict[str, str]:
        return {
            "signatures": link("admin.signatures", {"slug": slug}),
            "pending": link("admin.signatures", {"slug": slug, "status": "pending"}),
            "duplicates": link("admin.duplicates", {"slug": slug}),
            "activity": link("admin.activity", {"slug": slug}),
            "unverified": link(
                "admin.signatures", {"slug": slug, "status": "counted", "verified": "no"}
            ),
        }

    with app.app_context(), force_locale(locale):
        values: dict[str, Any] = {
            "summary": summary,
            "links": {letter.slug: admin_links(letter.slug) for letter in summary.letters},
            "counted": {letter.slug: _counted(letter) for letter in summary.letters},
            "dashboard": link("admin.index", {}),
            "account": link("admin.account", {}) + "#digest",
            "since": i18n.date_time(summary.since, "d MMM y, HH:mm") + " UTC",
            "locale": locale.replace("_", "-"),
        }
        text = app.jinja_env.get_template("email/digest.txt").render(values)
        html = app.jinja_env.get_template("email/digest.html").render(values)
        subject = _subject(summary)
    return Composed(header_safe(subject)[:SUBJECT_MAX], text, html)


def _counted(letter: digest.LetterSummary) -> str:
    """'N signatures from N countries on N continents', as the tally page says it."""
    return i18n.gettext(
        "%(signatures)s from %(countries)s on %(continents)s",
        signatures=i18n.SIGNATURES.text(letter.counted),
        countries=i18n.COUNTRIES.text(letter.countries),
        continents=i18n.CONTINENTS.text(letter.continents),
    )


def _subject(summary: digest.Summary) -> str:
    """ "Daily summary: 12 new signatures on 2 letters" (in the forced locale)."""
    letters = len(summary.letters)
    new = summary.new
    if new:
        return i18n.gettext(
            "Daily summary: %(signatures)s on %(letters)s",
            signatures=i18n.ngettext("%(num)d new signature", "%(num)d new signatures", new),
            letters=i18n.ngettext("%(num)d letter", "%(num)d letters", letters),
        )
    return i18n.gettext(
        "Daily summary: %(signatures)s to review on %(letters)s",
        signatures=i18n.ngettext("%(num)d signature", "%(num)d signatures", summary.to_review),
        letters=i18n.ngettext("%(num)d letter", "%(num)d letters", letters),
    )


def send_digests(
    app: Flask,
    now: dt.datetime,
    *,
    dry_run: bool = False,
    organizer_ids: Sequence[int] | None = None,
) -> list[Result]:
    """Send today's summaries; what became of each organizer's.

    organizer_ids: whom to consider (every one, or one, for the command line); None means
    the organizers due (wanting it, active, not yet done today), as the sender asks. A dry
    run composes and returns the mails and changes nothing.
    """
    base = _base(app)
    if organizer_ids is None:
        with reading(), session_scope(app) as db:
            organizer_ids = [organizer.id for organizer in digest.due(db, now.date())]
    return [_send_one(app, one, now, base, dry_run=dry_run) for one in organizer_ids]


def _send_one(
    app: Flask, organizer_id: int, now: dt.datetime, base: str, *, dry_run: bool
) -> Result:
    """One organizer's summary: counted, composed, then claimed and queued in one transaction."""
    today = now.date()
    with reading(), session_scope(app) as db:
        organizer = db.get(Organizer, organizer_id)
        if organizer is None:
            return Result("", "inactive")
        email = organizer.email
        refusal = digest.outcome_before(organizer, today)
        if refusal is not None:
            return Result(email, refusal)
        summary = digest.summarize(db, organizer, now)
        locale = _locale(app, organizer)
    mail = compose(app, summary, base, locale) if summary.letters else None
    if dry_run:
        return Result(email, "sent" if mail else "nothing", mail)

    with app.app_context(), session_scope(app) as db:

        def post(summary: digest.Summary) -> None:
            assert mail is not None
            queue(db, to=summary.email, subject=mail.subject, text=mail.text, html=mail.html)

        outcome = digest.record(db, organizer_id, summary, today, post)
    return Result(email, outcome, mail if outcome == "sent" else None)
