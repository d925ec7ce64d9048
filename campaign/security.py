"""Response headers, cookies, proxies, request sizes and text, and rate-limit policy.

Everything here is wired in :func:`init_app`; views stay unaware of it, except the
embeddable ones, which call :func:`allow_framing` so other sites may frame them.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from flask import (
    Flask,
    Request,
    Response,
    current_app,
    g,
    has_request_context,
    jsonify,
    make_response,
    render_template,
    request,
)
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import RateLimitExceeded
from limits import parse_many
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wrappers import Response as BaseResponse

from campaign.errors import wants_json
from campaign.extensions import limiter

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def content_security_policy(*, frame_ancestors: str = "'none'", style: str = "") -> str:
    """The site's Content-Security-Policy: no inline script or style; our own origin only.

    style adds sources to style-src, for the one page that needs a few exact inline styles
    (the framed mail of an update's preview, by their hashes).
    """
    styles = f"'self' {style}" if style else "'self'"
    return (
        f"default-src 'self'; script-src 'self'; style-src {styles}; img-src 'self' data:; "
        f"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors}"
    )


CONTENT_SECURITY_POLICY = content_security_policy()
# The widget and badge are meant to be framed by any site that shows the letter.
FRAMEABLE_CONTENT_SECURITY_POLICY = content_security_policy(frame_ancestors="*")
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

# Endpoints with a ceiling per campaign, whoever asks: endpoint -> config key.
CAMPAIGN_LIMITS = {"public.sign": "SIGN_CAMPAIGN_RATE_LIMIT"}
_ALLOWLIST = "campaign.ratelimit_allowlist"

# The largest number an id (or a letter's version number) can be: the columns are INTEGER,
# 32 bits on PostgreSQL. SQLite's are wider, but no row of ours gets that far.
MAX_ROW_ID = 2**31 - 1
NUL_MESSAGE = (
    "The request contains a NUL character (%00), which no address, search or form field may hold."
)
# Endpoints whose own checks refuse a NUL in their query and form, with a page of their own
# (before any query): the sign form a field error in the signer's language (and a filled
# honeypot the same answer as a signature, whatever it holds), the list of signatories a 400
# that leads back to the list. Their paths are checked all the same.
OWN_TEXT_CHECKS = frozenset({"public.sign", "public.signatories"})
# Only the statuses whose Retry-After means something keep one (Flask-Limiter adds it to all).
RETRY_AFTER_STATUSES = frozenset({429, 503})
# What another site's script may read of the public JSON (tally.json), answers and errors alike.
CROSS_ORIGIN_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET",
    "Access-Control-Expose-Headers": "ETag, Retry-After",
}
# A preflight's answer also allows revalidating (If-None-Match), kept for a day.
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Headers": "If-None-Match",
    "Access-Control-Max-Age": "86400",
}


def digits_at_most(limit: int) -> str:
    """A regular expression of the decimal numbers from 0 to limit (a few leading zeros too)."""
    top = str(limit)
    shorter = [rf"[1-9]\d{{0,{len(top) - 2}}}"] if len(top) > 1 else []
    same_length = []
    for i, digit in enumerate(top):
        low, high = 1 if i == 0 else 0, int(digit) - 1
        if high >= low:
            rest = len(top) - i - 1
            same_length.append(f"{top[:i]}[{low}-{high}]" + (rf"\d{{{rest}}}" if rest else ""))
    return f"0{{0,9}}(?:{'|'.join([*shorter, *same_length, top])})|0{{1,10}}"


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in every route: a number a row can have, or the route does not match (404).

    A larger one would reach the database and fail there (PostgreSQL: integer out of range;
    SQLite: past 64 bits, OverflowError). The bound is in the regular expression, not only
    in to_python: a path whose number fails conversion after its regular expression matched
    would answer 405 when a rule of another method shares it.
    """

    regex = f"(?:{digits_at_most(MAX_ROW_ID)})"

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ROW_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


class LimitedRequest(Request):
    """A request whose body may be large only on the dashboard (CSV imports)."""

    @property
    def max_content_length(self) -> int | None:
        """PUBLIC_MAX_CONTENT_LENGTH outside /admin/, MAX_CONTENT_LENGTH inside."""
        if self._max_content_length is not None or not current_app:
            return super().max_content_length
        if self.path.startswith("/admin/"):
            return current_app.config["MAX_CONTENT_LENGTH"]  # type: ignore[no-any-return]
        return current_app.config["PUBLIC_MAX_CONTENT_LENGTH"]  # type: ignore[no-any-return]

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value


class SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions whose cookie is Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """SESSION_COOKIE_SECURE, or the request itself is HTTPS."""
        configured = super().get_cookie_secure(app)
        return configured or (has_request_context() and request.is_secure)


def parse_networks(
    value: str | Iterable[str] | None, *, setting: str = "RATELIMIT_ALLOWLIST"
) -> list[Network]:
    """Networks from a list of CIDR strings or one comma-separated string; ValueError naming
    the setting (its variable, for config.check) if one is not a network."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{setting}: {text!r} is not a network like 192.0.2.0/24") from None
    return networks


def client_address() -> str:
    """The client's address as the app sees it (after ProxyFix, when configured)."""
    return request.remote_addr or "127.0.0.1"


def is_allowlisted() -> bool:
    """Whether the client's address lies in one of the RATELIMIT_ALLOWLIST networks."""
    networks: list[Network] = current_app.extensions.get(_ALLOWLIST, [])
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(client_address())
    except ValueError:
        return False
    return any(address in network for network in networks)


def campaign_key() -> str:
    """The rate-limit key of a per-campaign limit: the campaign's slug from the URL."""
    slug = (request.view_args or {}).get("slug", "")
    return f"campaign:{slug}"


def allow_framing() -> None:
    """Let other sites frame this response (the widget, the badge)."""
    g.allow_framing = True


def retry_after_seconds(error: TooManyRequests | None = None) -> int:
    """Seconds until the refused client may try again (at least 1)."""
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float):
        return max(1, int(retry_after))
    current = limiter.current_limit if limiter.enabled and limiter.initialized else None
    if current is not None:
        # Whole seconds, rounded down like Flask-Limiter's own Retry-After header.
        return max(1, int(current.reset_at - time.time()))
    return 60


