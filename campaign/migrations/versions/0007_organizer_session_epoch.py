"""organizer.session_epoch: the generation of an organizer's sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 22:40:00.000000

A login writes the organizer's epoch into the session cookie and every request compares
it with the row: raising the epoch (log out everywhere, a new password, deactivation)
ends every session issued before. Cookies issued before this revision carry no epoch,
so upgrading logs every organizer out once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("organizer", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
