"""Composing the confirm, "already signed", receipt and update mails, by the signer's language."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from babel.core import Locale, UnknownLocaleError
from flask import Flask, current_app
from flask_babel import force_locale, format_timedelta, get_translations
from jinja2 import Template, pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from sqlalchemy.orm import Session

from campaign import i18n, markup, signing
from campaign.mail.message import SUBJECT_MAX, Composed, header_safe
from campaign.models import Campaign, LetterUpdate, OutboxMessage, Signature


class Undeliverable(Exception):
    """A queued mail that must never be sent: the sender drops it (logged), never retries."""


class SignatureGone(Undeliverable):
    """The signature a mail was to be composed from is erased or deleted."""


class NoLongerCounts(Undeliverable):
    """An update's signature stopped counting (withdrawn, rejected, held) before it was sent."""


class UpdatesDeclined(Undeliverable):
    """An update's signer asked for no more updates before it was sent."""


class UpdateGone(Undeliverable):
    """The update a mail was to carry is deleted."""


def compose(db: Session, message: OutboxMessage) -> Composed:
    """The mail an outbox row stands for: as stored, or composed now (needs an app context).

    The sender composes every mail it sends the same way, a batch at a time; a queued mail
    reads the same.
    """
    signature = None
    updates: dict[int, LetterUpdate] = {}
    if message.kind is not None and message.sent_at is None and message.signature_id:
        signature = db.get(Signature, message.signature_id)
        update = db.get(LetterUpdate, message.update_id) if message.update_id else None
        if update is not None:
            updates[update.id] = update
    [mail] = _compose_all(current_app, [(message, signature)], updates)
    if isinstance(mail, Exception):
        raise mail
    return mail


def _undeliverable(
    message: OutboxMessage, signature: Signature | None, updates: Mapping[int, LetterUpdate]
) -> Undeliverable | None:
    """Why a mail to compose must never be sent, or None."""
    if signature is None:
        return SignatureGone("the signature of this mail was deleted")
    if signature.erased_at is not None:
        return SignatureGone(f"signature {signature.id} was erased")
    if message.kind == "update":
        # Only signers who count get updates, checked again as it is sent: one who
        # withdrew (or was rejected or held) since it was queued gets nothing.
        if not signature.counted:
            return NoLongerCounts(f"signature {signature.id} no longer counts")
        if signature.updates_declined_at is not None:
            return UpdatesDeclined(f"signature {signature.id} asked for no updates")
        if (message.update_id or 0) not in updates:
            return UpdateGone("the update of this mail was deleted")
    return None


def _compose_all(
    app: Flask,
    rows: Sequence[tuple[OutboxMessage, Signature | None]],
    updates: Mapping[int, LetterUpdate] | None = None,
) -> list[Composed | Exception]:
    """Each row's stored mail, or its kind composed from the signature; or why it cannot be."""
    updates = updates or {}
    mails: list[Composed | Exception | None] = [None] * len(rows)
    by_locale: dict[str, list[int]] = {}
    locales: dict[str, str] = {}
    for index, (message, signature) in enumerate(rows):
        if message.kind is None or message.sent_at is not None:
            mails[index] = Composed(message.subject, message.body_text, message.body_html)
        elif (gone := _undeliverable(message, signature, updates)) is not None:
            mails[index] = gone
        else:
            assert signature is not None
            if signature.locale not in locales:
                locales[signature.locale] = _locale_of(signature)
            by_locale.setdefault(locales[signature.locale], []).append(index)
    batch = _Batch(app)
    for locale, indexes in by_locale.items():
        try:
            # The mails of one language together: the translations, and what else does
            # not depend on the signer, are looked up once for all of them.
            with force_locale(locale):
                words = _words(app, locale)
                for index in indexes:
                    message, signature = rows[index]
                    try:
                        mails[index] = batch.compose(
                            message,
                            cast(Signature, signature),
                            words,
                            updates.get(message.update_id or 0),
                        )
                    except Exception as error:
                        mails[index] = error
        except Exception as error:
            for index in indexes:
                mails[index] = mails[index] or error
    return [cast(Composed | Exception, mail) for mail in mails]


@dataclass(frozen=True)
class _Words:
    """What mails in one language share: its translations and the links' lifetimes in words."""

    locale: str
    # The language's translation of a message (named so pybabel extracts its calls).
    gettext: Callable[[str], str]
    expires_in: str
    withdraw_expires_in: str


