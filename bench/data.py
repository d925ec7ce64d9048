"""Databases for the benchmarks: create, migrate, seed in bulk, count, check the counters."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench import servers
from campaign import db as dbmod
from campaign import geo
from campaign.models import Campaign, Signature, TallyCount

POSTGRES_ENV = ("CAMPAIGN_BENCH_POSTGRES_URL", "CAMPAIGN_TEST_POSTGRES_URL")
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def countries(n: int = 150) -> list[str]:
    """n countries a signer may choose (alpha-2: inhabited, so every continent but Antarctica
    has some), alphabetical."""
    codes = sorted(code for code in geo.CONTINENT_OF if geo.is_country(code))
    return codes[:n]


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def postgres_base_url() -> str:
    """The PostgreSQL server to create benchmark databases on."""
    for name in POSTGRES_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return DEFAULT_POSTGRES


def postgres_available(base: str | None = None) -> str | None:
    """None when PostgreSQL answers at the base URL, else why not."""
    engine = create_engine(base or postgres_base_url())
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as error:  # any driver or network error means "not available"
        return str(error).splitlines()[0]
    finally:
        engine.dispose()


def create_postgres_database(base: str | None = None) -> str:
    """A fresh, empty PostgreSQL database; returns its URL."""
    base = base or postgres_base_url()
    name = f"campaign_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database`, ending its sessions."""
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def postgres_version(base: str | None = None) -> str:
    """The server's version string, or why it is unknown."""
    engine = create_engine(base or postgres_base_url())
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    except Exception as error:  # reported in the machine description, never fatal
        return f"unavailable ({str(error).splitlines()[0]})"
    finally:
        engine.dispose()


def prepare(url: str) -> None:
    """Apply the migrations (the schema `campaign db upgrade` makes)."""
    dbmod.upgrade(url)


def engine_for(url: str) -> Engine:
    """An engine with the app's own connection settings (WAL, BEGIN IMMEDIATE on SQLite)."""
    return dbmod.make_engine(url)


def create_campaign(url: str, slug: str, *, require_confirmation: bool = True) -> int:
    """An open campaign, made by the service function when it exists; returns its id."""
    engine = engine_for(url)
    try:
        with Session(engine) as session:
            try:
                from campaign.campaigns import create_campaign as service
            except ImportError:
                service = None
            if service is not None:
                campaign = service(
                    session,
                    slug=slug,
                    title=f"Benchmark letter {slug}",
                    letter="We, the undersigned members of parliament, ask for a benchmark.",
                    recipient="The benchmark",
                    state="open",
                    require_confirmation=require_confirmation,
                )
            else:
                campaign = Campaign(
                    slug=slug,
                    title=f"Benchmark letter {slug}",
                    letter="We, the undersigned members of parliament, ask for a benchmark.",
                    recipient="The benchmark",
                    state="open",
                    require_confirmation=require_confirmation,
                )
                session.add(campaign)
            session.flush()
            campaign_id = int(campaign.id)
            session.commit()
        return campaign_id
    finally:
        engine.dispose()


def _letters_sql(dialect: str) -> str:
    """SQL for a unique 5-letter capitalised word per i (first letter N-Z, so it sorts after M)."""
    ch = "char" if dialect == "sqlite" else "chr"
    parts = [f"{ch}(78 + (i / 456976) % 13)"]
    parts += [f"{ch}(97 + (i / {power}) % 26)" for power in (17576, 676, 26, 1)]
    return " || ".join(parts)


def seed(url: str, campaign_id: int, n: int, codes: list[str]) -> None:
    """Insert n counted signatures in the database itself (one INSERT ... SELECT).

    Each row is what signing would have stored for a confirmed signer: unique address
    and name key, countries in turn. The counters are not touched: run a recount after.
    """
    engine = engine_for(url)
    dialect = engine.dialect.name
    word = _letters_sql(dialect)
    columns = (
        "campaign_id, signed_at, updated_at, name, title, parliament, party, country_code,"
        " continent_code, email, email_key, email_domain, name_key, comment, public, source,"
        " locale, client_hash, status, counted, confirmed_at, verified_at, rejected_at,"
        " rejected_reason, withdrawn_at, erased_at, duplicate_of_id, duplicate_state,"
        " duplicate_notices"
    )
    if dialect == "sqlite":
        ts = "datetime(1790000000 + i * 2, 'unixepoch') || '.000000'"
        yes, odd = "1", "(i % 2)"
        # SQLite has no generate_series: a recursive CTE counts instead.
        prefix = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
        source = "FROM n JOIN bench_country c ON c.idx = n.i % :k"
    else:
        ts = "to_timestamp(1790000000 + i * 2)"
        yes, odd = "true", "(i % 2 = 1)"
        prefix = ""
        source = "FROM generate_series(0, :last) AS g(i) JOIN bench_country c ON c.idx = g.i % :k"
    select_sql = (
        f"SELECT :cid, {ts}, {ts}, 'Member ' || {word}, 'MP', 'Parliament of ' || c.code,"
        f" 'Party ' || (i % 7), c.code, c.continent, 'seed' || i || '@example.org',"
        f" 'seed' || i || '@example.org', 'example.org', 'member ' || lower({word}), '',"
        f" {odd}, 'form', 'en', NULL, 'confirmed', {yes}, {ts}, NULL, NULL, '', NULL, NULL,"
        f" NULL, NULL, 0 {source}"
    )
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_country"))
        conn.execute(
            text(
                "CREATE TEMP TABLE bench_country"
                " (idx INTEGER PRIMARY KEY, code TEXT, continent TEXT)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO bench_country (idx, code, continent) VALUES (:idx, :code, :continent)"
            ),
            [
                {"idx": idx, "code": code, "continent": geo.continent_of(code)}
                for idx, code in enumerate(codes)
            ],
        )
        conn.execute(
            text(f"{prefix}INSERT INTO signature ({columns}) {select_sql}"),
            {"cid": campaign_id, "last": n - 1, "k": len(codes)},
        )
        conn.execute(text("DROP TABLE bench_country"))
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE signature"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


