"""campaign_slug: a letter's earlier addresses, so that links to them still lead to it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 05:00:00.000000

A changed slug used to break every link to the letter's old address: the confirmation and
withdrawal links already mailed, links shared or embedded. The old slug is now kept here and
its pages redirect to the new one. A new, empty table: nothing is rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_slug",
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("replaced_at", campaign.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_campaign_slug_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_campaign_slug")),
    )
    op.create_index(
        op.f("ix_campaign_slug_campaign_id"), "campaign_slug", ["campaign_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_campaign_slug_campaign_id"), table_name="campaign_slug")
    op.drop_table("campaign_slug")
