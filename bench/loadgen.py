"""An HTTP/1.1 load generator on asyncio: raw keep-alive connections, per-request latency.

Python's HTTP clients spend more CPU per request than the server under test would leave
free on two cores, so this speaks just enough HTTP/1.1 itself: one request at a time per
connection (no pipelining), Content-Length and chunked bodies, cookies kept per virtual
user. A virtual user GETs the signing form once (session cookie and csrf_token), then
POSTs signers, as a browser would.

Two ways to load a server:

- :func:`closed_loop`: N virtual users each send the next request when the last one
  answered (throughput: how many a second the server can do);
- :func:`open_loop`: requests start at a fixed rate whatever the server does (latency
  at a given load); a request's latency counts from the moment it was due, so a stalled
  server cannot hide its queue by slowing the generator down (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import os
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

CSRF_RE = re.compile(
    rb'name="csrf_token"[^>]*?value="([^"]*)"|value="([^"]*)"[^>]*?name="csrf_token"'
)


def csrf_token(page: bytes) -> str | None:
    """The csrf_token field's value in a form page, whatever the attributes' order."""
    match = CSRF_RE.search(page)
    return html.unescape((match.group(1) or match.group(2)).decode()) if match else None


class HTTPError(Exception):
    """The connection broke or the server answered something that is not HTTP/1.1."""


@dataclass
class Response:
    """One parsed HTTP response."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Connection:
    """One keep-alive HTTP/1.1 connection to host:port, reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.requests = 0  # on the current socket: 0 means a fresh connection
        self.opened = 0

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.requests = 0
        self.opened += 1

    def close(self) -> None:
        """Close the socket (the next request opens a new one)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Response:
        """Send one request and read its response; retry once if a kept-alive socket had closed."""
        raw = self._encode(method, path, headers or {}, body)
        for attempt in (1, 2):
            if self.writer is None:
                await self._open()
            reused = self.requests > 0
            try:
                assert self.writer is not None
                self.writer.write(raw)
                await self.writer.drain()
                response = await self._read()
            except (ConnectionError, asyncio.IncompleteReadError, HTTPError) as error:
                self.close()
                # A server may close an idle keep-alive socket just as we reuse it; that
                # request never reached the application, so sending it again is safe.
                if attempt == 1 and reused and _nothing_read(error):
                    continue
                raise HTTPError(f"{method} {path}: {error!r}") from None
            self.requests += 1
            if (response.header("connection") or "").lower() == "close":
                self.close()
            return response
        raise AssertionError("unreachable")

    def _encode(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for key, value in headers.items():
            lines.append(f"{key}: {value}")
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def _read(self) -> Response:
        assert self.reader is not None
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            raise HTTPError(f"closed after {len(error.partial)} bytes") from None
        except asyncio.LimitOverrunError:
            raise HTTPError("response head too long") from None
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HTTPError(f"bad status line {status_line!r}")
        headers = []
        for line in header_lines:
            key, _, value = line.partition(":")
            headers.append((key.strip().lower(), value.strip()))
        response = Response(int(parts[1]), headers, b"")
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            response.body = await self._read_chunked()
        else:
            length = response.header("content-length")
            if length is not None:
                response.body = await self.reader.readexactly(int(length))
            elif response.status not in (204, 304) and not 100 <= response.status < 200:
                response.body = await self.reader.read()  # delimited by close
                self.close()
        return response

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        chunks = []
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # Trailers, if any, end with an empty line.
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def _nothing_read(error: BaseException) -> bool:
    """Whether a failure happened before any byte of the response arrived."""
    if isinstance(error, ConnectionError):
        return True
    if isinstance(error, asyncio.IncompleteReadError):
        return not error.partial
    return str(error).startswith("closed after 0 bytes")


class VirtualUser:
    """A browser-like client: one connection, its cookies, the form's csrf_token."""

    def __init__(self, host: str, port: int) -> None:
        self.conn = Connection(host, port)
        self.cookies: dict[str, str] = {}
        self.csrf_token = ""

    def _cookie_header(self) -> dict[str, str]:
        if not self.cookies:
            return {}
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def _keep_cookies(self, response: Response) -> None:
        for key, value in response.headers:
            if key == "set-cookie":
                pair = value.split(";", 1)[0]
                name, _, cookie = pair.partition("=")
                if cookie:
                    self.cookies[name.strip()] = cookie.strip()
                else:
                    self.cookies.pop(name.strip(), None)

    async def get(self, path: str) -> Response:
        """GET a page with this user's cookies, keeping any it sets."""
        response = await self.conn.request("GET", path, self._cookie_header())
        self._keep_cookies(response)
        return response

    async def load_form(self, path: str) -> Response:
        """GET the form page and keep its csrf_token (a session cookie comes with it)."""
        response = await self.get(path)
        token = csrf_token(response.body)
        if response.status != 200 or token is None:
            raise HTTPError(
                f"GET {path}: status {response.status}, csrf_token found: {token is not None}"
            )
        self.csrf_token = token
        return response

    async def post_form(self, path: str, fields: dict[str, str]) -> Response:
        """POST an urlencoded form with this user's csrf_token and cookies."""
        body = urllib.parse.urlencode({"csrf_token": self.csrf_token, **fields}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self._cookie_header()}
        response = await self.conn.request("POST", path, headers, body)
        self._keep_cookies(response)
        return response

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


# --- the signers -----------------------------------------------------------------------


def letters(n: int, width: int = 5) -> str:
    """n spelled in lowercase letters, base 26 (a unique alphabetic word per number)."""
    out = []
    for _ in range(width):
        n, digit = divmod(n, 26)
        out.append(chr(97 + digit))
    return "".join(reversed(out))


class Signers:
    """Distinct signers: a unique address and a unique name each, countries in turn."""

    def __init__(self, run_id: str, countries: list[str]) -> None:
        self.run_id = run_id
        self.countries = countries
        self._next: Iterator[int] = itertools.count()

    def next(self) -> dict[str, str]:
        """The form fields of the next signer."""
        n = next(self._next)
        word = letters(n)
        return {
            "name": f"Hon. {word.capitalize()} Benchmark",
            "title": "MP",
            "parliament": "Bench Parliament",
            "party": "Load Party",
            "country": self.countries[n % len(self.countries)],
            "email": f"{self.run_id}.{n}@bench.example.org",
            "comment": "",
            "public": "y",
            "website": "",
        }


# --- results ---------------------------------------------------------------------------


@dataclass
class Result:
    """What one load run measured."""

    mode: str
    duration: float  # seconds of the measured window
    latencies: list[float] = field(default_factory=list)  # seconds, accepted requests
    statuses: dict[str, int] = field(default_factory=dict)  # status (or error) -> count
    errors: list[str] = field(default_factory=list)  # the first few, for the report
    sent: int = 0
    accepted: int = 0
    warmup_accepted: int = 0
    setup_errors: int = 0
    cpu_seconds: float = 0.0  # this process's CPU time during the run
    server_cpu_seconds: float | None = None  # the server's, over the measured window
    connections: int = 0
    target_rate: float | None = None

    @property
    def error_count(self) -> int:
        """Requests not answered with the expected status (transport errors included)."""
        return self.sent - self.accepted + self.setup_errors

    @property
    def rate(self) -> float:
        """Accepted requests per second in the measured window."""
        return self.accepted / self.duration if self.duration else 0.0

    @property
    def sent_rate(self) -> float:
        """Requests started per second in the measured window."""
        return self.sent / self.duration if self.duration else 0.0

    def percentile(self, p: float) -> float:
        """The p-th percentile latency in seconds (nearest rank); NaN when nothing was measured."""
        return percentile(self.latencies, p)

    def note(self, outcome: str, detail: str | None = None) -> None:
        """Count one outcome; keep the first few error details."""
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1
        if detail and len(self.errors) < 5 and detail not in self.errors:
            self.errors.append(detail)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(min(rank, len(ordered))) - 1]