@dataclass
class CountCheck:
    """Whether a campaign's counters equal a fresh count of its counted rows."""

    rows: int
    counted: int
    tally: int
    drift: dict[str, tuple[int, int]]
    by: str  # how the drift was measured

    @property
    def exact(self) -> bool:
        """No drift and the total agrees."""
        return not self.drift and self.tally == self.counted

    def describe(self) -> str:
        """One line for the report."""
        verdict = "exact" if self.exact else f"DRIFT {self.drift}"
        return (
            f"rows {self.rows:,}, counted {self.counted:,}, tally {self.tally:,}: "
            f"{verdict} ({self.by})"
        )


def campaign_id(url: str, slug: str) -> int:
    """A campaign's id by slug."""
    engine = engine_for(url)
    try:
        with Session(engine) as session:
            value = session.scalar(select(Campaign.id).where(Campaign.slug == slug))
            if value is None:
                raise LookupError(f"no campaign {slug}")
            return int(value)
    finally:
        engine.dispose()


def recount(
    url: str, slug: str, workdir: Path, *, repair: bool
) -> tuple[dict[str, tuple[int, int]], str]:
    """Compare (and with repair, rebuild) the counters from the rows; returns (drift, how).

    Uses tally.recount, the function `campaign recount` is built on, in a transaction
    committed only when repairing (so a check changes nothing).
    """
    from campaign import tally

    engine = engine_for(url)
    try:
        with Session(engine) as session:
            campaign = session.scalars(select(Campaign).where(Campaign.slug == slug)).one()
            drift = tally.recount(session, campaign)
            if repair:
                session.commit()
            else:
                session.rollback()
        return drift, "tally.recount"
    finally:
        engine.dispose()


def recount_cli(url: str, slug: str, workdir: Path) -> str | None:
    """`campaign recount SLUG` output, or None when the command does not exist yet."""
    env = servers.campaign_env(workdir / "instance", url)
    try:
        proc = servers.run_cli(["recount", slug], env)
    except RuntimeError as error:
        if "No such command" in str(error):
            return None
        raise
    return (proc.stdout + proc.stderr).strip()


def check_counts(url: str, slug: str, workdir: Path) -> CountCheck:
    """Rows, a fresh GROUP BY count of counted rows, the counter total, and any drift."""
    engine = engine_for(url)
    try:
        with Session(engine) as session:
            cid = session.scalar(select(Campaign.id).where(Campaign.slug == slug))
            rows = session.scalar(
                select(func.count()).select_from(Signature).where(Signature.campaign_id == cid)
            )
            fresh = {
                code: int(count)
                for code, count in session.execute(
                    select(Signature.country_code, func.count())
                    .where(Signature.campaign_id == cid, Signature.counted.is_(True))
                    .group_by(Signature.country_code)
                )
            }
            stored = {
                code: int(count)
                for code, count in session.execute(
                    select(TallyCount.country_code, TallyCount.signatures).where(
                        TallyCount.campaign_id == cid
                    )
                )
            }
            session.rollback()
    finally:
        engine.dispose()
    drift = {
        code: (int(stored.get(code, 0)), int(fresh.get(code, 0)))
        for code in set(fresh) | set(stored)
        if int(stored.get(code, 0)) != int(fresh.get(code, 0))
    }
    return CountCheck(
        rows=int(rows or 0),
        counted=sum(int(v) for v in fresh.values()),
        tally=sum(int(v) for v in stored.values()),
        drift=drift,
        by="GROUP BY counted rows vs tally_count",
    )


def count_outbox(url: str) -> int:
    """Messages queued in the outbox (sent or not)."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM outbox_message")).scalar() or 0)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Drain:
    """The outbox after a load: what was unsent, how long the sender took to send it."""

    backlog: int
    seconds: float
    left: int


def drain_outbox(url: str, timeout: float) -> Drain:
    """Wait until every queued mail is sent, or timeout seconds."""
    engine = engine_for(url)

    def unsent() -> int:
        # A read that ends at once: on SQLite a poll must not hold the sender's write lock.
        with dbmod.reading(), engine.connect() as conn:
            query = text("SELECT count(*) FROM outbox_message WHERE sent_at IS NULL")
            return int(conn.execute(query).scalar() or 0)

    try:
        started = time.monotonic()
        backlog = left = unsent()
        while left and time.monotonic() - started < timeout:
            time.sleep(0.05)
            left = unsent()
        return Drain(backlog, time.monotonic() - started, left)
    finally:
        engine.dispose()
