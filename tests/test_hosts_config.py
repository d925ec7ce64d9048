"""Links that leave the site never follow a spoofed Host header; configuration is checked.

Without CAMPAIGN_BASE_URL a request's host makes links only when it is a loopback one;
`campaign serve` will not start without it. Bad configuration values stop every command
with one line naming the variable.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import make_organizer
from fault_helpers import free_port
from flask import Flask
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_public import GOOD, SLUG, make_campaign, outbox

from campaign import hosts
from campaign.models import OutboxMessage

EVIL = "evil.example"
DEVELOPMENT = "http://127.0.0.1:5000"
ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = str(Path(sys.executable).with_name("campaign"))


@pytest.fixture(autouse=True)
def _fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the once-per-process warning as a new process would."""
    monkeypatch.setattr(hosts, "_warned", False)


@pytest.fixture
def dev_app(app_factory: Any) -> Flask:
    """An app without BASE_URL, as `campaign run` and `make run` have it."""
    app: Flask = app_factory(BASE_URL=None)
    make_campaign(app)
    return app


def sign(app: Flask, host: str, **changes: str) -> Any:
    """Submit the sign form with good values, the browser's Host header being host."""
    data = {**GOOD, **changes}
    return app.test_client().post(f"/c/{SLUG}/sign", data=data, base_url=f"http://{host}")


def reset_mails(app: Flask) -> list[str]:
    """The text of every queued mail that is not a signer's."""
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(engine) as db:
        rows = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        texts = [row.body_text for row in rows if row.signature_id is None]
    engine.dispose()
    return texts


# ------------------------------------------------------------------ spoofed Host headers


def test_a_spoofed_host_gets_no_link_to_itself_in_the_confirmation_mail(dev_app: Flask) -> None:
    answer = sign(dev_app, EVIL)
    assert answer.status_code in (302, 303), answer.text
    [mail] = outbox(dev_app)
    assert EVIL not in mail.body_text
    assert f"{DEVELOPMENT}/c/{SLUG}/confirm/" in mail.body_text
    assert f"{DEVELOPMENT}/c/{SLUG}/withdraw/" in mail.body_text


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8080", "127.0.0.1:5001", "[::1]:5000", "LOCALHOST"]
)
def test_a_loopback_host_still_makes_the_links(dev_app: Flask, host: str) -> None:
    sign(dev_app, host)
    [mail] = outbox(dev_app)
    assert f"http://{host.lower()}/c/{SLUG}/confirm/" in mail.body_text


def test_a_spoofed_host_gets_no_password_reset_link_to_itself(dev_app: Flask) -> None:
    engine = create_engine(str(dev_app.config["DATABASE_URL"]))
    with Session(engine) as db:
        make_organizer(db, "ann@example.org")
        db.commit()
    engine.dispose()
    client = dev_app.test_client()
    answer = client.post(
        "/admin/password-reset", data={"email": "ann@example.org"}, base_url=f"http://{EVIL}"
    )
    assert answer.status_code == 303
    [text] = reset_mails(dev_app)
    assert EVIL not in text
    assert re.search(rf"{re.escape(DEVELOPMENT)}/admin/password-reset/\S+", text), text


def test_a_spoofed_host_is_not_the_letters_canonical_address(dev_app: Flask) -> None:
    page = dev_app.test_client().get(f"/c/{SLUG}", base_url=f"http://{EVIL}")
    assert page.status_code == 200
    assert EVIL not in page.text
    assert f'<link rel="canonical" href="{DEVELOPMENT}/c/{SLUG}">' in page.text
    assert f'<meta property="og:url" content="{DEVELOPMENT}/c/{SLUG}">' in page.text


def test_a_spoofed_host_is_not_the_widgets_link(dev_app: Flask) -> None:
    page = dev_app.test_client().get(f"/c/{SLUG}/widget", base_url=f"http://{EVIL}")
    assert page.status_code == 200
    assert EVIL not in page.text
    assert f'href="{DEVELOPMENT}/c/{SLUG}"' in page.text


