"""Reviewing signatures: the list, single and bulk actions, erasure, duplicates and the tally."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from admin_helpers import (
    AuthActions,
    auth,
    campaign,
    changes_audited,
    flashes,
    logged_in,
    make_campaign,
    make_organizer,
    make_signature,
    reload,
    store,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaign import mail, review, signing, tally
from campaign.db import get_session, utcnow
from campaign.models import AuditEntry, Campaign, Organizer, OutboxMessage, Signature

__all__ = ["auth", "campaign", "logged_in", "store"]


@pytest.fixture
def alice(store: Session, campaign: Campaign) -> Organizer:
    """The campaign's organizer, as the store holds her."""
    found = store.scalar(select(Organizer).where(Organizer.email == "alice@example.org"))
    assert found is not None
    return found


def _ids(page: str) -> list[int]:
    """Signature ids in the list's order."""
    return [int(i) for i in re.findall(r'name="ids" value="(\d+)"', page)]


def _tally(client: FlaskClient, slug: str) -> dict[str, object]:
    response = client.get(f"/c/{slug}/tally.json")
    assert response.status_code == 200
    data: dict[str, object] = json.loads(response.data)
    return data


def _audit(store: Session, action: str) -> list[AuditEntry]:
    store.expire_all()
    return list(
        store.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
    )


# --- the list ------------------------------------------------------------------


