"""Servers under test as subprocesses: free ports, instance folders, start, wait, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CAMPAIGN = str(BIN / "campaign")
SECRET = "bench-secret-key-not-for-production-0123456789"  # noqa: S105 (a benchmark key)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def campaign_env(instance: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment for `campaign ...` on its own instance folder and database.

    Rate limiting is off: the load generator is one client address sending hundreds of
    signatures a second, which the per-address limits exist to refuse.
    """
    env = dict(os.environ)
    env.update(
        {
            "CAMPAIGN_INSTANCE_PATH": str(instance),
            "CAMPAIGN_DATABASE_URL": database_url,
            "CAMPAIGN_SECRET_KEY": SECRET,
            "CAMPAIGN_RATELIMIT_ENABLED": "false",
            "CAMPAIGN_BASE_URL": "http://bench.invalid",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], *, timeout: float = 900, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `campaign <args>`; raise with its output when it fails."""
    proc = subprocess.run(
        [CAMPAIGN, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"campaign {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-800:]}"
        )
    return proc


@dataclass
class Server:
    """A running server subprocess (a gunicorn master and its workers)."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    host: str = "127.0.0.1"
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str = "") -> str:
        """An absolute URL on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        """Block until GET path answers 200; raise with the log's tail if it never does."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url(path), timeout=5) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                last = f"HTTP {error.code}"
            except OSError as error:
                last = str(error)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready at {path} ({last}): {self.tail()}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the master and its workers so far, from /proc."""
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(pid) for pid in children.split()]
        except OSError:
            pass
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # a worker that just exited
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return total

    def tail(self, chars: int = 1500) -> str:
        """The end of the server's log."""
        self.log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the master (graceful), then SIGKILL the process group if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start(name: str, argv: list[str], env: dict[str, str], log_path: Path, port: int) -> Server:
    """Start argv as its own process group, output to log_path."""
    log = log_path.open("wb")
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,  # its own group, so a stuck worker can be killed with it
    )
    return Server(name, port, proc, log_path, log)


def start_campaign(
    workdir: Path, database_url: str, *, workers: int = 2, threads: int | None = None, **env: str
) -> Server:
    """`campaign serve` on a free port, its instance folder inside workdir."""
    port = free_port()
    argv = [CAMPAIGN, "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    server = start(
        "campaign serve",
        argv,
        campaign_env(workdir / "instance", database_url, **env),
        workdir / f"serve-{port}.log",
        port,
    )
    server.extra["database_url"] = database_url
    return server


def start_bare(
    workdir: Path, database_url: str, *, workers: int = 2, threads: int = 4, forms: bool = False
) -> Server:
    """The bare app (bench/bare_app.py) behind the same gunicorn settings; forms: the floor."""
    port = free_port()
    env = dict(os.environ, BENCH_BARE_DATABASE_URL=database_url)
    argv = [sys.executable, "-m", "bench.bare_app", "--port", str(port)]
    argv += ["--workers", str(workers), "--threads", str(threads)]
    if forms:
        argv.append("--forms")
    name = "forms floor" if forms else "bare app"
    server = start(name, argv, env, workdir / f"bare-{port}.log", port)
    server.extra["database_url"] = database_url
    return server