def test_the_fallback_is_logged_once_per_process(
    dev_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = dev_app.test_client()
    with caplog.at_level(logging.WARNING):
        for n in range(3):
            client.get(f"/c/{SLUG}", base_url=f"http://{EVIL}")
            sign(dev_app, EVIL, email=f"mp{n}@example.org")
    warnings = [r.getMessage() for r in caplog.records if "CAMPAIGN_BASE_URL" in r.getMessage()]
    assert len(warnings) == 1
    assert EVIL in warnings[0] and DEVELOPMENT in warnings[0]


def test_base_url_wins_over_any_host(app_factory: Any) -> None:
    app = app_factory(BASE_URL="https://letters.example.org")
    make_campaign(app)
    client = app.test_client()
    sign(app, "localhost:8080")
    page = client.get(f"/c/{SLUG}", base_url=f"http://{EVIL}")
    [mail] = outbox(app)
    assert f"https://letters.example.org/c/{SLUG}/confirm/" in mail.body_text
    assert f'<link rel="canonical" href="https://letters.example.org/c/{SLUG}">' in page.text


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("HTTPS://Letters.Example.ORG", "https://letters.example.org"),
        ("https://letters.example.org/", "https://letters.example.org"),
        ("Http://LOCALHOST:8080/Open/", "http://localhost:8080/Open"),
        ("https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443"),
    ],
)
def test_base_url_is_kept_with_its_scheme_and_host_in_lower_case(
    app_factory: Any, given: str, canonical: str
) -> None:
    assert app_factory(BASE_URL=given).config["BASE_URL"] == canonical


def test_an_upper_case_base_url_makes_lower_case_https_links(app_factory: Any) -> None:
    app = app_factory(BASE_URL="HTTPS://Letters.Example.ORG")
    make_campaign(app)
    sign(app, "localhost")
    page = app.test_client().get(f"/c/{SLUG}")
    [mail] = outbox(app)
    assert f"https://letters.example.org/c/{SLUG}/confirm/" in mail.body_text
    assert f'<link rel="canonical" href="https://letters.example.org/c/{SLUG}">' in page.text
    assert "HTTPS://" not in page.text and "Letters.Example" not in page.text


# ------------------------------------------------------------------ campaign serve


def test_serve_refuses_to_start_without_base_url(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr("campaign.server.run_gunicorn", lambda **options: started.append(options))
    app: Flask = app_factory(BASE_URL=None)
    result = app.test_cli_runner().invoke(args=["serve"])
    assert result.exit_code != 0
    assert started == []
    assert "set CAMPAIGN_BASE_URL to the site's public address" in result.output


def cli_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The environment of a `campaign` command on its own instance folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["CAMPAIGN_INSTANCE_PATH"] = str(tmp_path / "instance")
    env["CAMPAIGN_DATABASE_URL"] = f"sqlite:///{tmp_path}/cli.sqlite3"
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


def test_the_serve_command_says_to_set_base_url_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [CAMPAIGN, "serve", "--port", str(free_port())],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "CAMPAIGN_BASE_URL" in lines[0] and "public address" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


# ------------------------------------------------------------------ configuration values


def campaign_cli(tmp_path: Path, *args: str, **values: str) -> subprocess.CompletedProcess[str]:
    """`campaign <args>` with these CAMPAIGN_* variables and no other."""
    return subprocess.run(
        [CAMPAIGN, *args],
        env=cli_env(tmp_path, **values),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def env_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> Flask:
    """create_app() as the commands call it: configured by CAMPAIGN_* variables."""
    from campaign import create_app

    for key, value in cli_env(tmp_path, **values).items():
        if key.startswith("CAMPAIGN_"):
            monkeypatch.setenv(key, value)
    return create_app()


@pytest.mark.parametrize("word", ["False", "FALSE", "false", "no", "Off", "0"])
def test_false_in_any_spelling_turns_a_setting_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, word: str
) -> None:
    names = ["MAIL_SENDER", "RATELIMIT_ENABLED", "DIGEST_ENABLED", "SESSION_COOKIE_SECURE"]
    app = env_app(monkeypatch, tmp_path, **{f"CAMPAIGN_{key}": word for key in names})
    assert [app.config[key] for key in names] == [False] * 4


@pytest.mark.parametrize("word", ["True", "TRUE", "yes", "On", "1"])
def test_true_in_any_spelling_turns_a_setting_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, word: str
) -> None:
    app = env_app(monkeypatch, tmp_path, CAMPAIGN_SMTP_STARTTLS=word, CAMPAIGN_MAIL_SENDER=word)
    assert app.config["SMTP_STARTTLS"] is True and app.config["MAIL_SENDER"] is True


