"""The organizer's search (?q=): a substring in any case, every letter folded as PostgreSQL's
ILIKE folds it, or a name without its accents (every word of the query in the name's key),
through PostgreSQL's trigram index or by reading the rows on SQLite (whose schema revisions
0014 and 0019 leave alone)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_helpers import (
    AuthActions,
    make_campaign,
    make_organizer,
    make_signature,
)
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from campaign import export, review, signing
from campaign.db import alembic_config, upgrade
from campaign.models import Campaign, Organizer, Signature

# (name, email, party, parliament): accents in both cases, '%' and '_', a Kelvin sign
# (U+212A, which Unicode folds to "k" and SQLite's ASCII-only lower() does not).
SIGNERS = (
    ("José Álvarez", "jose.alvarez@example.org", "Partido Verde", "Congreso"),
    ("ÉMILE Zola", "emile@example.fr", "Les Écologistes", "Assemblée nationale"),
    ("Ada Lovelace", "ada@example.org", "50% Party", "House of Lords"),
    ("Grace_Hopper", "grace@navy.example", "Navy", "Congress"),
    ("Ødegaard Kim", "kim@example.no", "Høyre", "Storting"),
    ("\u212aelvin Sign", "sign@example.net", "Units", "Bureau"),
    ("Zed Gone", "zed@erase.example", "Vanished", "Nowhere"),
    ("Old Name", "renamed@example.org", "Before", "Parliament of Before"),
    ("Zoë Ólafsdóttir", "zoe@example.is", "Píratar", "Alþingi"),
    ("Émile Dupont", "dupont@example.fr", "Écologistes", "Sénat"),
    ("Åsa Ålund", "asa@example.se", "Vänsterpartiet", "Riksdag"),
    ("Kemal İnce", "kemal@example.tr", "ĞÜŞİÖÇ", "TBMM"),
    ("Ирина Петрова", "irina@example.ru", "Яблоко", "Государственная дума"),
)
QUERIES = (
    "Álvarez",
    "álvarez",
    "ÁLVAREZ",
    "alvarez",
    "émile",
    "ÉMILE",
    "Émile",
    "zola",
    "ZOLA",
    "écolo",
    "ÉCOLO",
    "50%",
    "%",
    "%%",
    "_",
    "e_h",
    "grace_",
    "ø",
    "Ø",
    "ØDEGAARD",
    "høy",
    "HØY",
    "kel",
    "KELVIN",
    "\u212aelvin",
    "example",
    "EXAMPLE.ORG",
    "x",
    "ad",
    "Ad",
    "a",
    "ss",
    'o"',
    "o'",
    "\\",
    "a b",
    "Congres",
    "of",
    "zed",
    "erase.example",
    "Vanished",
    "Old Name",
    "renamed",
    "New Person",
    "Parliament of After",
    "nobody at all",
    "zoë",
    "ZOË",
    "Zoë",
    "ólafsdóttir",
    "ÓLAFSDÓTTIR",
    "ÉMILE",
    "écologistes",
    "Ål",
    "ål",
    "ÅSA",
    "ince",
    "İNCE",
    "ğüşiöç",
    "ирина",
    "ПЕТРОВА",
    "государственная",
    "alÞingi",
    "k",
    "K",
    "i",
)


def _fold(text: str) -> str:
    """Every character in lower case, as PostgreSQL's lower() in a UTF-8 database: one for
    one, İ to i (glibc's towlower(); Python's lower() writes i and a combining dot)."""
    return "".join(char.lower()[0] for char in text)


@pytest.fixture
def searchable(app_factory, backend: str) -> Iterator[tuple[Flask, Campaign, Organizer]]:
    """An app on each backend with SIGNERS on one letter, one erased and one corrected."""
    app = app_factory(backend)
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(bind=engine, expire_on_commit=False) as db:
        campaign = make_campaign(db, "kem")
        organizer = make_organizer(db, "alice@example.org", campaigns=(campaign,))
        made = [
            make_signature(db, campaign, name, email, party=party, parliament=parliament)
            for name, email, party, parliament in SIGNERS
        ]
        for signature in made:  # the key signing stores (make_signature's is simpler)
            signature.name_key = signing.name_key(signature.name)
        review.erase(db, organizer, made[6])
        review.edit(
            db,
            organizer,
            made[7],
            review.Details("New Person", "MP", "Parliament of After", "After", "FR"),
        )
        db.commit()
    engine.dispose()
    yield app, campaign, organizer


def _logged_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert AuthActions(client).login("alice@example.org").status_code == 303
    return client


def _listed(client: FlaskClient, q: str) -> set[int]:
    """The ids the organizer's list shows for a search."""
    response = client.get("/admin/c/kem/signatures", query_string={"q": q})
    assert response.status_code == 200
    return {int(i) for i in re.findall(r"/admin/c/kem/signatures/(\d+)\"", response.text)}


