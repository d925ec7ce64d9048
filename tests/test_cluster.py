"""Two `campaign serve` processes sharing one PostgreSQL database and one Redis.

The deployment a letter outgrows one machine with: several servers behind a proxy
(ProxyFix trusts one hop here), one database, one rate-limit store. A signer may load
the form from one process and post it to the other; the same address posted through
both is one signature; counts stay exact; per-address limits are counted once for the
cluster, not once per process; and each mail (confirmation, notice or receipt) leaves
once: one process sends, the others stand by and one takes over when it is killed.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_helpers import fresh_database
from serve_helpers import CAMPAIGN, Server, running, serve_env
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from campaign.models import Campaign, OutboxMessage, Signature, TallyCount

pytestmark = pytest.mark.slow

POSTGRES_ENV = "CAMPAIGN_TEST_POSTGRES_URL"
REDIS_ENV = "CAMPAIGN_TEST_REDIS_URL"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SIGN_LIMIT = 3  # per address and minute, counted in Redis for the whole cluster


@dataclass
class Cluster:
    """The shared database, and the two servers with their instance folders."""

    url: str
    servers: list[Server]
    instances: list[Path]
    env: dict[str, str]
    engine: Engine | None = None

    @property
    def ports(self) -> list[int]:
        """Each server's port."""
        return [server.port for server in self.servers]

    def session(self) -> Session:
        """A session on the shared database (the caller closes it)."""
        if self.engine is None:
            self.engine = create_engine(self.url)
        return Session(self.engine)