def test_other_values_of_the_environment_are_still_read_as_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = env_app(
        monkeypatch,
        tmp_path,
        CAMPAIGN_SMTP_PORT="2525",
        CAMPAIGN_MAIL_POLL_SECONDS="0.5",
        CAMPAIGN_RATELIMIT_ALLOWLIST='["192.0.2.0/24"]',
        CAMPAIGN_SIGN_RATE_LIMIT="5 per minute",
        CAMPAIGN_BASE_URL="https://letters.example.org",
    )
    assert app.config["SMTP_PORT"] == 2525
    assert app.config["MAIL_POLL_SECONDS"] == 0.5
    assert app.config["RATELIMIT_ALLOWLIST"] == ["192.0.2.0/24"]
    assert app.config["SIGN_RATE_LIMIT"] == "5 per minute"


BAD_VALUES = [
    ("CAMPAIGN_MAIL_SENDER", "maybe", "true or false"),
    ("CAMPAIGN_SMTP_STARTTLS", "enabled", "true or false"),
    ("CAMPAIGN_DATABASE_URL", "notaurl", "a database URL"),
    ("CAMPAIGN_SIGN_RATE_LIMIT", "garbage", "is not a rate limit like '20 per minute'"),
    ("CAMPAIGN_PROXY_FIX_HOPS", "abc", "must be 0 or more"),
    ("CAMPAIGN_PROXY_FIX_HOPS", "-1", "must be 0 or more"),
    ("CAMPAIGN_RATELIMIT_ALLOWLIST", "notanet", "is not a network like 192.0.2.0/24"),
    ("CAMPAIGN_DIGEST_HOUR", "25", "a whole number from 0 to 23"),
    ("CAMPAIGN_SMTP_PORT", "abc", "a whole number from 1 to 65535"),
    ("CAMPAIGN_SMTP_TIMEOUT", "soon", "a number, 0 or more"),
    ("CAMPAIGN_BASE_URL", "letters.example.org", "the site's public address"),
    ("CAMPAIGN_BASE_URL", "https://ann:pw@letters.example.org", "without a user name or password"),
    ("CAMPAIGN_BASE_URL", "https://letters.example.org:70000", "port must be a number from 1 to"),
    ("CAMPAIGN_BASE_URL", "https://letters.example.org:0", "port must be a number from 1 to"),
    ("CAMPAIGN_BASE_URL", "https://letters.example.org/?a=1", "no query, no fragment"),
    ("CAMPAIGN_BASE_URL", "https://letters.example.org/#top", "no query, no fragment"),
    ("CAMPAIGN_BASE_URL", "https://[2001:db8::1", "the site's public address"),
    ("CAMPAIGN_SECRET_KEY", "123", "must be text (a long random string), not a number"),
    ("CAMPAIGN_LANGUAGES", '["xx"]', "'xx' is not a locale Babel knows"),
    ("CAMPAIGN_LANGUAGES", '["en","pt-BR"]', "'pt-BR' is not a locale Babel knows"),
    ("CAMPAIGN_LANGUAGES", '["en","pt_BR"]', "'pt_BR' has no translation catalogue here"),
    ("CAMPAIGN_SESSION_COOKIE_SAMESITE", "Bogus", "must be Lax, Strict or None, not 'Bogus'"),
    ("CAMPAIGN_WTF_CSRF_TIME_LIMIT", "abc", "must be a number of seconds, 1 or more"),
    ("CAMPAIGN_RATELIMIT_STORAGE_URI", "bogus://", "not bogus://..."),
    # limits knows the scheme; its client library is not installed here.
    (
        "CAMPAIGN_RATELIMIT_STORAGE_URI",
        "memcached://cache:11211",
        "needs the Python package pymemcache",
    ),
    ("CAMPAIGN_RATELIMIT_STORAGE_URI", "redis://cache:port", "not a redis:// address"),
    # A driver that is not installed, or a database this app does not run on: one line, not
    # the ModuleNotFoundError of the first connection (get_dialect() imports no driver).
    (
        "CAMPAIGN_DATABASE_URL",
        "postgresql+psycopg2://u:pw@h/db",
        "(write postgresql+psycopg://; the Python module psycopg2 is not installed)",
    ),
    ("CAMPAIGN_DATABASE_URL", "mysql://u:pw@h/db", "the Python module MySQLdb is not installed"),
    ("CAMPAIGN_DATABASE_URL", "mysql+pymysql://u:pw@h/db", "runs on SQLite and on PostgreSQL"),
    ("CAMPAIGN_DATABASE_URL", "oracle://u:pw@h/db", "not oracle://..."),
    ("CAMPAIGN_DATABASE_URL", "mssql+pyodbc://u:pw@h/db", "module pyodbc is not installed"),
    ("CAMPAIGN_DATABASE_URL", "postgresql+asyncpg://u:pw@h/db", "module asyncpg is not installed"),
    ("CAMPAIGN_DATABASE_URL", "sqlite+aiosqlite:///x.db", "(write sqlite://; the Python module"),
    (
        "CAMPAIGN_MAIL_LEASE_DATABASE_URL",
        "postgresql+psycopg2://u:pw@h/db",
        "the Python module psycopg2 is not installed",
    ),
    ("CAMPAIGN_MAIL_LEASE_DATABASE_URL", "sqlite:////tmp/x.db", "must be a PostgreSQL URL"),
    # On SQLite the lease is an flock: a lease URL would be ignored.
    (
        "CAMPAIGN_MAIL_LEASE_DATABASE_URL",
        "postgresql+psycopg://u@127.0.0.1:1/db",
        "applies only when CAMPAIGN_DATABASE_URL is PostgreSQL",
    ),
    ("CAMPAIGN_MAIL_FROM", "not an address", "must be one mail address"),
    ("CAMPAIGN_MAIL_FROM", "a@b.example.org, evil@x.org", "(one address is needed)"),
    ("CAMPAIGN_MAIL_FROM", "Campaign letters@example.org", "must be one mail address"),
    ("CAMPAIGN_MAIL_FROM", "letters@example.org (Campaign)", "Name <address>"),
    ("CAMPAIGN_MAIL_FROM", "Campaign <letters@example.org", "must be one mail address"),
    ("CAMPAIGN_MAIL_FROM", "null", "(it reads as null)"),
    ("CAMPAIGN_MAIL_FROM", "a@b.example.org\nBcc: x@y.org", "control character"),
    ("CAMPAIGN_PRIVACY_CONTACT", "42", "must be one mail address"),
    ("CAMPAIGN_SECURITY_CONTACT", "42", "(it reads as a number)"),
    ("CAMPAIGN_SECURITY_CONTACT", "true", "(it reads as true or false)"),
    ("CAMPAIGN_SECURITY_CONTACT", "security at example.org", "a space"),
    ("CAMPAIGN_SECURITY_CONTACT", "ftp://example.org/security", "https:// or mailto:"),
    ("CAMPAIGN_SECURITY_CONTACT", "mailto:nobody", "must be a mail address or an https://"),
    ("CAMPAIGN_SHARE_FONTS", "42", "must be font files"),
    ("CAMPAIGN_SHARE_FONTS", "true", "must be font files"),
    ("CAMPAIGN_SHARE_FONTS", "[1]", "must be font files"),
    ("CAMPAIGN_SMTP_HOST", "42", "must be text, not a number"),
    # Past these a value overflowed when used (500s) or made no sense.
    (
        "CAMPAIGN_DUPLICATE_NOTICE_QUIET_SECONDS",
        "100000000000000000000",
        "must be at most 315619200 (ten years), not 100000000000000000000",
    ),
    ("CAMPAIGN_PERMANENT_SESSION_LIFETIME", "100000000000000000000", "(ten years)"),
    ("CAMPAIGN_CONFIRM_MAX_AGE_SECONDS", "100000000000000000000", "(ten years)"),
    ("CAMPAIGN_WTF_CSRF_TIME_LIMIT", "100000000000000000000", "(ten years)"),
    ("CAMPAIGN_LIVE_REFRESH_SECONDS", "10000000", "must be at most 86400 (a day)"),
    ("CAMPAIGN_MAIL_RETRY_MAX_SECONDS", "1e400", "must be at most 604800 (a week), not inf"),
    ("CAMPAIGN_MAIL_SENDER_CPU_SHARE", "2", "must be at most 1 (all of one core)"),
    ("CAMPAIGN_RETENTION_DAYS_AFTER_CLOSE", "99999999999", "must be at most 3653 (ten years)"),
    ("CAMPAIGN_IMPORT_MAX_BYTES", "100000000000000000000", "(16 GiB)"),
    ("CAMPAIGN_PROXY_FIX_HOPS", "1000", "must be at most 10"),
]