def _words(app: Flask, locale: str) -> _Words:
    """The words of the locale forced by the caller (flask_babel.force_locale)."""

    def lifetime(key: str) -> str:
        seconds = int(app.config[key])
        return str(format_timedelta(dt.timedelta(seconds=seconds), add_direction=False))

    return _Words(
        locale=locale,
        gettext=get_translations().ugettext,
        expires_in=lifetime("CONFIRM_MAX_AGE_SECONDS"),
        withdraw_expires_in=lifetime("WITHDRAW_MAX_AGE_SECONDS"),
    )


def _template_gettext(translate: Callable[[str], str]) -> Callable[..., str]:
    """Jinja's newstyle `_` (as its i18n extension builds it) over these translations.

    The app's `_` looks up Flask-Babel's translations again for every string; this one
    was given them, so a mail's dozen strings cost one look-up per language and batch.
    """

    @pass_context
    def gettext(context: Context, string: str, **variables: Any) -> str:
        translated = translate(string)
        if context.eval_ctx.autoescape:
            # The message is ours; Markup % escapes the values put into it.
            translated = Markup(translated)  # noqa: S704
        return translated % variables

    return gettext


@dataclass(frozen=True)
class _UpdateLinks:
    """An update mail's links for its signer: withdraw the signature, or stop the updates.

    None in a sample (the preview, the test mail): no signer is behind it, so the mail says
    where each signer's own link goes instead of giving one.
    """

    withdraw: str | None
    stop: str | None


