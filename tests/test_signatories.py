"""The public list of signatories: one page for a small letter, countries and pages past that."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from data_helpers import make_campaign, sign
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, func, insert, inspect, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from campaign import geo, listing, signing, tally
from campaign.db import alembic_config, new_session, upgrade
from campaign.models import Campaign, Signature, TallyCount

SLUG = "release"
LISTED_INDEX = "ix_signature_listed"
POSTGRES_ENV = "CAMPAIGN_TEST_POSTGRES_URL"


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pages of 5: a letter with more than 5 listed signers is a large one."""
    monkeypatch.setattr(listing, "PAGE_SIZE", 5)
    return 5


def add_signers(
    db: Session,
    campaign: Campaign,
    names: list[str],
    country: str = "FR",
    *,
    public: bool = True,
    status: str = "confirmed",
) -> list[int]:
    """Signers inserted as rows (fast, thousands at once); each one's parliament is P<id>."""
    first = (db.scalar(select(func.max(Signature.id))) or 0) + 1
    ids = list(range(first, first + len(names)))
    db.execute(
        insert(Signature),
        [
            {
                "id": i,
                "campaign_id": campaign.id,
                "name": name,
                "title": "MP",
                "parliament": f"P{i}",
                "party": "",
                "country_code": country,
                "continent_code": geo.continent_of(country),
                "email": f"s{i}@example.org",
                "email_key": f"s{i}@example.org",
                "name_key": signing.name_key(name),
                "public": public,
                "status": status,
                "counted": status == "confirmed",
            }
            for i, name in zip(ids, names, strict=True)
        ],
    )
    # The rows went in around tally.refresh: set the counters as signing would have.
    tally.recount(db, campaign)
    db.commit()
    return ids


def shown(page: str) -> list[int]:
    """The ids of the signers a page lists, in its order (from their parliament, P<id>)."""
    return [
        int(i)
        for i in re.findall(r'<span class="muted"><bdi>MP</bdi>, <bdi>P(\d+)</bdi></span>', page)
    ]


def link(page: str, rel: str) -> str | None:
    """The href of the page's rel=next or rel=prev link, if it has one."""
    found = re.search(rf'rel="{rel}" href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def walk(client: FlaskClient, start: str, rel: str = "next") -> Iterator[str]:
    """Every page from start on, following its rel links."""
    url: str | None = start
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, url
        yield response.text
        url = link(response.text, rel)


@pytest.fixture
def session(any_app: Flask) -> Iterator[Session]:
    """A session on each backend's app in turn."""
    db = new_session(any_app)
    yield db
    db.close()


# --------------------------------------------------------------------------- small letters


def test_a_small_letter_lists_every_signer_on_one_page_by_country(
    app: Flask, client: FlaskClient, db: Session
) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, ["Zoe Adams", "ana Lima"], "BR")
    add_signers(db, campaign, ["Ben Cole"], "GB")
    add_signers(db, campaign, ["Hidden Person"], "GB", public=False)
    add_signers(db, campaign, ["Pending Person"], "DE", status="pending")
    add_signers(db, campaign, ["Max Mustermann"] * (listing.PAGE_SIZE - 3), "DE")
    page = client.get(f"/c/{SLUG}/signatories").text
    assert f"{listing.PAGE_SIZE} signers agreed to be listed here." in page
    assert re.findall(r"<h2>([^<]+)</h2>", page) == ["Brazil", "Germany", "United Kingdom"]
    assert page.index("ana Lima") < page.index("Zoe Adams")  # by name, whatever the case
    assert "Hidden Person" not in page and "Pending Person" not in page
    assert "<table" not in page and 'rel="next"' not in page
    assert "@" not in page


