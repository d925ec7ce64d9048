"""The benchmarks of issue 5, one function each; every one returns a :class:`Figure`."""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bare_app, data, loadgen, measure, servers

SLUG = "bench"
WORKERS = 2
THREADS = 4  # campaign serve's default; passed to both servers so they match exactly
USERS = 16  # closed-loop virtual users: twice the 2 x 4 worker threads, so none idles
# How long item 1 waits, after its load, for the sender to send what the load queued.
DRAIN_SECONDS = 120.0
# Item 2 queues some 20,000 receipts in a minute; at 0.1 of a core the sender needs minutes.
RATE_DRAIN_SECONDS = 600.0


@dataclass
class Figure:
    """One cell of the table and what backs it."""

    cell: str
    ok: bool | None  # None: reported, no target
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def ms(seconds: float) -> str:
    """Seconds as milliseconds for the table."""
    return f"{seconds * 1000:.1f} ms"


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- databases -------------------------------------------------------------------------


class Databases:
    """Fresh databases for one run: SQLite files in the work folder; PostgreSQL ones dropped."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.made: list[str] = []

    def new(self, backend: str, name: str) -> str:
        """A fresh, migrated database of that backend; returns its URL."""
        if backend == "sqlite":
            folder = self.workdir / name
            folder.mkdir(parents=True, exist_ok=True)
            url = data.sqlite_url(folder / "campaign.sqlite3")
        else:
            url = data.create_postgres_database()
            self.made.append(url)
        data.prepare(url)
        return url

    def new_bare(self, backend: str, name: str) -> str:
        """A fresh database for the bare app."""
        if backend == "sqlite":
            folder = self.workdir / name
            folder.mkdir(parents=True, exist_ok=True)
            url = data.sqlite_url(folder / "bare.sqlite3")
        else:
            url = data.create_postgres_database()
            self.made.append(url)
        bare_app.create_schema(url)
        return url

    def drop_all(self) -> None:
        """Drop every PostgreSQL database this run made."""
        for url in self.made:
            try:
                data.drop_postgres_database(url)
            except Exception as error:  # report, keep dropping the others
                log(f"could not drop {url}: {error}")
        self.made.clear()


def folder_for(url: str, workdir: Path, name: str) -> Path:
    """The instance folder's parent for a database: beside a SQLite file, else a new one."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).parent
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def campaign_server(url: str, folder: Path, **env: str) -> Iterator[servers.Server]:
    """`campaign serve` on the database, ready to answer, stopped afterwards."""
    server = servers.start_campaign(folder, url, workers=WORKERS, threads=THREADS, **env)
    try:
        server.wait_ready("/healthz")
        yield server
    finally:
        server.stop()


def counts_line(
    url: str, slug: str, folder: Path, server: servers.Server | None = None
) -> tuple[bool, str]:
    """The after-run check: counters vs a fresh count, and tally.json when a server is up."""
    check = data.check_counts(url, slug, folder)
    line = check.describe()
    ok = check.exact
    if server is not None:
        body = json.loads(loadgen.fetch(server.host, server.port, f"/c/{slug}/tally.json").body)
        ok = ok and body["signatures"] == check.counted
        line += f"; tally.json says {body['signatures']:,}"
    cli = data.recount_cli(url, slug, folder)
    if cli is not None:
        line += f"; `campaign recount {slug}`: {cli.splitlines()[-1] if cli else '(no output)'}"
    return ok, line


# --- 1 and 7: signing throughput -------------------------------------------------------


def _load_summary(result: loadgen.Result) -> str:
    return (
        f"{result.rate:,.0f}/s, p50 {ms(result.percentile(50))}, p99 {ms(result.percentile(99))},"
        f" {result.error_count} errors"
    )


