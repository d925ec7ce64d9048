"""Helpers for the fault tests: an SMTP sink and signing clients (servers: serve_helpers.py).

Run as a script, this module is one client process of the load tests:

    python tests/fault_helpers.py --port P --slugs a,b --count N --prefix c3 --out FILE

It loads the form once (CSRF token and cookie), then posts N signatures over one
keep-alive connection and writes one JSON line per request to FILE:
{"email", "slug", "status", "t"} (status 0: no answer, the connection broke).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve_helpers import free_port

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
COUNTRIES = ("KH", "FR", "BR", "JP", "GH", "AU", "CA", "DE")
_DIGITS = str.maketrans("0123456789", "qrstuvwxyz")


def letters(n: int) -> str:
    """n written with letters (a name key keeps letters, so every signer is a new person)."""
    word = ""
    while True:
        n, digit = divmod(n, 26)
        word = chr(ord("a") + digit) + word
        if n == 0:
            return word.capitalize()


def fields(prefix: str, n: int) -> dict[str, str]:
    """A valid signature, unique by prefix and n (its name too, so none is held).

    The suffixes keep a generated word from being an honorific ("Dr", "Mr"), which the
    name key drops.
    """
    family = "".join(c for c in prefix.translate(_DIGITS) if c.isalpha()).capitalize()
    return {
        "name": f"{family}son {letters(n)}ix Member",
        "title": "MP",
        "parliament": "National Assembly",
        "country": COUNTRIES[n % len(COUNTRIES)],
        "email": f"{prefix}-{n}@load.example",
        "public": "y",
    }


# --------------------------------------------------------------------------- SMTP


class _Collector:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.contents: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.contents.append(bytes(envelope.content))
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server on a fixed loopback port, started late (while it is down,
    connections to the port are refused, as with a mail server that is away)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = _Collector()
        self.controller: Any = None

    def start(self) -> None:
        """Start listening on the port."""
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self) -> list[Any]:
        """Every message received, parsed."""
        import email
        from email import policy

        with self.handler.lock:
            contents = list(self.handler.contents)
        return [email.message_from_bytes(c, policy=policy.default) for c in contents]


# --------------------------------------------------------------------------- the client


@dataclass
class Answer:
    """One request's outcome."""

    email: str
    slug: str
    status: int  # 0: the connection broke before an answer
    t: float
    body: str = ""
    retry_after: str = ""


class SignClient:
    """One signer's browser: the form's CSRF token and cookie, one keep-alive connection."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.port = port
        self.timeout = timeout
        self.cookie = ""
        self.token = ""
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self.conn

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        """One request; the connection is reopened after a failure."""
        sent = dict(headers or {})
        if self.cookie:
            sent["Cookie"] = self.cookie
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie" and value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, data, response

    def load_form(self, slug: str) -> None:
        """GET the letter for its CSRF token and session cookie."""
        status, data, _ = self.request("GET", f"/c/{slug}")
        assert status == 200, (status, data[:300])
        found = CSRF.search(data.decode())
        self.token = found.group(1) if found else ""

    def sign(self, slug: str, values: dict[str, str]) -> Answer:
        """POST one signature; status 0 when no answer came."""
        form = dict(values, csrf_token=self.token) if self.token else values
        body = urllib.parse.urlencode(form).encode()
        try:
            status, data, response = self.request(
                "POST",
                f"/c/{slug}/sign",
                body,
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
        except (OSError, http.client.HTTPException) as error:
            return Answer(values["email"], slug, 0, time.time(), repr(error))
        keep = "" if status == 303 else data.decode(errors="replace")
        retry = response.getheader("Retry-After") or ""
        return Answer(values["email"], slug, status, time.time(), keep, retry)


def sign_loop(
    port: int,
    slugs: list[str],
    prefix: str,
    *,
    count: int | None,
    record: Callable[[Answer], None],
    stop: threading.Event | None = None,
    pause_after_failure: float = 0.05,
) -> None:
    """Post signatures (alternating between slugs) until count is reached or stop is set."""
    client = SignClient(port)
    loaded = False
    n = 0
    try:
        while (count is None or n < count) and not (stop is not None and stop.is_set()):
            if not loaded:
                try:
                    client.load_form(slugs[0])
                    loaded = True
                except (OSError, http.client.HTTPException, AssertionError):
                    time.sleep(pause_after_failure)
                    continue
            slug = slugs[n % len(slugs)]
            answer = client.sign(slug, fields(prefix, n))
            record(answer)
            n += 1
            if answer.status != 303:
                time.sleep(pause_after_failure)
    finally:
        client.close()


def read_answers(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a client process wrote."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slugs", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8") as out:

        def record(answer: Answer) -> None:
            out.write(json.dumps(answer.__dict__) + "\n")

        sign_loop(args.port, args.slugs.split(","), args.prefix, count=args.count, record=record)


if __name__ == "__main__":
    _main()