def test_each_signers_details_keep_their_direction_to_themselves(
    client: FlaskClient, db: Session
) -> None:
    campaign = make_campaign(db, SLUG)
    # Rows stored before direction controls were refused: each detail is isolated.
    [signer] = add_signers(db, campaign, ["\uff2a\uff4f\uff48\uff4e\u202eevil"], "GB")
    db.execute(update(Signature).values(party="\u2067Labour"))
    db.commit()
    page = client.get(f"/c/{SLUG}/signatories").text
    assert "<strong><bdi>\uff2a\uff4f\uff48\uff4e\u202eevil</bdi></strong>" in page
    assert (
        f'<span class="muted"><bdi>MP</bdi>, <bdi>P{signer}</bdi> (<bdi>\u2067Labour</bdi>)</span>'
        in page
    )


def test_a_letter_with_nobody_listed_says_so(client: FlaskClient, db: Session) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, ["Hidden Person"], public=False)
    page = client.get(f"/c/{SLUG}/signatories").text
    assert "No signer has been listed yet." in page
    assert "Hidden Person" not in page


# --------------------------------------------------------------------------- large letters


def test_a_large_letter_shows_each_country_with_its_number_of_listed_signers(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, [f"Name {i}" for i in range(4)], "FR")
    add_signers(db, campaign, ["Ana"], "DE")
    add_signers(db, campaign, ["Bo", "Cy"], "KE")
    add_signers(db, campaign, ["Hidden"] * 3, "KE", public=False)
    add_signers(db, campaign, ["Gone"] * 2, "GB", status="withdrawn")
    page = client.get(f"/c/{SLUG}/signatories").text
    assert "7 signers agreed to be listed here." in page
    rows = re.findall(
        r'<tr><th scope="row"><a href="([^"]+)">([^<]+)</a></th><td class="num">(\d+)</td>', page
    )
    assert rows == [
        (f"/c/{SLUG}/signatories?country=FR", "France", "4"),
        (f"/c/{SLUG}/signatories?country=DE", "Germany", "1"),
        (f"/c/{SLUG}/signatories?country=KE", "Kenya", "2"),
    ]
    assert "Name 0" not in page  # names are on the countries' pages