def signing_throughput(
    dbs: Databases, backend: str, *, duration: float, warmup: float = 2.0, diagnose: bool = False
) -> Figure:
    """Item 1 (SQLite) / 7 (PostgreSQL): the real signing flow vs the bare app, closed loop.

    With diagnose, a third run without the mail sender shows what delivering costs.
    """
    codes = data.countries()
    notes: list[str] = []

    bare_result, bare_rows, bare_expected = _bare_run(
        dbs, backend, duration=duration, warmup=warmup, forms=False
    )

    url = dbs.new(backend, f"sign-{backend}")
    folder = folder_for(url, dbs.workdir, f"sign-{backend}")
    data.create_campaign(url, SLUG, require_confirmation=True)
    with campaign_server(url, folder) as server:
        log(f"1/{backend}: campaign serve, {USERS} users, {duration:.0f} s")
        signers = loadgen.Signers(loadgen.run_id(), codes)
        cpu_before = server.cpu_seconds()
        result = loadgen.closed_loop(
            server.host,
            server.port,
            f"/c/{SLUG}",
            loadgen.signing_request(f"/c/{SLUG}/sign", signers),
            users=USERS,
            duration=duration,
            warmup=warmup,
            probe=server.cpu_seconds,
        )
        # The window's CPU leaves out mail the sender had not sent yet when the load
        # stopped: wait for it, and count the server's CPU until then.
        drain = data.drain_outbox(url, DRAIN_SECONDS)
        cpu_with_mail = server.cpu_seconds() - cpu_before
        counts_ok, counts = counts_line(url, SLUG, folder, server)
    check = data.check_counts(url, SLUG, folder)
    expected = result.accepted + result.warmup_accepted
    outbox = data.count_outbox(url)
    ratio = result.rate / bare_result.rate if bare_result.rate else 0.0
    p99 = result.percentile(99)
    ok = (
        ratio >= 0.5
        and result.error_count == 0
        and p99 < 0.250
        and check.rows == expected
        and outbox == expected
        and counts_ok
        and bare_rows == bare_expected
    )
    cell = (
        f"**{ratio:.2f}** = {result.rate:,.0f} / {bare_result.rate:,.0f} signatures/s;"
        f" p50 {ms(result.percentile(50))}, p99 {ms(p99)}; {result.error_count} errors"
    )
    notes.append(f"campaign serve: {_load_summary(result)}; statuses {result.statuses}")
    notes.append(f"bare app: {_load_summary(bare_result)}; statuses {bare_result.statuses}")
    notes.append(
        f"rows: campaign {check.rows:,} stored for {expected:,} accepted (warm-up included),"
        f" outbox {outbox:,} confirmation mails queued; bare {bare_rows:,} for {bare_expected:,}"
    )
    notes.append(f"counts: {counts}")
    notes.append(
        f"server CPU per accepted signature (gunicorn master + workers, mail sender included,"
        f" database server not): campaign {_cpu_per(result)}, bare {_cpu_per(bare_result)}"
        " (less skewed by machine load than the rates)"
    )
    notes.append(
        _drain_note(drain, outbox)
        + "; server CPU per signature until its mail was sent (warm-up included):"
        + (f" {cpu_with_mail / outbox * 1000:.2f} ms" if outbox else " n/a")
    )
    notes.append(
        f"load generator CPU: {result.cpu_seconds / (duration + warmup):.0%} of one core during the"
        f" campaign run, {bare_result.cpu_seconds / (duration + warmup):.0%} during the bare run"
    )
    for error in result.errors + bare_result.errors:
        notes.append(f"error sample: {error}")
    quiet: loadgen.Result | None = None
    floor: loadgen.Result | None = None
    if diagnose:
        floor, floor_rows, floor_expected = _bare_run(
            dbs, backend, duration=duration, warmup=warmup, forms=True
        )
        floor_ratio = floor.rate / bare_result.rate if bare_result.rate else 0.0
        notes.append(
            "diagnosis, the forms floor (bench/bare_app.py --forms: the bare app plus"
            " Flask-WTF's CSRF check and a WTForms form of the signing form's nine fields,"
            " address checked by email-validator; no reads, no deduplication, no mail):"
            f" {_load_summary(floor)} = **{floor_ratio:.2f} of bare**; server CPU"
            f" {_cpu_per(floor)}; rows {floor_rows:,} for {floor_expected:,}."
            f" campaign serve does {result.rate / floor.rate if floor.rate else 0:.2f} of the"
            " floor: the design card's form libraries alone leave this ceiling for the ratio"
        )
        notes.extend(f"floor error sample: {error}" for error in floor.errors)
        url = dbs.new(backend, f"sign-quiet-{backend}")
        folder = folder_for(url, dbs.workdir, f"sign-quiet-{backend}")
        data.create_campaign(url, SLUG, require_confirmation=True)
        with campaign_server(url, folder, CAMPAIGN_MAIL_SENDER="false") as server:
            log(f"1/{backend}: campaign serve without the mail sender (diagnosis)")
            quiet = loadgen.closed_loop(
                server.host,
                server.port,
                f"/c/{SLUG}",
                loadgen.signing_request(
                    f"/c/{SLUG}/sign", loadgen.Signers(loadgen.run_id(), codes)
                ),
                users=USERS,
                duration=duration,
                warmup=warmup,
                probe=server.cpu_seconds,
            )
        notes.append(
            f"diagnosis, same run with CAMPAIGN_MAIL_SENDER=false (mail queued, not delivered):"
            f" {_load_summary(quiet)} = {quiet.rate / bare_result.rate:.2f} of bare;"
            f" server CPU {_cpu_per(quiet)}"
        )
    return Figure(
        cell,
        ok,
        notes,
        {
            "without_sender": _raw(quiet) if quiet else None,
            "forms_floor": _raw(floor) if floor else None,
            "ratio": ratio,
            "campaign": _raw(result),
            "bare": _raw(bare_result),
            "rows": check.rows,
            "outbox": outbox,
            "mail_unsent_after_load": drain.backlog,
            "mail_drain_seconds": drain.seconds,
            "server_cpu_with_mail_seconds": cpu_with_mail,
            "counts_exact": counts_ok,
        },
    )


