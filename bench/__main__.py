"""`python -m bench [--quick] [--only N,...]`: run the benchmarks of issue 5, print one table.

Each figure is a ratio against a baseline measured in the same run (the machine is
shared, so absolute times drift), with the absolute figures beside it and the machine
described under the table. Progress goes to stderr; the table (Markdown) to stdout,
and to bench/results/latest.md with the raw figures in bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import data, items, measure

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Settings:
    """How big and how long each benchmark is."""

    sign_seconds: float
    sign_warmup: float
    rate: float
    rate_seconds: float
    tally_signatures: int
    tally_rounds: int
    export_rows: int
    import_rows: tuple[int, int]


FULL = Settings(20, 2, 333, 60, 1_000_000, 500, 1_000_000, (10_000, 100_000))
QUICK = Settings(4, 1, 333, 10, 100_000, 100, 100_000, (5_000, 50_000))

TARGETS = {
    "1": ">= 0.5 of bare, 0 errors, p99 < 250 ms",
    "2": "all accepted, 0 errors, p99 < 250 ms, counts exact",
    "3p": "p50 ratio <= 1.5",
    "3j": "p50 ratio <= 1.5",
    "3o": "p50 ratio <= 1.5, each page",
    "4": "<= 64 MiB over idle, >= 200,000 rows/s",
    "5": ">= 20,000 rows/s, memory flat",
    "6": "<= 50 KB, no other host",
}


@dataclass
class Line:
    """One row of the table: SQLite and (for 1 and 3) PostgreSQL."""

    key: str
    what: str
    sqlite: items.Figure | None = None
    postgres: items.Figure | None = None


def _guard(name: str, run: Callable[[], items.Figure]) -> items.Figure:
    """Run one benchmark; a crash becomes a failed cell with the error, not a lost table."""
    try:
        return run()
    except Exception as error:  # report every failure in the table and carry on
        items.log(f"{name} failed: {error!r}")
        traceback.print_exc(file=sys.stderr)
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        return items.Figure(f"FAILED: {first[:160]}", False, [traceback.format_exc(limit=3)])


def _guard_pair(
    name: str, run: Callable[[], tuple[items.Figure, items.Figure]]
) -> tuple[items.Figure, items.Figure]:
    holder: list[items.Figure] = []

    def first() -> items.Figure:
        a, b = run()
        holder.append(b)
        return a

    a = _guard(name, first)
    return a, (holder[0] if holder else a)


def _verdict(figure: items.Figure | None) -> str:
    if figure is None:
        return ""
    return {True: "met", False: "**MISSED**", None: "-"}[figure.ok]


def _label(line: Line) -> str:
    return {"3p": "3 page", "3j": "3 json", "3o": "3 other pages"}.get(line.key, line.key)


def render(
    lines: list[Line], settings: Settings, quick: bool, meta: dict[str, str], seconds: float
) -> str:
    """The Markdown table, its notes and the machine."""
    s = settings
    out = [
        f"Benchmark ({'quick' if quick else 'full'} run, {meta['date']}, {seconds:.0f} s):"
        f" `{meta['command']}`",
        "",
        "| # | benchmark | SQLite | PostgreSQL | target | result (SQLite / PostgreSQL) |",
        "|---|---|---|---|---|---|",
    ]
    for line in lines:
        cells = [
            line.sqlite.cell if line.sqlite else "not run",
            line.postgres.cell if line.postgres else "-",
        ]
        verdict = _verdict(line.sqlite)
        if line.postgres is not None:
            verdict += f" / {_verdict(line.postgres)}"
        number = line.key.rstrip("pjo")
        if line.postgres is not None:
            number += " & 7"
        out.append(
            f"| {number} | {line.what} | {cells[0]} | {cells[1]} | {TARGETS[line.key]}"
            f" | {verdict} |"
        )
    out += [
        "",
        "Notes:",
        "",
        f"- Servers: `campaign serve` (gunicorn gthread, {items.WORKERS} workers x {items.THREADS}"
        " threads) on its own instance folder and a fresh database; SQLite in WAL mode;"
        " CAMPAIGN_RATELIMIT_ENABLED=false (the load comes from one address). The mail sender"
        " runs in every worker as in production (without SMTP it writes .eml files).",
        f"- 1 & 7: closed loop, {items.USERS} virtual users; each GETs the form once (session"
        " cookie and csrf_token) then POSTs distinct signers back to back for"
        f" {s.sign_seconds:.0f} s after {s.sign_warmup:.0f} s of warm-up; accepted = 303 to the"
        " thanks page;"
        " campaign requires confirmation, so every signature queues a mail. Baseline: bench/"
        "bare_app.py (one INSERT per POST, no checks) behind the same gunicorn settings and the"
        " same load generator.",
        f"- 2: open loop, {s.rate:.0f} arrivals/s for {s.rate_seconds:.0f} s, latency from each"
        " request's due time; a campaign without confirmation, so every signature counts and"
        " moves a counter.",
        f"- 3 & 7: {s.tally_signatures:,} counted signatures in 150 countries (one INSERT ..."
        " SELECT, counters built by a recount) vs 100 in a separate database; p50 of"
        f" {s.tally_rounds} sequential GETs each, interleaved, after 20 of warm-up.",
        f"- 4: `campaign export-csv` of {s.export_rows:,} rows; idle = `campaign --help` (it"
        " builds the app); peak = the child's ru_maxrss via wait4 (VmHWM).",
        f"- 5: `campaign import-csv` of {s.import_rows[1]:,} rows of the export format into an"
        f" empty campaign; flat = peak at {s.import_rows[1]:,} within 16 MiB of the peak at"
        f" {s.import_rows[0]:,}.",
        "- 6: the signing page of a campaign with 0 signatures, response headers + bodies.",
    ]
    for line in lines:
        for label, figure in (("SQLite", line.sqlite), ("PostgreSQL", line.postgres)):
            if figure is None:
                continue
            for note in figure.notes:
                for part in note.strip().splitlines()[-6:]:
                    out.append(f"- {_label(line)} ({label}): {part.strip()}")
    out += ["", "Machine:", ""]
    out += [f"- {key}: {value}" for key, value in meta.items() if key not in ("date", "command")]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run (under two minutes)")
    parser.add_argument("--only", default="", help="comma-separated item numbers, e.g. 1,3,7")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--workers", type=int, default=items.WORKERS, help="gunicorn workers of every server"
    )
    parser.add_argument(
        "--threads", type=int, default=items.THREADS, help="threads per worker, every server"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where databases go")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    items.WORKERS, items.THREADS = args.workers, args.threads
    wanted = {part.strip() for part in args.only.split(",") if part.strip()} or set("1234567")
    unknown = wanted - set("1234567")
    if unknown:
        parser.error(f"unknown item(s): {', '.join(sorted(unknown))}")

    begun = time.perf_counter()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="campaign-bench-", dir=args.workdir))
    items.log(f"work folder {workdir}")
    dbs = items.Databases(workdir)
    cache: dict[tuple[str, int], items.Seeded] = {}
    pg_missing = data.postgres_available() if "7" in wanted else None
    if pg_missing:
        items.log(f"PostgreSQL unavailable: {pg_missing}")

    def pg_skip() -> items.Figure:
        return items.Figure(f"not run: PostgreSQL unavailable ({pg_missing})", False)

    lines: list[Line] = []
    try:
        if wanted & {"1", "7"}:
            line = Line("1", "signing over HTTP vs bare Flask+INSERT (ratio of signatures/s)")
            if "1" in wanted:
                line.sqlite = _guard(
                    "1",
                    lambda: items.signing_throughput(
                        dbs,
                        "sqlite",
                        duration=settings.sign_seconds,
                        warmup=settings.sign_warmup,
                        diagnose=not args.quick,
                    ),
                )
            if "7" in wanted:
                line.postgres = (
                    pg_skip()
                    if pg_missing
                    else _guard(
                        "7/1",
                        lambda: items.signing_throughput(
                            dbs,
                            "postgresql",
                            duration=settings.sign_seconds,
                            warmup=settings.sign_warmup,
                            diagnose=not args.quick,
                        ),
                    )
                )
            lines.append(line)
        if "2" in wanted:
            lines.append(
                Line(
                    "2",
                    f"{settings.rate_seconds:.0f} s at {settings.rate:.0f} signatures/s"
                    " (open loop)",
                    _guard(
                        "2",
                        lambda: items.open_loop_rate(
                            dbs, rate=settings.rate, duration=settings.rate_seconds
                        ),
                    ),
                )
            )
        if wanted & {"3", "7"}:
            n = settings.tally_signatures
            page = Line("3p", f"tally page p50 at {n:,} vs 100 signatures")
            js = Line("3j", f"tally.json p50 at {n:,} vs 100 signatures")
            if "3" in wanted:
                page.sqlite, js.sqlite = _guard_pair(
                    "3",
                    lambda: items.tally_latency(
                        dbs, "sqlite", big=n, rounds=settings.tally_rounds, cache=cache
                    ),
                )
            if "7" in wanted:
                if pg_missing:
                    page.postgres = js.postgres = pg_skip()
                else:
                    page.postgres, js.postgres = _guard_pair(
                        "7/3",
                        lambda: items.tally_latency(
                            dbs, "postgresql", big=n, rounds=settings.tally_rounds, cache=cache
                        ),
                    )
            others = Line("3o", f"letter, thanks, signatories, widget, badge p50 at {n:,} vs 100")
            if "3" in wanted:
                others.sqlite = _guard(
                    "3o",
                    lambda: items.other_pages_latency(
                        dbs, "sqlite", big=n, rounds=settings.tally_rounds // 2, cache=cache
                    ),
                )
            if "7" in wanted:
                others.postgres = (
                    pg_skip()
                    if pg_missing
                    else _guard(
                        "7/3o",
                        lambda: items.other_pages_latency(
                            dbs, "postgresql", big=n, rounds=settings.tally_rounds // 2, cache=cache
                        ),
                    )
                )
            lines += [page, js, others]
        if "4" in wanted:
            n = settings.export_rows
            lines.append(
                Line(
                    "4",
                    f"CSV export of {n:,} rows",
                    _guard("4", lambda: items.export_csv(dbs, n=n, cache=cache)),
                )
            )
        if "5" in wanted:
            sizes = settings.import_rows
            lines.append(
                Line(
                    "5",
                    f"CSV import of {sizes[1]:,} rows",
                    _guard("5", lambda: items.import_csv(dbs, sizes=sizes, cache=cache)),
                )
            )
        if "6" in wanted:
            lines.append(
                Line(
                    "6",
                    "signing page as Chromium loads it",
                    _guard("6", lambda: items.page_weight(dbs)),
                )
            )
    finally:
        dbs.drop_all()
        items.cleanup(workdir, args.keep)

    command = "python -m bench" + (" --quick" if args.quick else "")
    if args.only:
        command += f" --only {args.only}"
    if (args.workers, args.threads) != (2, 4):
        command += f" --workers {args.workers} --threads {args.threads}"
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        **measure.machine(data.postgres_version()),
        # The machine may be shared: a busy one slows every figure, baselines included.
        "load average (1/5/15 min) at start": " / ".join(f"{v:.2f}" for v in load_before),
        "load average at end": " / ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    seconds = time.perf_counter() - begun
    table = render(lines, settings, args.quick, meta, seconds)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(table)
    raw = {
        "meta": meta,
        "seconds": seconds,
        "settings": settings.__dict__,
        "lines": [
            {
                "key": line.key,
                "what": line.what,
                "sqlite": line.sqlite.__dict__ if line.sqlite else None,
                "postgres": line.postgres.__dict__ if line.postgres else None,
            }
            for line in lines
        ],
    }
    (RESULTS / "latest.json").write_text(json.dumps(raw, indent=2, default=str))
    crashed = any(
        f is not None and f.cell.startswith("FAILED")
        for line in lines
        for f in (line.sqlite, line.postgres)
    )
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