def test_the_countries_are_sorted_by_their_name_in_the_readers_language(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    for country in ("DE", "ZA", "ES"):
        add_signers(db, campaign, ["A", "B"], country)
    page = client.get(f"/c/{SLUG}/signatories?lang=id").text
    names = re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', page)
    assert names == ["Afrika Selatan", "Jerman", "Spanyol"]


def test_the_countries_numbers_are_the_counted_public_signers(
    app: Flask, client: FlaskClient, db: Session, small_pages: int
) -> None:
    # Through the real signing rules: pending, held as a duplicate, withdrawn, private.
    campaign = make_campaign(db, SLUG)
    for i in range(6):
        sign(db, campaign, f"Listed Person{i}", f"l{i}@example.org", country="FR")
    sign(db, campaign, "Private Person", "p@example.org", country="FR", public=False)
    sign(db, campaign, "Waiting Person", "w@example.org", country="FR", confirmed=False)
    sign(db, campaign, "Listed Person0", "again@example.org", country="FR")  # held
    withdrawn = sign(db, campaign, "Left Person", "left@example.org", country="BR")
    signing.withdraw(db, withdrawn.id)
    db.commit()
    expected = db.scalar(
        select(func.count()).where(
            Signature.campaign_id == campaign.id, Signature.counted, Signature.public
        )
    )
    page = client.get(f"/c/{SLUG}/signatories").text
    assert expected == 6
    assert re.findall(r'">([^<]+)</a></th><td class="num">(\d+)</td>', page) == [("France", "6")]
    first = client.get(f"/c/{SLUG}/signatories?country=FR").text
    rest = client.get(link(first, "next") or "").text
    names = re.findall(r"<li>\s*<strong><bdi>([^<]+)</bdi></strong>", first + rest)
    assert sorted(names) == [f"Listed Person{i}" for i in range(6)]


def test_a_countrys_pages_list_each_signer_once_by_name_then_back_again(
    any_app: Flask, session: Session, small_pages: int
) -> None:
    campaign = make_campaign(session, SLUG)
    # Equal names, names equal but for case, and an order of insertion unlike the name order.
    names = ["bob", "Ana", "Bob", "ana", "Ana", "Cleo", "ANA", "cleo", "Dan", "ana", "Bob", "Eve"]
    ids = add_signers(session, campaign, names, "FR")
    add_signers(session, campaign, ["Ana", "Zed"], "DE")
    client = any_app.test_client()
    pages = list(walk(client, f"/c/{SLUG}/signatories?country=FR"))
    expected = [i for _key, i in sorted((n.lower(), i) for n, i in zip(names, ids, strict=True))]
    assert [shown(page) for page in pages] == [expected[:5], expected[5:10], expected[10:]]
    assert "<h2>France</h2>" in pages[0] and "Zed" not in "".join(pages)
    assert link(pages[0], "prev") is None and link(pages[-1], "next") is None
    backwards = list(walk(client, link(pages[-1], "prev") or "", "prev"))
    assert [shown(page) for page in backwards] == [expected[5:10], expected[:5]]


def test_signers_added_while_a_reader_pages_move_no_one_across_a_page_boundary(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    ids = add_signers(db, campaign, [f"Name {i:02}" for i in range(10)], "FR")
    first = client.get(f"/c/{SLUG}/signatories?country=FR").text
    (newcomer,) = add_signers(db, campaign, ["Name 00"], "FR")  # sorts onto the first page
    second = client.get(link(first, "next") or "").text
    assert shown(first) == ids[:5]
    assert shown(second) == ids[5:]  # an OFFSET would have shown Name 04 again
    assert newcomer not in shown(first) + shown(second)


def test_a_country_without_listed_signers_says_so(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, ["Private"], "NO", public=False)
    response = client.get(f"/c/{SLUG}/signatories?country=NO")
    assert response.status_code == 200
    assert "Norway: no signer has been listed yet." in response.text
    assert "Private" not in response.text


def test_a_page_past_the_last_signer_leads_back_to_the_first(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, ["Ana", "Ben"], "FR")
    token = listing.Cursor("zzz", 10**6).token()
    page = client.get(f"/c/{SLUG}/signatories?country=FR&after={token}").text
    assert "France: there are no more signers on this list." in page
    assert f'href="/c/{SLUG}/signatories?country=FR"' in page


def test_a_thousand_listed_signers_come_in_pages_of_the_default_size(
    client: FlaskClient, db: Session
) -> None:
    campaign = make_campaign(db, SLUG)
    size = listing.PAGE_SIZE
    ids = add_signers(db, campaign, [f"Person {i:05}" for i in range(2 * size + 1)], "FR")
    index = client.get(f"/c/{SLUG}/signatories").text
    assert "<table" in index and f'<td class="num">{2 * size + 1:,}</td>' in index
    assert f"{2 * size + 1:,} signers agreed to be listed here." in index
    assert "Person 00000" not in index
    pages = list(walk(client, f"/c/{SLUG}/signatories?country=FR"))
    assert [len(shown(page)) for page in pages] == [size, size, 1]
    assert [i for page in pages for i in shown(page)] == ids


def where(page: str) -> str:
    """What a country's page says about its place in the list, and its pager's name."""
    found = re.search(r'<p id="where-in-list">([^<]+)</p>', page)
    assert found is not None
    nav = re.search(r'<nav class="actions" aria-label="([^"]+)">', page)
    if nav is not None:
        assert html.unescape(nav.group(1)) == html.unescape(found.group(1))  # the same figures
    return html.unescape(found.group(1))


def test_a_countrys_pages_say_which_signers_they_show_of_how_many(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, [f"Name {i:02}" for i in range(12)], "FR")
    add_signers(db, campaign, ["Ana"], "DE")
    pages = list(walk(client, f"/c/{SLUG}/signatories?country=FR"))
    assert [where(page) for page in pages] == [
        "France: showing 1\u20135 of 12 listed signatories",
        "France: showing 6\u201310 of 12 listed signatories",
        "France: showing 11\u201312 of 12 listed signatories",
    ]
    backwards = list(walk(client, link(pages[-1], "prev") or "", "prev"))
    assert [where(page) for page in backwards] == [
        "France: showing 6\u201310 of 12 listed signatories",
        "France: showing 1\u20135 of 12 listed signatories",
    ]
    one_page = client.get(f"/c/{SLUG}/signatories?country=DE").text
    assert where(one_page) == "Germany: 1 listed signatory"
    assert "<nav" not in one_page.split("</main>")[0].split('id="where-in-list"')[1]


def test_the_place_in_the_list_is_in_the_readers_language_and_number_format(
    client: FlaskClient, db: Session
) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, [f"Person {i:05}" for i in range(1234)], "FR")
    first = client.get(f"/c/{SLUG}/signatories?country=FR").text
    second = client.get(link(first, "next") or "").text
    assert where(second) == "France: showing 501\u20131,000 of 1,234 listed signatories"
    french = client.get((link(first, "next") or "") + "&lang=fr").text
    assert where(french) == (
        "France : affichage de 501 à 1\u202f000 sur 1\u202f234 signataires listés"
    )
    spanish = client.get((link(first, "next") or "") + "&lang=es").text
    assert where(spanish) == "Francia: se muestran 501\u20131.000 de 1.234 firmantes listados"
    indonesian = client.get((link(first, "next") or "") + "&lang=id").text
    assert where(indonesian) == (
        "Perancis: menampilkan 501\u20131.000 dari 1.234 penanda tangan yang tercantum"
    )


def test_the_total_is_the_tallys_listed_counter_not_a_count_of_rows(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, [f"Name {i:02}" for i in range(12)], "FR")
    db.execute(
        update(TallyCount)
        .where(TallyCount.campaign_id == campaign.id, TallyCount.country_code == "FR")
        .values(listed=40)
    )
    db.commit()
    page = client.get(f"/c/{SLUG}/signatories?country=FR").text
    assert where(page) == "France: showing 1\u20135 of 40 listed signatories"


def test_a_link_from_before_the_places_or_an_altered_one_shows_sensible_numbers(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    ids = add_signers(db, campaign, [f"Name {i:02}" for i in range(20)], "FR")
    old = listing.Cursor("name 04", ids[4]).token()  # a link made before cursors had places
    page = client.get(f"/c/{SLUG}/signatories?country=FR&after={old}").text
    assert shown(page) == ids[5:10]
    assert where(page) == "France: 20 listed signatories"
    forged = listing.Cursor("name 04", ids[4], 10**9).token()
    page = client.get(f"/c/{SLUG}/signatories?country=FR&after={forged}").text
    assert shown(page) == ids[5:10]
    assert where(page) == "France: showing 15\u201319 of 20 listed signatories"
    low = listing.Cursor("name 15", ids[15], 1).token()
    page = client.get(f"/c/{SLUG}/signatories?country=FR&before={low}").text
    assert shown(page) == ids[10:15]
    assert where(page) == "France: showing 2\u20136 of 20 listed signatories"
    # The last page is pinned to the counter, whatever the links on the way said.
    *_, end = walk(client, f"/c/{SLUG}/signatories?country=FR&after={forged}")
    assert where(end) == "France: showing 16\u201320 of 20 listed signatories"


def test_no_page_of_the_list_shows_an_email_address(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, [f"Name {i}" for i in range(12)], "FR")
    pages = [client.get(f"/c/{SLUG}/signatories").text]
    pages += walk(client, f"/c/{SLUG}/signatories?country=FR")
    assert len(pages) == 4
    assert not [page for page in pages if "@" in page]


# --------------------------------------------------------------------------- bad addresses


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("country=XX", "This list has no such country."),
        ("country=FRA", "This list has no such country."),
        ("country=F%00", "This list has no such country."),
        ("country=FR&after=garbage!", "This link to a page of the list is damaged."),
        ("country=FR&after=", "This link to a page of the list is damaged."),
        ("country=FR&after=" + _token(b'{"a": 1}'), "This link to a page of the list is damaged."),
        (
            "country=FR&after=" + _token(b'["a", true]'),
            "This link to a page of the list is damaged.",
        ),
        ("country=FR&after=" + _token(b'["a", -3]'), "This link to a page of the list is damaged."),
        (
            "country=FR&after=" + _token(b'["a", 3, 0]'),
            "This link to a page of the list is damaged.",
        ),
        (
            "country=FR&after=" + _token(b'["a", 3, false]'),
            "This link to a page of the list is damaged.",
        ),
        (
            "country=FR&after=" + _token(b'["a", 3, 4, 5]'),
            "This link to a page of the list is damaged.",
        ),
        ("country=FR&after=" + _token(b"\xff\xfe"), "This link to a page of the list is damaged."),
        (
            "country=FR&after=" + _token(b'["a\\u0000", 1]'),
            "This link to a page of the list is damaged.",
        ),
        (
            "country=FR&after=" + _token(b'["\\ud800", 1]'),
            "This link to a page of the list is damaged.",
        ),
        ("country=FR&after=" + "A" * 5000, "This link to a page of the list is damaged."),
        (
            "country=FR&after=WyJhIiwxXQ&before=WyJhIiwxXQ",
            "This link to a page of the list is damaged.",
        ),
        ("after=WyJhIiwxXQ", "This link to a page of the list is damaged."),
    ],
)
def test_a_list_address_no_link_makes_answers_400_with_a_way_back(
    any_app: Flask, session: Session, small_pages: int, query: str, message: str
) -> None:
    campaign = make_campaign(session, SLUG)
    add_signers(session, campaign, [f"Name {i}" for i in range(12)], "FR")
    response = any_app.test_client().get(f"/c/{SLUG}/signatories?{query}")
    assert response.status_code == 400
    assert message in response.text
    assert f'href="/c/{SLUG}/signatories">' in response.text
    assert "Name 1" not in response.text


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("country=fr", "?country=FR"),
        ("country=%20Fr%20&after=WyJhIiwxXQ", "?country=FR&after=WyJhIiwxXQ"),
        ("country=", ""),
    ],
)
def test_a_country_spelt_otherwise_redirects_to_its_one_address(
    client: FlaskClient, db: Session, query: str, location: str
) -> None:
    make_campaign(db, SLUG)
    response = client.get(f"/c/{SLUG}/signatories?{query}")
    assert response.status_code == 302
    assert response.location == f"/c/{SLUG}/signatories{location}"