def _bare_run(
    dbs: Databases, backend: str, *, duration: float, warmup: float, forms: bool
) -> tuple[loadgen.Result, int, int]:
    """The bare app (or, with forms, the forms floor) under the closed loop.

    Returns the result, the rows it stored and the rows it should have stored.
    """
    name = f"{'floor' if forms else 'bare'}-{backend}"
    url = dbs.new_bare(backend, name)
    server = servers.start_bare(
        folder_for(url, dbs.workdir, name), url, workers=WORKERS, threads=THREADS, forms=forms
    )
    try:
        server.wait_ready("/healthz")
        log(f"1/{backend}: {server.name}, {USERS} users, {duration:.0f} s")
        result = loadgen.closed_loop(
            server.host,
            server.port,
            f"/c/{SLUG}",
            loadgen.signing_request(
                f"/c/{SLUG}/sign", loadgen.Signers(loadgen.run_id(), data.countries())
            ),
            users=USERS,
            duration=duration,
            warmup=warmup,
            probe=server.cpu_seconds,
        )
    finally:
        server.stop()
    return result, bare_app.count_rows(url), result.accepted + result.warmup_accepted


def _drain_note(drain: data.Drain, outbox: int) -> str:
    """How much mail waited when the load stopped, and how long the sender took to send it.

    The sender keeps to MAIL_SENDER_CPU_SHARE of a core, so under load most mail waits.
    """
    return f"mail: {drain.backlog:,} of {outbox:,} queued still unsent when the load stopped," + (
        f" all sent {drain.seconds:.1f} s later"
        if not drain.left
        else f" {drain.left:,} still unsent {drain.seconds:.0f} s later"
    )


def _cpu_per(result: loadgen.Result) -> str:
    if result.server_cpu_seconds is None or not result.accepted:
        return "n/a"
    return f"{result.server_cpu_seconds / result.accepted * 1000:.2f} ms"


def _raw(result: loadgen.Result) -> dict[str, Any]:
    return {
        "rate": result.rate,
        "sent": result.sent,
        "accepted": result.accepted,
        "errors": result.error_count,
        "p50_ms": result.percentile(50) * 1000,
        "p90_ms": result.percentile(90) * 1000,
        "p99_ms": result.percentile(99) * 1000,
        "max_ms": max(result.latencies, default=float("nan")) * 1000,
        "statuses": result.statuses,
        "connections": result.connections,
        "cpu_seconds": result.cpu_seconds,
        "server_cpu_seconds": result.server_cpu_seconds,
    }


# --- 2: a fixed arrival rate -----------------------------------------------------------


