"""The tally: counters kept in step with every status change, and read cheaply."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaign import campaigns, signing, tally
from campaign.models import Campaign, Signature, TallyCount


def make_campaign(db: Session, **values: Any) -> Campaign:
    """An open campaign, flushed."""
    settings: dict[str, Any] = {"slug": "tally-test", "title": "T", "state": "open"}
    settings.update(values)
    return campaigns.create_campaign(db, **settings)


def sign(
    db: Session, campaign: Campaign, name: str, country: str, email: str = "", **kw: Any
) -> Signature:
    """Sign as name from country, with a made-up address unless one is given."""
    entry = signing.validate_entry(
        {
            "name": name,
            "title": "MP",
            "parliament": "P",
            "country": country,
            "email": email or name.replace(" ", ".").lower() + "@example.org",
        }
    )
    return signing.sign(db, campaign, entry, **kw).signature


def test_tally_counts_by_country_and_continent_largest_first(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    for name, country in [
        ("A One", "KE"),
        ("B Two", "GB"),
        ("C Three", "GB"),
        ("D Four", "FR"),
        ("E Five", "NG"),
        ("F Six", "BR"),
    ]:
        sign(db, campaign, name, country)
    db.commit()
    result = tally.tally(db, campaign)
    assert (result.signatures, result.countries, result.continents) == (6, 5, 3)
    assert [(c.code, c.signatures) for c in result.by_country] == [
        ("GB", 2),
        ("BR", 1),
        ("FR", 1),
        ("KE", 1),
        ("NG", 1),
    ]
    assert [(c.code, c.name, c.signatures, c.countries) for c in result.by_continent] == [
        ("EU", "Europe", 3, 2),
        ("AF", "Africa", 2, 2),
        ("SA", "South America", 1, 1),
    ]
    assert result.updated_at >= campaign.created_at


def test_tally_names_countries_in_the_readers_language(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    sign(db, campaign, "A One", "DE")
    assert tally.tally(db, campaign, "fr").by_country[0].name == "Allemagne"


def test_empty_tally(db: Session) -> None:
    campaign = make_campaign(db)
    result = tally.tally(db, campaign)
    assert (result.signatures, result.countries, result.continents) == (0, 0, 0)
    assert result.updated_at == campaign.created_at


def test_only_counted_signatures_are_in_the_tally(db: Session) -> None:
    campaign = make_campaign(db)
    sign(db, campaign, "Pending Person", "KE")
    confirmed = sign(db, campaign, "Counted Person", "GB", confirmed=True)
    sign(db, campaign, "Counted Person", "GB", confirmed=True)  # the same address again
    held = sign(db, campaign, "Hon. Counted Person", "GB", email="cp@example.org", confirmed=True)
    db.commit()
    assert held.status == "held" and held.id != confirmed.id
    assert tally.total(db, campaign) == 1
    assert [c.code for c in tally.tally(db, campaign).by_country] == ["GB"]


def test_derive_status_puts_the_most_final_fact_first(db: Session) -> None:
    campaign = make_campaign(db)
    sig = sign(db, campaign, "A One", "KE")
    assert tally.derive_status(sig, campaign) == "pending"
    sig.duplicate_state = "held"
    assert tally.derive_status(sig, campaign) == "held"
    sig.rejected_at = sig.signed_at
    assert tally.derive_status(sig, campaign) == "rejected"
    sig.withdrawn_at = sig.signed_at
    assert tally.derive_status(sig, campaign) == "withdrawn"
    sig.erased_at = sig.signed_at
    assert tally.derive_status(sig, campaign) == "erased"


def test_moving_a_counted_signature_to_another_country_moves_the_count(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    sig = sign(db, campaign, "A One", "KE")
    db.commit()
    locked = tally.lock(db, sig.id)
    assert locked is not None
    locked.country_code = "TZ"
    locked.continent_code = "AF"
    tally.refresh(db, locked)
    db.commit()
    assert [(c.code, c.signatures) for c in tally.tally(db, campaign).by_country] == [("TZ", 1)]
    assert tally.recount(db, campaign) == {}


def test_recount_repairs_drifted_counters(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    sign(db, campaign, "A One", "KE")
    sign(db, campaign, "B Two", "KE")
    sign(db, campaign, "C Three", "FR")
    db.commit()
    db.execute(
        update(TallyCount)
        .where(TallyCount.country_code == "KE")
        .values(signatures=7)
        .execution_options(synchronize_session=False)
    )
    db.add(
        TallyCount(campaign_id=campaign.id, country_code="JP", continent_code="AS", signatures=1)
    )
    db.execute(update(TallyCount).where(TallyCount.country_code == "FR").values(signatures=0))
    db.commit()
    assert tally.recount(db, campaign) == {"KE": (7, 2), "JP": (1, 0), "FR": (0, 1)}
    db.commit()
    assert tally.recount(db, campaign) == {}
    assert tally.total(db, campaign) == 3


def test_counters_follow_every_change_of_status(db: Session) -> None:
    campaign = make_campaign(db)
    sigs = [sign(db, campaign, f"Person {n}", "GB") for n in range(4)]
    db.commit()
    for sig in sigs:
        signing.confirm(db, sig.id)
    signing.withdraw(db, sigs[0].id)
    campaigns.update_campaign(db, campaign, require_confirmation=False)
    db.commit()
    campaigns.rederive(db, campaign.id)
    db.commit()
    assert tally.total(db, campaign) == 3
    fresh = sum(s.counted for s in db.scalars(select(Signature)))
    assert fresh == 3
    assert tally.recount(db, campaign) == {}


def test_recount_puts_a_counter_back_on_its_continent(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    sign(db, campaign, "A One", "DE")
    db.commit()
    db.execute(update(TallyCount).values(continent_code="AS"))
    db.commit()
    assert [c.code for c in tally.tally(db, campaign).by_continent] == ["AS"]
    assert tally.recount(db, campaign) == {}  # the numbers were right
    db.commit()
    assert [c.code for c in tally.tally(db, campaign).by_continent] == ["EU"]


def test_repair_sets_each_status_from_the_dates_and_recount_trusts_the_flags(
    db: Session,
) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    kept = sign(db, campaign, "A One", "KE")
    sign(db, campaign, "B Two", "KE")
    db.commit()
    db.execute(update(Signature).where(Signature.id == kept.id).values(status="withdrawn"))
    db.execute(update(Signature).where(Signature.id != kept.id).values(withdrawn_at=kept.signed_at))
    db.commit()
    assert tally.recount(db, campaign) == {}  # both still flagged counted
    repairs = tally.repair(db, campaign)
    db.commit()
    assert repairs.counters == {"KE": (2, 1)}
    assert sorted(repairs.statuses) == [
        tally.StatusDrift("confirmed", True, "withdrawn", 1),
        tally.StatusDrift("withdrawn", True, "confirmed", 1),
    ]
    rows = db.execute(select(Signature.name, Signature.status, Signature.counted)).all()
    assert sorted((name, status, bool(counted)) for name, status, counted in rows) == [
        ("A One", "confirmed", True),
        ("B Two", "withdrawn", False),
    ]
    assert not tally.repair(db, campaign)