def test_a_cursor_is_read_back_as_it_was_written() -> None:
    for cursor in (listing.Cursor("ŝtefan o'brien-ñúñez", 123), listing.Cursor("ana", 7, 501)):
        assert listing.parse_cursor(cursor.token()) == cursor
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor.token())


# --------------------------------------------------------------------------- bounded reads


def _reads(app: Flask, url: str) -> list[tuple[str, Any]]:
    """The statements reading signature rows while the app answers url."""
    engine = app.extensions["engine"]
    seen: list[tuple[str, Any]] = []

    def remember(
        conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool
    ) -> None:
        if "FROM signature" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        assert app.test_client().get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    return seen


def seed_large_letter(db: Session) -> str:
    """300 listed signers in France, others in Germany, private ones; a URL of a middle page."""
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, [f"Name {i:03}" for i in range(300)], "FR")
    add_signers(db, campaign, [f"Name {i:03}" for i in range(50)], "DE")
    add_signers(db, campaign, [f"Name {i:03}" for i in range(50)], "FR", public=False)
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("ANALYZE signature"))
        db.commit()
    return f"/c/{SLUG}/signatories?country=FR&after={listing.Cursor('name 150', 10**6).token()}"


def test_a_page_of_a_country_reads_one_range_of_the_listed_index_on_sqlite(
    app: Flask, db: Session, small_pages: int
) -> None:
    (read,) = _reads(app, seed_large_letter(db))
    statement, parameters = read
    assert re.search(r"LIMIT \?", statement)
    plan = [
        str(row[-1])
        for row in db.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    ]
    assert plan == [
        f"SEARCH signature USING INDEX {LISTED_INDEX} "
        "(campaign_id=? AND country_code=? AND <expr>>?)"
    ]


