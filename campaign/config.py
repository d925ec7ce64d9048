"""Configuration defaults and what each key means.

Order of precedence: these defaults, then ``instance/config.py``, then environment
variables ``CAMPAIGN_<KEY>`` (parsed as JSON where they can be; a boolean key takes
true/false, 1/0, yes/no, on/off in any case and nothing else). create_app() checks the
result with check(): a value of the wrong kind is a ConfigError naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

# SQLAlchemy URL; None means SQLite at instance/campaign.sqlite3.
DATABASE_URL: str | None = None
# Signs sessions, CSRF tokens and confirmation links. Unset, a random key is made
# once and kept in instance/secret_key, so links stay valid across restarts.
SECRET_KEY: str | None = None

# Mail. Without an SMTP host, mail is written to instance/outbox/ as .eml files.
SMTP_HOST: str | None = None
SMTP_PORT = 25
SMTP_USERNAME: str | None = None
SMTP_PASSWORD: str | None = None
SMTP_STARTTLS = False
SMTP_TIMEOUT = 10.0
MAIL_FROM = "campaign@localhost"
# The site's public address, which every absolute link starts with (mail, canonical, share):
# http(s), a host, a port and a path if need be; no user:password@, query or fragment. It is
# kept with its scheme and host in lower case and no trailing slash (hosts.canonical_base_url).
# `campaign serve` needs it. Unset (`campaign run`, tests), links use the request's host only
# when it is a loopback one, else http://127.0.0.1:5000 (campaign/hosts.py).
BASE_URL: str | None = None
# Run the outbox sender inside the serving process (campaign run / serve). One sender in
# the cluster delivers (it holds a lease); the others stand by to take over.
MAIL_SENDER = True
# Seconds between the delivering sender's outbox polls (a plain read): how long mail
# committed by another process may wait. A commit in its own process wakes it at once.
MAIL_POLL_SECONDS = 0.25
# Seconds between a standing-by sender's tries at the lease (and the leader's checks that
# it still holds it): how soon mail flows again after the delivering process dies.
MAIL_LEASE_RETRY_SECONDS = 2.0
# PostgreSQL: where the senders take that lease, a session advisory lock; None means
# DATABASE_URL. The lock lives in a session of its own: behind PgBouncer in transaction
# pooling, point this at PostgreSQL itself (or at a session-pooling PgBouncer).
MAIL_LEASE_DATABASE_URL: str | None = None
# Retry schedule for failed deliveries: first retry after this, doubling, capped.
MAIL_RETRY_BASE_SECONDS = 5.0
MAIL_RETRY_MAX_SECONDS = 600.0
# The most of one core the delivering sender spends (its thread's CPU time composing and
# writing mail; waiting on the SMTP server costs none): it rests between batches, so that a
# backlog, say the confirmations of a surge of signers, drains after the surge instead of
# taking the signers' CPU (and, in its worker, their interpreter lock). 1 lifts the cap.
# At about 1 ms of CPU per mail, 0.1 still sends some 100 mails a second. In `python -m
# bench --only 2` (333 signatures a second for a minute, a receipt each) 0.1 kept every
# signature under 250 ms where 0.25 and 1 refused some; the receipts went out afterwards.
MAIL_SENDER_CPU_SHARE = 0.1
# The share applies while the sender's process serves: a request in flight, or one answered
# less than this many seconds ago. Otherwise (after a surge, at night) the sender has no
# signers to yield to and sends a backlog at full speed.
MAIL_SENDER_QUIET_SECONDS = 1.0
# The organizers' daily summary (campaign/digest.py), for those who ask for it on their
# account page: the delivering sender sends the day's summaries once this hour (UTC, 0-23)
# has passed, each organizer's at most once a UTC day. DIGEST_ENABLED=false leaves it to
# `campaign send-digest` (from cron, say), which sends whenever it runs.
DIGEST_ENABLED = True
DIGEST_HOUR = 7

# Confirmation links stay valid this long.
CONFIRM_MAX_AGE_SECONDS = 30 * 24 * 3600
# How many "you already signed" mails one signature may trigger (per withdrawal).
DUPLICATE_NOTICE_LIMIT = 3
# No such mail for a signature this many seconds old or less, nor this soon after the last
# one: a double tap on "Sign", or a second try while the first mail is on its way.
DUPLICATE_NOTICE_QUIET_SECONDS = 60
# email-validator's DNS check; off by default so signing works offline.
EMAIL_CHECK_DELIVERABILITY = False

# Requests larger than this get 413.
MAX_CONTENT_LENGTH = 64 * 1024 * 1024
# Rate limiting (Flask-Limiter).
RATELIMIT_ENABLED = True
# A scheme limits knows: memory://, redis://host:6379, rediss://, memcached://, ...
RATELIMIT_STORAGE_URI = "memory://"
RATELIMIT_HEADERS_ENABLED = True
# Redis down: count in each process's memory meanwhile rather than answer 500 (security.py).
RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
SIGN_RATE_LIMIT = "20 per minute;200 per hour"
CONFIRM_RATE_LIMIT = "30 per minute"
LOGIN_RATE_LIMIT = "10 per minute"
# "Forgot your password?" requests per client address (each may queue a mail).
PASSWORD_RESET_RATE_LIMIT = "5 per minute;20 per hour"  # noqa: S105 (not a password)
JSON_RATE_LIMIT = "120 per minute"

SESSION_COOKIE_HTTPONLY = True
# Lax, Strict or None (the word: the attribute says None), or null: no attribute.
SESSION_COOKIE_SAMESITE = "Lax"
# Seconds a form's CSRF token stays valid (1 or more); null: as long as the session.
WTF_CSRF_TIME_LIMIT: int | None = None

# Interface languages offered (Flask-Babel); the first is the fallback. Each is en (the
# text's own language) or has a compiled catalogue in campaign/translations; codes as Babel
# writes them (pt_BR, not pt-BR).
LANGUAGES = ["en", "id", "fr", "es"]

# Behind a reverse proxy: how many proxies set X-Forwarded-For/-Proto/-Host (ProxyFix).
# 0 trusts none, so a spoofed X-Forwarded-For changes nothing.
PROXY_FIX_HOPS = 0
# Networks never rate-limited (a parliament's office NAT), e.g. ["192.0.2.0/24"].
RATELIMIT_ALLOWLIST: list[str] = []
# Per-campaign ceiling on signing, whatever the client address.
SIGN_CAMPAIGN_RATE_LIMIT = "2000 per minute"
SESSION_COOKIE_SECURE = False

# Organizer login throttling: failures before a lockout, and the lockout's length.
LOGIN_MAX_FAILURES = 5
LOGIN_LOCKOUT_SECONDS = 900
# "Forgot your password?": the mailed link works this long, and once; an account gets at
# most one such mail per interval, however often the form is sent.
PASSWORD_RESET_MAX_AGE_SECONDS = 3600
PASSWORD_RESET_MAIL_INTERVAL_SECONDS = 300

# Largest CSV an organizer may import.
IMPORT_MAX_BYTES = 20 * 1024 * 1024

# --- Security and privacy (campaign/security.py, the privacy page, SECURITY.md) ---
# Requests outside /admin/ (the sign form, the widget, confirm) may carry at most this;
# MAX_CONTENT_LENGTH above applies only to the dashboard (CSV imports).
PUBLIC_MAX_CONTENT_LENGTH = 256 * 1024
# Largest text field and most fields in one multipart form (Flask's own limits).
MAX_FORM_MEMORY_SIZE = 500_000
MAX_FORM_PARTS = 1000
# Strict-Transport-Security max-age, sent only on HTTPS responses.
HSTS_SECONDS = 365 * 24 * 3600
# Shown on the privacy page for questions and erasure requests; None: MAIL_FROM.
PRIVACY_CONTACT: str | None = None
# Where vulnerabilities are reported (SECURITY.md, /.well-known/security.txt when set).
SECURITY_CONTACT: str | None = None
# Promise made on the privacy page: personal data of a closed campaign is erased this many
# days after it closes (run `campaign anonymize --closed-before DATE`, e.g. daily from cron).
RETENTION_DAYS_AFTER_CLOSE = 90
# Promise made on the privacy page: how long the web server's request logs are kept.
LOG_RETENTION_DAYS = 14
# Suspicious activity (campaign/abuse.py): a group's hour is a burst with at least this many
# signatures and at least this many times the median of the campaign's other hours of the
# same kind (signing-form signatures only).
ABUSE_BURST_MIN = 20
ABUSE_BURST_FACTOR = 5.0

# Withdrawal links (sent with the confirmation mail) stay valid this long (public flow).
WITHDRAW_MAX_AGE_SECONDS = 365 * 24 * 3600

# Flask-Babel: the interface's translations, campaign/translations/<lang>/LC_MESSAGES/messages.mo
# (an absolute path, so neither the working directory nor the instance folder matters).
BABEL_TRANSLATION_DIRECTORIES = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "translations"
)

# Organizer sessions (the dashboard) last this long after login, in seconds; Flask's
# default of 31 days is long for an account that can erase signers.
PERMANENT_SESSION_LIFETIME = 12 * 3600

# The count on the letter and tally pages is re-read from tally.json this often (static/site.js).
LIVE_REFRESH_SECONDS = 15

# Font files for share.png's text that Pillow's own font (Latin letters, no accents) cannot
# draw, tried before the system's (charts.SYSTEM_FONTS: DejaVu Sans, Noto Sans); e.g.
# CAMPAIGN_SHARE_FONTS='["/srv/fonts/NotoSansKhmer-Regular.ttf"]'. The first with every
# letter of a text draws it.
SHARE_FONTS: list[str] = []


# --- Reading and checking the configuration (create_app) ---------------------------------
# Helper names are lower case: Flask's from_object() loads every upper-case name above.


class ConfigError(ValueError):
    """A configuration value the app cannot run with; its message names the variable."""


_true_words = frozenset({"true", "1", "yes", "on"})
_false_words = frozenset({"false", "0", "no", "off"})
# Booleans of Flask and its extensions that have no default above (or a None one).
_other_booleans = frozenset(
    {
        "DEBUG",
        "TESTING",
        "PROPAGATE_EXCEPTIONS",
        "TRAP_HTTP_EXCEPTIONS",
        "TRAP_BAD_REQUEST_ERRORS",
        "TEMPLATES_AUTO_RELOAD",
        "EXPLAIN_TEMPLATE_LOADING",
        "SESSION_REFRESH_EACH_REQUEST",
        "WTF_CSRF_ENABLED",
        "WTF_CSRF_CHECK_DEFAULT",
        "WTF_CSRF_SSL_STRICT",
        "RATELIMIT_SWALLOW_ERRORS",
    }
)
_rate_limit_keys = (
    "SIGN_RATE_LIMIT",
    "SIGN_CAMPAIGN_RATE_LIMIT",
    "CONFIRM_RATE_LIMIT",
    "LOGIN_RATE_LIMIT",
    "PASSWORD_RESET_RATE_LIMIT",
    "JSON_RATE_LIMIT",
)
# Sizes that may be None: no limit (Flask's own meaning).
_no_limit_keys = frozenset(
    {"MAX_CONTENT_LENGTH", "PUBLIC_MAX_CONTENT_LENGTH", "MAX_FORM_MEMORY_SIZE", "MAX_FORM_PARTS"}
)
# Whole numbers with bounds of their own (lowest, highest; None: no highest).
_int_ranges: dict[str, tuple[int, int | None]] = {
    "SMTP_PORT": (1, 65535),
    "DIGEST_HOUR": (0, 23),
    "PROXY_FIX_HOPS": (0, None),
}
# Highest values of the numbers above (their kind and lowest are checked first), each with what
# it is in words. Past these a value is a typo, and some fail only when used: seconds past
# timedelta's range make a 500 of each request that adds them to a time (the session's
# lifetime, the quiet period after signing), and a browser's timer fires at once, over and
# over, past 24.8 days (LIVE_REFRESH_SECONDS).
_day = 24 * 3600
_ten_years = 3653 * _day
_sixteen_gib = 16 * 1024**3
_highest: dict[str, tuple[int, str]] = {
    "SMTP_TIMEOUT": (3600, "an hour"),
    "MAIL_POLL_SECONDS": (3600, "an hour"),
    "MAIL_LEASE_RETRY_SECONDS": (3600, "an hour"),
    "MAIL_RETRY_BASE_SECONDS": (_day, "a day"),
    "MAIL_RETRY_MAX_SECONDS": (7 * _day, "a week"),
    "MAIL_SENDER_CPU_SHARE": (1, "all of one core"),
    "MAIL_SENDER_QUIET_SECONDS": (_day, "a day"),
    "CONFIRM_MAX_AGE_SECONDS": (_ten_years, "ten years"),
    "WITHDRAW_MAX_AGE_SECONDS": (_ten_years, "ten years"),
    "DUPLICATE_NOTICE_LIMIT": (1000, "mails per signature"),
    "DUPLICATE_NOTICE_QUIET_SECONDS": (_ten_years, "ten years"),
    "MAX_CONTENT_LENGTH": (_sixteen_gib, "16 GiB"),
    "PUBLIC_MAX_CONTENT_LENGTH": (_sixteen_gib, "16 GiB"),
    "MAX_FORM_MEMORY_SIZE": (_sixteen_gib, "16 GiB"),
    "MAX_FORM_PARTS": (1_000_000, "fields in one form"),
    "IMPORT_MAX_BYTES": (_sixteen_gib, "16 GiB"),
    "PROXY_FIX_HOPS": (10, "proxies in front"),
    "LOGIN_MAX_FAILURES": (1000, "failures before a lockout"),
    "LOGIN_LOCKOUT_SECONDS": (_ten_years, "ten years"),
    "PASSWORD_RESET_MAX_AGE_SECONDS": (_ten_years, "ten years"),
    "PASSWORD_RESET_MAIL_INTERVAL_SECONDS": (_ten_years, "ten years"),
    "HSTS_SECONDS": (_ten_years, "ten years"),
    "RETENTION_DAYS_AFTER_CLOSE": (3653, "ten years"),
    "LOG_RETENTION_DAYS": (3653, "ten years"),
    "ABUSE_BURST_MIN": (1_000_000, "signatures in an hour"),
    "ABUSE_BURST_FACTOR": (1_000_000, "times the median hour"),
    "PERMANENT_SESSION_LIFETIME": (_ten_years, "ten years"),
    "LIVE_REFRESH_SECONDS": (_day, "a day"),
    "WTF_CSRF_TIME_LIMIT": (_ten_years, "ten years"),
}
# Secrets taken from the environment exactly as written, never read as JSON: a password may
# be `true`, `0`, `1e3` or `"x"`, which JSON would make True, 0, 1000.0 or x, and str() then
# 'True', '' (`or ""`), '1000.0', 'x': a login refused forever with nothing said. (SECRET_KEY
# keeps its JSON reading, which its check turns into an error or, quoted, documented text:
# reading it raw now would change the key of every deployment that quoted it.)
_raw_text_keys = ("SMTP_USERNAME", "SMTP_PASSWORD")
# The databases this app runs on, each with the one driver it is written and tested for:
# SQLite through the standard library (db.make_engine's gate and pragmas use sqlite3's own
# connection), PostgreSQL through psycopg 3 (a dependency; the mail lease passes it libpq's
# keepalive options). postgresql:// means postgresql+psycopg in SQLAlchemy 2.1.
_drivers = {"sqlite": "pysqlite", "postgresql": "psycopg"}
_schemes = {"sqlite": "sqlite://", "postgresql": "postgresql+psycopg://"}


def parse_bool(name: str, text: str) -> bool:
    """true/false, 1/0, yes/no, on/off in any case; ConfigError for anything else."""
    word = text.strip().lower()
    if word in _true_words:
        return True
    if word in _false_words:
        return False
    raise ConfigError(f"{name} must be true or false (or 1/0, yes/no, on/off), not {text!r}")


def load_environment(config: Any, environ: Mapping[str, str], prefix: str = "CAMPAIGN") -> None:
    """Set config from PREFIX_<KEY> variables: JSON where it parses, booleans strictly.

    Flask's from_prefixed_env() reads ``False`` (not JSON) as the string 'False', which is
    true; a key whose default is a boolean takes only the words parse_bool() knows. The SMTP
    login (_raw_text_keys) is taken as written: JSON would change a password like `true`.
    """
    booleans = {key for key, value in config.items() if isinstance(value, bool)}
    booleans |= _other_booleans
    config.from_prefixed_env(prefix)
    for key in _raw_text_keys:
        raw = environ.get(f"{prefix}_{key}")
        if raw is not None:
            config[key] = raw
    for key in sorted(booleans):
        name = f"{prefix}_{key}"
        if name in environ:
            config[key] = parse_bool(name, environ[name])


def check(
    config: MutableMapping[str, Any], environ: Mapping[str, str], prefix: str = "CAMPAIGN"
) -> None:
    """Refuse a value the app cannot run with: ConfigError naming the variable, the need.

    Every key that has a default in this module must keep its type (a whole number stays
    one, a duration a number of 0 or more, none past _highest); addresses, rate limits and
    networks must parse, database URLs name a database and driver this app runs with.
    BASE_URL is then written back in its one spelling (hosts.canonical_base_url).
    """
    defaults = {key: value for key, value in globals().items() if key.isupper()}

    def name(key: str) -> str:
        variable = f"{prefix}_{key}"
        return variable if variable in environ else key

    for key, default in defaults.items():
        if key in config:
            need = _type_needed(key, default, config[key])
            if need:
                raise ConfigError(f"{name(key)} must be {need}, not {config[key]!r}")
    for key, (low, high) in _int_ranges.items():
        value = config.get(key)
        if value is None:
            continue
        good = isinstance(value, int) and not isinstance(value, bool)
        if high is None:
            if not good or value < low:
                raise ConfigError(
                    f"{name(key)} must be {low} or more (a whole number), not {value!r}"
                )
        elif not good or not low <= value <= high:
            raise ConfigError(
                f"{name(key)} must be a whole number from {low} to {high}, not {value!r}"
            )
    for key, (highest, what) in _highest.items():
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > highest:
            raise ConfigError(f"{name(key)} must be at most {highest} ({what}), not {value!r}")
    _check_urls(config, name)
    _check_text(config, name)
    _check_rate_limits(config, name)
    _check_rate_limit_storage(config, name)
    _check_networks(config, name)
    _check_secret_key(config, name)
    _check_languages(config, name)
    _check_cookies_and_forms(config, name)


def _type_needed(key: str, default: Any, value: Any) -> str | None:
    """What a key's value must be when it is not of its default's type; None when it is."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if value is None and key in _no_limit_keys:
        return None
    if isinstance(default, int) and key not in _int_ranges:
        good = number and isinstance(value, int) and value >= 0
        return None if good else "a whole number, 0 or more"
    if isinstance(default, float):
        return None if number and value >= 0 else "a number, 0 or more"
    if key == "LANGUAGES":
        listed = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return (
            None if listed and len(value) > 0 else 'a JSON list of language codes like ["en", "fr"]'
        )
    return None


