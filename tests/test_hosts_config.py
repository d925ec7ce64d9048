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