def test_the_list_of_countries_reads_the_counters_not_the_signers(
    app: Flask, db: Session, small_pages: int
) -> None:
    # One counter row per country, whatever the number of signers: no signature row is read.
    seed_large_letter(db)
    assert _reads(app, f"/c/{SLUG}/signatories") == []
    page = app.test_client().get(f"/c/{SLUG}/signatories").get_data(as_text=True)
    assert "?country=FR" in page and "?country=DE" in page


@pytest.mark.postgres
def test_a_page_of_a_country_reads_one_range_of_the_listed_index_on_postgresql(
    app_factory: Any, small_pages: int
) -> None:
    app = app_factory("postgres")
    with new_session(app) as db:
        url = seed_large_letter(db)
    (read,) = _reads(app, url)
    statement, parameters = read
    assert "LIMIT" in statement
    engine = app.extensions["engine"]
    with engine.connect() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a small table is cheap to scan
        plan = "\n".join(
            str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        )
    assert f"Index Scan using {LISTED_INDEX} on signature" in plan
    assert re.search(r"Index Cond: .*country_code.*lower\(\(name\)::text\) >=", plan), plan
    assert "Sort" not in plan, plan


# --------------------------------------------------------------------------- the index


def _indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                rows = conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'signature'"
                )
                return {str(name) for (name,) in rows}
            return {str(ix["name"]) for ix in inspect(conn).get_indexes("signature")}
    finally:
        engine.dispose()