def _check_urls(config: MutableMapping[str, Any], name: Callable[[str], str]) -> None:
    main = _check_database_url(config, name, "DATABASE_URL")
    lease = _check_database_url(config, name, "MAIL_LEASE_DATABASE_URL")
    if lease is not None:
        # mail.lease takes the senders' lease there only when the database is PostgreSQL
        # (on SQLite: an flock beside the file), and as an advisory lock on a psycopg
        # connection with libpq's keepalive options: nothing else can hold it.
        variable = name("MAIL_LEASE_DATABASE_URL")
        if lease != "postgresql":
            raise ConfigError(
                f"{variable} must be a PostgreSQL URL like postgresql+psycopg://user@host/db,"
                f" not {lease}://... (it holds the mail senders' advisory lock)"
            )
        if main != "postgresql":
            raise ConfigError(
                f"{variable} applies only when {name('DATABASE_URL')} is PostgreSQL; on SQLite"
                " the mail senders' lease is a file lock beside the database: unset it"
            )
    base = config.get("BASE_URL")
    if base:
        from campaign.hosts import canonical_base_url

        try:
            if not isinstance(base, str):
                raise ValueError(
                    f"be the site's public address like https://letters.example.org, not {base!r}"
                )
            # Every reader (cookies, links, mail) sees it in one spelling: https, lower case.
            config["BASE_URL"] = canonical_base_url(base)
        except ValueError as error:
            raise ConfigError(f"{name('BASE_URL')} must {error}") from None