def _exported(client: FlaskClient, q: str) -> set[int]:
    """The ids the CSV export holds for a search."""
    response = client.get("/admin/c/kem/export.csv", query_string={"q": q})
    assert response.status_code == 200
    return {int(line.split(",")[0]) for line in response.text.splitlines()[1:] if line}


def _ilike(app: Flask, campaign: Campaign, q: str) -> set[int]:
    """What the database's own ILIKE finds over every row of the letter (on SQLite,
    lower() LIKE lower(), which folds A-Z alone)."""
    engine = create_engine(str(app.config["DATABASE_URL"]))
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with Session(bind=engine) as db:
        ids = db.scalars(
            select(Signature.id).where(
                Signature.campaign_id == campaign.id,
                or_(*(column.ilike(pattern, escape="\\") for column in _COLUMNS)),
            )
        ).all()
    engine.dispose()
    return set(ids)


_COLUMNS = (Signature.name, Signature.email, Signature.party, Signature.parliament)


def _folded(app: Flask, campaign: Campaign, q: str) -> set[int]:
    """The rows of the letter whose name, email, party or parliament holds q once every
    letter of both is folded to lower case (see _fold)."""
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(bind=engine) as db:
        rows = db.execute(
            select(Signature.id, *_COLUMNS).where(Signature.campaign_id == campaign.id)
        )
        ids = {row[0] for row in rows if any(_fold(q) in _fold(v or "") for v in row[1:])}
    engine.dispose()
    return ids


def _by_name_key(app: Flask, campaign: Campaign, q: str) -> set[int]:
    """The rows of the letter where every word of q's key (accents, case, apostrophes
    and honorifics dropped: signing.name_key) begins a word of the name's key."""
    words = signing.name_key(" ".join(q.split())).split()
    if not words:
        return set()
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(bind=engine) as db:
        rows = db.execute(
            select(Signature.id, Signature.name).where(Signature.campaign_id == campaign.id)
        )
        ids = {
            row[0]
            for row in rows
            if all(
                any(key.startswith(w) for key in signing.name_key(row[1]).split()) for w in words
            )
        }
    engine.dispose()
    return ids


def _matching(app: Flask, campaign: Campaign, q: str) -> set[int]:
    """What the search finds: q in any case in a column, or a name without its accents."""
    return _folded(app, campaign, q) | _by_name_key(app, campaign, q)


def _id_of(app: Flask, email_key: str) -> int:
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(bind=engine) as db:
        found = db.scalar(select(Signature.id).where(Signature.email_key == email_key))
    engine.dispose()
    assert found is not None
    return int(found)


def test_search_folds_every_letter_as_postgresql_ilike_does(searchable, backend: str) -> None:
    app, campaign, _ = searchable
    client = _logged_in(app)
    for q in QUERIES:
        if backend == "postgres":
            assert _ilike(app, campaign, q) == _folded(app, campaign, q), q
        expected = _matching(app, campaign, q)
        assert _listed(client, q) == expected, q
        assert _exported(client, q) == expected, q