def test_revision_0003_adds_the_listed_index_and_downgrades(empty_database: str) -> None:
    url = empty_database
    upgrade(url, "0002")
    assert LISTED_INDEX not in _indexes(url)
    upgrade(url)
    assert LISTED_INDEX in _indexes(url)
    command.downgrade(alembic_config(url), "0002")
    assert LISTED_INDEX not in _indexes(url)
    assert "ix_signature_campaign_country" in _indexes(url)
    upgrade(url)
    assert LISTED_INDEX in _indexes(url)


def test_the_migrated_listed_index_is_the_models_on_sqlite(app: Flask, db: Session) -> None:
    # Alembic cannot compare an index on an expression on SQLite: compare its SQL instead.
    stored = db.scalar(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": LISTED_INDEX})
    (model,) = [ix for ix in Signature.__table__.indexes if ix.name == LISTED_INDEX]
    assert stored == str(CreateIndex(model).compile(db.get_bind())).strip()


def test_a_country_no_one_may_choose_now_still_lists_its_stored_signers(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    # Antarctica left the form's choices; signatures stored from it before still read.
    campaign = make_campaign(db, SLUG)
    add_signers(db, campaign, ["Ana", "Bo"], "AQ")
    add_signers(db, campaign, [f"Name {i}" for i in range(4)], "FR")  # a large list: by country
    page = client.get(f"/c/{SLUG}/signatories").text
    assert f'href="/c/{SLUG}/signatories?country=AQ">Antarctica</a>' in page
    listed = client.get(f"/c/{SLUG}/signatories?country=AQ")
    assert listed.status_code == 200 and "Ana" in listed.text and "Bo" in listed.text


def test_a_bad_list_address_answers_json_to_a_client_that_asks_for_it(
    client: FlaskClient, db: Session, small_pages: int
) -> None:
    make_campaign(db, SLUG)
    answer = client.get(f"/c/{SLUG}/signatories?country=ZZ", headers={"Accept": "application/json"})
    assert answer.status_code == 400
    assert answer.get_json() == {
        "error": "Bad Request",
        "status": 400,
        "message": "This list has no such country.",
    }
    page = client.get(f"/c/{SLUG}/signatories?country=ZZ")
    assert page.status_code == 400 and "This list has no such country." in page.text