def _cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [CAMPAIGN, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"campaign {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@contextmanager
def _database() -> Iterator[str]:
    """A fresh PostgreSQL database for a cluster, dropped afterwards; skipped unless configured."""
    base, redis_url = os.environ.get(POSTGRES_ENV), os.environ.get(REDIS_ENV)
    if not base or not redis_url:
        pytest.skip(f"{POSTGRES_ENV} and {REDIS_ENV} are not both set")
    with fresh_database(base, "campaign_cluster") as url:
        yield url


@contextmanager
def _cluster(url: str, tmp: Path) -> Iterator[Cluster]:
    """Two open letters and two servers on the database at url; stopped afterwards."""
    redis_url = os.environ[REDIS_ENV]
    import redis

    # Set but unreachable is a failure, not a skip.
    store = redis.Redis.from_url(redis_url)
    store.ping()
    prefix = f"cluster-test-{uuid.uuid4().hex[:10]}"
    env = serve_env(
        url,
        tmp / "setup",
        base_url="http://cluster.test",
        # One key for every process: a form served by one is posted to the other.
        CAMPAIGN_SECRET_KEY="cluster-test-secret-shared-by-every-process",
        CAMPAIGN_RATELIMIT_ENABLED="true",
        CAMPAIGN_RATELIMIT_STORAGE_URI=redis_url,
        CAMPAIGN_RATELIMIT_KEY_PREFIX=prefix,
        CAMPAIGN_SIGN_RATE_LIMIT=f"{SIGN_LIMIT} per minute",
        CAMPAIGN_PROXY_FIX_HOPS="1",
        CAMPAIGN_MAIL_POLL_SECONDS="0.2",
        # A second signing moments later gets its notice here (not taken for a double tap).
        CAMPAIGN_DUPLICATE_NOTICE_QUIET_SECONDS="0",
    )
    letter = tmp / "letter.md"
    letter.write_text("We ask for a cluster that counts.\n", encoding="utf-8")
    instances = [tmp / "a", tmp / "b"]
    servers = [
        Server(
            env={**env, "CAMPAIGN_INSTANCE_PATH": str(instance)},
            log_path=instance.with_suffix(".log"),
            workers=2,
        )
        for instance in instances
    ]
    cluster = Cluster(url, servers, instances, env)
    try:
        _cli(env, "db", "upgrade")
        _cli(env, "create-campaign", "counted", "--title", "Counted", "--letter", str(letter),
             "--open", "--no-confirmation")  # fmt: skip
        _cli(env, "create-campaign", "mailed", "--title", "Mailed", "--letter", str(letter),
             "--open")  # fmt: skip
        with running(*servers):
            yield cluster
    finally:
        if cluster.engine is not None:
            cluster.engine.dispose()
        for key in store.scan_iter(f"*{prefix}*"):
            store.delete(key)
        store.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster the module's tests share, one after another."""
    with _database() as url, _cluster(url, tmp_path_factory.mktemp("cluster")) as shared:
        yield shared


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of the test's own, on a database no other test has written to."""
    with _database() as url, _cluster(url, tmp_path) as fresh:
        yield fresh


class Browser:
    """One signer behind the proxy: their address (X-Forwarded-For) and their cookies."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.cookies: dict[str, str] = {}
        self.token = ""

    def request(
        self, port: int, method: str, path: str, fields: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """One request to the server on port; returns (status, body); redirects not followed."""
        headers = {"X-Forwarded-For": self.address}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            for key, value in response.getheaders():
                if key.lower() == "set-cookie":
                    name, _, rest = value.split(";", 1)[0].partition("=")
                    self.cookies[name.strip()] = rest.strip()
            return response.status, response.read().decode("utf-8", errors="replace")
        finally:
            conn.close()

    def open_form(self, port: int, slug: str) -> None:
        """GET the letter and keep the form's csrf_token."""
        status, page = self.request(port, "GET", f"/c/{slug}")
        assert status == 200
        match = CSRF.search(page)
        assert match, "the signing form has no csrf_token"
        self.token = match.group(1)

    def sign(self, port: int, slug: str, n: int, email: str | None = None) -> int:
        """POST signer n's form; returns the status."""
        status, _ = self.request(
            port,
            "POST",
            f"/c/{slug}/sign",
            {
                "csrf_token": self.token,
                "name": f"Member {chr(65 + n // 26)}{chr(97 + n % 26)}ington",
                "title": "MP",
                "parliament": "Cluster Parliament",
                "party": "",
                "country": ["FR", "KH", "BR", "NZ", "KE", "CA"][n % 6],
                "email": email or f"member{n}@cluster.example.org",
                "comment": "",
                "public": "y",
                "website": "",
            },
        )
        return status


def _tally_json(port: int, slug: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"/c/{slug}/tally.json", headers={"X-Forwarded-For": "192.0.2.200"})
        response = conn.getresponse()
        assert response.status == 200
        return int(json.loads(response.read())["signatures"])
    finally:
        conn.close()


def _counts(cluster: Cluster, slug: str) -> tuple[int, int, int]:
    """(rows, counted rows, sum of the counters) of a campaign, read from the database."""
    with cluster.session() as db:
        cid = db.scalar(select(Campaign.id).where(Campaign.slug == slug))
        rows = db.scalar(select(func.count()).where(Signature.campaign_id == cid))
        counted = db.scalar(
            select(func.count()).where(Signature.campaign_id == cid, Signature.counted.is_(True))
        )
        tally = db.scalar(
            select(func.coalesce(func.sum(TallyCount.signatures), 0)).where(
                TallyCount.campaign_id == cid
            )
        )
        return int(rows or 0), int(counted or 0), int(tally or 0)


def test_signatures_through_both_servers_count_exactly(cluster: Cluster) -> None:
    a, b = cluster.ports
    # Twelve signers, each served the form by one process and posting to the other.
    for n in range(12):
        browser = Browser(f"198.51.100.{n + 1}")
        browser.open_form(a if n % 2 else b, "counted")
        assert browser.sign(b if n % 2 else a, "counted", n) == 303
    # One address posted through both processes at once: one signature.
    twice = Browser("198.51.100.99")
    twice.open_form(a, "counted")
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda port=port: statuses.append(
                twice.sign(port, "counted", 50, email="Twice+Cluster@Example.org")
            )
        )
        for port in (a, b)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [303, 303]

    assert _counts(cluster, "counted") == (13, 13, 13)
    assert _tally_json(a, "counted") == 13
    assert _tally_json(b, "counted") == 13
    out = _cli({**cluster.env, "CAMPAIGN_INSTANCE_PATH": str(cluster.instances[0])},
               "recount", "counted")  # fmt: skip
    assert "counted: counters match (13)" in out


def test_rate_limit_is_shared_by_both_servers(cluster: Cluster) -> None:
    a, b = cluster.ports
    browser = Browser("203.0.113.50")
    browser.open_form(a, "counted")
    # Alternating servers: with per-process counters each would allow SIGN_LIMIT.
    statuses = [
        browser.sign(port, "counted", 100 + n) for n, port in enumerate([a, b] * SIGN_LIMIT)
    ]
    assert statuses == [303] * SIGN_LIMIT + [429] * SIGN_LIMIT
    # Another address is not affected.
    other = Browser("203.0.113.51")
    other.open_form(b, "counted")
    assert other.sign(a, "counted", 200) == 303