def open_loop_rate(dbs: Databases, *, rate: float, duration: float) -> Figure:
    """Item 2: signatures arriving at a fixed rate; every one must count, exactly."""
    url = dbs.new("sqlite", "rate")
    folder = folder_for(url, dbs.workdir, "rate")
    # No confirmation: every signature counts at once, so each one moves a counter and
    # "counts exact" tests the counters under load, not an empty tally.
    data.create_campaign(url, SLUG, require_confirmation=False)
    expected = round(rate * duration)
    with campaign_server(url, folder) as server:
        log(f"2: {rate:.0f} signatures/s for {duration:.0f} s (open loop)")
        signers = loadgen.Signers(loadgen.run_id(), data.countries())
        result = loadgen.open_loop(
            server.host,
            server.port,
            f"/c/{SLUG}",
            loadgen.signing_request(f"/c/{SLUG}/sign", signers),
            rate=rate,
            duration=duration,
        )
        # Each signature queued a receipt; the sender sends most of them after the surge.
        drain = data.drain_outbox(url, RATE_DRAIN_SECONDS)
        counts_ok, counts = counts_line(url, SLUG, folder, server)
    check = data.check_counts(url, SLUG, folder)
    outbox = data.count_outbox(url)
    p99 = result.percentile(99)
    ok = (
        result.accepted == expected
        and result.error_count == 0
        and p99 < 0.250
        and check.rows == expected
        and check.counted == expected
        and counts_ok
    )
    cell = (
        f"{result.accepted:,}/{expected:,} accepted at {result.rate:.1f}/s;"
        f" p50 {ms(result.percentile(50))}, p99 {ms(p99)}; {result.error_count} errors;"
        f" rows {check.rows:,}, tally {check.tally:,} {'exact' if counts_ok else 'NOT exact'}"
    )
    notes = [
        f"open loop: {_load_summary(result)}; latency counted from each request's due time;"
        f" {result.connections} connections; statuses {result.statuses}",
        f"counts: {counts}",
        _drain_note(drain, outbox) + " (receipts)",
        f"load generator CPU: {result.cpu_seconds / duration:.0%} of one core",
    ]
    notes += [f"error sample: {error}" for error in result.errors]
    return Figure(
        cell, ok, notes, {"result": _raw(result), "rows": check.rows, "tally": check.tally}
    )


# --- 3 and 7: the tally at a million ---------------------------------------------------


@dataclass
class Seeded:
    """A database with one campaign of n counted signatures."""

    url: str
    folder: Path
    slug: str
    n: int
    seed_seconds: float
    recount_seconds: float
    recount_by: str


def seeded(
    dbs: Databases, backend: str, n: int, slug: str, cache: dict[tuple[str, int], Seeded]
) -> Seeded:
    """A database of n counted signatures in 150 countries, counters built by a recount (cached)."""
    key = (backend, n)
    if key in cache:
        return cache[key]
    name = f"seed-{backend}-{n}"
    url = dbs.new(backend, name)
    folder = folder_for(url, dbs.workdir, name)
    data.create_campaign(url, slug, require_confirmation=True)
    log(f"seeding {n:,} signatures on {backend}")
    begun = time.perf_counter()
    data.seed(url, data.campaign_id(url, slug), n, data.countries())
    seed_seconds = time.perf_counter() - begun
    begun = time.perf_counter()
    cli = data.recount_cli(url, slug, folder)
    if cli is None:
        data.recount(url, slug, folder, repair=True)
        how = "tally.recount (no `campaign recount` yet)"
    else:
        how = "`campaign recount`"
    recount_seconds = time.perf_counter() - begun
    cache[key] = Seeded(url, folder, slug, n, seed_seconds, recount_seconds, how)
    return cache[key]


@contextmanager
def seeded_servers(
    dbs: Databases, backend: str, big: int, cache: dict[tuple[str, int], Seeded]
) -> Iterator[tuple[Seeded, Seeded, servers.Server, servers.Server]]:
    """Item 3's letters of `big` and of 100 signatures (seeded once), each served."""
    large = seeded(dbs, backend, big, "big", cache)
    small = seeded(dbs, backend, 100, "small", cache)
    with (
        campaign_server(large.url, large.folder) as big_server,
        campaign_server(small.url, small.folder) as small_server,
    ):
        yield large, small, big_server, small_server


