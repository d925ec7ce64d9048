"""letter versions: what each signer signed, and the texts a change replaced

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 02:00:00.000000

A change of the title or text after someone signed keeps the texts as they stood (every
language) as a numbered version and moves the campaign to the next number; each signature
records the number current when it was made. Existing campaigns and signatures are version
1: nothing recorded an earlier text.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("letter_version", sa.Integer(), server_default="1", nullable=False)
        )
    # ADD COLUMN on both databases: SQLite's batch mode rebuilds nothing for it.
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("letter_version", sa.Integer(), server_default="1", nullable=False)
        )
    op.create_table(
        "letter_version",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("letter", sa.Text(), nullable=False),
        sa.Column("replaced_at", campaign.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("replaced_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_letter_version_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["organizer.id"],
            name=op.f("fk_letter_version_replaced_by_id_organizer"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "number", "locale", name=op.f("pk_letter_version")),
    )


def downgrade() -> None:
    op.drop_table("letter_version")
    # Not in batch mode: SQLite's would rebuild each table, and dropping the old campaign
    # table (foreign keys on) deletes every row that references it, signatures included;
    # rebuilding signature would lose ix_signature_listed, an expression index SQLAlchemy
    # cannot reflect. ALTER TABLE DROP COLUMN (SQLite 3.35+) does neither.
    op.drop_column("signature", "letter_version")
    op.drop_column("campaign", "letter_version")
