"""Measuring child processes (wall time, peak RSS) and describing the machine."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass
class ChildRun:
    """One finished child process: exit status, wall seconds, peak resident memory."""

    argv: list[str]
    returncode: int
    seconds: float
    maxrss_kib: int  # the child's VmHWM (ru_maxrss is in KiB on Linux)
    stdout: str
    stderr: str

    @property
    def maxrss_mib(self) -> float:
        """Peak resident memory in MiB."""
        return self.maxrss_kib / 1024

    def check(self) -> ChildRun:
        """Raise with the child's stderr unless it exited 0."""
        if self.returncode != 0:
            raise RuntimeError(
                f"{' '.join(self.argv[:4])}... exited {self.returncode}: {self.stderr[-800:]}"
            )
        return self


def run_measured(
    argv: list[str],
    env: dict[str, str] | None = None,
    *,
    timeout: float = 900,
    cwd: Path | None = None,
) -> ChildRun:
    """Run argv to the end; its own peak RSS comes from wait4()'s rusage for that one child.

    wait4 reports the high-water mark of exactly this process, the same figure as
    VmHWM in /proc/<pid>/status just before it exits, with no polling to miss a peak.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        begun = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=cwd)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - begun
        proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it; tell Popen
        out.seek(0)
        err.seek(0)
        return ChildRun(
            argv=argv,
            returncode=proc.returncode if pid else -9,
            seconds=seconds,
            maxrss_kib=int(usage.ru_maxrss),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / MIB:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # a missing package is reported, never fatal
        return "not installed"


def machine(postgres_version: str) -> dict[str, str]:
    """What the figures were measured on."""
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU": _cpu_model(),
        "memory": _memory_total(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres_version,
        "gunicorn": _version("gunicorn"),
        "Flask": _version("flask"),
        "SQLAlchemy": _version("sqlalchemy"),
        "executable": sys.executable,
    }