def tally_latency(
    dbs: Databases, backend: str, *, big: int, rounds: int, cache: dict[tuple[str, int], Seeded]
) -> tuple[Figure, Figure]:
    """Item 3 / 7: p50 of the tally page and tally.json at `big` signatures vs at 100."""
    with seeded_servers(dbs, backend, big, cache) as (large, small, big_server, small_server):
        targets = [
            (big_server.host, big_server.port, "/c/big/tally"),
            (small_server.host, small_server.port, "/c/small/tally"),
            (big_server.host, big_server.port, "/c/big/tally.json"),
            (small_server.host, small_server.port, "/c/small/tally.json"),
        ]
        log(f"3/{backend}: {rounds} rounds of tally page and tally.json, {big:,} vs 100")
        results = loadgen.sequential_gets(targets, rounds)
        big_json = json.loads(
            loadgen.fetch(big_server.host, big_server.port, "/c/big/tally.json").body
        )
        big_ok, big_counts = counts_line(large.url, "big", large.folder, big_server)
        small_ok, small_counts = counts_line(small.url, "small", small.folder, small_server)
    figures = []
    for page, (big_t, small_t) in (
        ("page", (targets[0], targets[1])),
        ("json", (targets[2], targets[3])),
    ):
        rb, rs = results[big_t], results[small_t]
        ratio = rb.percentile(50) / rs.percentile(50)
        errors = rb.error_count + rs.error_count
        ok = ratio <= 1.5 and errors == 0 and big_ok and small_ok
        if page == "json":
            ok = ok and big_json["signatures"] == big and big_json["countries"] == 150
        cell = (
            f"**{ratio:.2f}** = p50 {ms(rb.percentile(50))} / {ms(rs.percentile(50))}"
            f" (p99 {ms(rb.percentile(99))} / {ms(rs.percentile(99))}); {errors} errors"
        )
        notes = []
        if page == "json":
            notes.append(
                f"tally.json at {big:,}: signatures {big_json['signatures']:,},"
                f" countries {big_json['countries']}, continents {big_json['continents']}"
            )
            notes.append(
                f"seeded {big:,} rows in {large.seed_seconds:.1f} s (one INSERT ... SELECT);"
                f" counters built by {large.recount_by} in {large.recount_seconds:.1f} s"
            )
            notes.append(f"counts at {big:,}: {big_counts}")
            notes.append(f"counts at 100: {small_counts}")
        figures.append(
            Figure(
                cell,
                ok,
                notes,
                {"ratio": ratio, "big": _raw(rb), "small": _raw(rs), "rounds": rounds},
            )
        )
    return figures[0], figures[1]


# The other pages anyone may load for a letter: each must cost the same at a million.
OTHER_PAGES = ("", "/thanks", "/signatories", "/widget", "/badge.svg")


def other_pages_latency(
    dbs: Databases, backend: str, *, big: int, rounds: int, cache: dict[tuple[str, int], Seeded]
) -> Figure:
    """Item 3, the other public pages: p50 of each at `big` signatures vs at 100; the worst.

    The letter, thanks, signatories (past 500 listed: the table of countries), widget and
    badge of item 3's seeded letters (every other seeded signer is public).
    """
    with seeded_servers(dbs, backend, big, cache) as (_large, _small, big_server, small_server):
        pairs = [
            (
                (big_server.host, big_server.port, f"/c/big{suffix}"),
                (small_server.host, small_server.port, f"/c/small{suffix}"),
            )
            for suffix in OTHER_PAGES
        ]
        log(f"3/{backend}: {rounds} rounds of {len(pairs)} other public pages, {big:,} vs 100")
        results = loadgen.sequential_gets([t for pair in pairs for t in pair], rounds)
    ratios = {}
    errors = 0
    notes = []
    for suffix, (big_t, small_t) in zip(OTHER_PAGES, pairs, strict=True):
        rb, rs = results[big_t], results[small_t]
        name = suffix.lstrip("/") or "letter"
        ratios[name] = rb.percentile(50) / rs.percentile(50)
        errors += rb.error_count + rs.error_count
        notes.append(
            f"{name}: {ratios[name]:.2f} = p50 {ms(rb.percentile(50))} /"
            f" {ms(rs.percentile(50))} (p99 {ms(rb.percentile(99))} / {ms(rs.percentile(99))})"
        )
    worst = max(ratios, key=lambda name: ratios[name])
    cell = (
        f"worst **{ratios[worst]:.2f}** ({worst}); "
        + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items())
        + f"; {errors} errors"
    )
    ok = ratios[worst] <= 1.5 and errors == 0
    return Figure(cell, ok, notes, {"ratios": ratios, "errors": errors, "rounds": rounds})