def test_search_finds_accented_letters_in_either_case(searchable) -> None:
    app, _, _ = searchable
    client = _logged_in(app)
    zoe, emile, dupont, asa, kemal, irina = (
        _id_of(app, email)
        for email in (
            "zoe@example.is",
            "emile@example.fr",
            "dupont@example.fr",
            "asa@example.se",
            "kemal@example.tr",
            "irina@example.ru",
        )
    )
    for q in ("zoë", "ZOË", "ólafsdóttir", "ÓLAFSDÓTTIR", "Zoë Ólafsdóttir"):
        assert _listed(client, q) == {zoe}, q
        assert _exported(client, q) == {zoe}, q
    for q in ("émile", "Émile", "ÉMILE"):
        assert _listed(client, q) == {emile, dupont}, q
        assert _exported(client, q) == {emile, dupont}, q
    jose = _id_of(app, "jose.alvarez@example.org")
    for q in ("Ål", "ål", "ÅL"):
        # Ålund, and Álvarez by the name without its accents.
        assert _listed(client, q) == {asa, jose}, q
    # İ folds to i, as PostgreSQL's lower() has it.
    assert _listed(client, "ince") == {kemal}
    assert _listed(client, "İNCE") == {kemal}
    assert _listed(client, "петрова") == {irina}


def test_search_case_accents_wildcards_and_short_queries(searchable) -> None:
    app, _, _ = searchable
    client = _logged_in(app)
    jose, emile, ada, grace, kim = (
        _id_of(app, email)
        for email in (
            "jose.alvarez@example.org",
            "emile@example.fr",
            "ada@example.org",
            "grace@navy.example",
            "kim@example.no",
        )
    )
    assert _listed(client, "Álvarez") == {jose}
    assert _listed(client, "ZOLA") == {emile}
    # A name is found without its accents; a party or parliament only with them.
    assert _listed(client, "Ecologistes") == set()
    assert _listed(client, "emile") == {emile, _id_of(app, "dupont@example.fr")}
    assert _listed(client, "emile@example") == {emile}
    # Wildcards in the query are plain characters.
    assert _listed(client, "50%") == {ada}
    assert _listed(client, "%") == {ada}
    assert _listed(client, "_") == {grace}
    assert _listed(client, "e_h") == {grace}
    # One and two characters: no trigram, still every match.
    assert _listed(client, "ø") == {kim}
    assert _listed(client, "Ad") == {ada}
    assert _listed(client, "Lovelace") == {ada}
    assert _listed(client, "lovelace") == {ada}


# (name, email, parliament, party) of members of many parliaments, one name stored as
# typed on a Mac (NFD: e and a combining diaeresis).
NAMESAKES = (
    ("O'Brien Séamus", "s.obrien@example.ie", "Dáil Éireann", "Fianna Fáil"),
    ("François Dupré", "francois@example.fr", "Assemblée nationale", "Renaissance"),
    ("Thomas Müller", "mueller@example.de", "Bundestag", "Die Grünen"),
    ("Ana Câmara", "ana@example.br", "Senado Federal", "PT"),
    ("João Silva", "joao@example.br", "Câmara dos Deputados", "PSB"),
    ("Person 2", "person2@example.org", "Parliament", "Party"),
    ("Noe\u0308l Zoe\u0308", "noel@example.be", "Chambre", "Ecolo"),
)


@pytest.fixture
def namesakes(app_factory, backend: str) -> tuple[Flask, dict[str, int]]:
    """An app on each backend with NAMESAKES on letter "kem"; their ids by address."""
    app = app_factory(backend)
    engine = create_engine(str(app.config["DATABASE_URL"]))
    ids: dict[str, int] = {}
    with Session(bind=engine, expire_on_commit=False) as db:
        campaign = make_campaign(db, "kem")
        make_organizer(db, "alice@example.org", campaigns=(campaign,))
        for name, email, parliament, party in NAMESAKES:
            made = make_signature(db, campaign, name, email, parliament=parliament, party=party)
            made.name_key = signing.name_key(name)  # as signing stores it
            ids[email] = made.id
        db.commit()
    engine.dispose()
    return app, ids