Request = Callable[[VirtualUser], Awaitable[tuple[bool, str]]]


def signing_request(
    sign_path: str, signers: Signers, expect_location: str | None = "/thanks"
) -> Request:
    """A POST of the next signer; accepted means 303 (to the thanks page when given)."""

    async def send(user: VirtualUser) -> tuple[bool, str]:
        response = await user.post_form(sign_path, signers.next())
        location = response.header("location") or ""
        ok = response.status == 303 and (expect_location is None or expect_location in location)
        detail = "" if ok else f"{response.status} {location} {response.body[:200]!r}"
        return ok, detail

    return send


async def _new_users(
    host: str, port: int, form_path: str, count: int, result: Result
) -> list[VirtualUser]:
    users = [VirtualUser(host, port) for _ in range(count)]

    async def setup(user: VirtualUser) -> None:
        try:
            await user.load_form(form_path)
        except (HTTPError, OSError) as error:
            result.setup_errors += 1
            result.note("setup-error", str(error))

    # A few at a time: a burst of hundreds of connects would measure the accept queue.
    for start in range(0, count, 16):
        await asyncio.gather(*(setup(u) for u in users[start : start + 16]))
    return users


async def _closed_loop(
    host: str,
    port: int,
    form_path: str,
    send: Request,
    *,
    users: int,
    duration: float,
    warmup: float,
    probe: Callable[[], float] | None,
) -> Result:
    result = Result("closed", duration, connections=users)
    pool = await _new_users(host, port, form_path, users, result)
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    end = measure_from + duration
    probed: list[float] = []
    if probe is not None:
        loop.call_at(measure_from, lambda: probed.append(probe()))

    async def run(user: VirtualUser) -> None:
        while True:
            begun = loop.time()
            if begun >= end:
                return
            measured = begun >= measure_from
            try:
                ok, detail = await send(user)
            except (HTTPError, OSError) as error:
                ok, detail = False, f"error {error}"
            done = loop.time()
            if not measured:
                result.warmup_accepted += ok
                if not ok:
                    result.setup_errors += 1
                    result.note("warmup-error", detail)
                continue
            result.sent += 1
            if ok:
                result.accepted += 1
                result.latencies.append(done - begun)
                result.note("ok")
            else:
                result.note(detail.split(" ", 1)[0], detail)

    cpu = time.process_time()
    await asyncio.gather(*(run(u) for u in pool))
    result.cpu_seconds = time.process_time() - cpu
    if probe is not None and probed:
        result.server_cpu_seconds = probe() - probed[0]
    for user in pool:
        user.close()
    return result