def _campaign_ceiling() -> None:
    """Count a POST against its campaign's ceiling; 429 once the campaign is flooded.

    It guards the count itself, so it applies to allow-listed networks too; the
    per-address limits are the views' own (``@limiter.limit``).
    """
    key = CAMPAIGN_LIMITS.get(request.endpoint or "")
    if key is None or request.method != "POST" or not _limits_active():
        return
    prefix = str(current_app.config.get("RATELIMIT_KEY_PREFIX") or "")
    identifiers = [part for part in (prefix, campaign_key(), "ceiling") if part]
    for item in parse_many(str(current_app.config.get(key) or "")):
        try:
            allowed = limiter.limiter.hit(item, *identifiers)
        except Exception:  # the storage (Redis) is down: sign on, the limits fall back
            current_app.logger.warning("campaign ceiling skipped: rate-limit storage failed")
            return
        if not allowed:
            reset = limiter.limiter.get_window_stats(item, *identifiers).reset_time
            raise TooManyRequests(
                "This letter is receiving more signatures than it can take right now.",
                retry_after=max(1, int(reset - time.time())),
            )


def _has_nul(values: MultiDict[str, str]) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in values.items(multi=True))


def _refuse_nul_bytes() -> None:
    """400 for a NUL character in the path, the query or a form field, before any view runs.

    No link or form of ours makes one, no column may hold one (PostgreSQL refuses it in
    any text, so a lookup by it would fail as a database error), and none has a meaning.
    The endpoints of OWN_TEXT_CHECKS answer for their query and form themselves.
    """
    if "\x00" in request.path:
        raise BadRequest(NUL_MESSAGE)
    if request.endpoint in OWN_TEXT_CHECKS:
        return
    if _has_nul(request.args):
        raise BadRequest(NUL_MESSAGE)
    if request.method not in ("GET", "HEAD", "OPTIONS") and (
        _has_nul(request.form)
        or any("\x00" in (upload.filename or "") for upload in request.files.values())
    ):
        raise BadRequest(NUL_MESSAGE)


def is_public_json() -> bool:
    """Whether the request is for one of a letter's public JSON documents (tally.json)."""
    return request.path.startswith("/c/") and request.path.endswith(".json")


def _cross_origin(response: BaseResponse) -> BaseResponse:
    """The public JSON's CORS headers on all its answers: its redirects, errors and preflight.

    Any origin, GET only, never with cookies (no Allow-Credentials, so a browser sends none).
    """
    if is_public_json():
        response.headers.update(CROSS_ORIGIN_HEADERS)
        if request.method == "OPTIONS":
            response.headers.update(PREFLIGHT_HEADERS)
    return response