@pytest.mark.parametrize(("variable", "value", "expected"), BAD_VALUES)
def test_a_bad_value_stops_every_command_in_one_line(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    for command in (["db", "upgrade"], ["--help"]):
        done = campaign_cli(tmp_path, *command, **{variable: value})
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
        assert done.stderr.startswith(f"Error: {variable}")
        assert expected in done.stderr
    assert not (tmp_path / "cli.sqlite3").exists()


def test_serve_with_a_bad_value_says_so_in_one_line(tmp_path: Path) -> None:
    done = campaign_cli(
        tmp_path,
        "serve",
        "--port",
        str(free_port()),
        CAMPAIGN_BASE_URL="http://127.0.0.1:5000",
        CAMPAIGN_DIGEST_HOUR="25",
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: CAMPAIGN_DIGEST_HOUR must be a whole number from 0 to 23, not 25"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CAMPAIGN_SECRET_KEY", "123"),
        ("CAMPAIGN_RATELIMIT_STORAGE_URI", "bogus://"),
        ("CAMPAIGN_LANGUAGES", '["xx"]'),
    ],
)
def test_serve_refuses_a_value_that_would_fail_later_in_one_line(
    tmp_path: Path, variable: str, value: str
) -> None:
    done = campaign_cli(
        tmp_path,
        "serve",
        "--port",
        str(free_port()),
        CAMPAIGN_BASE_URL="http://127.0.0.1:5000",
        **{variable: value},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"Error: {variable}")


