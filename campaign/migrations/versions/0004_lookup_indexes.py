"""indexes for one signature's rows and for one status in signing order

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:40:00.000000

In a campaign of a million signatures, an organizer's page for one signature read the
whole signature table (the signatures held as resembling it), erasing one read the whole
outbox (its mail) and audit table (its trail), and the duplicates page could read the
campaign in signing order looking for held rows when the statistics said "held" was common.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOT_NULL_DUPLICATE = sa.text("duplicate_of_id IS NOT NULL")
NOT_NULL_SIGNATURE = sa.text("signature_id IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_signature_campaign_status_signed",
        "signature",
        ["campaign_id", "status", "signed_at"],
    )
    op.drop_index("ix_signature_campaign_status", table_name="signature")
    op.create_index(
        "ix_signature_duplicate_of",
        "signature",
        ["duplicate_of_id"],
        sqlite_where=NOT_NULL_DUPLICATE,
        postgresql_where=NOT_NULL_DUPLICATE,
    )
    op.create_index(
        "ix_audit_entry_signature",
        "audit_entry",
        ["signature_id", "created_at"],
        sqlite_where=NOT_NULL_SIGNATURE,
        postgresql_where=NOT_NULL_SIGNATURE,
    )
    op.create_index("ix_outbox_message_signature", "outbox_message", ["signature_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_message_signature", table_name="outbox_message")
    op.drop_index("ix_audit_entry_signature", table_name="audit_entry")
    op.drop_index("ix_signature_duplicate_of", table_name="signature")
    op.create_index("ix_signature_campaign_status", "signature", ["campaign_id", "status"])
    op.drop_index("ix_signature_campaign_status_signed", table_name="signature")