def test_names_are_found_without_their_accents_in_any_form(namesakes) -> None:
    app, ids = namesakes
    client = _logged_in(app)
    seamus, francois, muller, ana, joao, person, noel = ids.values()
    expected = {
        # Without accents, in any case, words in any order, apostrophes optional.
        "Seamus": {seamus},
        "seamus": {seamus},
        "SEAMUS O'BRIEN": {seamus},
        "obrien": {seamus},
        "Francois": {francois},
        "francois dupre": {francois},
        "Muller": {muller},
        "thomas muller": {muller},
        "Camara": {ana},
        "Franc": {francois},
        # A word's beginning, not any part of it (that is the name as typed, accents and all).
        "uller": set(),
        "ller": {muller},
        "eamus": set(),
        "noel zoe": {noel},
        # With them, as before; typed decomposed (NFD) or composed, whatever the row holds.
        "O'Brien Séamus": {seamus},
        "o'brien séamus": {seamus},
        "Se\u0301amus": {seamus},
        "Noël": {noel},
        "Câmara": {ana, joao},
        "Dáil Éireann": {seamus},
        "Die Grünen": {muller},
        # White space as typed: doubled, around.
        "Person  2": {person},
        "  Person 2 ": {person},
        "François\tDupré": {francois},
        # Addresses, parties and parliaments as before.
        "mueller@example.de": {muller},
        "example.br": {ana, joao},
        "fianna": {seamus},
        # Only names are folded: a party or parliament keeps its accents.
        "Eireann": set(),
        "Grunen": set(),
        # No word: no name matches by its key.
        "'": {seamus},
        "-": set(),
    }
    for q, found in expected.items():
        assert _listed(client, q) == found, q
        assert _exported(client, q) == found, q


def test_the_search_box_shows_the_query_as_it_is_searched(namesakes) -> None:
    app, _ = namesakes
    client = _logged_in(app)
    response = client.get("/admin/c/kem/signatures", query_string={"q": " Se\u0301amus   O'Brien "})
    assert 'value="Séamus O&#39;Brien"' in response.text


def test_erased_signer_is_not_found_by_old_name_or_address(searchable) -> None:
    app, _, _ = searchable
    client = _logged_in(app)
    for q in ("Zed Gone", "zed", "zed@erase.example", "erase.example", "Vanished", "Nowhere"):
        assert _listed(client, q) == set(), q
        assert _exported(client, q) == set(), q


def test_corrected_signer_is_found_by_new_details_only(searchable) -> None:
    app, _, _ = searchable
    client = _logged_in(app)
    renamed = _id_of(app, "renamed@example.org")
    for q in ("Old Name", "Parliament of Before", "Before"):
        assert _listed(client, q) == set(), q
    for q in ("New Person", "new pers", "Parliament of After", "renamed@"):
        assert _listed(client, q) == {renamed}, q


def test_the_filters_and_sorting_still_apply_beside_the_search(searchable) -> None:
    app, _, _ = searchable
    client = _logged_in(app)
    for sort in ("name", "signed_at", "country"):
        for direction in ("asc", "desc"):
            args = {"sort": sort, "dir": direction}
            everyone = _in_order(client, args)
            found = _in_order(client, {**args, "q": "example"})
            matching = _matching(app, searchable[1], "example")
            assert found == [i for i in everyone if i in matching], args
    assert _in_order(client, {"q": "example", "country": "NO"}) == []
    assert _in_order(client, {"q": "example", "status": "erased"}) == []


def _in_order(client: FlaskClient, args: dict[str, str]) -> list[int]:
    """The ids the organizer's list shows, in its order."""
    response = client.get("/admin/c/kem/signatures", query_string=args)
    assert response.status_code == 200
    ids = [int(i) for i in re.findall(r"/admin/c/kem/signatures/(\d+)\"", response.text)]
    return list(dict.fromkeys(ids))


def test_imported_signers_are_found(app_factory, tmp_path: Path) -> None:
    app = app_factory()
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(bind=engine) as db:
        make_campaign(db, "kem")
        make_organizer(db, "alice@example.org", campaigns=(db.scalars(select(Campaign)).one(),))
    engine.dispose()
    paper = tmp_path / "paper.csv"
    paper.write_text(
        "name,title,parliament,party,country_code,email\r\n"
        "Wangarĩ Maathai,MP,National Assembly,Mazingira,KE,wangari@example.ke\r\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["import-csv", "kem", str(paper)])
    assert result.exit_code == 0, result.output
    client = _logged_in(app)
    assert _listed(client, "Wangarĩ") == {_id_of(app, "wangari@example.ke")}
    assert _listed(client, "mazingira") == {_id_of(app, "wangari@example.ke")}


def _plan(url: str, q: str, *, ordered: bool) -> str:
    """PostgreSQL's plan for the list's search (its page, or its count)."""
    engine = create_engine(url)
    stmt = export.apply(select(Signature.id), export.SignatureFilter(q=q))
    if ordered:
        stmt = stmt.order_by(Signature.signed_at.desc(), Signature.id.desc()).limit(50)
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        # Whether the index can serve the search, whatever this small table's costs say
        # (at a million rows the planner picks it by itself: docs/performance.md).
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + sql).scalars())
    engine.dispose()
    return plan