def _check_database_url(
    config: Mapping[str, Any], name: Callable[[str], str], key: str
) -> str | None:
    """A URL of a database and driver this app runs with (_drivers), its driver importable.

    Its backend name (sqlite, postgresql); None when unset (DATABASE_URL: SQLite in the
    instance folder; MAIL_LEASE_DATABASE_URL: DATABASE_URL). Messages show the URL's scheme
    only: the rest may hold a password, in its user part or its query.
    """
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    value = config.get(key)
    if value is None or value == "":
        return None if key != "DATABASE_URL" else "sqlite"
    expected = (
        f"{name(key)} must be a database URL like sqlite:////srv/campaign.sqlite3 or"
        " postgresql+psycopg://user@host/db"
    )
    try:
        if not isinstance(value, str | URL):
            raise ArgumentError(value)
        url = make_url(value)
    except ArgumentError:
        # Not echoed: a mistyped URL may still hold a password.
        raise ConfigError(f"{expected}; it is not a URL") from None
    shown = f"{url.drivername}://..."
    try:
        dialect = url.get_dialect()
    except (ArgumentError, ImportError, ValueError) as error:
        raise ConfigError(f"{expected}, not {shown} ({_reason(error)})") from None
    backend, driver = url.get_backend_name(), dialect.driver
    missing = None
    try:
        dialect.import_dbapi()
    except ImportError as error:
        module = getattr(error, "name", None)
        missing = (
            f"the Python module {module} is not installed"
            if isinstance(error, ModuleNotFoundError) and module
            else f"its driver does not load: {_reason(error)}"
        )
    if _drivers.get(backend) != driver:
        notes = [f"write {_schemes[backend]}"] if backend in _schemes else []
        notes += [missing] if missing else []
        raise ConfigError(
            f"{expected}, not {shown}: this app runs on SQLite and on PostgreSQL through"
            " psycopg only" + (f" ({'; '.join(notes)})" if notes else "")
        )
    if missing:
        raise ConfigError(f"{name(key)} ({shown}) cannot connect: {missing}")
    return backend


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _check_text(config: Mapping[str, Any], name: Callable[[str], str]) -> None:
    """Addresses and names the app writes into mail, pages and files: text, each its kind.

    In the environment a value that reads as JSON (42, true, null) is taken as such, and
    would fail only when used: From: headers, security.txt, the share image's fonts.
    """
    for key in ("SMTP_HOST", "SMTP_USERNAME", "SMTP_PASSWORD"):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            # Not shown: the login is a secret (in the environment these are read as written).
            raise ConfigError(f"{name(key)} must be text, not {_kind(value)}")
    for key in ("MAIL_FROM", "PRIVACY_CONTACT"):
        value = config.get(key)
        if key == "PRIVACY_CONTACT" and (value is None or value == ""):
            continue  # the privacy page shows MAIL_FROM
        problem = _mailbox_problem(value)
        if problem:
            raise ConfigError(
                f"{name(key)} must be one mail address, with a name or not, like"
                f" letters@example.org or Open Letter <letters@example.org>, not {value!r}"
                f" ({problem})"
            )
    contact = config.get("SECURITY_CONTACT")
    if contact is not None and contact != "":
        problem = _security_contact_problem(contact)
        if problem:
            raise ConfigError(
                f"{name('SECURITY_CONTACT')} must be a mail address or an https:// or mailto:"
                f" address like security@example.org, not {contact!r} ({problem})"
            )
    fonts = config.get("SHARE_FONTS")
    listed = isinstance(fonts, list | tuple) and all(isinstance(f, str) and f for f in fonts)
    if fonts is not None and not isinstance(fonts, str) and not listed:
        raise ConfigError(
            f"{name('SHARE_FONTS')} must be font files: a JSON list of paths like"
            f' ["/srv/fonts/NotoSansKhmer-Regular.ttf"], or one path, not {fonts!r}'
        )


