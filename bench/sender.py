"""The mail sender's cost per message: `python -m bench.sender [-n N] [--rounds R]`.

Runs in this process on a fresh SQLite file: N pending signatures, each given its
confirmation mail by `mail.queue_confirmation` inside a request context (what the sign
view pays), then `mail.deliver_due` sends them all to instance/outbox/ (what the leading
sender pays: claims, composing, building, writing with fsync, marking). CPU is
`time.process_time()`; the wall time includes the fsync of every .eml file. The sender's
log lines are formatted and written to /dev/null, as a server's go to its log.

CPU is also shown split into user and system time: the system part is mostly the kernel
creating each .eml file, whose cost on a shared VM swings several-fold from one folder to
the next, so compare user time (and, with --calls, the Python function calls per mail,
counted by cProfile in a round of its own, which do not vary at all) before and after a
change of the sender's code.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import data


def _round(
    folder: Path, n: int, detail: dict[str, float] | None = None, profile: bool = False
) -> tuple[float, float, float]:
    """(queue CPU, deliver CPU, deliver wall) in ms per mail, for one fresh database.

    With detail, also put in it deliver_due's user and system CPU in ms per mail, and with
    profile its Python function calls per mail (cProfile, which slows the round).
    """
    from campaign import create_app, mail
    from campaign.db import new_session
    from campaign.models import Campaign, Signature

    url = data.sqlite_url(folder / "campaign.sqlite3")
    data.prepare(url)
    os.environ["CAMPAIGN_INSTANCE_PATH"] = str(folder / "instance")
    app = create_app(
        {
            "SECRET_KEY": "sender-bench",
            "DATABASE_URL": url,
            "MAIL_SENDER": False,
            "BASE_URL": "http://bench.invalid",
        }
    )
    with app.test_request_context("/c/bench/sign", method="POST"):
        db = new_session(app)
        campaign = Campaign(slug="bench", title="A letter to measure", state="open")
        signatures = [
            Signature(
                campaign=campaign,
                name=f"Member {i}",
                country_code="FR",
                continent_code="EU",
                email=f"member{i}@example.org",
                email_key=f"member{i}@example.org",
                name_key=f"member {i}",
            )
            for i in range(n)
        ]
        db.add_all(signatures)
        db.commit()
        started = time.process_time()
        for signature in signatures:
            mail.queue_confirmation(db, signature)
        queued = time.process_time() - started
        db.commit()
        db.close()
    profiler = cProfile.Profile() if profile else None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler is not None:
        sent = profiler.runcall(mail.deliver_due, app)
    else:
        sent = mail.deliver_due(app)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert sent == n, f"sent {sent} of {n}"
    if detail is not None:
        detail["user"] = (after.ru_utime - usage.ru_utime) * 1000 / n
        detail["system"] = (after.ru_stime - usage.ru_stime) * 1000 / n
        if profiler is not None:
            stats: Any = pstats.Stats(profiler)
            detail["calls"] = stats.total_calls / n
    app.extensions["engine"].dispose()
    return queued * 1000 / n, cpu * 1000 / n, wall * 1000 / n


def main() -> None:
    """Measure some rounds and print each, then the range."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="mails per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--calls", action="store_true", help="then count function calls per mail in one more"
    )
    args = parser.parse_args()
    sink = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    sender_log = logging.getLogger("campaign.mail")
    sender_log.addHandler(handler)
    sender_log.propagate = False
    results = []
    for number in range(1, args.rounds + 1):
        detail: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="campaign-sender-") as folder:
            queue, cpu, wall = _round(Path(folder), args.n, detail)
        results.append((queue, cpu, wall, detail["user"]))
        print(
            f"round {number}: queue {queue:.2f} ms CPU per mail (in the request); "
            f"deliver_due {cpu:.2f} ms CPU (user {detail['user']:.2f}, system "
            f"{detail['system']:.2f}), {wall:.2f} ms wall per mail ({args.n} mails)"
        )
    queues, cpus, walls, users = zip(*results, strict=True)
    print(
        f"range: queue {min(queues):.2f}-{max(queues):.2f} ms, deliver_due CPU "
        f"{min(cpus):.2f}-{max(cpus):.2f} ms (user {min(users):.2f}-{max(users):.2f}), "
        f"wall {min(walls):.2f}-{max(walls):.2f} ms per mail"
    )
    if args.calls:
        detail = {}
        with tempfile.TemporaryDirectory(prefix="campaign-sender-") as folder:
            _round(Path(folder), args.n, detail, profile=True)
        print(f"deliver_due: {detail['calls']:.0f} Python function calls per mail (cProfile)")


if __name__ == "__main__":
    main()
