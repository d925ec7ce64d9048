"""Where a request's time goes: `python -m bench.profile [sign|form|tally|json] [-n N]`.

Runs the real app in this process (Flask's test client: no server, no network) on a
fresh SQLite database, times N requests of one kind, then profiles them with cProfile
and prints the functions with the most cumulative time. CSRF is on, as in production;
rate limits and the mail sender are off, so only the request's own work is measured.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import data, loadgen

if TYPE_CHECKING:
    from flask import Flask


def signing_app(folder: Path, require_confirmation: bool, url: str | None = None) -> Flask:
    """The real app with one open letter, "bench", on a fresh database (SQLite in folder).

    CSRF on, as in production; rate limits and the mail sender off.
    """
    from campaign import create_app

    url = url or data.sqlite_url(folder / "campaign.sqlite3")
    data.prepare(url)
    data.create_campaign(url, "bench", require_confirmation=require_confirmation)
    os.environ["CAMPAIGN_INSTANCE_PATH"] = str(folder / "instance")
    return create_app(
        {
            "SECRET_KEY": "profile",
            "DATABASE_URL": url,
            "RATELIMIT_ENABLED": False,
            "MAIL_SENDER": False,
            "BASE_URL": "http://bench.invalid",
        }
    )


def main() -> None:
    """Time and profile one kind of request."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "kind", choices=["sign", "form", "tally", "json"], nargs="?", default="sign"
    )
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--no-confirmation", action="store_true")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--filter", default="", help="only functions whose location matches")
    parser.add_argument(
        "--postgres", action="store_true", help="on a fresh PostgreSQL database instead of SQLite"
    )
    args = parser.parse_args()
    url = data.create_postgres_database() if args.postgres else None
    try:
        _profile(args, url)
    finally:
        if url:
            data.drop_postgres_database(url)


def _profile(args: argparse.Namespace, url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="campaign-profile-") as tmp:
        app = signing_app(Path(tmp), not args.no_confirmation, url)
        client = app.test_client()
        csrf = loadgen.csrf_token(client.get("/c/bench").data) or ""
        signers = loadgen.Signers(loadgen.run_id(), data.countries())
        paths = {"form": "/c/bench", "tally": "/c/bench/tally", "json": "/c/bench/tally.json"}

        def one() -> None:
            if args.kind == "sign":
                response = client.post("/c/bench/sign", data={"csrf_token": csrf, **signers.next()})
                assert response.status_code == 303, response.status_code
            else:
                response = client.get(paths[args.kind])
                assert response.status_code == 200, response.status_code

        for _ in range(20):
            one()
        begun, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.n):
            one()
        per = (time.perf_counter() - begun) / args.n
        per_cpu = (time.process_time() - cpu) / args.n
        # CPU time is what a shared machine's other work disturbs least.
        print(
            f"{args.kind}: {per * 1000:.2f} ms per request in-process"
            f" ({1 / per:,.0f}/s on one core); CPU {per_cpu * 1000:.2f} ms"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.n):
            one()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        # Python function calls per request: a count, so it does not drift with the machine.
        print(f"{stats.total_calls / args.n:,.0f} Python function calls per request")  # type: ignore[attr-defined]
        if args.filter:
            stats.print_stats(args.filter, args.top)
        else:
            stats.print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