async def _open_loop(
    host: str,
    port: int,
    form_path: str,
    send: Request,
    *,
    rate: float,
    duration: float,
    users: int,
    max_users: int,
) -> Result:
    result = Result("open", duration, target_rate=rate)
    idle: list[VirtualUser] = await _new_users(host, port, form_path, users, result)
    all_users = list(idle)
    loop = asyncio.get_running_loop()
    total = round(rate * duration)
    tasks: set[asyncio.Task[None]] = set()
    start = loop.time() + 0.05
    last_sent = start

    async def one(due: float) -> None:
        nonlocal last_sent
        if idle:
            user = idle.pop()
        elif len(all_users) < max_users:
            # The server is behind: like a real crowd, more people arrive and open the page.
            user = VirtualUser(host, port)
            all_users.append(user)
            try:
                await user.load_form(form_path)
            except (HTTPError, OSError) as error:
                result.sent += 1
                result.note("setup-error", str(error))
                return
        else:
            result.sent += 1
            result.note("client-saturated", f"more than {max_users} requests outstanding")
            return
        result.sent += 1
        last_sent = max(last_sent, loop.time())
        try:
            ok, detail = await send(user)
        except (HTTPError, OSError) as error:
            ok, detail = False, f"error {error}"
        done = loop.time()
        if ok:
            result.accepted += 1
            result.latencies.append(done - due)  # from when it was due, not when sent
            result.note("ok")
        else:
            result.note(detail.split(" ", 1)[0], detail)
        idle.append(user)

    cpu = time.process_time()
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    result.cpu_seconds = time.process_time() - cpu
    # Throughput over the arrival window; a slow tail shows in the latencies instead.
    result.duration = max(duration, last_sent - start)
    result.connections = len(all_users)
    for user in all_users:
        user.close()
    return result


def closed_loop(
    host: str,
    port: int,
    form_path: str,
    send: Request,
    *,
    users: int = 16,
    duration: float = 10.0,
    warmup: float = 1.0,
    probe: Callable[[], float] | None = None,
) -> Result:
    """N virtual users POSTing back to back for duration seconds after a warm-up.

    probe, when given, reads the server's CPU seconds; the result then holds how many it
    spent over the measured window.
    """
    return asyncio.run(
        _closed_loop(
            host,
            port,
            form_path,
            send,
            users=users,
            duration=duration,
            warmup=warmup,
            probe=probe,
        )
    )


def open_loop(
    host: str,
    port: int,
    form_path: str,
    send: Request,
    *,
    rate: float,
    duration: float,
    users: int = 32,
    max_users: int = 256,
) -> Result:
    """Requests started at a fixed rate for duration seconds, whatever the server does."""
    return asyncio.run(
        _open_loop(
            host,
            port,
            form_path,
            send,
            rate=rate,
            duration=duration,
            users=users,
            max_users=max_users,
        )
    )


def sequential_gets(
    targets: list[tuple[str, int, str]], rounds: int, warmup: int = 20
) -> dict[tuple[str, int, str], Result]:
    """GET each (host, port, path) in turn, rounds times, one request at a time; latencies."""

    async def run() -> dict[tuple[str, int, str], Result]:
        conns = {t: Connection(t[0], t[1]) for t in targets}
        results = {t: Result("sequential", 0.0, connections=1) for t in targets}
        for round_no in range(warmup + rounds):
            for target in targets:
                begun = time.perf_counter()
                try:
                    response = await conns[target].request("GET", target[2])
                except (HTTPError, OSError) as error:
                    if round_no >= warmup:
                        results[target].sent += 1
                        results[target].note("error", str(error))
                    continue
                elapsed = time.perf_counter() - begun
                if round_no < warmup:
                    continue
                result = results[target]
                result.sent += 1
                result.duration += elapsed
                if response.status == 200:
                    result.accepted += 1
                    result.latencies.append(elapsed)
                    result.note("ok")
                else:
                    result.note(str(response.status), f"GET {target[2]}: {response.status}")
        for conn in conns.values():
            conn.close()
        return results

    return asyncio.run(run())


def fetch(host: str, port: int, path: str) -> Response:
    """One GET on a fresh connection."""

    async def run() -> Response:
        conn = Connection(host, port)
        try:
            return await conn.request("GET", path)
        finally:
            conn.close()

    return asyncio.run(run())


def run_id() -> str:
    """A short tag unique to this process and moment, for unique addresses."""
    return f"b{os.getpid():x}{int(time.time() * 1000) % 10**8:x}"
