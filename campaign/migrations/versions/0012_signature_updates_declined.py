"""signature.updates_declined_at, ix_signature_updates_declined: a signer's "no more updates"

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 05:00:00.000000

A signer may stop the organizers' updates about a letter and keep their signature on it.
updates_declined_at is when they asked; NULL (every row now) means they get updates. A
nullable column with no default: no table is rewritten on either database. The update
page's "asked for no updates" count reads a partial index of the few who asked; building
it reads the signature table once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "signature",
        sa.Column("updates_declined_at", campaign.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_signature_updates_declined",
        "signature",
        ["campaign_id", "status"],
        unique=False,
        sqlite_where=sa.text("updates_declined_at IS NOT NULL"),
        postgresql_where=sa.text("updates_declined_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_signature_updates_declined",
        table_name="signature",
        sqlite_where=sa.text("updates_declined_at IS NOT NULL"),
        postgresql_where=sa.text("updates_declined_at IS NOT NULL"),
    )
    # Not in a batch: SQLite (3.35 and later) drops a column in place, where a batch would
    # copy the table and lose the expression index ix_signature_listed it cannot reflect.
    op.drop_column("signature", "updates_declined_at")
