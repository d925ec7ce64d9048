"""indexes for the organizer's pages at scale: the list by name, the signers of each version

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 16:00:00.000000

Two organizer pages read every signature of a letter:

- ix_signature_campaign_name (campaign, lower(name), id): the list sorted by name sorted
  every signer for each page (at a million, 0.7 s A-Z and 3.1 s Z-A on SQLite, 1.0-1.2 s on
  PostgreSQL); a page is now one range of the index, read either way.
- ix_signature_campaign_version (campaign, letter_version, status): the edit page counted
  the signers of each version of the text with a GROUP BY over the letter (0.5 s), as did
  saving a change to a signed text while it held the letter. The current version's signers
  now come from the counters (campaign.campaigns.signers_by_version); the replaced versions'
  are a range each of this index.

On PostgreSQL both are built CONCURRENTLY, outside the upgrade's transaction, as 0014's:
signing goes on meanwhile; an index an interrupted build left invalid is dropped first. On
SQLite each CREATE INDEX holds the write lock while it builds (about 1 s each for a million
rows), and the new indexes get their statistics where the database keeps them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_signature_campaign_name": "campaign_id, lower(name), id",
    "ix_signature_campaign_version": "campaign_id, letter_version, status",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, columns in INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON signature ({columns})")
        _statistics_on_sqlite()
        return
    with op.get_context().autocommit_block():
        for name, columns in INDEXES.items():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON signature ({columns})")


def _statistics_on_sqlite() -> None:
    """Give the new indexes their figures where the database keeps statistics (sqlite_stat1).

    SQLite plans with what ANALYZE stored (an import runs it). An index it has no figures for
    looks like one that finds ten rows per letter; with the others' figures beside it, the
    organizer's list sorted a million rows per page (3 s) instead of reading fifty. Where no
    statistics were kept, none are started here (about 0.5 s an index for a million
    signatures).
    """
    kept = op.get_bind().execute(
        sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
    )
    if kept.first() is not None:
        for name in INDEXES:
            op.execute(f"ANALYZE {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name in INDEXES:
            op.execute(f"DROP INDEX {name}")
        return
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
