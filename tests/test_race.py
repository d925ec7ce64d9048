"""Racing submissions: the database decides duplicates, on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from data_helpers import login, make_organizer
from flask import Flask
from sqlalchemy import select

from campaign import campaigns, mail, review, signing, tally
from campaign.db import session_scope
from campaign.models import Campaign, Organizer, OutboxMessage, Signature

SLUG = "race"
THREADS = 20

FORM = {
    "name": "Maria Santos",
    "title": "MP",
    "parliament": "Senate",
    "country": "PH",
    "email": "maria.santos@gmail.com",
    "public": "y",
}

# Twenty spellings of one gmail mailbox: case, +tags, dots, googlemail.
VARIANTS = [
    "maria.santos@gmail.com",
    "Maria.Santos@gmail.com",
    "MARIA.SANTOS@GMAIL.COM",
    "mariasantos@gmail.com",
    "m.a.r.i.a.s.a.n.t.o.s@gmail.com",
    "maria.santos+letter@gmail.com",
    "maria.santos+a+b@gmail.com",
    "MariaSantos+X@Gmail.Com",
    "maria.santos@googlemail.com",
    "maria.santos+tag@googlemail.com",
    "MARIASANTOS@GOOGLEMAIL.COM",
    "ma.ria.san.tos@gmail.com",
    "mari.asantos@gmail.com",
    "m.ariasantos+1@gmail.com",
    "mariasantos+2@googlemail.com",
    "Maria.Santos+3@GoogleMail.com",
    "mariasantos+x@gmail.com",
    "mar.iasantos@gmail.com",
    "mariasanto.s@gmail.com",
    "MARIA.santos+zz@gmail.com",
]


def make_campaign(app: Flask, *, require_confirmation: bool = True) -> None:
    """An open campaign for the race."""
    with app.app_context(), session_scope(app) as db:
        campaigns.create_campaign(
            db,
            slug=SLUG,
            title="Race",
            state="open",
            require_confirmation=require_confirmation,
        )


def race(app: Flask, forms: list[dict[str, str]]) -> list[int]:
    """Submit every form at once, one thread and one client each; return the statuses."""
    barrier = threading.Barrier(len(forms))
    statuses: list[int] = [0] * len(forms)
    errors: list[BaseException] = []

    def submit(index: int, form: dict[str, str]) -> Callable[[], None]:
        def run() -> None:
            client = app.test_client()
            try:
                barrier.wait(timeout=30)
                statuses[index] = client.post(f"/c/{SLUG}/sign", data=form).status_code
            except BaseException as error:
                errors.append(error)

        return run

    threads = [threading.Thread(target=submit(i, form)) for i, form in enumerate(forms)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return statuses


def stored(app: Flask) -> list[Signature]:
    """Every signature of the race campaign."""
    with session_scope(app) as db:
        return list(db.scalars(select(Signature).order_by(Signature.id)))


def drift(app: Flask) -> dict[str, tuple[int, int]]:
    """Differences between the tally counters and a fresh count."""
    with session_scope(app) as db:
        return tally.recount(db, db.scalars(select(Campaign)).one())


def test_same_address_at_once_makes_one_row(app_factory: Any, backend: str) -> None:
    # Notices even for signatures a moment old, to count them under the limit.
    app = app_factory(backend, DUPLICATE_NOTICE_QUIET_SECONDS=0)
    make_campaign(app)
    assert VARIANTS[0] == FORM["email"] and len(set(VARIANTS)) == THREADS
    assert race(app, [FORM] * THREADS) == [303] * THREADS
    assert len(stored(app)) == 1
    assert race(app, [{**FORM, "email": e} for e in VARIANTS]) == [303] * THREADS
    [only] = stored(app)
    assert only.email_key == "mariasantos@gmail.com"
    # One confirmation mail, then at most three "you already signed" notices.
    with session_scope(app) as db:
        mails = list(db.scalars(select(OutboxMessage)))
    assert len(mails) == 1 + 3
    assert only.duplicate_notices == 3
    assert drift(app) == {}


def test_same_person_under_many_addresses_at_once_counts_once(
    app_factory: Any, backend: str
) -> None:
    app = app_factory(backend)
    make_campaign(app, require_confirmation=False)
    forms = [{**FORM, "email": f"maria{n}@parliament{n}.example"} for n in range(THREADS)]
    assert race(app, forms) == [303] * THREADS
    rows = stored(app)
    assert len(rows) == THREADS
    counted = [row for row in rows if row.counted]
    assert len(counted) == 1
    held = [row for row in rows if row.status == "held"]
    assert len(held) == THREADS - 1
    assert {row.duplicate_of_id for row in held} == {counted[0].id}
    assert drift(app) == {}
    with session_scope(app) as db:
        assert tally.total(db, db.scalars(select(Campaign)).one()) == 1


@pytest.mark.parametrize("require_confirmation", [True, False])
def test_racing_confirmations_count_once(
    app_factory: Any, backend: str, require_confirmation: bool
) -> None:
    app = app_factory(backend)
    make_campaign(app, require_confirmation=require_confirmation)
    race(app, [{**FORM, "email": f"s{n}@example.org", "name": f"Signer {n}"} for n in range(5)])
    # A letter without confirmation mails receipts, which carry no confirm link.
    paths = [path for path in mailed_links(app, "confirm") for _ in range(4)]
    assert post_at_once(app, paths) == [303] * len(paths)
    assert sum(row.counted for row in stored(app)) == 5
    assert drift(app) == {}


def test_racing_withdrawals_from_the_receipts_take_each_signature_off_once(
    app_factory: Any, backend: str
) -> None:
    app = app_factory(backend)
    make_campaign(app, require_confirmation=False)
    race(app, [{**FORM, "email": f"s{n}@example.org", "name": f"Signer {n}"} for n in range(5)])
    assert sum(row.counted for row in stored(app)) == 5
    paths = [path for path in mailed_links(app, "withdraw") for _ in range(4)]
    assert len(paths) == 5 * 4
    assert post_at_once(app, paths) == [303] * len(paths)
    assert [row.status for row in stored(app)] == ["withdrawn"] * 5
    assert drift(app) == {}


def mailed_links(app: Flask, purpose: str) -> list[str]:
    """The paths of the confirm or withdraw links in the queued mail."""
    with app.app_context(), session_scope(app) as db:
        texts = [mail.compose(db, m).text for m in db.scalars(select(OutboxMessage))]
    return [
        path
        for text in texts
        for path in re.findall(rf"http://campaign\.test(/c/{SLUG}/{purpose}/\S+)", text)
    ]


def post_at_once(app: Flask, paths: list[str]) -> list[int]:
    """POST to every path at once, one thread and one client each; the statuses."""
    if not paths:
        return []
    barrier = threading.Barrier(len(paths))
    codes: list[int] = []

    def post(path: str) -> None:
        client = app.test_client()
        barrier.wait(timeout=30)
        codes.append(client.post(path).status_code)

    threads = [threading.Thread(target=post, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return codes


@pytest.mark.parametrize("require_confirmation", [True, False])
def test_a_signer_whose_letter_changes_its_rule_meanwhile_ends_under_the_new_rule(
    app_factory: Any, backend: str, require_confirmation: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The signer's request has read the letter (the old rule) and has not stored the signature
    # when an organizer changes the rule. Whichever finishes first, the signature must end as
    # the new rule makes it: counted at once when confirmation is dropped, pending when it is
    # brought back; never the old rule's status, uncounted (or counted) for good.
    app = app_factory(backend)
    make_campaign(app, require_confirmation=require_confirmation)
    read_letter = threading.Event()
    rule_changed = threading.Event()
    original = signing.sign

    def sign_after_the_change(*args: Any, **kwargs: Any) -> Any:
        read_letter.set()
        # Give the organizer's change the time to finish, unless it waits for this signer.
        rule_changed.wait(timeout=1.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(signing, "sign", sign_after_the_change)
    codes: list[int] = []
    signer = threading.Thread(
        target=lambda: codes.append(
            app.test_client().post(f"/c/{SLUG}/sign", data=FORM).status_code
        )
    )
    signer.start()
    assert read_letter.wait(timeout=30)
    with app.app_context(), session_scope(app) as db:
        found = db.scalars(select(Campaign).where(Campaign.slug == SLUG)).one()
        campaigns.update_campaign(db, found, require_confirmation=not require_confirmation)
        campaign_id = found.id
    with app.app_context(), session_scope(app) as db:
        campaigns.rederive(db, campaign_id)
    rule_changed.set()
    signer.join(timeout=60)
    assert codes == [303]

    (row,) = stored(app)
    assert (row.status, row.counted) == (
        ("confirmed", True) if require_confirmation else ("pending", False)
    )
    assert drift(app) == {}


def test_signers_do_not_wait_for_an_organizer_saving_the_letter_on_postgres(
    app_factory: Any,
) -> None:
    # A save from the dashboard holds the letter's row while it runs (one text change at a
    # time) but not against signers, whose foreign key takes KEY SHARE: they sign meanwhile.
    # (On SQLite the save holds the write lock and signers wait their turn, by design.)
    app = app_factory("postgres")
    make_campaign(app)
    codes: list[int] = []
    signer = threading.Thread(
        target=lambda: codes.append(
            app.test_client().post(f"/c/{SLUG}/sign", data=FORM).status_code
        )
    )
    with app.app_context(), session_scope(app) as db:
        found = db.scalars(select(Campaign).where(Campaign.slug == SLUG)).one()
        campaigns.update_campaign(db, found, title="Race, retitled", recipient="The minister")
        signer.start()
        signer.join(timeout=10)
        signed_while_saving = not signer.is_alive()
    signer.join(timeout=60)
    assert signed_while_saving
    assert codes == [303]
    assert [row.status for row in stored(app)] == ["pending"]


@pytest.mark.parametrize(
    ("action", "require_confirmation"),
    [("add", True), ("import", True), ("import", False), ("keep", True), ("keep", False)],
)
def test_an_organizer_storing_under_the_old_rule_is_moved_by_its_change(
    app_factory: Any,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    require_confirmation: bool,
) -> None:
    # As a signer's request does, an organizer's that stores a status the rule decides (a
    # signature added by hand with a confirmation mail, an import that does not count at
    # once, a possible duplicate counted after all) reads the rule so that a change of it
    # waits for them: paused just after that read, they end under the new rule.
    app = app_factory(backend)
    make_campaign(app, require_confirmation=require_confirmation)
    with app.app_context(), session_scope(app) as db:
        letter = db.scalars(select(Campaign).where(Campaign.slug == SLUG)).one()
        campaign_id = letter.id
        organizer = make_organizer(db, campaigns=(letter,))
        organizer_id = organizer.id
        signing.sign(db, letter, signing.validate_entry(FORM))
        if action == "keep":
            # In the same country, a namesake under another address: held as a duplicate.
            namesake = signing.validate_entry({**FORM, "email": "m.santos@senate.example"})
            held = signing.sign(db, letter, namesake).signature
            assert held.status == "held"
            held_id = held.id
    read_rule = threading.Event()
    rule_changed = threading.Event()
    original = tally.hold_rule

    def hold_then_pause(*args: Any, **kwargs: Any) -> bool:
        rule = original(*args, **kwargs)
        read_rule.set()
        rule_changed.wait(timeout=1.0)  # unless the change waits for this request
        return rule

    monkeypatch.setattr(tally, "hold_rule", hold_then_pause)
    failures: list[BaseException] = []

    def act() -> None:
        try:
            if action == "add":
                client = login(app.test_client(), organizer)
                form = {**FORM, "name": "Ana Lopez", "country": "ES", "email": "ana@example.es"}
                response = client.post(
                    f"/admin/c/{SLUG}/signatures/new", data={**form, "mode": "confirmation"}
                )
                assert response.status_code == 303
            elif action == "import":
                paper = tmp_path / "paper.csv"
                paper.write_text(
                    "name,title,parliament,country_code,email\n"
                    "Ana Lopez,MP,Cortes,ES,ana@example.es\n"
                )
                result = app.test_cli_runner().invoke(
                    args=["import-csv", SLUG, str(paper), "--send-confirmation"]
                )
                assert result.exit_code == 0, result.output
            else:
                with app.app_context(), session_scope(app) as db:
                    review.resolve_duplicate(
                        db,
                        db.get_one(Organizer, organizer_id),
                        db.get_one(Signature, held_id),
                        "both",
                    )
        except BaseException as error:
            failures.append(error)

    organizer_thread = threading.Thread(target=act)
    organizer_thread.start()
    assert read_rule.wait(timeout=30)
    with app.app_context(), session_scope(app) as db:
        campaigns.update_campaign(
            db, db.get_one(Campaign, campaign_id), require_confirmation=not require_confirmation
        )
    with app.app_context(), session_scope(app) as db:
        campaigns.rederive(db, campaign_id)
    rule_changed.set()
    organizer_thread.join(timeout=60)
    assert failures == []

    expected = "confirmed" if require_confirmation else "pending"
    assert [row.status for row in stored(app)] == [expected, expected]
    assert drift(app) == {}