# --- 4: CSV export ---------------------------------------------------------------------


def _count_csv_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def export_csv(dbs: Databases, *, n: int, cache: dict[tuple[str, int], Seeded]) -> Figure:
    """Item 4: `campaign export-csv` of n rows: rows/s and peak memory over an idle process."""
    large = seeded(dbs, "sqlite", n, "big", cache)
    env = servers.campaign_env(large.folder / "instance", large.url)
    out = dbs.workdir / "export.csv"
    log("4: idle baseline (`campaign --help`, which builds the app)")
    idle = measure.run_measured([servers.CAMPAIGN, "--help"], env).check()
    small = seeded(dbs, "sqlite", 100, "small", cache)
    small_env = servers.campaign_env(small.folder / "instance", small.url)
    log("4: export of 100 rows")
    tiny = measure.run_measured(
        [servers.CAMPAIGN, "export-csv", "small", "--output", str(out), "--status", "all"],
        small_env,
    ).check()
    log(f"4: export of {n:,} rows")
    run = measure.run_measured(
        [servers.CAMPAIGN, "export-csv", "big", "--output", str(out), "--status", "all"], env
    ).check()
    rows = _count_csv_rows(out)
    size = out.stat().st_size
    log("4: baseline: the same rows through sqlite3 and csv.writer in a bare process")
    raw = measure.run_measured(
        [sys.executable, "-m", "bench.raw", "export", large.url, "big", str(out)], env
    ).check()
    raw_rows = int(raw.stdout.strip() or 0)
    rate = rows / run.seconds
    # The export of 100 rows is the same command's start-up (app, imports, first query).
    net = rows / max(run.seconds - tiny.seconds, 1e-9)
    raw_rate = raw_rows / raw.seconds if raw.seconds else 0.0
    growth = run.maxrss_mib - idle.maxrss_mib
    ok = rows == n and growth <= 64 and rate >= 200_000
    cell = (
        f"{rate:,.0f} rows/s ({run.seconds:.1f} s, {rows:,} rows; {net:,.0f}/s after"
        f" the {tiny.seconds:.1f} s start-up);"
        f" peak +{growth:.0f} MiB over idle ({run.maxrss_mib:.0f} vs {idle.maxrss_mib:.0f} MiB);"
        f" {rate / raw_rate:.2f} of raw sqlite3+csv"
    )
    notes = [
        f"`campaign export-csv big --status all` wall {run.seconds:.2f} s incl. start-up;"
        f" export of 100 rows: {tiny.seconds:.2f} s, peak {tiny.maxrss_mib:.0f} MiB;"
        f" file {size / 1e6:.0f} MB",
        f"baseline (bench/raw.py: SELECT + csv.writer, no app): {raw_rate:,.0f} rows/s,"
        f" peak {raw.maxrss_mib:.0f} MiB",
        "peak = the child's ru_maxrss from wait4() (its VmHWM)",
    ]
    out.unlink(missing_ok=True)
    return Figure(
        cell,
        ok,
        notes,
        {
            "rows": rows,
            "seconds": run.seconds,
            "rate": rate,
            "rate_after_startup": net,
            "peak_mib": run.maxrss_mib,
            "idle_mib": idle.maxrss_mib,
            "growth_mib": growth,
            "raw_rate": raw_rate,
        },
    )


# --- 5: CSV import ---------------------------------------------------------------------