class _Batch:
    """What composing a batch's mails needs once: the secret, templates, link builders."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.secret = str(app.config["SECRET_KEY"])
        self._templates: dict[str, Template] = {}
        self._links: dict[str, Callable[[str, dict[str, Any]], str]] = {}
        self._gettexts: dict[str, Callable[..., str]] = {}

    def compose(
        self,
        message: OutboxMessage,
        signature: Signature,
        words: _Words,
        update: LetterUpdate | None = None,
    ) -> Composed:
        """The mail of the message's kind to the signer, in the words' language."""
        kind = str(message.kind)
        campaign = signature.campaign
        base = message.link_base or ""

        def link(purpose: str, withdrawal: dt.datetime | None = None) -> str:
            token = signing.make_token(self.secret, signature.id, purpose, withdrawal=withdrawal)
            return self._absolute(
                base, f"public.{purpose}", {"slug": campaign.slug, "token": token}
            )

        if kind == "update" and update is not None:
            return self.update(
                update,
                campaign,
                signature.name,
                _UpdateLinks(withdraw=link("withdraw"), stop=link("stop_updates")),
                base,
                words,
            )
        # A notice to a signer who already signed offers the confirm link only while the
        # signature waits for it (as the sign view decided when it queued the notice), or,
        # when its signer withdrew it, to sign again: that link, made after the withdrawal,
        # puts it back on the letter (signing.signs_again) while the withdrawal it names
        # stands. A receipt never does (its signature needed no confirmation).
        waiting = campaign.require_confirmation and signature.confirmed_at is None
        again = kind == "already_signed" and signing.withdrawn_by_signer(signature)
        wants_confirm = kind == "confirm" or (kind == "already_signed" and (waiting or again))
        withdrawn_at = signature.withdrawn_at
        confirm_url = link("confirm", withdrawn_at if again else None) if wants_confirm else None
        title = _title_for(campaign, words.locale)
        gettext = self._gettext(words)
        values = {
            "_": gettext,
            "gettext": gettext,
            "signature": signature,
            "campaign": campaign,
            "title": title,
            "locale": words.locale.replace("_", "-"),
            "expires_in": words.expires_in,
            "withdraw_expires_in": words.withdraw_expires_in,
            "confirm_url": confirm_url,
            "withdraw_url": link("withdraw"),
            "again": again,
            "withdrawn_on": i18n.long_date(withdrawn_at) if withdrawn_at else None,
        }
        text_body = self._template(f"email/{kind}.txt").render(values)
        html_body = self._template(f"email/{kind}.html").render(values)
        subject = _subject(words, "sign_again" if again else kind, header_safe(title))
        return Composed(header_safe(subject)[:SUBJECT_MAX], text_body, html_body)

    def update(
        self,
        update: LetterUpdate,
        campaign: Campaign,
        name: str,
        links: _UpdateLinks,
        base: str,
        words: _Words,
    ) -> Composed:
        """An organizers' update to one signer: their text as written, framed in the words'.

        Its footer and its List-Unsubscribe headers (RFC 2369, RFC 8058's one click) carry
        the link that stops the updates and keeps the signature.
        """
        title = _title_for(campaign, words.locale)
        gettext = self._gettext(words)
        values = {
            "_": gettext,
            "gettext": gettext,
            "name": name,
            "title": title,
            "update": update,
            "paragraphs": markup.paragraphs(update.body),
            "letter_url": self._absolute(base, "public.campaign", {"slug": campaign.slug}),
            "locale": words.locale.replace("_", "-"),
            "withdraw_expires_in": words.withdraw_expires_in,
            "withdraw_url": links.withdraw,
            "stop_url": links.stop,
        }
        text_body = self._template("email/update.txt").render(values)
        html_body = self._template("email/update.html").render(values)
        headers = (
            (
                ("List-Unsubscribe", f"<{links.stop}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            )
            if links.stop
            else ()
        )
        return Composed(header_safe(update.subject)[:SUBJECT_MAX], text_body, html_body, headers)

    def _gettext(self, words: _Words) -> Callable[..., str]:
        if words.locale not in self._gettexts:
            self._gettexts[words.locale] = _template_gettext(words.gettext)
        return self._gettexts[words.locale]

    def _template(self, name: str) -> Template:
        # The app's Jinja environment (autoescape for .html, Babel's _), without the page
        # context processors: mail is composed outside any request, in the sender.
        if name not in self._templates:
            self._templates[name] = self.app.jinja_env.get_template(name)
        return self._templates[name]

    def _absolute(self, base: str, endpoint: str, values: dict[str, Any]) -> str:
        """An absolute link on the base, with the base's URL adapter made once per batch."""
        if base not in self._links:
            self._links[base] = links_on(self.app, base)
        return self._links[base](endpoint, values)


def sample_update(
    app: Flask, campaign: Campaign, update: LetterUpdate, *, name: str, locale: str, base: str
) -> Composed:
    """The update's mail as a signer in this locale gets it (the preview and the test mail).

    No signer is behind it: where a signer's mail has their withdraw and stop links, this one
    says so, and it has no List-Unsubscribe header. Nothing in it can change a signature.
    """
    batch = _Batch(app)
    with force_locale(locale):
        words = _words(app, locale)
        links = _UpdateLinks(withdraw=None, stop=None)
        return batch.update(update, campaign, name, links, base, words)


def links_on(app: Flask, base: str) -> Callable[[str, dict[str, Any]], str]:
    """Absolute links on a site root (mail.link_base()): its scheme and host, then the path.

    Bound to the base's script root, the URL map builds "<script root>/c/<slug>/..."; the
    origin is kept as stored, so a link is the one url_for() gave in the request.
    """
    parts = urlsplit(base)
    adapter = app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)
    origin = f"{parts.scheme}://{parts.netloc}"
    return lambda endpoint, values: origin + adapter.build(endpoint, values)


def _subject(words: _Words, kind: str, title: str) -> str:
    """The subject of a kind of mail about the letter titled title, in the words' language."""
    if kind == "confirm":
        return words.gettext("Please confirm your signature: %(title)s") % {"title": title}
    if kind == "receipt":
        return words.gettext("Receipt for your signature: %(title)s") % {"title": title}
    if kind == "sign_again":
        return words.gettext("Sign again: %(title)s") % {"title": title}
    return words.gettext("You have already signed: %(title)s") % {"title": title}


def _locale_of(signature: Signature) -> str:
    """The signer's locale if Babel knows it, else the first configured language."""
    try:
        Locale.parse(signature.locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError, AttributeError):
        return str(current_app.config.get("LANGUAGES", ["en"])[0])
    return signature.locale.replace("-", "_")


def _title_for(campaign: Campaign, locale: str) -> str:
    """The letter's title in the signer's language when a translation exists."""
    language = locale.split("_")[0]
    for translation in campaign.translations:
        if translation.locale in (locale, language):
            return translation.title
    return campaign.title