def _a_letter(conn: Connection) -> None:
    """The one letter (slug 'kem') the raw-SQL tests below add signers to."""
    conn.execute(
        text(
            "INSERT INTO campaign (slug, title, letter, recipient, state,"
            " require_confirmation, created_at, updated_at, letter_version)"
            " VALUES ('kem', 'A letter', '', '', 'open', false, '2026-01-01', '2026-01-01', 1)"
        )
    )


# The signature columns the raw-SQL fixtures below fill (schema 0013 and later).
_INSERT_SIGNATURE = (
    "INSERT INTO signature (campaign_id, signed_at, updated_at, name, title,"
    " parliament, party, country_code, continent_code, email, email_key,"
    " email_domain, name_key, comment, public, source, locale, letter_version,"
    " status, counted, rejected_reason, duplicate_notices)"
)


def _add_signer(conn: Connection, name: str, email: str) -> None:
    conn.execute(
        text(
            _INSERT_SIGNATURE  # noqa: S608 (constant SQL; the values are parameters)
            + " VALUES ((SELECT id FROM campaign), '2026-01-01', '2026-01-01', :name,"
            " 'MP', 'Congress', '', 'US', 'NA', :email, :email, 'example.org', :key, '',"
            " true, 'form', 'en', 1, 'confirmed', true, '', 0)"
        ),
        {"name": name, "email": email, "key": name.casefold()},
    )


def _many_signers(url: str, n: int) -> None:
    """n signers on a letter (id 1), with the planner's statistics of them."""
    engine = create_engine(url)
    with engine.begin() as conn:
        _a_letter(conn)
        conn.execute(
            text(
                _INSERT_SIGNATURE  # noqa: S608 (constant SQL; n is a parameter)
                + " SELECT 1, '2026-01-01', '2026-01-01', 'Member ' || i, 'MP', 'Parliament',"
                " 'Party ' || (i % 7), 'FR', 'EU', 'm' || i || '@example.org',"
                " 'm' || i || '@example.org', 'example.org', 'member ' || i, '', true, 'form',"
                " 'en', 1, 'confirmed', true, '', 0 FROM generate_series(1, :n) AS g(i)"
            ),
            {"n": n},
        )
        conn.execute(text("ANALYZE signature"))
    engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_postgres_search_uses_the_trigram_index(any_app: Flask) -> None:
    url = str(any_app.config["DATABASE_URL"])
    # PostgreSQL reads a handful of rows without an index: give it a letter of some size.
    _many_signers(url, 20_000)
    for ordered in (False, True):
        for q in ("m12345@", "Mémber 1234", "1234 member"):
            plan = _plan(url, q, ordered=ordered)
            assert "Bitmap Index Scan on ix_signature_search" in plan, plan
            # The name's key is in the index too: no arm of the OR reads the table.
            assert "Seq Scan" not in plan, plan


def _search_index(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT string_agg(indexdef, '; ') FROM pg_indexes"
                " WHERE tablename = 'signature' AND indexname LIKE 'ix_signature_search%'"
            )
        ).scalar()
    engine.dispose()
    return str(found)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_upgrade_to_0019_adds_the_name_key_to_the_index_and_back(
    empty_database: str,
) -> None:
    url = empty_database
    _one_signer_at_0013(url)
    upgrade(url, "0018")
    assert "name_key" not in _search_index(url)
    upgrade(url)
    index = _search_index(url)
    assert index.startswith("CREATE INDEX ix_signature_search ON"), index
    assert "name_key gin_trgm_ops" in index and "parliament gin_trgm_ops" in index, index
    assert _found(url, "lovelace ada") == ["Ada Lovelace"]
    command.downgrade(alembic_config(url), "0018")
    index = _search_index(url)
    assert index.startswith("CREATE INDEX ix_signature_search ON"), index
    assert "name_key" not in index and "parliament gin_trgm_ops" in index, index
    assert _found(url, "lovel") == ["Ada Lovelace"]


