"""Flask extensions, created unbound and bound in create_app()."""

from __future__ import annotations

from flask import current_app, g, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

LANGUAGES = ("en", "id", "fr", "es")

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)
babel = Babel()


def supported_language(value: str | None, languages: list[str]) -> str | None:
    """The supported language a ?lang= or cookie value names, in any case and with any region
    ("FR", "fr-FR", "es_ES" name "fr", "es"); None for anything else."""
    if not value:
        return None
    if value in languages:
        return value
    tag = value.strip().replace("_", "-").lower()
    by_tag = {language.replace("_", "-").lower(): language for language in languages}
    return by_tag.get(tag) or by_tag.get(tag.split("-")[0])


def select_locale() -> str:
    """The interface language: ?lang=, then the lang cookie, then the page's own language
    (a signer's, on the pages their mailed links open: i18n.prefer), then Accept-Language."""
    languages = list(current_app.config.get("LANGUAGES", LANGUAGES))
    for candidate in (request.args.get("lang"), request.cookies.get("lang"), g.get("page_locale")):
        found = supported_language(candidate, languages)
        if found is not None:
            return found
    return request.accept_languages.best_match(languages) or languages[0]


def rate(key: str) -> str:
    """A rate-limit string from config, read per request so tests and deployments can set it."""
    return str(current_app.config[key])
