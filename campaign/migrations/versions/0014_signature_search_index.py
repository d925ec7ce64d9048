"""an index for the organizer's search on PostgreSQL: trigrams of name, email, party, parliament

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 08:00:00.000000

The organizer's list searches a substring of those four columns (ILIKE '%q%'), which no
B-tree can answer: at a million signatures a search read the whole table. On PostgreSQL
this adds pg_trgm (a trusted extension since PostgreSQL 13) and one GIN index of the four
columns' trigrams, which ILIKE '%q%' uses as it is written. It is built CONCURRENTLY, outside
the upgrade's transaction: about 9 s for a million rows, during which signing goes on (a
plain CREATE INDEX would hold off every signature meanwhile). The build first waits for the
transactions already running to end. An earlier build that was interrupted leaves an invalid
index of the same name, which the upgrade drops first. The downgrade drops the index and keeps
the extension (other objects may use it; it holds no data).

On SQLite both directions do nothing. An FTS5 trigram index there made every signing
transaction slower (99th percentile 0.22 ms -> 3.0 ms), the anonymization of a million rows
4.6 times slower, and kept an erased signer's text in its file until a merge; SQLite's
search reads the rows with plain LIKE instead (campaign/export.py).
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_INDEX = (
    "CREATE INDEX CONCURRENTLY ix_signature_search ON signature USING gin (name gin_trgm_ops,"
    " email gin_trgm_ops, party gin_trgm_ops, parliament gin_trgm_ops)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # CONCURRENTLY cannot run in a transaction: the revisions before this one are committed
    # here, and this one's version is recorded in the next transaction.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_signature_search")
        op.execute(_INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_signature_search")