def test_each_mail_leaves_once_though_every_process_sends(own_cluster: Cluster) -> None:
    cluster = own_cluster  # every mail in its database is this test's
    a, b = cluster.ports
    for n in range(8):
        browser = Browser(f"198.51.100.{150 + n}")
        browser.open_form(a, "mailed")
        assert browser.sign(a if n % 2 else b, "mailed", 300 + n) == 303
    # Signatures that count at once, each with a receipt; the first signer signs again
    # through the other server and is told so.
    for n in range(4):
        browser = Browser(f"198.51.100.{160 + n}")
        browser.open_form(b, "counted")
        assert browser.sign(a if n % 2 else b, "counted", 250 + n) == 303
    again = Browser("198.51.100.164")
    again.open_form(b, "counted")
    assert again.sign(a, "counted", 250) == 303
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with cluster.session() as db:
            unsent = db.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None)))
            queued = db.scalar(select(func.count()).select_from(OutboxMessage))
        if unsent == 0:
            break
        time.sleep(0.2)
    assert unsent == 0, "the senders did not deliver every message"
    files = [p for inst in cluster.instances for p in (inst / "outbox").glob("*.eml")]
    ids = []
    for path in files:
        match = re.search(r"^Message-ID: (.+)$", path.read_text(), re.MULTILINE | re.IGNORECASE)
        assert match, path
        ids.append(match.group(1).strip())
    with cluster.session() as db:
        kinds = dict(
            db.execute(select(OutboxMessage.kind, func.count()).group_by(OutboxMessage.kind)).all()
        )
        receipts = db.scalar(
            select(func.count())
            .select_from(Signature)
            .join(Campaign)
            .where(Campaign.slug == "counted")
        )
    # Eight confirmations, the "you already signed" notice, and a receipt for each
    # signature on the letter without confirmation.
    assert kinds == {"confirm": 8, "already_signed": 1, "receipt": receipts}
    assert queued == 9 + receipts
    assert len(files) == queued
    assert len(set(ids)) == queued
    assert _counts(cluster, "mailed") == (8, 0, 0)  # pending until confirmed


LEADS = re.compile(rb"mail sender: process (\d+) leads")


def _leaders(cluster: Cluster) -> list[tuple[int, int]]:
    """(server, pid) of each process that took the mail lease so far, per server log."""
    found: list[tuple[int, int]] = []
    for server, instance in enumerate(cluster.instances):
        log = instance.with_suffix(".log").read_bytes()
        found.extend((server, int(pid)) for pid in LEADS.findall(log))
    return found


def _unsent(cluster: Cluster) -> int:
    with cluster.session() as db:
        return int(db.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None))) or 0)


def _wait(predicate: Callable[[], bool], timeout: float) -> float:
    """Poll until predicate() holds; the seconds it took."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.1)
    return time.monotonic() - start


def test_one_process_sends_and_another_takes_over_when_it_is_killed(cluster: Cluster) -> None:
    a, b = cluster.ports
    _wait(lambda: _unsent(cluster) == 0, 30)
    # Four workers in two servers run a sender; one of them holds the lease and sends.
    [(server, pid)] = _leaders(cluster)
    assert list((cluster.instances[1 - server] / "outbox").glob("*.eml")) == []
    os.kill(pid, signal.SIGKILL)
    took_over = _wait(lambda: len(_leaders(cluster)) == 2, 30)
    # The logs are read server by server, not in time: the new leader is the other entry.
    [(new_server, new_pid)] = [leader for leader in _leaders(cluster) if leader != (server, pid)]
    assert new_pid != pid
    for n in range(4):
        browser = Browser(f"198.51.100.{170 + n}")
        browser.open_form(a, "mailed")
        assert browser.sign(b if n % 2 else a, "mailed", 400 + n) == 303
    _wait(lambda: _unsent(cluster) == 0, 30)
    with cluster.session() as db:
        queued = db.scalar(select(func.count()).select_from(OutboxMessage))
    files = [p for inst in cluster.instances for p in (inst / "outbox").glob("*.eml")]
    ids = set()
    for path in files:
        match = re.search(r"^Message-ID: (.+)$", path.read_text(), re.MULTILINE | re.IGNORECASE)
        assert match, path
        ids.add(match.group(1).strip())
    assert len(files) == len(ids) == queued  # every mail once, the killed leader's included
    new_files = list((cluster.instances[new_server] / "outbox").glob("*.eml"))
    assert len(new_files) >= 4
    # The standby senders try the lease every MAIL_LEASE_RETRY_SECONDS (2 s by default).
    assert took_over < 10, took_over
