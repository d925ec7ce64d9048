"""Suspicious activity: bursts by address hash and by domain, and holding or rejecting them."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from admin_helpers import (
    AuthActions,
    app_client,
    auth,
    csrf_token,
    make_campaign,
    make_organizer,
    make_signature,
    store,
)
from app_helpers import AppFactory
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select, update
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.orm import Session

from campaign import abuse, campaigns, imports, review, signing, tally
from campaign.db import new_session, utcnow
from campaign.models import AuditEntry, Campaign, Organizer, Signature

__all__ = ["auth", "store"]

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
BOT = "b" * 64
OFFICE = "0" * 64


def hour(n: int, minute: int = 0) -> dt.datetime:
    """n hours (and some minutes) after T0."""
    return T0 + dt.timedelta(hours=n, minutes=minute)


def add(db: Session, campaign: Campaign, n: int, at: dt.datetime, client: str, email: str) -> int:
    """A confirmed signature signed at a given time from a given source."""
    entry = signing.SignatureEntry(
        name=f"Signer{n} Example",
        title="MP",
        parliament="Parliament",
        party="",
        country_code=["KH", "FR", "BR", "JP"][n % 4],
        email=email,
        client_hash=client,
    )
    signature = signing.sign(db, campaign, entry, confirmed=True).signature
    signature.signed_at = at
    db.flush()
    return signature.id


@pytest.fixture
def db(any_app: Flask) -> Iterator[Session]:
    """A session on each backend, inside an app context."""
    with any_app.app_context():
        session = new_session(any_app)
        yield session
        session.close()


@pytest.fixture
def campaign(db: Session) -> Campaign:
    """A letter signed by 30 ordinary members over ten hours, an office of 6 and a bot of 25."""
    letter = campaigns.create_campaign(db, slug="letter", title="Free them", state="open")
    for n in range(30):
        add(db, letter, n, hour(n // 3, n), f"{n:064x}", f"member{n}@parl-{n}.example")
    for n in range(30, 36):
        add(db, letter, n, hour(2, n), OFFICE, f"member{n}@parliament.example")
    for n in range(36, 61):
        add(db, letter, n, hour(5, n - 30), BOT, f"x{n}@spam.example")
    add(db, letter, 99, T0 - dt.timedelta(days=2), BOT, "early@spam.example")
    db.commit()
    return letter


@pytest.fixture
def organizer(db: Session) -> Organizer:
    """An organizer to act on signatures."""
    person = Organizer(email="org@example.org", password_hash="x")
    db.add(person)
    db.flush()
    return person


def group(activity: abuse.Activity, kind: abuse.Kind, key: str) -> abuse.Group:
    """The group of that kind and key."""
    return next(g for g in activity.groups[kind] if g.key == key)


def test_a_burst_from_one_address_is_flagged(db: Session, campaign: Campaign) -> None:
    seen = abuse.activity(db, campaign, T0)
    bot = group(seen, "client", BOT)
    assert bot.flagged and bot.total == 25 and bot.open == 25
    assert bot.peak == abuse.Count(hour(5), 25)
    assert seen.medians["client"] == 1.0
    assert seen.groups["client"][0] is bot  # flagged groups come first
    office = group(seen, "client", OFFICE)
    assert not office.flagged and office.peak == abuse.Count(hour(2), 6)


def test_a_burst_from_one_mail_domain_is_flagged(db: Session, campaign: Campaign) -> None:
    seen = abuse.activity(db, campaign, T0)
    spam = group(seen, "domain", "spam.example")
    assert spam.flagged and spam.total == 25
    assert not group(seen, "domain", "parliament.example").flagged
    assert [g.key for g in seen.flagged] == [BOT, "spam.example"]


def test_counts_per_hour_add_up_and_start_at_since(db: Session, campaign: Campaign) -> None:
    seen = abuse.activity(db, campaign, T0)
    assert [c.start for c in seen.timeline] == [hour(n) for n in range(10)]
    assert sum(c.signatures for c in seen.timeline) == 61
    assert next(c for c in seen.timeline if c.start == hour(5)).signatures == 28
    assert all(c.start.tzinfo is not None for c in seen.timeline)


def test_daily_buckets(db: Session, campaign: Campaign) -> None:
    seen = abuse.activity(db, campaign, T0 - dt.timedelta(days=3), "day")
    assert seen.timeline == [
        abuse.Count(T0 - dt.timedelta(days=2), 1),
        abuse.Count(T0, 61),
    ]
    assert group(seen, "client", BOT).total == 26


def test_a_campaign_where_every_hour_is_busy_flags_nothing(db: Session) -> None:
    letter = campaigns.create_campaign(db, slug="busy", title="Busy", state="open")
    for n in range(120):
        add(db, letter, n, hour(n // 30, n % 30), "c" * 64, f"m{n}@gmail.example")
    db.commit()
    seen = abuse.activity(db, letter, T0, threshold=20, factor=5)
    assert seen.medians["client"] == 30.0
    assert seen.flagged == []


@pytest.mark.parametrize("size", [20, 19])
@pytest.mark.parametrize("kind", abuse.KINDS)
def test_a_new_letter_s_first_burst_is_flagged(db: Session, kind: abuse.Kind, size: int) -> None:
    # One ordinary signer, then a burst from one address (or one domain) the next hour: the
    # burst's own hour is no yardstick for itself, so the threshold alone decides.
    letter = campaigns.create_campaign(db, slug="new", title="New", state="open")
    add(db, letter, 0, hour(0), "a" * 64, "first@parl.example")
    for n in range(1, size + 1):
        client = BOT if kind == "client" else f"{n:064x}"
        email = f"x{n}@spam.example" if kind == "domain" else f"x{n}@parl-{n}.example"
        add(db, letter, n, hour(1, n), client, email)
    db.commit()
    seen = abuse.activity(db, letter, T0)
    key = BOT if kind == "client" else "spam.example"
    assert [(g.kind, g.key) for g in seen.flagged] == ([(kind, key)] if size >= 20 else [])
    assert seen.medians == {"client": 1.0, "domain": 1.0}


def test_the_typical_hour_is_the_median_of_the_others() -> None:
    # Every way of leaving one bucket out of a few small lists, against the plain median.
    for sizes in ([1], [1, 20], [1, 1, 20], [3, 5, 5, 8], [1, 2, 3, 4, 30], [2, 2, 9, 9, 9, 40]):
        for i, size in enumerate(sizes):
            others = sizes[:i] + sizes[i + 1 :]
            expected = statistics.median(others) if others else abuse.TYPICAL_FLOOR
            assert abuse._typical(sizes, size) == expected, (sizes, size)


def _import(db: Session, campaign: Campaign, path: Path, rows: list[str]) -> None:
    """Import signers from a CSV file, as an organizer does."""
    path.write_text("name,title,parliament,country_code,email,signed_at\r\n" + "".join(rows))
    layout = imports.check_file(str(path), max_bytes=10**7)
    report = imports.apply(db, campaign, str(path), layout, organizer=None, count_now=True)
    assert report.imported == len(rows)
    db.commit()


def test_imported_signatures_neither_set_the_typical_hour_nor_make_a_burst(
    db: Session, tmp_path: Path
) -> None:
    # 3,000 signers of one parliament imported from a file, over ten hours: they did not
    # come through the form, so they say nothing about what an ordinary hour of it brings.
    letter = campaigns.create_campaign(db, slug="paper", title="Paper", state="open")
    rows = [
        f"Member{n} Example,MP,Assembly,FR,m{n}@assembly.example,"
        f"{hour(n % 10, n % 60).isoformat()}\r\n"
        for n in range(3000)
    ]
    _import(db, letter, tmp_path / "assembly.csv", rows)
    # Through the form: three ordinary signers, two from the same assembly, then a bot run.
    for n in range(3):
        add(db, letter, n, hour(10, n), f"{n:064x}", f"s{n}@parl-{n}.example")
    for n in range(3, 5):
        add(db, letter, n, hour(10, n), f"{n:064x}", f"s{n}@assembly.example")
    for n in range(5, 30):
        add(db, letter, n, hour(11, n), f"{n:064x}", f"x{n}@spam.example")
    db.commit()
    seen = abuse.activity(db, letter, T0)
    assert [g.key for g in seen.flagged] == ["spam.example"]
    assert seen.medians == {"client": 1.0, "domain": 1.0}
    assembly = group(seen, "domain", "assembly.example")
    assert (assembly.total, assembly.open, assembly.flagged) == (2, 2, False)
    # An action on the group changes what the page showed of it, never the imported rows.
    assert abuse.affected(db, letter, "domain", "assembly.example", "hold", since=T0) == 2
    assert sum(c.signatures for c in seen.timeline) == 3030  # the timeline has them all


def test_three_queries_list_the_largest_groups_with_their_open_signatures(
    db: Session, campaign: Campaign
) -> None:
    # At a million signers the groups are read once, in one query per kind (and one for
    # the hours), however many there are; only the listed ones become objects.
    first = db.scalar(select(Signature).where(Signature.email == "x36@spam.example"))
    assert first is not None
    signing.withdraw(db, first.id)
    db.commit()
    statements: list[str] = []
    engine = db.get_bind()

    def remember(*args: object) -> None:
        statements.append(str(args[2]))

    sqlalchemy_event.listen(engine, "before_cursor_execute", remember)
    try:
        seen = abuse.activity(db, campaign, T0, limit=2)
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", remember)
    assert len(statements) == 3
    bot, office = seen.groups["client"]
    assert (bot.key, bot.total, bot.open, bot.flagged) == (BOT, 25, 24, True)
    assert (office.key, office.peak.signatures, office.flagged) == (OFFICE, 6, False)
    # The first ordinary member shares the office's address: its hours, in order.
    assert office.counts == [abuse.Count(hour(0), 1), abuse.Count(hour(2), 6)]
    assert [g.key for g in seen.groups["domain"]] == ["spam.example", "parliament.example"]


def test_holding_a_group_takes_it_out_of_the_count(
    db: Session, campaign: Campaign, organizer: Organizer
) -> None:
    before = tally.total(db, campaign)
    held = abuse.act_on_group(db, organizer, campaign, "client", BOT, "hold", since=T0)
    db.commit()
    assert held == 25
    assert tally.total(db, campaign) == before - 25
    assert tally.recount(db, campaign) == {}
    statuses = db.scalars(
        select(Signature.status).where(Signature.client_hash == BOT, Signature.signed_at >= T0)
    ).all()
    assert set(statuses) == {"held"}
    rows, count = review.held_duplicates(db, campaign)
    assert count == 25  # they wait in the held list, where an organizer can count them again
    released = review.resolve_duplicate(db, organizer, rows[0], "both").this
    assert released.status == "confirmed"
    assert tally.total(db, campaign) == before - 24
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "abuse.hold")).all()
    assert len(entries) == 25
    assert json.loads(entries[0].after)["group"] == f"client:{BOT}"
    # Held ones are not held twice; the released one is held again.
    assert abuse.act_on_group(db, organizer, campaign, "client", BOT, "hold", since=T0) == 1


def test_rejecting_a_group_says_why_and_leaves_settled_ones_alone(
    db: Session, campaign: Campaign, organizer: Organizer
) -> None:
    first = db.scalar(select(Signature).where(Signature.email == "x36@spam.example"))
    assert first is not None
    signing.withdraw(db, first.id)
    before = tally.total(db, campaign)
    rejected = abuse.act_on_group(
        db, organizer, campaign, "domain", "spam.example", "reject", since=T0, reason="bot run"
    )
    db.commit()
    assert rejected == 24
    assert tally.total(db, campaign) == before - 24
    reasons = db.scalars(
        select(Signature.rejected_reason).where(Signature.status == "rejected")
    ).all()
    assert reasons == ["bot run"] * 24
    early = db.scalar(select(Signature).where(Signature.email == "early@spam.example"))
    assert early is not None and early.status == "confirmed"  # before `since`
    seen = abuse.activity(db, campaign, T0)
    assert group(seen, "domain", "spam.example").open == 0


def test_an_action_can_be_limited_to_the_burst_hour(
    db: Session, campaign: Campaign, organizer: Organizer
) -> None:
    count = abuse.act_on_group(
        db, organizer, campaign, "client", OFFICE, "reject", since=hour(2), until=hour(2, 33)
    )
    assert count == 3  # minutes 30, 31 and 32 of the office's six
    assert (
        db.scalar(select(func.count()).where(Signature.rejected_reason == "burst from one address"))
        == 3
    )


@pytest.mark.parametrize(
    ("kind", "action"), [("address", "hold"), ("client", "delete"), ("domain", "")]
)
def test_unknown_kinds_and_actions_are_refused(
    db: Session, campaign: Campaign, organizer: Organizer, kind: str, action: str
) -> None:
    with pytest.raises(abuse.AbuseError):
        abuse.act_on_group(db, organizer, campaign, kind, "x", action, since=T0)  # type: ignore[arg-type]
    assert db.scalar(select(func.count()).where(Signature.status == "rejected")) == 0


# --------------------------------------------------------------------------- the page

BOT_ADDRESS = "203.0.113.66"


@dataclass
class Letter:
    """A letter signed through the form by ten people and a bot, and its two organizers."""

    campaign: Campaign
    bot_hash: str


def _post_signature(client: FlaskClient, n: int, address: str, email: str) -> None:
    response = client.post(
        "/c/letter/sign",
        data={
            "name": f"Member{n} Example",
            "title": "MP",
            "parliament": "National Assembly",
            "country": ["KH", "FR", "BR", "JP"][n % 4],
            "email": email,
        },
        environ_base={"REMOTE_ADDR": address},
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:300]


@pytest.fixture
def letter(app: Flask, store: Session) -> Letter:
    """Ten people from ten addresses and a bot of 25 from one, all within the last hour."""
    campaign = make_campaign(store, "letter", require_confirmation=False)
    make_organizer(store, "alice@example.org", campaigns=(campaign,))
    other = make_campaign(store, "other")
    make_organizer(store, "bob@example.org", campaigns=(other,))
    client = app.test_client()
    for n in range(10):
        _post_signature(client, n, f"198.51.100.{n + 1}", f"member{n}@parl-{n}.example")
    for n in range(10, 35):
        _post_signature(client, n, BOT_ADDRESS, f"x{n}@spam.example")
    bot_hash = signing.client_hash(str(app.config["SECRET_KEY"]), BOT_ADDRESS)
    assert bot_hash is not None
    return Letter(campaign, bot_hash)


def _counted(client: FlaskClient) -> int:
    """What the public tally.json says."""
    return int(client.get("/c/letter/tally.json").get_json()["signatures"])


def _burst_start() -> str:
    return utcnow().replace(minute=0, second=0, microsecond=0).isoformat()


def _confirm_url(kind: str, key: str, action: str, period: str = "24h") -> str:
    query = urlencode(
        {"kind": kind, "key": key, "action": action, "period": period, "burst": _burst_start()}
    )
    return f"/admin/c/letter/activity/group?{query}"


def _form(page: str) -> dict[str, str]:
    """The hidden fields of the confirmation form."""
    fields = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', page))
    return {k: html.unescape(v) for k, v in fields.items()}


def _statuses(store: Session, **where: str) -> list[str]:
    store.expire_all()
    column = Signature.email_domain if "domain" in where else Signature.client_hash
    value = where.get("domain") or where["client"]
    return list(store.scalars(select(Signature.status).where(column == value)))


def test_anonymous_visitors_are_sent_to_the_login(
    client: FlaskClient, store: Session, letter: Letter
) -> None:
    for method, url in [
        ("GET", "/admin/c/letter/activity"),
        ("GET", _confirm_url("client", letter.bot_hash, "hold")),
        ("POST", "/admin/c/letter/activity/group"),
    ]:
        response = client.open(
            url,
            method=method,
            data={"kind": "client", "key": letter.bot_hash, "action": "hold", "scope": "period"},
        )
        assert response.status_code in (302, 303)
        assert response.headers["Location"].startswith("/admin/login")
    assert set(_statuses(store, client=letter.bot_hash)) == {"confirmed"}


def test_another_campaigns_organizer_gets_404(
    client: FlaskClient, auth: AuthActions, store: Session, letter: Letter
) -> None:
    auth.login("bob@example.org")
    assert client.get("/admin/c/letter/activity").status_code == 404
    assert client.get(_confirm_url("client", letter.bot_hash, "hold")).status_code == 404
    page = client.get(_confirm_url("client", letter.bot_hash, "hold"))
    assert "spam.example" not in page.get_data(as_text=True)
    response = client.post(
        "/admin/c/letter/activity/group",
        data={
            "kind": "client",
            "key": letter.bot_hash,
            "action": "hold",
            "period": "24h",
            "burst": _burst_start(),
            "until": utcnow().isoformat(),
            "scope": "period",
        },
    )
    assert response.status_code == 404
    assert set(_statuses(store, client=letter.bot_hash)) == {"confirmed"}


def test_the_page_flags_the_burst_and_never_shows_an_address(
    client: FlaskClient, auth: AuthActions, letter: Letter
) -> None:
    auth.login("alice@example.org")
    response = client.get("/admin/c/letter/activity")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    flagged = page.split('id="flagged"')[1].split('id="by-client"')[0]
    assert "<code" in flagged and f"{letter.bot_hash[:12]}…</code>" in flagged
    assert "spam.example" in flagged
    assert flagged.count('class="flagged"') == 2  # the address and the domain
    assert "parl-3.example" not in flagged
    assert BOT_ADDRESS not in page and "198.51.100." not in page
    # The hash is shown shortened; the whole of it only travels in the action's link.
    text = re.sub(r'href="[^"]*"', "", page)
    assert letter.bot_hash not in text
    assert re.search(r"<strong>35</strong>\s*signatures in this period", page)
    assert re.search(r"<strong>2</strong>\s*bursts flagged", page)
    assert "Suspicious activity" in client.get("/admin/c/letter/signatures").get_data(
        as_text=True
    )  # a tab of the campaign


def test_the_page_follows_the_operators_burst_rule(
    app: Flask, client: FlaskClient, auth: AuthActions, letter: Letter
) -> None:
    """CAMPAIGN_ABUSE_BURST_MIN and _FACTOR set the rule the page applies and states."""
    app.config.update(ABUSE_BURST_MIN=40, ABUSE_BURST_FACTOR=2.5)
    auth.login("alice@example.org")
    page = client.get("/admin/c/letter/activity").get_data(as_text=True)
    assert "at least 40 signatures and at least 2.5 times a typical other hour" in page
    assert 'class="flagged"' not in page  # the bot's hour is no burst at 40
    app.config.update(ABUSE_BURST_MIN=20)
    page = client.get("/admin/c/letter/activity").get_data(as_text=True)
    assert page.count('class="flagged"') >= 2


def test_a_new_letter_s_first_burst_is_flagged_on_the_page_whatever_was_imported(
    app: Flask, client: FlaskClient, auth: AuthActions, store: Session, tmp_path: Path
) -> None:
    # QA's letter: 3,000 signers of one domain imported over two hours, then the first bot
    # run through the form, 20 signatures from one address and one domain within the hour.
    campaign = make_campaign(store, "letter", require_confirmation=False)
    make_organizer(store, "alice@example.org", campaigns=(campaign,))
    start = utcnow().replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    rows = [
        f"Member{n} Example,MP,Assembly,FR,m{n}@assembly.example,"
        f"{(start + dt.timedelta(seconds=2 * n)).isoformat()}\r\n"
        for n in range(3000)
    ]
    _import(store, campaign, tmp_path / "assembly.csv", rows)
    signer = app.test_client()
    for n in range(20):
        _post_signature(signer, n, BOT_ADDRESS, f"x{n}@spam.example")
    auth.login("alice@example.org")
    page = client.get("/admin/c/letter/activity").get_data(as_text=True)
    assert re.search(r"<strong>2</strong>\s*bursts flagged", page)
    flagged = page.split('id="flagged"')[1].split('id="by-client"')[0]
    assert flagged.count('class="flagged"') == 2 and "spam.example" in flagged
    rule = "typical other hour from one source (in this period: 1 from one address, 1 from one"
    assert rule in page and "Only signatures from the signing form count here." in page
    # The imported signers are in the hours, not among the sources.
    assert "assembly.example" not in page
    assert re.search(r"<strong>3,020</strong>\s*signatures in this period", page)


def test_on_a_phone_each_number_of_the_activity_tables_keeps_its_name(
    client: FlaskClient, auth: AuthActions, letter: Letter
) -> None:
    # A phone hides the column heads of these tables and shows each cell's data-label instead.
    auth.login("alice@example.org")
    page = client.get("/admin/c/letter/activity?lang=fr").get_data(as_text=True)
    cells = re.findall(r"<td[^>]*>(?!<meter)", page)  # the bar beside each hour needs no name
    assert cells and all("data-label=" in cell for cell in cells)
    labels = Counter(re.findall(r'data-label="([^"]*)"', page))
    sources = page.count('<th scope="row">')
    assert sources and labels["Heure la plus chargée (UTC)"] == sources
    assert labels["Heure (UTC)"] == page.count("<meter")


def test_the_period_selector(
    client: FlaskClient, auth: AuthActions, store: Session, letter: Letter
) -> None:
    # The bot signed three days ago: the last 24 hours are quiet, the week is not.
    store.execute(
        update(Signature)
        .where(Signature.client_hash == letter.bot_hash)
        .values(signed_at=utcnow() - dt.timedelta(days=3))
    )
    store.commit()
    auth.login("alice@example.org")
    day = client.get("/admin/c/letter/activity?period=24h").get_data(as_text=True)
    assert "Nothing flagged in this period." in day and "spam.example" not in day
    for period in ("7d", "all"):
        page = client.get(f"/admin/c/letter/activity?period={period}").get_data(as_text=True)
        assert re.search(r"<strong>2</strong>\s*bursts flagged", page), period
        assert 'aria-current="page">' in page
    # An unknown period falls back to the last 24 hours.
    assert "Nothing flagged" in client.get("/admin/c/letter/activity?period=x").get_data(
        as_text=True
    )


def test_holding_a_burst_asks_first_then_takes_it_out_of_the_count(
    client: FlaskClient, auth: AuthActions, store: Session, letter: Letter
) -> None:
    auth.login("alice@example.org")
    assert _counted(client) == 35
    confirm = client.get(_confirm_url("client", letter.bot_hash, "hold"))
    assert confirm.status_code == 200
    page = confirm.get_data(as_text=True)
    assert re.search(r"Hold 25 signatures: the busiest hour", page)
    assert set(_statuses(store, client=letter.bot_hash)) == {"confirmed"}  # asking changed nothing
    response = client.post("/admin/c/letter/activity/group", data={**_form(page), "scope": "burst"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/c/letter/activity?period=24h")
    assert _counted(client) == 10
    assert set(_statuses(store, client=letter.bot_hash)) == {"held"}
    after = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Held 25 signatures from" in after
    assert "all settled" not in after  # held ones can still be rejected
    store.expire_all()
    entries = store.scalars(select(AuditEntry.action).where(AuditEntry.action.like("abuse.%")))
    assert sorted(Counter(entries).items()) == [("abuse.hold", 25), ("abuse.hold_group", 1)]
    summary = store.scalar(select(AuditEntry).where(AuditEntry.action == "abuse.hold_group"))
    assert summary is not None and summary.campaign_id == letter.campaign.id
    assert json.loads(summary.after)["signatures"] == 25
    assert "abuse.hold_group" in client.get("/admin/c/letter/audit").get_data(as_text=True)
    # Held by burst, they wait on the duplicates page with no "other" signature.
    duplicates = client.get("/admin/c/letter/duplicates").get_data(as_text=True)
    assert duplicates.count("Held as part of a burst") == 25
    held_id = store.scalar(
        select(func.min(Signature.id)).where(Signature.client_hash == letter.bot_hash)
    )
    released = client.post(
        f"/admin/c/letter/duplicates/{held_id}", data={"keep": "this"}, follow_redirects=True
    )
    assert f"#{held_id} is no longer held." in released.get_data(as_text=True)
    assert _counted(client) == 11


def test_rejecting_a_burst_needs_a_reason(
    client: FlaskClient, auth: AuthActions, store: Session, letter: Letter
) -> None:
    auth.login("alice@example.org")
    page = client.get(_confirm_url("domain", "spam.example", "reject")).get_data(as_text=True)
    assert 'name="reason"' in page
    fields = _form(page)
    refused = client.post("/admin/c/letter/activity/group", data={**fields, "scope": "period"})
    assert refused.status_code == 400
    assert "Say why these signatures are rejected." in refused.get_data(as_text=True)
    assert _counted(client) == 35
    done = client.post(
        "/admin/c/letter/activity/group",
        data={**fields, "scope": "period", "reason": "bot run from one host"},
    )
    assert done.status_code == 303
    assert _counted(client) == 10
    store.expire_all()
    reasons = set(
        store.scalars(
            select(Signature.rejected_reason).where(Signature.email_domain == "spam.example")
        )
    )
    assert reasons == {"bot run from one host"}
    assert store.scalar(select(func.count()).where(AuditEntry.action == "abuse.reject")) == 25


def test_a_signature_arriving_after_the_question_is_left_alone(
    app: Flask, client: FlaskClient, auth: AuthActions, store: Session, letter: Letter
) -> None:
    auth.login("alice@example.org")
    page = client.get(_confirm_url("client", letter.bot_hash, "hold")).get_data(as_text=True)
    time.sleep(0.01)
    _post_signature(app.test_client(), 99, BOT_ADDRESS, "late@spam.example")
    response = client.post(
        "/admin/c/letter/activity/group", data={**_form(page), "scope": "period"}
    )
    assert response.status_code == 303
    assert Counter(_statuses(store, client=letter.bot_hash)) == {"held": 25, "confirmed": 1}


def test_bad_requests_are_refused_and_change_nothing(
    client: FlaskClient, auth: AuthActions, store: Session, letter: Letter
) -> None:
    auth.login("alice@example.org")
    for query in [
        "kind=ip&key=x&action=hold&burst=2026-11-28T10:00:00%2B00:00",
        f"kind=client&key={letter.bot_hash}&action=delete&burst=2026-11-28T10:00:00%2B00:00",
        f"kind=client&key={letter.bot_hash}&action=hold&burst=yesterday",
        f"kind=client&key={'k' * 300}&action=hold&burst=2026-11-28T10:00:00%2B00:00",
    ]:
        assert client.get(f"/admin/c/letter/activity/group?{query}").status_code == 400
    good = _form(client.get(_confirm_url("client", letter.bot_hash, "hold")).get_data(as_text=True))
    for bad in [
        {"scope": "everything"},
        {"scope": ""},
        {"until": "soon", "scope": "period"},
        {"kind": "ip", "scope": "period"},
        {"action": "erase", "scope": "period"},
    ]:
        response = client.post("/admin/c/letter/activity/group", data={**good, **bad})
        assert response.status_code == 400, bad
    assert set(_statuses(store, client=letter.bot_hash)) == {"confirmed"}


def test_the_bulk_action_needs_a_csrf_token(app_factory: AppFactory) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    engine = create_engine(str(app.config["DATABASE_URL"]))
    store = Session(bind=engine, expire_on_commit=False)
    try:
        campaign = make_campaign(store, "letter", require_confirmation=False)
        make_organizer(store, "alice@example.org", campaigns=(campaign,))
        for n in range(25):
            make_signature(store, campaign, f"Bot {n}", f"b{n}@spam.example")
        client, auth = app_client(app)
        auth.login("alice@example.org")
        page = client.get(_confirm_url("domain", "spam.example", "hold")).get_data(as_text=True)
        fields = _form(page)
        assert fields.pop("csrf_token")
        refused = client.post("/admin/c/letter/activity/group", data={**fields, "scope": "burst"})
        assert refused.status_code == 400
        assert set(_statuses(store, domain="spam.example")) == {"confirmed"}
        token = csrf_token(client, _confirm_url("domain", "spam.example", "hold"))
        done = client.post(
            "/admin/c/letter/activity/group",
            data={**fields, "scope": "burst", "csrf_token": token},
        )
        assert done.status_code == 303
        assert set(_statuses(store, domain="spam.example")) == {"held"}
    finally:
        store.close()
        engine.dispose()
