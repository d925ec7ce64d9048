"""the organizer's search index on PostgreSQL takes the name's key too

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 17:00:00.000000

The organizer's search also looks for each word of the query, without its accents, in
signature.name_key (campaign/export.py, search_clause): Seamus finds Séamus. Its OR of the
five columns is served by the trigram index only when every one of them is in it, so the
GIN index of revision 0014 (name, email, party, parliament) is built again with name_key:
CONCURRENTLY, under a new name, then the old one is dropped and the new one takes its
name, so that a search has an index throughout and signing goes on (45 s at a million rows
on a busy 2-core machine; the index grew to 120 MB). An interrupted earlier run leaves the new name behind, which is dropped first. The
downgrade builds the four-column index back the same way.

On SQLite both directions do nothing: the search reads the rows there (see revision 0014).
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_NEXT = "ix_signature_search_next"
_COLUMNS = {
    "upgrade": ("name", "email", "party", "parliament", "name_key"),
    "downgrade": ("name", "email", "party", "parliament"),
}


def _rebuild(columns: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    trigrams = ", ".join(f"{column} gin_trgm_ops" for column in columns)
    # CONCURRENTLY cannot run in a transaction (see revision 0014).
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_NEXT}")
        op.execute(f"CREATE INDEX CONCURRENTLY {_NEXT} ON signature USING gin ({trigrams})")
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_signature_search")
        op.execute(f"ALTER INDEX {_NEXT} RENAME TO ix_signature_search")


def upgrade() -> None:
    _rebuild(_COLUMNS["upgrade"])


def downgrade() -> None:
    _rebuild(_COLUMNS["downgrade"])
