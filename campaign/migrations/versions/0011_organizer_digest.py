"""organizer.digest, digest_day, digest_sent_at, ix_signature_verified: the daily summary

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 04:00:00.000000

An organizer may ask for a daily summary of their letters by mail (off by default).
digest_day is the UTC day whose summary was last done, claimed by one conditional
UPDATE in the transaction that queues the mail, so two senders never mail it twice;
digest_sent_at is when the last one was mailed, where the next one's count begins.
Three added columns, a constant default: no table is rewritten. The summary's count of
signatures not yet verified is the tally's total less the verified ones, which a partial
index holds (organizers verify few): building it reads the signature table once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("digest", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("digest_day", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("digest_sent_at", campaign.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_signature_verified",
        "signature",
        ["campaign_id", "status"],
        unique=False,
        sqlite_where=sa.text("verified_at IS NOT NULL"),
        postgresql_where=sa.text("verified_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_signature_verified",
        table_name="signature",
        sqlite_where=sa.text("verified_at IS NOT NULL"),
        postgresql_where=sa.text("verified_at IS NOT NULL"),
    )
    with op.batch_alter_table("organizer", schema=None) as batch_op:
        batch_op.drop_column("digest_sent_at")
        batch_op.drop_column("digest_day")
        batch_op.drop_column("digest")