def import_csv(
    dbs: Databases, *, sizes: tuple[int, int], cache: dict[tuple[str, int], Seeded]
) -> Figure:
    """Item 5: `campaign import-csv` of the export format: rows/s, and memory flat in the size."""
    small_n, big_n = sizes
    source = seeded(dbs, "sqlite", big_n, "big", cache)
    env = servers.campaign_env(source.folder / "instance", source.url)
    full = dbs.workdir / f"import-{big_n}.csv"
    log(f"5: making the import file from an export of {big_n:,} seeded rows")
    measure.run_measured(
        [servers.CAMPAIGN, "export-csv", "big", "--output", str(full), "--status", "all"], env
    ).check()
    part = dbs.workdir / f"import-{small_n}.csv"
    with (
        full.open(encoding="utf-8", newline="") as src,
        part.open("w", encoding="utf-8", newline="") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst, lineterminator="\r\n")
        for i, row in enumerate(reader):
            if i > small_n:
                break
            writer.writerow(row)
    runs: dict[int, measure.ChildRun] = {}
    checks: dict[int, data.CountCheck] = {}
    for n, path in ((small_n, part), (big_n, full)):
        url = dbs.new("sqlite", f"import-{n}")
        folder = folder_for(url, dbs.workdir, f"import-{n}")
        data.create_campaign(url, "imported", require_confirmation=True)
        log(f"5: import of {n:,} rows")
        runs[n] = measure.run_measured(
            [servers.CAMPAIGN, "import-csv", "imported", str(path)],
            servers.campaign_env(folder / "instance", url),
            timeout=1800,
        ).check()
        checks[n] = data.check_counts(url, "imported", folder)
    log("5: baseline: the same file through csv.reader and executemany in a bare process")
    raw_url = data.sqlite_url(dbs.workdir / "raw-import.sqlite3")
    raw = measure.run_measured(
        [sys.executable, "-m", "bench.raw", "import", raw_url, str(full)]
    ).check()
    raw_rows = int(raw.stdout.strip() or 0)
    run = runs[big_n]
    rate = big_n / run.seconds
    raw_rate = raw_rows / raw.seconds if raw.seconds else 0.0
    flat = runs[big_n].maxrss_mib - runs[small_n].maxrss_mib
    exact = all(checks[n].rows == n and checks[n].exact for n in sizes)
    ok = rate >= 20_000 and flat <= 16 and exact
    cell = (
        f"{rate:,.0f} rows/s ({run.seconds:.1f} s for {big_n:,});"
        f" peak {runs[small_n].maxrss_mib:.0f} MiB at {small_n:,} vs {run.maxrss_mib:.0f} MiB"
        f" at {big_n:,} ({flat:+.0f} MiB); {rate / raw_rate:.2f} of raw csv+executemany"
    )
    notes = [
        f"`campaign import-csv imported FILE` output: {run.stdout.strip()[-300:]!r}",
        f"{small_n:,} rows: {runs[small_n].seconds:.1f} s"
        f" ({small_n / runs[small_n].seconds:,.0f} rows/s)",
        f"after import of {big_n:,}: {checks[big_n].describe()}",
        f"after import of {small_n:,}: {checks[small_n].describe()}",
        f"baseline (bench/raw.py: csv.reader + executemany into one table, no checks):"
        f" {raw_rate:,.0f} rows/s, peak {raw.maxrss_mib:.0f} MiB",
        "memory flat means the peak grows by at most 16 MiB from the small to the large file",
    ]
    full.unlink(missing_ok=True)
    part.unlink(missing_ok=True)
    return Figure(
        cell,
        ok,
        notes,
        {
            "rate": rate,
            "seconds": run.seconds,
            "peak_small_mib": runs[small_n].maxrss_mib,
            "peak_big_mib": run.maxrss_mib,
            "raw_rate": raw_rate,
        },
    )


# --- 6: page weight --------------------------------------------------------------------


def page_weight(dbs: Databases) -> Figure:
    """Item 6: bytes a browser transfers to show the signing page, and to which hosts."""
    from bench import page

    url = dbs.new("sqlite", "page")
    folder = folder_for(url, dbs.workdir, "page")
    data.create_campaign(url, SLUG, require_confirmation=True)
    with campaign_server(url, folder) as server:
        log("6: loading the signing page in Chromium")
        weight = page.measure(server.url(f"/c/{SLUG}"))
    ok = weight.total <= 50 * 1000 and not weight.foreign and not weight.failed
    cell = (
        f"{weight.total / 1000:.1f} KB in {len(weight.requests)} requests;"
        f" {len(weight.foreign)} to other hosts ({weight.how})"
    )
    notes = [
        f"{r.status} {urllib.parse.urlsplit(r.url).path or r.url} {r.size:,} B ({r.kind})"
        for r in weight.requests
    ]
    notes += [f"other host: {u}" for u in weight.foreign]
    notes += [f"failed: {u}" for u in weight.failed]
    return Figure(
        cell,
        ok,
        notes,
        {"bytes": weight.total, "requests": len(weight.requests), "how": weight.how},
    )


def cleanup(workdir: Path, keep: bool) -> None:
    """Remove the run's folder unless asked to keep it."""
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)


Runner = Callable[[], Figure]