def _mailbox_problem(value: Any) -> str | None:
    """Why value is not one mail address with an optional name ("Name <a@b.org>"); None."""
    from email.utils import getaddresses

    if not isinstance(value, str):
        return f"it reads as {_kind(value)}"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "a line break or control character"
    found = [address for address in getaddresses([value]) if any(address)]
    if len(found) != 1 or not found[0][1]:
        return "one address is needed" if len(found) > 1 else "no address in it"
    address = found[0][1]
    text = value.strip()
    # Only "address" or "name <address>": getaddresses() also takes "a@b.org (name)" or a
    # missing ">", which the From: header would carry as written.
    if text != address and not text.endswith(f"<{address}>"):
        return "write a name as Name <address>"
    return _address_problem(address)


def _address_problem(address: str) -> str | None:
    """Why address is not a mail address (email-validator's reason, first line); None."""
    from email_validator import EmailNotValidError, validate_email

    local, _at, domain = address.rpartition("@")
    if local and domain.lower() == "localhost":
        # The default, campaign@localhost: the machine's own mail server. email-validator
        # refuses the name as reserved; its local part is still checked.
        address = f"{local}@example.org"
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        return _reason(error)
    return None


def _security_contact_problem(value: Any) -> str | None:
    """Why value is no Contact: of security.txt (RFC 9116: https, mailto or a bare address)."""
    if not isinstance(value, str):
        return f"it reads as {_kind(value)}"
    if not value.isprintable() or any(ch.isspace() for ch in value):
        return "a space, line break or control character"
    scheme, colon, rest = value.partition(":")
    if not colon:
        return _address_problem(value)
    if scheme.lower() == "mailto":
        return _address_problem(rest.partition("?")[0])
    if scheme.lower() == "https":
        return None if urlsplit(value).hostname else "no host name"
    return "RFC 9116 takes https:// or mailto: addresses"