def test_the_list_pages_fifty_at_a_time(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    made = [
        make_signature(store, campaign, f"Member {i:03d}", f"m{i}@parl.example") for i in range(120)
    ]
    first = client.get("/admin/c/kem/signatures").get_data(as_text=True)
    assert _ids(first) == [s.id for s in reversed(made)][:50]
    assert "Page 1 of 3" in first
    assert "120 signatures match; showing 1\N{EN DASH}50." in first
    last = client.get("/admin/c/kem/signatures?page=3").get_data(as_text=True)
    assert len(_ids(last)) == 20
    beyond = client.get("/admin/c/kem/signatures?page=99").get_data(as_text=True)
    assert _ids(beyond) == _ids(last)
    assert client.get("/admin/c/kem/signatures?page=abc").status_code == 200


@pytest.mark.parametrize(
    ("query", "total"),
    [("status=pending", 60), ("status=counted", 55), ("status=confirmed", 55), ("", 115)],
)
def test_a_status_s_pages_say_how_many_it_holds_and_stop_at_its_last(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    query: str,
    total: int,
) -> None:
    # The whole list and one status take their total from the counts above the list.
    for i in range(60):
        make_signature(store, campaign, f"Pending {i:02d}", f"p{i}@parl.example", confirmed=False)
    for i in range(55):
        make_signature(store, campaign, f"Counted {i:02d}", f"c{i}@parl.example")
    first = client.get(f"/admin/c/kem/signatures?{query}").get_data(as_text=True)
    assert f"{total} signatures match; showing 1\N{EN DASH}50." in first
    assert len(_ids(first)) == 50
    last = -(-total // 50)
    beyond = client.get(f"/admin/c/kem/signatures?{query}&page=99").get_data(as_text=True)
    assert f"Page {last} of {last}" in beyond
    assert len(_ids(beyond)) == total - 50 * (last - 1)
    assert len(set(_ids(first)) | set(_ids(beyond))) == 50 + len(_ids(beyond))


def test_sorted_by_status_each_status_is_in_signing_order(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    # A paper signature imported today was signed before the ones that came by the form.
    first = make_signature(store, campaign, "First Form", "f@parl.example")
    later = make_signature(store, campaign, "Later Form", "l@parl.example")
    paper = make_signature(
        store,
        campaign,
        "Paper",
        "p@parl.example",
        source="import",
        signed_at=dt.datetime(2020, 1, 2, tzinfo=dt.UTC),
    )
    waiting = make_signature(store, campaign, "Waiting", "w@parl.example", confirmed=False)
    up = _ids(client.get("/admin/c/kem/signatures?sort=status&dir=asc").get_data(as_text=True))
    assert up == [paper.id, first.id, later.id, waiting.id]
    down = _ids(client.get("/admin/c/kem/signatures?sort=status&dir=desc").get_data(as_text=True))
    assert down == list(reversed(up))


def test_search_covers_name_email_party_and_parliament_case_insensitively(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    by_name = make_signature(store, campaign, "Siti Nurhaliza", "a@parl.example")
    by_email = make_signature(store, campaign, "A Person", "siti@mail.example")
    by_party = make_signature(store, campaign, "B Person", "b@parl.example", party="SITI party")
    by_parl = make_signature(store, campaign, "C Person", "c@parl.example", parliament="Dewan Siti")
    make_signature(store, campaign, "D Person", "d@parl.example")
    page = client.get("/admin/c/kem/signatures?q=sItI").get_data(as_text=True)
    assert sorted(_ids(page)) == sorted([by_name.id, by_email.id, by_party.id, by_parl.id])


def test_search_wildcards_match_literally(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    percent = make_signature(store, campaign, "100% Member", "a@parl.example")
    underscore = make_signature(store, campaign, "Under_Score", "b@parl.example")
    make_signature(store, campaign, "Plain Member", "c@parl.example")
    assert _ids(client.get("/admin/c/kem/signatures?q=%25").get_data(as_text=True)) == [percent.id]
    assert _ids(client.get("/admin/c/kem/signatures?q=_").get_data(as_text=True)) == [underscore.id]


def test_filters_narrow_the_list(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    alice: Organizer,
) -> None:
    french = make_signature(store, campaign, "Jean Dupont", "j@parl.example", country="FR")
    kenyan = make_signature(store, campaign, "Wanjiru Kamau", "w@parl.example", country="KE")
    pending = make_signature(
        store, campaign, "Pat Pending", "p@parl.example", country="ID", confirmed=False
    )
    imported = make_signature(
        store, campaign, "Ina Import", "i@parl.example", country="ID", source="import"
    )
    held = make_signature(store, campaign, "Jean Dupont", "j2@parl.example", duplicate_of=french)
    review.verify(store, alice, kenyan)
    store.commit()

    def ids(query: str) -> list[int]:
        return sorted(_ids(client.get(f"/admin/c/kem/signatures?{query}").get_data(as_text=True)))

    assert ids("status=pending") == [pending.id]
    assert ids("status=counted") == sorted([french.id, kenyan.id, imported.id])
    assert ids("country=KE") == [kenyan.id]
    assert ids("continent=AS") == sorted([pending.id, imported.id])
    assert ids("verified=yes") == [kenyan.id]
    assert ids("held=yes") == [held.id]
    assert ids("source=import") == [imported.id]
    assert ids("country=FR&held=no") == [french.id]
    assert ids("status=bogus") == sorted([french.id, kenyan.id, pending.id, imported.id, held.id])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sort=name&dir=asc", ["Anna", "bob", "Chloe"]),
        ("sort=name&dir=desc", ["Chloe", "bob", "Anna"]),
        ("sort=country&dir=asc", ["Chloe", "Anna", "bob"]),
        ("sort=status&dir=asc", ["Anna", "Chloe", "bob"]),
        ("sort=signed_at&dir=asc", ["bob", "Anna", "Chloe"]),
        ("", ["Chloe", "Anna", "bob"]),
        ("sort=email;drop&dir=sideways", ["Chloe", "Anna", "bob"]),
    ],
)
def test_sorting_follows_a_whitelist(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    query: str,
    expected: list[str],
) -> None:
    names = {}
    for name, country, confirmed in (
        ("bob", "US", False),
        ("Anna", "DE", True),
        ("Chloe", "BR", True),
    ):
        names[
            make_signature(
                store, campaign, name, f"{name}@parl.example", country=country, confirmed=confirmed
            ).id
        ] = name
    page = client.get(f"/admin/c/kem/signatures?{query}").get_data(as_text=True)
    assert [names[i] for i in _ids(page)] == expected


def test_counts_per_status_are_shown_at_the_top(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    make_signature(store, campaign, "One", "1@parl.example")
    make_signature(store, campaign, "Two", "2@parl.example")
    make_signature(store, campaign, "Three", "3@parl.example", confirmed=False)
    page = client.get("/admin/c/kem/signatures?status=pending").get_data(as_text=True)
    counts = dict(
        (label, int(n)) for n, label in re.findall(r"<strong>(\d+)</strong> (\w+)</a>", page)
    )
    assert counts == {
        "counted": 2,
        "pending": 1,
        "held": 0,
        "confirmed": 2,
        "rejected": 0,
        "withdrawn": 0,
        "erased": 0,
    }


# --- single actions ------------------------------------------------------------


def test_verify_and_unverify(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example", public=True)
    url = f"/admin/c/kem/signatures/{signature.id}"
    assert client.post(url, data={"action": "verify"}).status_code == 303
    assert reload(store, signature).verified_at is not None
    assert flashes(client.get(url)) == ["Verified: 1."]
    assert "✓ verified" in client.get("/admin/c/kem/signatures").get_data(as_text=True)
    client.post(url, data={"action": "verify"})
    assert flashes(client.get(url)) == ["Skipped 1: it is already verified."]
    client.post(url, data={"action": "unverify"})
    assert reload(store, signature).verified_at is None
    [verified] = _audit(store, "signature.verify")
    assert json.loads(verified.before) == {"verified_at": None}
    assert json.loads(verified.after)["verified_at"]
    assert len(_audit(store, "signature.unverify")) == 1


def test_reject_needs_a_reason_and_restore_undoes_it(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Fake Member", "fake@mail.example")
    url = f"/admin/c/kem/signatures/{signature.id}"
    client.post(url, data={"action": "reject", "reason": "  "})
    assert reload(store, signature).status == "confirmed"
    assert flashes(client.get(url)) == ["Say why the signature is rejected."]
    before = _tally(client, "kem")["signatures"]
    client.post(url, data={"action": "reject", "reason": "not a member of any parliament"})
    rejected = reload(store, signature)
    assert (rejected.status, rejected.counted) == ("rejected", False)
    assert rejected.rejected_reason == "not a member of any parliament"
    assert _tally(client, "kem")["signatures"] == before - 1
    page = client.get(url).get_data(as_text=True)
    assert "not a member of any parliament" in page
    client.post(url, data={"action": "restore"})
    restored = reload(store, signature)
    assert (restored.status, restored.counted, restored.rejected_reason) == ("confirmed", True, "")
    assert _tally(client, "kem")["signatures"] == before
    [entry] = _audit(store, "signature.reject")
    assert json.loads(entry.before)["status"] == "confirmed"
    assert json.loads(entry.after)["status"] == "rejected"
    assert json.loads(entry.after)["rejected_reason"] == "not a member of any parliament"
    assert len(_audit(store, "signature.restore")) == 1


def test_a_restored_signature_is_held_when_a_namesake_signed_while_it_was_rejected(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    url = f"/admin/c/kem/signatures/{first.id}"
    client.post(url, data={"action": "reject", "reason": "looked fake"})
    # Off the letter it held no one back: the same member signed again from another address.
    second = make_signature(store, campaign, "Ann Lee", "ann.lee@parl.example")
    assert _tally(client, "kem")["signatures"] == 1
    client.post(url, data={"action": "restore"})
    restored = reload(store, first)
    assert (restored.status, restored.counted) == ("held", False)
    assert (restored.duplicate_of_id, restored.duplicate_state) == (second.id, "held")
    assert _tally(client, "kem")["signatures"] == 1  # one person, counted once
    assert f'id="dup-{first.id}"' in client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    [entry] = _audit(store, "signature.restore")
    assert json.loads(entry.after)["duplicate_of_id"] == second.id


def test_a_restored_signature_keeps_an_earlier_different_people_decision(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    other = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    judged = make_signature(store, campaign, "Ann Lee", "ann@senate.example", duplicate_of=other)
    judged.duplicate_state = "distinct"
    tally.refresh(store, judged)
    store.commit()
    url = f"/admin/c/kem/signatures/{judged.id}"
    client.post(url, data={"action": "reject", "reason": "checking"})
    client.post(url, data={"action": "restore"})
    restored = reload(store, judged)
    assert (restored.status, restored.duplicate_state) == ("confirmed", "distinct")
    assert _tally(client, "kem")["signatures"] == 2


def _composed_text(app: Flask, store: Session, message: OutboxMessage) -> str:
    """The text of a queued mail as the sender composes it."""
    with app.app_context():
        return mail.compose(store, message).text


def test_resend_queues_the_confirmation_for_pending_signatures_only(
    app: Flask, client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    pending = make_signature(store, campaign, "Pat Doe", "pat@parl.example", confirmed=False)
    confirmed = make_signature(store, campaign, "Con Firmed", "con@parl.example")
    client.post(f"/admin/c/kem/signatures/{pending.id}", data={"action": "resend"})
    client.post(f"/admin/c/kem/signatures/{confirmed.id}", data={"action": "resend"})
    store.expire_all()
    [message] = store.scalars(select(OutboxMessage)).all()
    assert message.to_addr == "pat@parl.example"
    assert message.signature_id == pending.id
    text = _composed_text(app, store, message)
    assert "http://campaign.test/c/kem/confirm/" in text
    assert "http://campaign.test/c/kem/withdraw/" in text
    assert len(_audit(store, "signature.resend_confirmation")) == 1


def test_a_confirmation_is_mailed_again_once_ten_minutes_after_the_last(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pending = make_signature(store, campaign, "Pat Doe", "pat@parl.example", confirmed=False)
    url = f"/admin/c/kem/signatures/{pending.id}"
    for _ in range(3):
        client.post(url, data={"action": "resend"})
    assert store.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    assert flashes(client.get(url))[-1] == (
        "Skipped 1: its confirmation was mailed less than 10 minutes ago."
    )
    later = utcnow() + review.RESEND_INTERVAL + dt.timedelta(seconds=1)
    monkeypatch.setattr(review, "utcnow", lambda: later)
    client.post(url, data={"action": "resend"})
    assert store.scalar(select(func.count()).select_from(OutboxMessage)) == 2


def test_a_confirmation_link_from_a_resent_mail_confirms(
    app: Flask, client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    pending = make_signature(store, campaign, "Pat Doe", "pat@parl.example", confirmed=False)
    client.post(f"/admin/c/kem/signatures/{pending.id}", data={"action": "resend"})
    store.expire_all()
    message = store.scalars(select(OutboxMessage)).one()
    text = _composed_text(app, store, message)
    link = re.search(r"http://campaign\.test(/c/kem/confirm/\S+)", text)
    assert link
    assert client.post(link.group(1)).status_code in (200, 303)
    assert reload(store, pending).status == "confirmed"


def test_erasure_leaves_nothing_identifying(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    app: Flask,
) -> None:
    signature = make_signature(
        store,
        campaign,
        "Siti Rahmawati",
        "siti.rahmawati@dpr.example",
        title="Hon.",
        parliament="Dewan Perwakilan Rakyat",
        party="Partai Contoh",
        comment="I sign as Siti from Jakarta",
        public=True,
        client_hash="ab" * 32,
        country="ID",
    )
    url = f"/admin/c/kem/signatures/{signature.id}"
    client.post(url, data={"action": "resend"})  # nothing: it is confirmed
    client.post(url, data={"action": "reject", "reason": "Siti Rahmawati asked us"})
    store.add(
        OutboxMessage(
            to_addr=signature.email,
            subject="x",
            body_text="Dear Siti Rahmawati",
            message_id="<1@x>",
            signature_id=signature.id,
        )
    )
    store.commit()
    # Without the confirmation box, nothing happens.
    client.post(url, data={"action": "erase"})
    assert reload(store, signature).erased_at is None
    client.post(url, data={"action": "erase", "confirm_erase": "y"})
    erased = reload(store, signature)
    assert (erased.status, erased.counted) == ("erased", False)
    assert erased.email_key == f"erased:{signature.id}"
    assert erased.name_key == ""
    assert erased.client_hash is None
    assert not erased.public
    assert erased.country_code == "ID"  # kept, with the dates, for the counts' history
    assert erased.signed_at is not None
    row = store.execute(select(Signature.__table__).where(Signature.id == signature.id)).one()
    for value in row:
        text = str(value).casefold()
        assert "siti" not in text
        assert "rahmawati" not in text
        assert "dpr" not in text
        assert "partai" not in text
    for entry in store.scalars(select(AuditEntry)):
        assert "Siti" not in entry.before + entry.after
    assert store.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    page = client.get(url).get_data(as_text=True)
    assert "(erased)" in page
    assert "Siti" not in page
    [entry] = _audit(store, "signature.erase")
    assert json.loads(entry.after)["status"] == "erased"
    # The address is free again: the same person may sign anew.
    again = make_signature(store, campaign, "Siti Rahmawati", "siti.rahmawati@dpr.example")
    assert again.id != signature.id


def test_erasing_deletes_the_signers_mail_files_from_the_outbox_folder(
    app: Flask,
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without SMTP the sender writes each mail to instance/outbox/*.eml: an erased signer's
    # name and address must not stay there, and no one else's mail goes with theirs.
    monkeypatch.setattr(review, "RESEND_INTERVAL", dt.timedelta(0))  # two mails to one signer
    gone = make_signature(store, campaign, "Siti Rahmawati", "siti@dpr.example", confirmed=False)
    kept = make_signature(store, campaign, "Ann Lee", "ann@parl.example", confirmed=False)
    for signature in (gone, kept, gone):
        url = f"/admin/c/kem/signatures/{signature.id}"
        assert client.post(url, data={"action": "resend"}).status_code == 303
    assert mail.deliver_due(app) == 3
    folder = Path(app.instance_path) / "outbox"
    written = {path.name: path.read_text() for path in folder.glob("*.eml")}
    assert sum("Siti" in text for text in written.values()) == 2
    client.post(
        f"/admin/c/kem/signatures/{gone.id}", data={"action": "erase", "confirm_erase": "y"}
    )
    assert reload(store, gone).status == "erased"
    left = sorted(folder.glob("*.eml"))
    assert len(left) == 1
    assert "Ann Lee" in left[0].read_text()
    assert not any("Siti" in path.read_text() for path in folder.iterdir())


def test_a_mail_written_while_its_signer_is_erased_is_deleted_too(
    app: Flask,
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sender has claimed the mail; the organizer erases the signer before it is written.
    signature = make_signature(
        store, campaign, "Siti Rahmawati", "siti@dpr.example", confirmed=False
    )
    url = f"/admin/c/kem/signatures/{signature.id}"
    client.post(url, data={"action": "resend"})
    composed = mail.mail_bytes

    def erase_first(*args: object, **kwargs: object) -> bytes:
        client.post(url, data={"action": "erase", "confirm_erase": "y"})
        return composed(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mail, "mail_bytes", erase_first)
    mail.deliver_due(app)
    assert reload(store, signature).status == "erased"
    folder = Path(app.instance_path) / "outbox"
    assert list(folder.glob("*.eml")) == []


def test_mail_files_stay_when_the_erasure_is_rolled_back(
    app: Flask, client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(
        store, campaign, "Siti Rahmawati", "siti@dpr.example", confirmed=False
    )
    client.post(f"/admin/c/kem/signatures/{signature.id}", data={"action": "resend"})
    assert mail.deliver_due(app) == 1
    folder = Path(app.instance_path) / "outbox"
    [written] = folder.glob("*.eml")
    with app.app_context():
        db = get_session()
        found = db.get(Signature, signature.id)
        organizer = db.scalar(select(Organizer))
        assert found is not None and organizer is not None
        review.erase(db, organizer, found)
        db.flush()
        db.rollback()
    assert written.exists()
    assert reload(store, signature).erased_at is None


def test_erasure_deletes_the_signers_receipts_sent_or_queued(
    app: Flask, client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    campaign.require_confirmation = False
    store.commit()
    form = {"title": "MP", "parliament": "DPR", "country": "ID", "public": "y"}
    signers = [("Siti Rahmawati", "siti@dpr.example"), ("Budi Santoso", "budi@dpr.example")]
    client.post("/c/kem/sign", data={**form, "name": signers[0][0], "email": signers[0][1]})
    assert mail.deliver_due(app) == 1  # the first receipt sent (it keeps what it said)
    client.post("/c/kem/sign", data={**form, "name": signers[1][0], "email": signers[1][1]})
    receipts = store.execute(select(OutboxMessage.signature_id, OutboxMessage.kind)).all()
    assert [kind for _id, kind in receipts] == ["receipt", "receipt"]
    for signature_id, _kind in receipts:
        url = f"/admin/c/kem/signatures/{signature_id}"
        assert client.post(url, data={"action": "erase", "confirm_erase": "y"}).status_code == 303
    store.expire_all()
    assert store.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert mail.deliver_due(app) == 0


def test_an_erased_signature_takes_no_other_action(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Gone Person", "gone@parl.example")
    url = f"/admin/c/kem/signatures/{signature.id}"
    client.post(url, data={"action": "erase", "confirm_erase": "y"})
    for action in ("verify", "restore", "erase"):
        client.post(url, data={"action": action, "reason": "x", "confirm_erase": "y"})
    assert reload(store, signature).verified_at is None
    assert len(_audit(store, "signature.erase")) == 1


def test_an_unknown_action_is_refused(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    url = f"/admin/c/kem/signatures/{signature.id}"
    assert client.post(url, data={"action": "delete"}).status_code == 303
    assert flashes(client.get(url)) == ["Not a valid choice."]
    store.expire_all()
    assert changes_audited(store) == []


# --- bulk ----------------------------------------------------------------------


def test_bulk_actions_apply_to_every_ticked_signature(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    made = [make_signature(store, campaign, f"M {i}", f"m{i}@parl.example") for i in range(4)]
    ticked = [str(s.id) for s in made[:3]]
    response = client.post(
        "/admin/c/kem/signatures/bulk?status=confirmed&page=1",
        data={"ids": ticked, "action": "verify"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/c/kem/signatures?status=confirmed&page=1"
    assert [reload(store, s).verified_at is not None for s in made] == [True, True, True, False]
    assert len(_audit(store, "signature.verify")) == 3
    assert _tally(client, "kem")["signatures"] == 4

    client.post(
        "/admin/c/kem/signatures/bulk",
        data={"ids": [str(s.id) for s in made], "action": "reject", "reason": "fake list"},
    )
    assert [reload(store, s).status for s in made] == ["rejected"] * 4
    assert _tally(client, "kem")["signatures"] == 0

    client.post(
        "/admin/c/kem/signatures/bulk",
        data={"ids": [str(made[0].id)], "action": "restore"},
    )
    assert reload(store, made[0]).status == "confirmed"
    assert _tally(client, "kem")["signatures"] == 1


def test_bulk_reports_what_it_skipped(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    pending = make_signature(store, campaign, "P", "p@parl.example", confirmed=False)
    confirmed = make_signature(store, campaign, "C", "c@parl.example")
    client.post(
        "/admin/c/kem/signatures/bulk",
        data={"ids": [str(pending.id), str(confirmed.id), "999999"], "action": "resend"},
    )
    shown = flashes(client.get("/admin/c/kem/signatures"))
    assert shown == [
        "Confirmation mail queued: 1.",
        "Skipped 1: it no longer exists.",
        "Skipped 1: it is not awaiting confirmation.",
    ]
    store.expire_all()
    assert store.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_bulk_takes_ticked_signers_off_the_public_list(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    listed = [
        make_signature(store, campaign, f"L {i}", f"l{i}@parl.example", public=True)
        for i in range(2)
    ]
    unlisted = make_signature(store, campaign, "U", "u@parl.example", public=False)
    page = client.get("/admin/c/kem/signatures").get_data(as_text=True)
    assert '<option value="unlist">Take off the public list</option>' in page
    client.post(
        "/admin/c/kem/signatures/bulk",
        data={"ids": [str(s.id) for s in (*listed, unlisted)], "action": "unlist"},
    )
    assert flashes(client.get("/admin/c/kem/signatures")) == [
        "Taken off the public list: 2.",
        "Skipped 1: it is not on the public list.",
    ]
    assert [reload(store, s).public for s in (*listed, unlisted)] == [False, False, False]
    assert len(_audit(store, "signature.unlist")) == 2
    assert _tally(client, "kem")["signatures"] == 3  # they still count


def test_bulk_erase_needs_its_confirmation_box(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    made = [make_signature(store, campaign, f"M {i}", f"m{i}@parl.example") for i in range(2)]
    data = {"ids": [str(s.id) for s in made], "action": "erase"}
    client.post("/admin/c/kem/signatures/bulk", data=data)
    assert [reload(store, s).erased_at for s in made] == [None, None]
    assert flashes(client.get("/admin/c/kem/signatures")) == [
        "Tick the box to confirm the erasure."
    ]
    client.post("/admin/c/kem/signatures/bulk", data=data | {"confirm_erase": "y"})
    assert [reload(store, s).status for s in made] == ["erased", "erased"]


def test_a_refused_bulk_action_comes_back_with_its_ticks_and_action(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    made = [make_signature(store, campaign, f"M {i}", f"m{i}@parl.example") for i in range(3)]
    ticked = {str(s.id) for s in made[:2]}
    response = client.post(
        "/admin/c/kem/signatures/bulk?status=confirmed",
        data={"ids": sorted(ticked), "action": "reject", "reason": " "},
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert flashes(page) == ["Say why the signature is rejected."]
    boxes = re.findall(r'<input type="checkbox" name="ids" value="(\d+)"([^>]*)>', html)
    assert {value for value, attrs in boxes if " checked" in attrs} == ticked
    assert len(boxes) == 3
    assert '<option value="reject" selected>Reject (give a reason)</option>' in html
    assert '<option value="confirmed" selected>' in html  # the list's filter stays too
    assert [reload(store, s).status for s in made] == ["confirmed"] * 3
    # Once done, the list is fresh again: nothing ticked, the first action chosen.
    client.post(
        "/admin/c/kem/signatures/bulk?status=confirmed",
        data={"ids": sorted(ticked), "action": "reject", "reason": "a fake"},
    )
    html = client.get("/admin/c/kem/signatures?status=confirmed").get_data(as_text=True)
    assert " checked" not in html and " selected>Reject" not in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "verify"}, "Tick at least one signature."),
        ({"action": "verify", "ids": ["x"]}, "Invalid choice(s)"),
        ({"action": "reject", "ids": ["1"]}, "Say why the signature is rejected."),
        ({"action": "nuke", "ids": ["1"]}, "Not a valid choice."),
    ],
)
def test_bad_bulk_input_changes_nothing(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    data: dict[str, object],
    message: str,
) -> None:
    make_signature(store, campaign, "M", "m@parl.example")
    assert client.post("/admin/c/kem/signatures/bulk", data=data).status_code == 303
    shown = flashes(client.get("/admin/c/kem/signatures"))
    assert any(message in m for m in shown), shown
    store.expire_all()
    assert changes_audited(store) == []


# --- duplicates ------------------------------------------------------------------


@pytest.fixture
def pair(store: Session, campaign: Campaign) -> tuple[Signature, Signature]:
    """A counted signature and a confirmed one held as its possible duplicate."""
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example", party="Labour")
    held = make_signature(
        store, campaign, "Ann Lee", "ann.lee@gmail.example", party="Greens", duplicate_of=first
    )
    return first, held


def test_the_duplicates_page_shows_both_sets_of_details(
    client: FlaskClient, logged_in: AuthActions, pair: tuple[Signature, Signature]
) -> None:
    page = client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    assert "ann@parl.example" in page
    assert "ann.lee@gmail.example" in page
    assert "Labour" in page
    assert "Greens" in page
    for label in (
        "Same person: keep this one",
        "Same person: keep the other",
        "Different people: count both",
    ):
        assert label in page


def test_count_both_adds_the_held_one_to_the_tally(
    client: FlaskClient, logged_in: AuthActions, store: Session, pair: tuple[Signature, Signature]
) -> None:
    _first, held = pair
    assert _tally(client, "kem")["signatures"] == 1
    response = client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "both"})
    assert response.status_code == 303
    assert _tally(client, "kem")["signatures"] == 2
    resolved = reload(store, held)
    assert (resolved.status, resolved.duplicate_state) == ("confirmed", "distinct")
    assert "Nothing to decide" in client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    [entry] = _audit(store, "duplicate.count_both")
    assert json.loads(entry.before) == {
        "counted": False,
        "duplicate_state": "held",
        "status": "held",
    }


def test_keep_this_one_rejects_the_other(
    client: FlaskClient, logged_in: AuthActions, store: Session, pair: tuple[Signature, Signature]
) -> None:
    first, held = pair
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "this"})
    kept, dropped = reload(store, held), reload(store, first)
    assert (kept.status, kept.counted) == ("confirmed", True)
    assert (dropped.status, dropped.rejected_reason) == ("rejected", f"duplicate of #{held.id}")
    assert _tally(client, "kem")["signatures"] == 1
    assert len(_audit(store, "duplicate.keep")) == 1
    assert len(_audit(store, "duplicate.reject")) == 1


def test_keep_the_other_rejects_the_held_one(
    client: FlaskClient, logged_in: AuthActions, store: Session, pair: tuple[Signature, Signature]
) -> None:
    first, held = pair
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "other"})
    assert reload(store, first).status == "confirmed"
    dropped = reload(store, held)
    assert (dropped.status, dropped.rejected_reason) == ("rejected", f"duplicate of #{first.id}")
    assert _tally(client, "kem")["signatures"] == 1
    shown = flashes(client.get("/admin/c/kem/duplicates"))
    assert shown == [f"Kept #{first.id}; #{held.id} rejected as its duplicate."]


def test_a_settled_duplicate_cannot_be_settled_twice(
    client: FlaskClient, logged_in: AuthActions, store: Session, pair: tuple[Signature, Signature]
) -> None:
    first, held = pair
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "both"})
    assert flashes(client.get("/admin/c/kem/duplicates")) == [
        f"#{held.id} and #{first.id} both count."
    ]
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "other"})
    assert reload(store, held).status == "confirmed"
    assert reload(store, first).status == "confirmed"
    assert flashes(client.get("/admin/c/kem/duplicates")) == [
        f"Signature #{held.id}: nothing done, it is no longer held as a possible duplicate."
    ]


@pytest.fixture
def trio(store: Session, campaign: Campaign) -> tuple[Signature, Signature, Signature]:
    """One person under three addresses: the first counts, the two later ones are held."""
    first = make_signature(store, campaign, "Anna Berg", "anna1@riksdag.example", country="SE")
    second, third = (
        make_signature(
            store,
            campaign,
            "Anna Berg",
            f"anna{n}@riksdag.example",
            country="SE",
            duplicate_of=first,
        )
        for n in (2, 3)
    )
    return first, second, third


def test_a_person_held_twice_counts_once_whichever_is_kept(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    trio: tuple[Signature, Signature, Signature],
) -> None:
    first, second, third = trio
    client.post(f"/admin/c/kem/duplicates/{second.id}", data={"keep": "this"})
    assert reload(store, first).status == "rejected"
    # The third no longer resembles a signature that counts: it is compared with the second,
    # which does, and keeping it rejects the second.
    page = client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    client.post(f"/admin/c/kem/duplicates/{third.id}", data={"keep": "this"})
    assert reload(store, third).status == "held"
    assert reload(store, third).duplicate_of_id == second.id
    assert flashes(client.get("/admin/c/kem/duplicates"))[-1] == (
        f"#{first.id}, which #{third.id} resembled, no longer counts: #{third.id} now resembles"
        f" #{second.id}. Compare the two again."
    )
    assert _tally(client, "kem")["signatures"] == 1
    client.post(f"/admin/c/kem/duplicates/{third.id}", data={"keep": "this"})
    assert [reload(store, s).status for s in trio] == ["rejected", "rejected", "confirmed"]
    assert reload(store, second).rejected_reason == f"duplicate of #{third.id}"
    assert _tally(client, "kem")["signatures"] == 1
    assert "Nothing to decide" in client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    assert page.count("Resembles: #") == 1
    assert f"#{first.id} no longer counts. Any choice here first compares #{third.id}" in page


@pytest.mark.parametrize("keep", ["this", "other", "both"])
def test_a_duplicate_of_a_signature_rejected_meanwhile_is_compared_with_the_one_that_counts(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    trio: tuple[Signature, Signature, Signature],
    keep: str,
) -> None:
    # The first is rejected on its own page (not through this page): both others resemble it.
    first, second, third = trio
    client.post(f"/admin/c/kem/duplicates/{second.id}", data={"keep": "both"})
    client.post(
        f"/admin/c/kem/signatures/{first.id}", data={"action": "reject", "reason": "Not an MP"}
    )
    assert reload(store, first).status == "rejected"
    client.post(f"/admin/c/kem/duplicates/{third.id}", data={"keep": keep})
    # Nothing decided against a signature that no longer counts: the third is held against
    # the second, which does.
    assert (reload(store, third).status, reload(store, third).duplicate_of_id) == (
        "held",
        second.id,
    )
    assert _tally(client, "kem")["signatures"] == 1


def test_keeping_a_rejected_signature_over_its_duplicate_is_refused(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    pair: tuple[Signature, Signature],
) -> None:
    # The only namesake was rejected meanwhile: nothing counts the person if the held one
    # is rejected for it too.
    first, held = pair
    client.post(
        f"/admin/c/kem/signatures/{first.id}", data={"action": "reject", "reason": "Not an MP"}
    )
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "other"})
    assert reload(store, held).status == "held"
    assert flashes(client.get("/admin/c/kem/duplicates"))[-1] == (
        f"Signature #{held.id}: nothing done, the signature it resembles no longer counts;"
        f" keep this one, or restore #{first.id} first."
    )
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "this"})
    assert reload(store, held).status == "confirmed"
    assert flashes(client.get("/admin/c/kem/duplicates"))[-1] == f"Kept #{held.id}."
    assert _tally(client, "kem")["signatures"] == 1


def test_counting_both_says_when_the_held_one_still_waits_for_its_confirmation(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    held = make_signature(
        store, campaign, "Ann Lee", "lee@gmail.example", confirmed=False, duplicate_of=first
    )
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "both"})
    assert reload(store, held).status == "pending"
    assert flashes(client.get("/admin/c/kem/duplicates")) == [
        f"#{held.id} and #{first.id} are different people: #{held.id} counts once its"
        " address is confirmed."
    ]
    assert _tally(client, "kem")["signatures"] == 1


def test_resolving_on_postgres_and_sqlite_moves_the_counters(app_factory, backend: str) -> None:
    app = app_factory(backend)
    from campaign.db import session_scope

    with session_scope(app) as db:
        made = make_campaign(db, "dup")
        organizer = make_organizer(db, "o@example.org", campaigns=(made,))
        first = make_signature(db, made, "Ann Lee", "a@parl.example", country="KE")
        held = make_signature(
            db, made, "Ann Lee", "b@parl.example", country="KE", duplicate_of=first
        )
        assert tally.total(db, made) == 1
        review.resolve_duplicate(db, organizer, held, "both")
        assert tally.total(db, made) == 2
        assert tally.recount(db, made) == {}


@pytest.mark.parametrize("gone_first", [False, True])
def test_an_unknown_choice_on_a_duplicate_changes_nothing(
    store: Session, campaign: Campaign, alice: Organizer, gone_first: bool
) -> None:
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    held = make_signature(store, campaign, "Ann Lee", "lee@gmail.example", duplicate_of=first)
    if gone_first:
        review.reject(store, alice, first, "spam")
        store.commit()
    with pytest.raises(review.ReviewError) as raised:
        review.resolve_duplicate(store, alice, held, "neither")  # type: ignore[arg-type]
    assert raised.value.code == "bad_choice"
    store.rollback()
    assert reload(store, held).status == "held"
    assert reload(store, held).duplicate_of_id == first.id
    assert _audit(store, "duplicate.flag") == []


def test_a_name_stored_with_nothing_visible_still_gives_a_link_to_its_signature(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    # Stored before the sign form trimmed invisible characters: the form refuses it now.
    hidden = make_signature(store, campaign, "\u200b\u2060", "ghost@parl.example")
    page = client.get("/admin/c/kem/signatures").get_data(as_text=True)
    link = f'href="/admin/c/kem/signatures/{hidden.id}">'
    assert f'{link}<span class="muted">(no visible name)</span></a>' in page
    assert "(no visible name)" in client.get(f"/admin/c/kem/signatures/{hidden.id}").text


@pytest.mark.parametrize("confirmed", [True, False])
def test_restoring_the_signature_a_duplicate_decision_rejected_holds_it_again(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    confirmed: bool,
) -> None:
    # The same person twice; the organizer keeps the later one, then undoes the rejection.
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example", confirmed=confirmed)
    held = make_signature(store, campaign, "Ann Lee", "lee@parl.example", duplicate_of=first)
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "this"})
    assert reload(store, first).status == "rejected"
    client.post(f"/admin/c/kem/signatures/{first.id}", data={"action": "restore"})
    restored = reload(store, first)
    assert (restored.status, restored.counted) == ("held", False)
    assert (restored.duplicate_of_id, restored.duplicate_state) == (held.id, "held")
    assert flashes(client.get(f"/admin/c/kem/signatures/{first.id}"))[-1:] == [
        f"Restored, and held: it resembles #{held.id}. Decide on the duplicates page whether"
        " it counts."
    ]
    assert _tally(client, "kem")["signatures"] == 1  # one person, counted once
    page = client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    assert f'id="dup-{first.id}"' in page
    kept = client.get(f"/admin/c/kem/signatures/{held.id}").get_data(as_text=True)
    assert "judged a different person" not in kept
    if not confirmed:
        # Its signer's confirm link does not make it count beside the one kept.
        signing.confirm(store, first.id)
        store.commit()
        assert reload(store, first).status == "held"
        assert _tally(client, "kem")["signatures"] == 1
    # Deciding again: keeping the restored one rejects the other; the person counts once.
    client.post(f"/admin/c/kem/duplicates/{first.id}", data={"keep": "this"})
    assert [reload(store, s).status for s in (first, held)] == ["confirmed", "rejected"]
    assert _tally(client, "kem")["signatures"] == 1


def test_restoring_a_rejected_namesake_after_keeping_its_duplicate_alone_holds_it(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    pair: tuple[Signature, Signature],
) -> None:
    first, held = pair
    client.post(
        f"/admin/c/kem/signatures/{first.id}", data={"action": "reject", "reason": "Not an MP"}
    )
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": "this"})
    assert reload(store, held).status == "confirmed"
    client.post(f"/admin/c/kem/signatures/{first.id}", data={"action": "restore"})
    restored = reload(store, first)
    assert (restored.status, restored.duplicate_of_id) == ("held", held.id)
    assert _tally(client, "kem")["signatures"] == 1


def test_a_signatures_page_names_its_country_and_source_in_the_organizers_language(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example", country="GB")
    held = make_signature(
        store, campaign, "Ann Lee", "lee@parl.example", country="GB", duplicate_of=first
    )
    page = client.get(f"/admin/c/kem/signatures/{first.id}?lang=fr").get_data(as_text=True)
    assert "Royaume-Uni (GB)" in page and "United Kingdom" not in page
    assert "formulaire de signature" in page
    duplicates = client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    assert duplicates.count("Royaume-Uni (GB)") == 2, held.id
    listed = client.get("/admin/c/kem/signatures").get_data(as_text=True)
    assert '<option value="import">ajoutée par les organisateurs</option>' in listed


def test_a_signature_its_signer_withdrew_offers_no_verifying_or_rejecting(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    gone = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    signing.withdraw(store, gone.id)
    store.commit()
    page = client.get(f"/admin/c/kem/signatures/{gone.id}").get_data(as_text=True)
    assert "Its signer withdrew it: it no longer counts." in page
    assert 'value="verify"' not in page and 'value="reject"' not in page
    assert 'value="erase"' in page  # the signer may still ask for erasure


def _held_filter(client: FlaskClient, held: str) -> tuple[set[int], set[int]]:
    """The ids the list shows with ?held=, and those its export holds."""
    listed = client.get("/admin/c/kem/signatures", query_string={"held": held}).text
    exported = client.get("/admin/c/kem/export.csv", query_string={"held": held}).text
    return (
        {int(i) for i in re.findall(r"/admin/c/kem/signatures/(\d+)\"", listed)},
        {int(line.split(",")[0]) for line in exported.splitlines()[1:] if line},
    )


@pytest.mark.parametrize("keep", ["this", "other"])
def test_the_held_filter_lists_what_awaits_a_decision_not_what_was_decided(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    pair: tuple[Signature, Signature],
    keep: str,
) -> None:
    first, held = pair
    assert _held_filter(client, "yes") == ({held.id}, {held.id})
    client.post(f"/admin/c/kem/duplicates/{held.id}", data={"keep": keep})
    rejected = reload(store, first if keep == "this" else held)
    # The rejected one keeps its flag against the one kept (so that restoring it asks
    # again), but nothing awaits a decision: the filter agrees with the duplicates page.
    assert (rejected.status, rejected.duplicate_state) == ("rejected", "held")
    assert "Nothing to decide" in client.get("/admin/c/kem/duplicates").text
    assert tally.status_counts(store, [first.campaign_id])[first.campaign_id]["held"] == 0
    assert _held_filter(client, "yes") == (set(), set())
    assert _held_filter(client, "no") == ({first.id, held.id}, {first.id, held.id})
    # Restored, it is held again, and listed so.
    client.post(f"/admin/c/kem/signatures/{rejected.id}", data={"action": "restore"})
    assert reload(store, rejected).status == "held"
    assert _held_filter(client, "yes") == ({rejected.id}, {rejected.id})
    assert _held_filter(client, "no") == ({first.id, held.id} - {rejected.id},) * 2