def _retry_after_only_when_refused(response: BaseResponse) -> BaseResponse:
    """Drop the Retry-After that Flask-Limiter adds to every limited response but 429s and 503s."""
    if response.status_code not in RETRY_AFTER_STATUSES:
        response.headers.pop("Retry-After", None)
    return response


def _limits_active() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED")) and limiter.enabled


def _headers(response: Response) -> Response:
    """The security headers every response carries, unless the view set its own."""
    headers = response.headers
    # Headers.setdefault finds a header missing by raising and catching an exception, eight
    # times a response: the names present are read once instead.
    present = {name.lower() for name, _value in headers.items()}

    def default(name: str, value: str) -> None:
        if name.lower() not in present:
            headers[name] = value

    if g.get("allow_framing"):
        headers["Content-Security-Policy"] = FRAMEABLE_CONTENT_SECURITY_POLICY
        headers.pop("X-Frame-Options", None)
    else:
        default("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        default("X-Frame-Options", "DENY")
    default("X-Content-Type-Options", "nosniff")
    default("Referrer-Policy", "strict-origin-when-cross-origin")
    default("Permissions-Policy", PERMISSIONS_POLICY)
    default("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        default("Strict-Transport-Security", f"max-age={_hsts_seconds()}")
        _secure_cookies(response)
    if request.path.startswith("/admin/"):
        # Dashboard pages show signers' addresses: no copy in shared or proxy caches.
        default("Cache-Control", "no-store")
    if "location" in present and 300 <= response.status_code < 400:
        _location_without_host(response)
    return response


def _location_without_host(response: Response) -> None:
    """Werkzeug's own redirects (a path without its trailing slash, "//" in a path) name the
    request's Host header, which the client chose: the same address without the host, so
    no forged host goes on in a Location that a cache may keep (the site's own redirects
    are relative already; one to another site is left as it is)."""
    parts = urlsplit(response.headers["Location"])
    if parts.netloc and parts.netloc == request.host:
        path = "/" + parts.path.lstrip("/")  # "//x" would name a host
        response.headers["Location"] = urlunsplit(("", "", path, parts.query, parts.fragment))


def _hsts_seconds() -> int:
    return int(current_app.config.get("HSTS_SECONDS", 365 * 24 * 3600))


def _secure_cookies(response: Response) -> None:
    """Mark every cookie a view set Secure when the request came over HTTPS."""
    cookies = response.headers.getlist("Set-Cookie")
    if not cookies or all("; secure" in c.lower() for c in cookies):
        return
    response.headers.remove("Set-Cookie")
    for cookie in cookies:
        response.headers.add(
            "Set-Cookie", cookie if "; secure" in cookie.lower() else f"{cookie}; Secure"
        )


def _too_many_requests(error: TooManyRequests) -> Response:
    """429 as a readable page (or JSON), always with Retry-After."""
    seconds = retry_after_seconds(error)
    if wants_json():
        response = jsonify(
            error="Too Many Requests",
            status=429,
            message="Too many requests; try again later.",
            retry_after=seconds,
        )
        response.status_code = 429
    else:
        page = render_template(
            "errors/429.html",
            error=error,
            seconds=seconds,
            minutes=math.ceil(seconds / 60),
            # Not a per-address limit: the campaign's own ceiling (see _campaign_ceiling).
            busy=not isinstance(error, RateLimitExceeded),
        )
        response = make_response(page, 429)
    response.headers["Retry-After"] = str(seconds)
    return response


def init_app(app: Flask) -> None:
    """Wire proxies, cookies, request sizes, rate-limit policy and headers into the app."""
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)  # 0 or more: config.check
    if hops:
        # Trust exactly this many proxies' X-Forwarded-* headers; without it a client
        # could pick its own address (and so its own rate-limit bucket) by sending one.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    if str(app.config.get("BASE_URL") or "").startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.session_interface = SessionInterface()
    app.request_class = LimitedRequest
    app.extensions[_ALLOWLIST] = parse_networks(app.config.get("RATELIMIT_ALLOWLIST"))
    app.before_request(_refuse_nul_bytes)
    app.before_request(_campaign_ceiling)
    app.after_request(_cross_origin)
    app.after_request(_headers)
    # First in the list, so it runs last (Flask runs them in reverse): after Flask-Limiter's.
    app.after_request_funcs.setdefault(None, []).insert(0, _retry_after_only_when_refused)
    app.register_error_handler(429, _too_many_requests)


@limiter.request_filter
def _exempt_allowlisted() -> bool:
    """Flask-Limiter skips every per-address limit for allow-listed networks."""
    return is_allowlisted()
