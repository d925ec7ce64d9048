"""Rate limits: per address, per campaign, allow-list, proxies, the 429 answer, shared storage."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from serve_helpers import Server, free_port, get, running, serve_env

from campaign import campaigns
from campaign.db import new_session
from campaign.security import parse_networks

REDIS_ENV = "CAMPAIGN_TEST_REDIS_URL"
TALLY = "/c/letter/tally.json"


def limited_app(app_factory: Any, **config: Any) -> Flask:
    """An app with rate limiting on and an open campaign "letter"."""
    app: Flask = app_factory(**{"RATELIMIT_ENABLED": True, **config})
    with app.app_context():
        db = new_session(app)
        campaigns.create_campaign(db, slug="letter", title="Free them", state="open")
        campaigns.create_campaign(db, slug="other", title="Another letter", state="open")
        db.commit()
        db.close()
    return app


def signer(n: int) -> dict[str, str]:
    """A valid sign form, a different person for each n."""
    return {
        "name": f"Member Signer{n} Test",
        "title": "MP",
        "parliament": "National Assembly",
        "party": "Independent",
        "country": "KH",
        "email": f"signer{n}@parliament.example",
        "comment": "",
    }


def statuses(client: FlaskClient, count: int, path: str = TALLY, **kwargs: Any) -> list[int]:
    """The statuses of count GETs of path."""
    return [client.get(path, **kwargs).status_code for _ in range(count)]


def test_json_endpoint_refuses_with_json_429_and_retry_after(app_factory) -> None:
    client = limited_app(app_factory, JSON_RATE_LIMIT="2 per minute").test_client()
    assert statuses(client, 2) == [200, 200]
    refused = client.get(TALLY)
    assert refused.status_code == 429
    assert refused.mimetype == "application/json"
    body = refused.get_json()
    assert body["status"] == 429 and 1 <= body["retry_after"] <= 60
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_sign_refused_with_a_readable_page_and_retry_after(app_factory) -> None:
    client = limited_app(app_factory, SIGN_RATE_LIMIT="2 per minute").test_client()
    for n in range(2):
        assert client.post("/c/letter/sign", data=signer(n)).status_code == 303
    refused = client.post("/c/letter/sign", data=signer(3))
    text = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert "<h1>Too many requests</h1>" in text
    assert "too many requests from your network" in text
    assert "What you sent was not saved" in text
    assert "Please wait" in text
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "Content-Security-Policy" in refused.headers


def test_login_is_limited_per_address(app_factory) -> None:
    client = limited_app(app_factory, LOGIN_RATE_LIMIT="3 per minute").test_client()
    form = {"email": "nobody@example.org", "password": "wrong password here"}
    codes = [client.post("/admin/login", data=form).status_code for _ in range(4)]
    assert codes[:3] != [429] * 3 and 429 not in codes[:3]
    assert codes[3] == 429


def test_confirm_links_are_limited(app_factory) -> None:
    client = limited_app(app_factory, CONFIRM_RATE_LIMIT="2 per minute").test_client()
    codes = statuses(client, 3, "/c/letter/confirm/not-a-token")
    assert 429 not in codes[:2] and codes[2] == 429


def test_a_spoofed_forwarded_for_changes_nothing_without_proxy_fix(app_factory) -> None:
    client = limited_app(app_factory, JSON_RATE_LIMIT="2 per minute").test_client()
    codes = [
        client.get(TALLY, headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 429]


def test_behind_a_proxy_each_forwarded_client_has_its_own_limit(app_factory) -> None:
    client = limited_app(
        app_factory, JSON_RATE_LIMIT="2 per minute", PROXY_FIX_HOPS=1
    ).test_client()
    for n in range(3):
        assert statuses(client, 2, headers={"X-Forwarded-For": f"203.0.113.{n}"}) == [200, 200]
    assert client.get(TALLY, headers={"X-Forwarded-For": "203.0.113.0"}).status_code == 429


def test_proxy_fix_trusts_only_the_configured_hops(app_factory) -> None:
    client = limited_app(
        app_factory, JSON_RATE_LIMIT="2 per minute", PROXY_FIX_HOPS=1
    ).test_client()
    # The client prepends a fake address; only the last one (set by our proxy) counts.
    spoofed = [
        client.get(TALLY, headers={"X-Forwarded-For": f"10.9.9.{n}, 198.51.100.1"}).status_code
        for n in range(3)
    ]
    assert spoofed == [200, 200, 429]


def test_allowlisted_network_is_not_limited(app_factory) -> None:
    client = limited_app(
        app_factory, JSON_RATE_LIMIT="2 per minute", RATELIMIT_ALLOWLIST=["127.0.0.0/8"]
    ).test_client()
    assert statuses(client, 6) == [200] * 6
    outside = {"environ_base": {"REMOTE_ADDR": "198.51.100.20"}}
    assert statuses(client, 3, **outside) == [200, 200, 429]


def test_allowlist_from_the_environment_is_a_comma_separated_string(app_factory) -> None:
    client = limited_app(
        app_factory,
        JSON_RATE_LIMIT="2 per minute",
        RATELIMIT_ALLOWLIST="192.0.2.0/24, 2001:db8::/32",
    ).test_client()
    inside_v4 = {"environ_base": {"REMOTE_ADDR": "192.0.2.77"}}
    inside_v6 = {"environ_base": {"REMOTE_ADDR": "2001:db8::5"}}
    assert statuses(client, 4, **inside_v4) == [200] * 4
    assert statuses(client, 4, **inside_v6) == [200] * 4
    assert statuses(client, 3) == [200, 200, 429]


def test_parse_networks_accepts_lists_strings_and_hosts() -> None:
    assert [str(n) for n in parse_networks("10.0.0.0/8,,192.0.2.1")] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
    ]
    assert [str(n) for n in parse_networks(["2001:db8::/32"])] == ["2001:db8::/32"]
    assert parse_networks(None) == [] and parse_networks("") == []


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("RATELIMIT_ALLOWLIST", ["parliament"], "RATELIMIT_ALLOWLIST: 'parliament' is not"),
        ("SIGN_RATE_LIMIT", "lots", "SIGN_RATE_LIMIT: 'lots' is not a rate limit"),
        ("PROXY_FIX_HOPS", -1, "PROXY_FIX_HOPS must be 0 or more"),
    ],
)
def test_bad_settings_fail_at_start_up(app_factory, key: str, value: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        app_factory(**{key: value})


def test_campaign_ceiling_holds_however_many_addresses_sign(app_factory) -> None:
    client = limited_app(
        app_factory,
        SIGN_RATE_LIMIT="100 per minute",
        SIGN_CAMPAIGN_RATE_LIMIT="3 per minute",
        PROXY_FIX_HOPS=1,
        RATELIMIT_ALLOWLIST=["0.0.0.0/0"],
    ).test_client()

    def sign(slug: str, n: int) -> Any:
        return client.post(
            f"/c/{slug}/sign", data=signer(n), headers={"X-Forwarded-For": f"203.0.113.{n}"}
        )

    assert [sign("letter", n).status_code for n in range(3)] == [303, 303, 303]
    refused = sign("letter", 4)
    assert refused.status_code == 429
    assert "receiving more signatures than it can take" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) >= 1
    assert sign("other", 5).status_code == 303  # another letter has its own ceiling


def test_rate_limiting_off_limits_nothing(app_factory) -> None:
    client = limited_app(
        app_factory,
        RATELIMIT_ENABLED=False,
        JSON_RATE_LIMIT="1 per minute",
        SIGN_RATE_LIMIT="1 per minute",
        SIGN_CAMPAIGN_RATE_LIMIT="1 per minute",
    ).test_client()
    assert statuses(client, 3) == [200, 200, 200]
    assert [client.post("/c/letter/sign", data=signer(n)).status_code for n in range(3)] == [
        303,
        303,
        303,
    ]


def test_with_the_limit_storage_down_pages_still_answer_and_limits_fall_back(
    app_factory,
) -> None:
    client = limited_app(
        app_factory,
        RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0",
        SIGN_RATE_LIMIT="2 per minute",
        JSON_RATE_LIMIT="100 per minute",
    ).test_client()
    assert [client.post("/c/letter/sign", data=signer(n)).status_code for n in range(3)] == [
        303,
        303,
        429,
    ]
    assert statuses(client, 2) == [200, 200]


# --- the shared limit across processes (Redis) --------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis; skipped only when unset, and an error when set but not answering."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set")
    import redis

    client = redis.Redis.from_url(url)
    client.ping()  # raises when the configured server does not answer
    yield url
    client.close()


def test_two_server_processes_share_one_limit_through_redis(
    app_factory, tmp_path: Path, redis_url: str
) -> None:
    import redis

    app = limited_app(app_factory)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    env = serve_env(
        app.config["DATABASE_URL"],
        tmp_path / "served",
        CAMPAIGN_SECRET_KEY="shared-limit-test-secret",
        CAMPAIGN_MAIL_SENDER="false",
        CAMPAIGN_RATELIMIT_ENABLED="true",
        CAMPAIGN_RATELIMIT_STORAGE_URI=redis_url,
        CAMPAIGN_RATELIMIT_KEY_PREFIX=prefix,
        CAMPAIGN_JSON_RATE_LIMIT="5 per minute",
    )
    servers = [
        Server(env=env, log_path=tmp_path / f"server{n}.log", workers=1, threads=2)
        for n in range(2)
    ]
    try:
        with running(*servers):
            answers = [get(f"http://127.0.0.1:{servers[n % 2].port}{TALLY}") for n in range(6)]
    finally:
        store = redis.Redis.from_url(redis_url)
        for key in store.scan_iter(f"*{prefix}*"):
            store.delete(key)
        store.close()
    assert [status for status, _ in answers] == [200, 200, 200, 200, 200, 429]
    assert int(answers[5][1]["Retry-After"]) >= 1


@pytest.mark.parametrize(
    ("config", "workers", "warned"),
    [
        ({}, 2, True),  # memory:// is the default
        ({}, 1, False),  # one worker: one memory, the limits hold as written
        ({"RATELIMIT_ENABLED": False}, 2, False),
        ({"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0"}, 4, False),
    ],
)
def test_serve_warns_when_each_worker_would_keep_its_own_rate_limits(
    app_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, Any],
    workers: int,
    warned: bool,
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr("campaign.server.run_gunicorn", lambda **options: started.append(options))
    app: Flask = app_factory(**{"RATELIMIT_ENABLED": True, **config})
    result = app.test_cli_runner().invoke(args=["serve", "--workers", str(workers)])
    assert result.exit_code == 0, result.output
    assert [options["workers"] for options in started] == [workers]
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    if warned:
        assert warnings == [
            f"warning: rate limits are kept in each worker's memory, so a client gets up to"
            f" {workers}x each limit; set CAMPAIGN_RATELIMIT_STORAGE_URI=redis://... to share them"
        ]
    else:
        assert warnings == []