def test_a_base_url_password_is_not_shown(tmp_path: Path) -> None:
    for value in ("https://ann:s3cret@letters.example.org", "https://ann:s3cret@[::1:99999"):
        done = campaign_cli(tmp_path, "--help", CAMPAIGN_BASE_URL=value)
        assert done.returncode == 1
        assert "CAMPAIGN_BASE_URL must be" in done.stderr and "s3cret" not in done.stderr


def test_a_secret_key_is_never_shown(tmp_path: Path) -> None:
    done = campaign_cli(tmp_path, "--help", CAMPAIGN_SECRET_KEY="[314159265358979]")
    assert done.returncode == 1
    assert "CAMPAIGN_SECRET_KEY must be text" in done.stderr and "314159" not in done.stderr


def test_a_storage_address_password_is_not_shown(tmp_path: Path) -> None:
    done = campaign_cli(
        tmp_path, "--help", CAMPAIGN_RATELIMIT_STORAGE_URI="redls://:s3cret@cache:6379"
    )
    assert done.returncode == 1
    assert "not redls://..." in done.stderr and "s3cret" not in done.stderr
    assert "redis://" in done.stderr  # the schemes it could be


def test_the_languages_refused_name_those_available(tmp_path: Path) -> None:
    done = campaign_cli(tmp_path, "--help", CAMPAIGN_LANGUAGES='["en", "de"]')
    assert done.returncode == 1
    assert "'de' has no translation catalogue here; available: en, es, fr, id" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "key", "expected"),
    [
        ("CAMPAIGN_SECRET_KEY", '"123"', "SECRET_KEY", "123"),
        ("CAMPAIGN_LANGUAGES", '["fr", "en"]', "LANGUAGES", ["fr", "en"]),
        ("CAMPAIGN_SESSION_COOKIE_SAMESITE", "Strict", "SESSION_COOKIE_SAMESITE", "Strict"),
        ("CAMPAIGN_SESSION_COOKIE_SAMESITE", "null", "SESSION_COOKIE_SAMESITE", None),
        ("CAMPAIGN_WTF_CSRF_TIME_LIMIT", "3600", "WTF_CSRF_TIME_LIMIT", 3600),
        ("CAMPAIGN_WTF_CSRF_TIME_LIMIT", "null", "WTF_CSRF_TIME_LIMIT", None),
        (
            "CAMPAIGN_RATELIMIT_STORAGE_URI",
            "redis://127.0.0.1:6379/0",
            "RATELIMIT_STORAGE_URI",
            "redis://127.0.0.1:6379/0",
        ),
    ],
)
def test_good_values_of_the_checked_keys_are_taken(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    value: str,
    key: str,
    expected: Any,
) -> None:
    app = env_app(monkeypatch, tmp_path, **{variable: value})
    assert app.config[key] == expected


