"""No counter drift when confirmations, rejections and erasures race each other.

Every change of a signature goes through tally.lock/refresh, which moves the
per-country counter in the same transaction as the change. Here threads confirm
(twice each, as a double click would), reject and erase overlapping signatures at
once, on SQLite and on PostgreSQL; afterwards the counters must equal a fresh count of
the counted rows, `tally.recount` must find nothing to repair, and tally.json must
say the same.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from campaign import campaigns, review, signing, tally
from campaign.db import session_scope
from campaign.models import Campaign, Organizer, Signature, TallyCount

SIGNERS = 60
THREADS = 8
COUNTRIES = ["KH", "FR", "BR", "NZ", "KE", "CA"]


def _public(n: int) -> bool:
    """Half of the signers of each kind agree to be listed publicly."""
    return (n // 4) % 2 == 0


def _setup(app: Flask) -> tuple[int, int, list[int]]:
    """An open letter needing confirmation, an organizer, and SIGNERS pending signatures."""
    with session_scope(app) as db:
        campaign = campaigns.create_campaign(
            db, slug="drift", title="Drift", state="open", require_confirmation=True
        )
        organizer = Organizer(
            email="reviewer@example.org", name="Reviewer", password_hash="-", is_admin=True
        )
        db.add(organizer)
        ids = []
        for n in range(SIGNERS):
            entry = signing.SignatureEntry(
                name=f"Member {chr(65 + n // 26)}{chr(97 + n % 26)}son",
                title="MP",
                parliament="Parliament",
                party="",
                country_code=COUNTRIES[n % len(COUNTRIES)],
                email=f"member{n}@example.org",
                public=_public(n),
            )
            outcome = signing.sign(db, campaign, entry)
            assert outcome.created
            ids.append(outcome.signature.id)
        # A third count before the race, so rejections and erasures also take counted ones.
        for signature_id in ids[::3]:
            signing.confirm(db, signature_id)
        db.flush()
        return campaign.id, organizer.id, ids


def _plan(ids: list[int], organizer_id: int) -> tuple[list[Callable[[Any], None]], Counter[str]]:
    """Shuffled operations, and the counted signatures per country they must leave."""

    def confirm(signature_id: int) -> Callable[[Any], None]:
        return lambda db: signing.confirm(db, signature_id)

    def reviewed(action: str, signature_id: int) -> Callable[[Any], None]:
        def run(db: Any) -> None:
            organizer = db.get(Organizer, organizer_id)
            signature = db.get(Signature, signature_id)
            try:
                if action == "reject":
                    review.reject(db, organizer, signature, "not a member of parliament")
                else:
                    review.erase(db, organizer, signature)
            except review.ReviewError:
                pass  # erased by a faster thread: nothing to do, which is the point

        return run

    operations: list[Callable[[Any], None]] = []
    expected: Counter[str] = Counter()
    for n, signature_id in enumerate(ids):
        operations += [confirm(signature_id), confirm(signature_id)]
        kind = n % 4
        if kind in (1, 3):
            operations.append(reviewed("reject", signature_id))
        if kind in (2, 3):
            operations.append(reviewed("erase", signature_id))
        if kind == 0:
            expected[COUNTRIES[n % len(COUNTRIES)]] += 1
    random.Random(5).shuffle(operations)
    return operations, expected


def _race(app: Flask, operations: list[Callable[[Any], None]]) -> list[BaseException]:
    """Run the operations on THREADS threads, each in its own transaction; return errors."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(mine: list[Callable[[Any], None]]) -> None:
        try:
            barrier.wait(timeout=30)
            for operation in mine:
                with session_scope(app) as db:
                    operation(db)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=worker, args=(operations[i::THREADS],)) for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return errors


def test_no_counter_drift_under_concurrent_confirm_reject_erase(
    app_factory: Callable[..., Flask], backend: str
) -> None:
    app = app_factory(backend)
    campaign_id, organizer_id, ids = _setup(app)
    operations, expected = _plan(ids, organizer_id)

    assert _race(app, operations) == []

    with session_scope(app) as db:
        fresh = Counter(
            {
                code: int(count)
                for code, count in db.execute(
                    select(Signature.country_code, func.count())
                    .where(Signature.campaign_id == campaign_id, Signature.counted.is_(True))
                    .group_by(Signature.country_code)
                )
            }
        )
        statuses = Counter(db.scalars(select(Signature.status)))
        listed = {
            code: n
            for code, n in db.execute(
                select(TallyCount.country_code, TallyCount.listed).where(
                    TallyCount.campaign_id == campaign_id
                )
            )
            if n
        }
        campaign = db.get_one(Campaign, campaign_id)
        assert tally.recount(db, campaign) == {}  # the listed counters too
        assert tally.total(db, campaign) == sum(expected.values())
    assert fresh == expected
    # Erasure took the listing of public signers with it; the kept ones stay listed.
    assert listed == Counter(
        COUNTRIES[n % len(COUNTRIES)] for n in range(SIGNERS) if n % 4 == 0 and _public(n)
    )
    assert statuses == {
        "confirmed": SIGNERS // 4,
        "rejected": SIGNERS // 4,
        "erased": SIGNERS // 2,
    }

    body = app.test_client().get("/c/drift/tally.json").get_json()
    assert body["signatures"] == sum(expected.values())
    assert {row["code"]: row["signatures"] for row in body["by_country"]} == dict(expected)


def test_no_counter_drift_when_the_rule_changes_while_signers_confirm(
    app_factory: Callable[..., Flask], backend: str
) -> None:
    # Dropping confirmation counts every unconfirmed signer in one statement, bringing it back
    # uncounts them; a signer confirming at that moment must be counted once, not twice.
    app = app_factory(backend)
    campaign_id, _organizer_id, ids = _setup(app)

    def confirm(signature_id: int) -> Callable[[Any], None]:
        return lambda db: signing.confirm(db, signature_id)

    def toggle(db: Any) -> None:
        for rule in (False, True):
            with session_scope(app) as own:
                campaigns.update_campaign(
                    own, own.get_one(Campaign, campaign_id), require_confirmation=rule
                )
            with session_scope(app) as own:
                campaigns.rederive(own, campaign_id)

    operations = [confirm(signature_id) for signature_id in ids] + [toggle] * (THREADS * 2)
    random.Random(7).shuffle(operations)
    assert _race(app, operations) == []

    with session_scope(app) as db:
        campaign = db.get_one(Campaign, campaign_id)
        assert campaign.require_confirmation
        assert tally.recount(db, campaign) == {}  # the listed counters too
        assert tally.total(db, campaign) == SIGNERS
        assert Counter(db.scalars(select(Signature.status))) == {"confirmed": SIGNERS}
