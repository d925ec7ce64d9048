"""Instructions per signing request, counted by valgrind: `python -m bench.instructions`.

Benchmark 1 compares rates on a shared machine whose speed drifts from minute to minute: two
runs of the same code an hour apart differed by a third. This counts instead: each app runs
in a child process under callgrind (`valgrind --tool=callgrind`), which counts the
instructions executed, the same count each time whatever else the machine does. A child
makes its app, signs WARMUP times, then N times more; another child does only the first
part; the difference over N is one signing request. Start-up, imports and warm-up cancel.

Three apps, each driven in-process by Flask's test client (no server, no network), with
distinct signers (bench.loadgen.Signers) on a fresh SQLite file:

- campaign: the real app (`create_app`), a letter that requires confirmation: CSRF, the
  form, deduplication, the signature and its queued mail, as benchmark 1 signs;
- forms: bench.bare_app's forms floor (Flask-WTF's CSRF, a form of the signing form's
  fields, the address checked by email-validator, one INSERT);
- bare: bench.bare_app, benchmark 1's baseline (one INSERT per POST).

"bare / app" is what benchmark 1's ratio would be if each request cost only its app's
instructions; the server's own work per request (gunicorn, the same for every app) is left
out, which lowers every ratio a little. Valgrind runs a program about 50 times slower: the
default (200 requests) takes 3-4 minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import bare_app, data, loadgen, profile

KINDS = ("campaign", "forms", "bare")
WARMUP = 30
_COLLECTED = re.compile(r"^==\d+== Collected : (\d+)$", re.MULTILINE)
ROOT = Path(__file__).resolve().parent.parent


def _client(kind: str, folder: Path) -> Any:
    """A test client of the app of that kind on a fresh database in folder."""
    if kind == "campaign":
        return profile.signing_app(folder, require_confirmation=True).test_client()
    if kind not in ("forms", "bare"):
        raise ValueError(f"unknown app {kind!r}: one of {', '.join(KINDS)}")
    url = data.sqlite_url(folder / "bare.sqlite3")
    bare_app.create_schema(url)
    forms = kind == "forms"
    return bare_app.create_bare_app(url, forms=forms, secret="instructions").test_client()  # noqa: S106


def sign_times(kind: str, n: int, folder: Path) -> int:
    """Sign WARMUP + n times through the app of that kind; how many were stored (303s)."""
    client = _client(kind, folder)
    token = loadgen.csrf_token(client.get("/c/bench").data) or ""
    # The same signers in every child: the count does not depend on a random run id.
    signers = loadgen.Signers("instructions", data.countries())
    stored = 0
    for _ in range(WARMUP + n):
        answer = client.post("/c/bench/sign", data={"csrf_token": token, **signers.next()})
        if answer.status_code != 303:
            raise RuntimeError(f"{kind}: a signature was answered {answer.status_code}")
        stored += 1
    return stored


def collected(valgrind_output: str) -> int:
    """The instruction count callgrind reports at exit ("==pid== Collected : N")."""
    found = _COLLECTED.findall(valgrind_output)
    if not found:
        raise RuntimeError("valgrind reported no instruction count:\n" + valgrind_output[-800:])
    return int(found[-1])


def _count(valgrind: str, kind: str, n: int) -> int:
    """Instructions of a child that makes the app and signs WARMUP + n times."""
    argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    argv += [sys.executable, "-m", "bench.instructions", "--child", kind, str(n)]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} (n={n}) exited {proc.returncode}:\n{proc.stderr[-800:]}")
    return collected(proc.stderr)


def per_request(valgrind: str, kinds: list[str], n: int, jobs: int) -> dict[str, float]:
    """Instructions per signing request of each app: (count(n) - count(0)) / n."""
    runs = [(kind, size) for kind in kinds for size in (0, n)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        counts = dict(zip(runs, pool.map(lambda run: _count(valgrind, *run), runs), strict=True))
    return {kind: (counts[kind, n] - counts[kind, 0]) / n for kind in kinds}


def table(costs: dict[str, float]) -> str:
    """The Markdown table of the costs, with bare / app beside each when bare was counted."""
    lines = ["| app | instructions per signing request | bare / app |", "|---|---|---|"]
    bare = costs.get("bare")
    for kind, cost in costs.items():
        ratio = f"{bare / cost:.2f}" if bare else "-"
        lines.append(f"| {kind} | {cost / 1e6:,.2f} M | {ratio} |")
    return "\n".join(lines)


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def main(argv: list[str] | None = None) -> int:
    """Count, print the table; 1 with one line on stderr when it cannot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="signing requests counted (default 200)")
    parser.add_argument("--only", default=",".join(KINDS), help="apps: campaign,forms,bare")
    parser.add_argument("--jobs", type=int, default=2, help="children at once (default 2)")
    parser.add_argument("--child", nargs=2, metavar=("APP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory(prefix="campaign-instructions-") as tmp:
            sign_times(args.child[0], int(args.child[1]), Path(tmp))
        return 0
    kinds = [kind.strip() for kind in args.only.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        print(
            f"error: --only takes {', '.join(KINDS)}; not {unknown or args.only!r}", file=sys.stderr
        )
        return 1
    if args.n < 1 or args.jobs < 1:
        print("error: -n and --jobs must be at least 1", file=sys.stderr)
        return 1
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("error: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 1
    try:
        costs = per_request(valgrind, kinds, args.n, args.jobs)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table(costs))
    print()
    print(
        f"{args.n} signing requests after {WARMUP} of warm-up, in-process (Flask's test client);"
        f" {_version([valgrind, '--version'])}; Python {sys.version.split()[0]};"
        f" commit {_version(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
