"""Configuration defaults and what each key means.

Order of precedence: these defaults, then ``instance/config.py``, then environment
variables ``CAMPAIGN_<KEY>`` (parsed as JSON where they can be, so ``false`` is a bool).
"""

from __future__ import annotations

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
# Absolute links in mail; without it, links are built from the request's host.
BASE_URL: str | None = None
# Run the outbox sender inside the serving process (campaign run / serve).
MAIL_SENDER = True
# Seconds between outbox polls when nothing wakes the sender earlier.
MAIL_POLL_SECONDS = 1.0
# Retry schedule for failed deliveries: first retry after this, doubling, capped.
MAIL_RETRY_BASE_SECONDS = 5.0
MAIL_RETRY_MAX_SECONDS = 600.0

# Confirmation links stay valid this long.
CONFIRM_MAX_AGE_SECONDS = 30 * 24 * 3600
# How many "you already signed" mails one signature may trigger.
DUPLICATE_NOTICE_LIMIT = 3
# email-validator's DNS check; off by default so signing works offline.
EMAIL_CHECK_DELIVERABILITY = False

# Requests larger than this get 413.
MAX_CONTENT_LENGTH = 64 * 1024 * 1024
# Rate limiting (Flask-Limiter).
RATELIMIT_ENABLED = True
RATELIMIT_STORAGE_URI = "memory://"
RATELIMIT_HEADERS_ENABLED = True
SIGN_RATE_LIMIT = "20 per minute;200 per hour"
CONFIRM_RATE_LIMIT = "30 per minute"
LOGIN_RATE_LIMIT = "10 per minute"
JSON_RATE_LIMIT = "120 per minute"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
WTF_CSRF_TIME_LIMIT: int | None = None