def _check_rate_limits(config: Mapping[str, Any], name: Callable[[str], str]) -> None:
    from limits import parse_many

    for key in _rate_limit_keys:
        if key not in config:
            continue
        value = config[key]
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            parse_many(value)
        except ValueError:
            raise ConfigError(
                f"{name(key)}: {value!r} is not a rate limit like '20 per minute'"
                " (several: '20 per minute;200 per hour')"
            ) from None


def _check_networks(config: Mapping[str, Any], name: Callable[[str], str]) -> None:
    value = config.get("RATELIMIT_ALLOWLIST")
    if value is None:
        return
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(
            f"{name('RATELIMIT_ALLOWLIST')} must be networks like 192.0.2.0/24"
            f" (a JSON list, or separated by commas), not {value!r}"
        )
    from campaign.security import parse_networks

    try:
        parse_networks(items, setting=name("RATELIMIT_ALLOWLIST"))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_rate_limit_storage(config: Mapping[str, Any], name: Callable[[str], str]) -> None:
    """A storage address of a scheme limits knows (the schemes its storages register)."""
    value = config.get("RATELIMIT_STORAGE_URI")
    if value is None or value == "":
        return  # create_app() makes it memory://
    from limits.storage import Storage

    schemes = _storage_schemes(Storage)
    text = isinstance(value, str)
    scheme = urlsplit(value).scheme if text and "://" in value else None
    variable = name("RATELIMIT_STORAGE_URI")
    if scheme not in schemes:
        # Only the scheme is shown: the rest of the address may hold a password.
        shown = (
            f"{scheme}://..."
            if scheme
            else "an address without scheme://"
            if text
            else _kind(value)
        )
        raise ConfigError(
            f"{variable} must be a rate-limit storage like memory:// or redis://host:6379"
            f" ({', '.join(s + '://' for s in sorted(schemes))}), not {shown}"
        )
    if scheme == "memory":
        return
    # The storage's client library, then the storage made as Flask-Limiter will make it (its
    # client connects on first use): memcached:// without pymemcache, or an address its
    # client refuses, stops here rather than in a traceback.
    from limits._storage_scheme import SCHEMES
    from limits.storage import storage_from_string
    from limits.util import MissingModule, get_dependency

    needed = list(getattr(SCHEMES[scheme], "DEPENDENCIES", None) or ())
    # The redis storages take valkey:// with the valkey client, the others with redis.
    server = "valkey" if scheme.startswith("valkey") else "redis"
    needed = [
        n for n in needed if n.split(".")[0] not in ("redis", "valkey") or n.split(".")[0] == server
    ]
    for library in needed:
        if get_dependency(library)[0] is MissingModule:
            raise ConfigError(
                f"{variable} ({scheme}://...) needs the Python package {library.split('.')[0]},"
                " which is not installed"
            )
    try:
        storage_from_string(value)
    except ValueError:
        raise ConfigError(f"{variable} is not a {scheme}:// address its client can use") from None