def test_pages_work_with_the_languages_and_cookie_settings_allowed(app_factory: Any) -> None:
    app = app_factory(
        LANGUAGES=["fr", "en"],
        SESSION_COOKIE_SAMESITE="Strict",
        WTF_CSRF_TIME_LIMIT=3600,
        SECRET_KEY="a long enough random string of text",
    )
    make_campaign(app)
    page = app.test_client().get(f"/c/{SLUG}")
    assert page.status_code == 200
    assert '<html lang="fr"' in page.text


def test_a_database_url_password_is_not_shown(tmp_path: Path) -> None:
    done = campaign_cli(tmp_path, "--help", CAMPAIGN_DATABASE_URL="nodb://ann:s3cret@db/x")
    assert done.returncode == 1
    assert "CAMPAIGN_DATABASE_URL" in done.stderr and "s3cret" not in done.stderr


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("MAIL_SENDER", "False", "MAIL_SENDER must be true or false, not 'False'"),
        ("SMTP_PORT", 70000, "SMTP_PORT must be a whole number from 1 to 65535, not 70000"),
        ("DATABASE_URL", "notaurl", "DATABASE_URL must be a database URL"),
        ("SECRET_KEY", 123, "SECRET_KEY must be text (a long random string), not a number"),
        ("LANGUAGES", ["xx"], "LANGUAGES: 'xx' is not a locale Babel knows"),
        ("LANGUAGES", ["en", "pt-BR"], "LANGUAGES: 'pt-BR' is not a locale Babel knows"),
        ("LANGUAGES", ["en", "pt_BR"], "LANGUAGES: 'pt_BR' has no translation catalogue"),
        (
            "SESSION_COOKIE_SAMESITE",
            "Bogus",
            "SESSION_COOKIE_SAMESITE must be Lax, Strict or None, not 'Bogus'",
        ),
        ("WTF_CSRF_TIME_LIMIT", "abc", "WTF_CSRF_TIME_LIMIT must be a number of seconds"),
        ("WTF_CSRF_TIME_LIMIT", -5, "WTF_CSRF_TIME_LIMIT must be a number of seconds"),
        ("WTF_CSRF_TIME_LIMIT", True, "WTF_CSRF_TIME_LIMIT must be a number of seconds"),
        ("RATELIMIT_STORAGE_URI", "bogus://", "RATELIMIT_STORAGE_URI must be a rate-limit"),
        ("RATELIMIT_STORAGE_URI", "async+redis://x:1", "not async+redis://..."),
    ],
)
def test_a_bad_value_in_a_config_mapping_is_refused_too(
    app_factory: Any, key: str, value: Any, expected: str
) -> None:
    from campaign.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(expected)):
        app_factory(**{key: value})


# ------------------------------------------------------------------ databases, mail, text


def quiet_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> Flask:
    """env_app() without a mail sender (its database has no tables)."""
    return env_app(monkeypatch, tmp_path, CAMPAIGN_MAIL_SENDER="false", **values)


def test_a_lease_url_of_another_kind_than_postgresql_is_refused_with_postgresql(
    tmp_path: Path,
) -> None:
    # mail.lease gives the lease's engine libpq's keepalive options: on SQLite every retry
    # was a TypeError traceback, and no sender ever delivered.
    for value in ("sqlite:////tmp/x.db", "postgresql+psycopg2://ann:s3cret@db/x"):
        done = campaign_cli(
            tmp_path,
            "--help",
            CAMPAIGN_DATABASE_URL="postgresql+psycopg://ann:s3cret@127.0.0.1:1/campaign",
            CAMPAIGN_MAIL_LEASE_DATABASE_URL=value,
        )
        assert done.returncode == 1
        assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
        assert done.stderr.startswith("Error: CAMPAIGN_MAIL_LEASE_DATABASE_URL must be")
        assert "s3cret" not in done.stderr


