"""A real `campaign serve` (gunicorn) for tests: a free port, its environment, start and stop.

    env = serve_env(app.config["DATABASE_URL"], tmp_path / "served", CAMPAIGN_MAIL_SENDER="false")
    with Server(env=env, log_path=tmp_path / "server.log") as server:
        assert get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200

Each server runs in its own process group (so a kill reaches every worker) and writes
its output to a log file, whose end is shown when it fails to start.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

CAMPAIGN = str(Path(sys.executable).parent / "campaign")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, str]]:
    """Status and headers of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def serve_env(
    database_url: str,
    instance: str | Path,
    *,
    base_url: str = "http://campaign.test",
    without: Iterable[str] = (),
    **extra: str,
) -> dict[str, str]:
    """This process's environment for a server on database_url and its own instance folder.

    `campaign serve` refuses to start without CAMPAIGN_BASE_URL; extra adds or replaces
    variables, and the names in without are left out.
    """
    left_out = set(without)
    env = {name: value for name, value in os.environ.items() if name not in left_out}
    env.update(
        CAMPAIGN_DATABASE_URL=database_url,
        CAMPAIGN_INSTANCE_PATH=str(instance),
        CAMPAIGN_BASE_URL=base_url,
    )
    env.update(extra)
    return env


@dataclass
class Server:
    """`campaign serve` (or, with dev, `campaign run`) in its own process group, logging to a file.

    As a context manager it is started on entry (once /healthz answers) and stopped on exit.
    """

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    workers: int = 2
    threads: int = 4
    dev: bool = False  # the development server, `campaign run`, instead of gunicorn
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    _began: float = 0.0

    def command(self) -> list[str]:
        """The command line that starts this server."""
        where = ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.dev:
            return [CAMPAIGN, "run", *where, "--no-reload", "--no-debugger"]
        return [CAMPAIGN, "serve", *where, "--workers", str(self.workers),
                "--threads", str(self.threads)]  # fmt: skip

    def launch(self) -> None:
        """Start the process without waiting for it to answer."""
        self._began = time.monotonic()
        self._log = self.log_path.open("ab")  # appended to: a restart keeps the first run's log
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its own process group: SIGKILL reaches every worker
        )

    def wait_ready(self, timeout: float = 60) -> float:
        """Wait until /healthz answers 200; the seconds since launch. Fails with the log's end."""
        assert self.proc is not None, "the server was not launched"
        deadline = self._began + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server on {self.port} exited: {self.log()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                try:
                    conn.request("GET", "/healthz")
                    status = conn.getresponse().status
                finally:
                    conn.close()
                if status == 200:
                    return time.monotonic() - self._began
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server on {self.port} never became ready: {self.log()[-3000:]}")

    def start(self, timeout: float = 60) -> float:
        """Start and wait until /healthz answers 200; returns the seconds it took."""
        self.launch()
        return self.wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers), as a crash would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_log()

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM), without waiting for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = 20) -> None:
        """Wait for the server to end; SIGKILL its process group if it lingers past timeout."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._close_log()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of the group if it does not stop within 20 s."""
        self.terminate()
        self.wait_stopped()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def running(*servers: Server, timeout: float = 60) -> Iterator[tuple[Server, ...]]:
    """Start the servers side by side, wait until each answers; stop them all afterwards."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready(timeout)
        yield servers
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait_stopped()
