"""outbox rows composed by the sender: kind and link_base

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 16:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("link_base", sa.String(length=500), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_outbox_message_kind"), "kind IN ('confirm', 'already_signed')"
        )


def downgrade() -> None:
    # Revision 0001's sender sends a row's stored text: an unsent row of a kind has none yet,
    # so it would go out empty. Refuse rather than send empty mail or drop it.
    waiting = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM outbox_message WHERE kind IS NOT NULL AND sent_at IS NULL")
    )
    if waiting:
        raise RuntimeError(
            f"{waiting} queued mails are composed when sent, which revision 0001 cannot do: "
            "let the sender deliver them before downgrading"
        )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_outbox_message_kind"), type_="check")
        batch_op.drop_column("link_base")
        batch_op.drop_column("kind")
