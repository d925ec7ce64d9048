"""Measuring child processes (wall time, peak RSS) and describing the machine."""

from __future__ import annotations

import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
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


# A minimal launcher between us and the measured command. On Linux a process's
# ru_maxrss starts from the high-water mark of the memory it exec'd from: spawned
# straight from this (large) process, every child would report at least our size.
# Spawned from this small interpreter (no site, ~10 MiB), it reports its own peak.
_LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
begun = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - begun
with open(out, "w") as handle:
    handle.write(f"{usage.ru_maxrss} {seconds!r}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(
    argv: list[str],
    env: dict[str, str] | None = None,
    *,
    timeout: float = 900,
    cwd: Path | None = None,
) -> ChildRun:
    """Run argv (an absolute path first) to the end; its wall time and its own peak RSS.

    The peak is ru_maxrss from wait4() on exactly that process, reported by a small
    launcher (see _LAUNCHER): the process's VmHWM as it exits, with no polling to miss it.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rusage") as report,
    ):
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _LAUNCHER, report.name, *argv],
            env=env,
            stdout=out,
            stderr=err,
            cwd=cwd,
            start_new_session=True,  # the launcher and the command, killed together on timeout
        )
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError(
                f"{' '.join(argv[:3])}... still running after {timeout:.0f} s"
            ) from None
        fields = report.read().split()
        out.seek(0)
        err.seek(0)
        return ChildRun(
            argv=argv,
            returncode=returncode,
            seconds=float(fields[1]) if len(fields) == 2 else float("nan"),
            maxrss_kib=int(fields[0]) if len(fields) == 2 else 0,
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