def test_a_database_url_password_is_not_shown_when_its_driver_is_missing(
    tmp_path: Path,
) -> None:
    for value in (
        "postgresql+psycopg2://ann:s3cret@db/x",
        "mysql+pymysql://ann:s3cret@db/x",
        "postgresql+asyncpg://db/x?password=s3cret",
    ):
        done = campaign_cli(tmp_path, "--help", CAMPAIGN_DATABASE_URL=value)
        assert done.returncode == 1
        assert "CAMPAIGN_DATABASE_URL" in done.stderr and "s3cret" not in done.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://campaign@db.internal:5432/campaign",
        "postgresql://campaign@db.internal:5432/campaign",  # psycopg in SQLAlchemy 2.1
    ],
)
def test_a_postgresql_lease_url_with_a_postgresql_database_is_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str
) -> None:
    app = env_app(
        monkeypatch,
        tmp_path,
        CAMPAIGN_DATABASE_URL="postgresql+psycopg://campaign@127.0.0.1:1/campaign",
        CAMPAIGN_MAIL_LEASE_DATABASE_URL=url,
        CAMPAIGN_MAIL_SENDER="false",
    )
    assert app.config["MAIL_LEASE_DATABASE_URL"] == url
    app.extensions["engine"].dispose()


@pytest.mark.parametrize("word", ["true", "null", "0", "1e3", '"quoted"', "[1]", " spaced ", ""])
def test_the_smtp_login_is_taken_as_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, word: str
) -> None:
    # JSON made these True, None, 0, 1000.0, 'quoted': str() then sent another password.
    app = quiet_app(monkeypatch, tmp_path, CAMPAIGN_SMTP_USERNAME=word, CAMPAIGN_SMTP_PASSWORD=word)
    assert app.config["SMTP_USERNAME"] == word
    assert app.config["SMTP_PASSWORD"] == word


def test_an_smtp_password_of_another_kind_is_refused_unseen(app_factory: Any) -> None:
    from campaign.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        app_factory(SMTP_PASSWORD=314159)
    assert str(refused.value) == "SMTP_PASSWORD must be text, not a number"


@pytest.mark.parametrize(
    "value",
    [
        "campaign@localhost",
        "letters@example.org",
        "Open Letter <letters@example.org>",
        '"Open Letter, Paris" <letters@example.org>',
        "Lettre ouverte — Zoë <letters@example.org>",
        "<letters@example.org>",
    ],
)
def test_a_mail_from_of_one_address_is_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    app = quiet_app(monkeypatch, tmp_path, CAMPAIGN_MAIL_FROM=value)
    assert app.config["MAIL_FROM"] == value


def test_the_privacy_page_links_the_address_of_a_named_sender(app_factory: Any) -> None:
    app = app_factory(MAIL_FROM="Open Letter <letters@example.org>")
    page = app.test_client().get("/privacy")
    assert page.status_code == 200
    assert '<a href="mailto:letters@example.org">letters@example.org</a>' in page.text


@pytest.mark.parametrize(
    ("value", "contact"),
    [
        ("security@example.org", "mailto:security@example.org"),
        ("mailto:security@example.org", "mailto:security@example.org"),
        ("https://example.org/security", "https://example.org/security"),
    ],
)
def test_security_txt_names_a_good_contact(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, contact: str
) -> None:
    app = quiet_app(monkeypatch, tmp_path, CAMPAIGN_SECURITY_CONTACT=value)
    answer = app.test_client().get("/.well-known/security.txt")
    assert answer.status_code == 200
    assert answer.text.startswith(f"Contact: {contact}\nExpires: ")


@pytest.mark.parametrize("value", ['["/srv/fonts/a.ttf"]', "/srv/fonts/a.ttf", '"/a.ttf"', "[]"])
def test_share_fonts_are_a_list_or_one_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    app = quiet_app(monkeypatch, tmp_path, CAMPAIGN_SHARE_FONTS=value)
    assert isinstance(app.config["SHARE_FONTS"], list | str)


def test_every_number_at_its_highest_still_serves(app_factory: Any) -> None:
    from campaign.config import _highest

    app = app_factory(**{key: highest for key, (highest, _what) in _highest.items()})
    make_campaign(app)
    answer = sign(app, "localhost")
    assert answer.status_code in (302, 303), answer.text
    again = sign(app, "localhost")  # a duplicate: the quiet period is added to a time
    assert again.status_code in (302, 303), again.text
    for path in (f"/c/{SLUG}", f"/c/{SLUG}/tally.json", "/admin/login", "/privacy"):
        assert app.test_client().get(path).status_code == 200, path


def test_every_default_is_within_its_highest() -> None:
    from campaign import config

    for key, (highest, _what) in config._highest.items():
        default = getattr(config, key)
        assert default is None or default <= highest, key