def _storage_schemes(base: type) -> set[str]:
    """The schemes of limits' synchronous storages (Flask-Limiter's kind), each class's own."""
    schemes: set[str] = set()
    storage: type
    for storage in base.__subclasses__():
        schemes.update(getattr(storage, "STORAGE_SCHEME", None) or ())
        schemes |= _storage_schemes(storage)
    return schemes


def _kind(value: Any) -> str:
    """What a value that is not text was read as (its JSON kind), for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a JSON object"
    return f"a {type(value).__name__}"


def _check_secret_key(config: Mapping[str, Any], name: Callable[[str], str]) -> None:
    """Text (or bytes, Flask's other kind): a number signs nothing, and every page would 500."""
    value = config.get("SECRET_KEY")
    if value is None or isinstance(value, str | bytes):
        return
    # The value itself is not shown: it is a secret.
    raise ConfigError(
        f"{name('SECRET_KEY')} must be text (a long random string), not {_kind(value)}:"
        " in the environment a value that reads as JSON (123, true) is taken as such;"
        " write it in double quotes"
    )


def _available_languages(config: Mapping[str, Any]) -> list[str]:
    """en (the text's own language) and every language with a compiled catalogue."""
    directories = config.get("BABEL_TRANSLATION_DIRECTORIES") or "translations"
    domain = str(config.get("BABEL_DOMAIN") or "messages")
    here = os.path.dirname(os.path.abspath(__file__))  # the app's root_path: relative ones
    found = {"en"}
    for directory in str(directories).split(";"):
        root = os.path.join(here, directory)
        if os.path.isdir(root):
            found.update(
                code
                for code in os.listdir(root)
                if os.path.isfile(os.path.join(root, code, "LC_MESSAGES", f"{domain}.mo"))
            )
    return sorted(found)


def _check_languages(config: Mapping[str, Any], name: Callable[[str], str]) -> None:
    """Each a locale Babel knows with a catalogue here (or en): else an error at request time."""
    from babel import Locale, UnknownLocaleError

    value = config.get("LANGUAGES")
    if not isinstance(value, list):
        return  # _type_needed() said what it must be
    available = _available_languages(config)
    listed = ", ".join(available)
    for code in value:
        try:
            Locale.parse(code)
        except (UnknownLocaleError, ValueError, TypeError):
            raise ConfigError(
                f"{name('LANGUAGES')}: {code!r} is not a locale Babel knows (codes are"
                f" written like fr or pt_BR); available here: {listed}"
            ) from None
        if code not in available:
            raise ConfigError(
                f"{name('LANGUAGES')}: {code!r} has no translation catalogue here;"
                f" available: {listed} (the first one listed is the fallback)"
            )


def _check_cookies_and_forms(config: Mapping[str, Any], name: Callable[[str], str]) -> None:
    """The session cookie's SameSite and the CSRF token's lifetime, as Flask(-WTF) take them."""
    samesite = config.get("SESSION_COOKIE_SAMESITE")
    if samesite is not None and (
        not isinstance(samesite, str) or samesite.title() not in ("Lax", "Strict", "None")
    ):
        raise ConfigError(
            f"{name('SESSION_COOKIE_SAMESITE')} must be Lax, Strict or None, not {samesite!r}"
        )
    limit = config.get("WTF_CSRF_TIME_LIMIT")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        # 0 would expire every form's token a second after the page was sent.
        raise ConfigError(
            f"{name('WTF_CSRF_TIME_LIMIT')} must be a number of seconds, 1 or more"
            f" (or null: no limit), not {limit!r}"
        )
