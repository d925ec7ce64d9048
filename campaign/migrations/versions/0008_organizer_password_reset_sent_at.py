"""organizer.password_reset_sent_at: when the last password reset mail was queued

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 23:55:00.000000

"Forgot your password?" mails an organizer a link at most once per
PASSWORD_RESET_MAIL_INTERVAL_SECONDS, so the form cannot flood their mailbox: the
column is claimed by one conditional UPDATE per request, races included.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "password_reset_sent_at", campaign.db.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("organizer", schema=None) as batch_op:
        batch_op.drop_column("password_reset_sent_at")