def _one_signer_at_0013(url: str) -> None:
    upgrade(url, "0013")
    engine = create_engine(url)
    with engine.begin() as conn:
        _a_letter(conn)
        _add_signer(conn, "Ada Lovelace", "ada@example.org")
    engine.dispose()


def _found(url: str, q: str) -> list[str]:
    engine = create_engine(url)
    with Session(bind=engine) as db:
        found = list(db.scalars(export.apply(select(Signature.name), export.SignatureFilter(q=q))))
    engine.dispose()
    return found


def _indexes(url: str) -> set[str]:
    engine = create_engine(url)
    names = {str(ix["name"]) for ix in inspect(engine).get_indexes("signature")}
    engine.dispose()
    return names


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_upgrade_indexes_existing_rows_and_downgrade_drops_the_index(
    empty_database: str,
) -> None:
    url = empty_database
    _one_signer_at_0013(url)
    upgrade(url)
    assert "ix_signature_search" in _indexes(url)
    assert "Bitmap Index Scan on ix_signature_search" in _plan(url, "velac", ordered=False)
    assert _found(url, "lovel") == ["Ada Lovelace"]
    command.downgrade(alembic_config(url), "0013")
    assert "ix_signature_search" not in _indexes(url)
    assert _found(url, "lovel") == ["Ada Lovelace"]
    upgrade(url)
    assert "ix_signature_search" in _indexes(url)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_upgrade_builds_the_index_while_signing_goes_on(empty_database: str) -> None:
    url = empty_database
    _one_signer_at_0013(url)
    engine = create_engine(url)
    # A transaction that began before the upgrade, with its snapshot: a concurrent build
    # waits for it to end; a plain CREATE INDEX would not wait, and would block the writer.
    old = engine.connect()
    old.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
    old.exec_driver_sql("SELECT count(*) FROM signature").scalar()
    failures: list[BaseException] = []

    def run_upgrade() -> None:
        try:
            upgrade(url)
        except BaseException as error:  # reported by the test below
            failures.append(error)

    builder = threading.Thread(target=run_upgrade)
    builder.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as probe:
                waiting = probe.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND starts_with(query, 'CREATE INDEX CONCURRENTLY ix_signature_search')"
                ).scalar()
            if waiting:
                break
            assert builder.is_alive(), f"the index was built without waiting: {failures}"
            assert time.monotonic() < deadline, "the index build never began"
            time.sleep(0.05)
        # While the index is being built, a signature goes in at once.
        with engine.begin() as writer:
            writer.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            _add_signer(writer, "Grace Hopper", "grace@example.org")
    finally:
        old.rollback()
        old.close()
        builder.join(60)
        engine.dispose()
    assert not builder.is_alive() and failures == []
    assert "ix_signature_search" in _indexes(url)
    assert _found(url, "hopp") == ["Grace Hopper"]
    assert "Bitmap Index Scan on ix_signature_search" in _plan(url, "velac", ordered=False)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_upgrade_replaces_an_index_an_interrupted_build_left(
    empty_database: str,
) -> None:
    url = empty_database
    _one_signer_at_0013(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        # What an interrupted CREATE INDEX CONCURRENTLY leaves: an index of that name
        # (here a valid but useless one), with the schema still at 0013.
        conn.exec_driver_sql("CREATE INDEX ix_signature_search ON signature (title)")
    engine.dispose()
    upgrade(url)
    assert "Bitmap Index Scan on ix_signature_search" in _plan(url, "velac", ordered=False)
    assert _found(url, "lovel") == ["Ada Lovelace"]


def _sqlite_schema(url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name"
        ).all()
    engine.dispose()
    return [(str(kind), str(name), str(sql)) for kind, name, sql in rows]


def test_sqlite_upgrade_to_0014_and_back_leaves_the_schema_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/steps.sqlite3"
    _one_signer_at_0013(url)
    before = _sqlite_schema(url)
    upgrade(url, "0014")
    assert _sqlite_schema(url) == before
    assert _found(url, "lovel") == ["Ada Lovelace"]
    command.downgrade(alembic_config(url), "0013")
    assert _sqlite_schema(url) == before


def _table_reads(app: Flask, client: FlaskClient, args: dict[str, str]) -> tuple[str, int]:
    """The list's page for args, and how many statements searched the signature table."""
    engine = app.extensions["engine"]
    searches: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if "FROM signature" in statement and "LIKE" in statement.upper():
            searches.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        response = client.get("/admin/c/kem/signatures", query_string=args)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert response.status_code == 200
    return response.text, len(searches)


def test_a_search_whose_matches_fit_on_a_page_reads_the_table_once(app_factory) -> None:
    app = app_factory()
    engine = create_engine(str(app.config["DATABASE_URL"]))
    with Session(bind=engine, expire_on_commit=False) as db:
        campaign = make_campaign(db, "kem")
        make_organizer(db, "alice@example.org", campaigns=(campaign,))
        for i in range(120):
            make_signature(db, campaign, f"Member {i:03d}", f"m{i}@parl.example")
    engine.dispose()
    client = _logged_in(app)
    page, reads = _table_reads(app, client, {"q": "Member 01"})  # 010-019
    assert "10 signatures match; showing 1\N{EN DASH}10." in page
    assert reads == 1
    page, reads = _table_reads(app, client, {"q": "Member 017"})
    assert "1 signature matches; showing 1\N{EN DASH}1." in page
    assert reads == 1
    page, reads = _table_reads(app, client, {"q": "nobody"})
    assert "Member" not in page
    assert reads == 1
    # A full page still needs the count; the last page of a long search does not.
    page, reads = _table_reads(app, client, {"q": "member"})
    assert "120 signatures match; showing 1\N{EN DASH}50." in page
    assert "Page 1 of 3" in page
    assert reads == 2
    page, reads = _table_reads(app, client, {"q": "member", "page": "3"})
    assert "120 signatures match; showing 101\N{EN DASH}120." in page
    assert "Page 3 of 3" in page
    assert reads == 1
    # Past the end: the count, then the last page.
    page, _ = _table_reads(app, client, {"q": "member", "page": "9"})
    assert "120 signatures match; showing 101\N{EN DASH}120." in page
    assert "Page 3 of 3" in page
    page, _ = _table_reads(app, client, {"q": "Member 01", "page": "2"})
    assert "10 signatures match; showing 1\N{EN DASH}10." in page


def _cased_letters() -> dict[str, list[str]]:
    """Every letter of planes 0 and 1 that has another case, grouped by its folded form."""
    groups: dict[str, list[str]] = {}
    for code in range(0x20000):
        char = chr(code)
        if _fold(char) != char:
            groups.setdefault(_fold(char), [_fold(char)]).append(char)
    return groups


def test_sqlite_finds_every_letter_in_every_case_by_the_others() -> None:
    groups = list(_cased_letters().values())
    # A name per letter, its group's number after it ("Ë#17#", "ë#17#"): a search for one
    # must find its group's names and no other.
    names = [f"{char}#{n}#" for n, chars in enumerate(groups) for char in chars]
    table = Table("names", MetaData(), Column("name", String))
    engine = create_engine("sqlite://")
    wrong = []
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"name": name} for name in names])
        for name in names:
            search = export.ilike(table.c.name, *export.search_patterns(name))
            found = sorted(conn.scalars(select(table.c.name).where(search)))
            if found != sorted(char + name[1:] for char in groups[int(name[2:-1])]):
                wrong.append((name, found))
    engine.dispose()
    assert wrong == []


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_letters_fold_as_postgresql_lower_folds_them(any_app: Flask) -> None:
    engine = create_engine(str(any_app.config["DATABASE_URL"]))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT chr(c), lower(chr(c)) FROM generate_series(1, 131071) AS c"
                " WHERE c NOT BETWEEN 55296 AND 57343 AND lower(chr(c)) <> chr(c)"
            )
        )
        lowered = {char: lower for char, lower in rows}
    engine.dispose()
    folded = {char: _fold(char) for chars in _cased_letters().values() for char in chars[1:]}
    assert folded == lowered
