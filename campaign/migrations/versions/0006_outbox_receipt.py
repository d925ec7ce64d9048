"""outbox_message.kind may be 'receipt': the mail to a signer of a letter without confirmation

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:00:00.000000

A form signature on a letter that needs no confirmation counts at once; the receipt tells
the address's owner, with the link that withdraws it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

KINDS_BEFORE = "kind IN ('confirm', 'already_signed')"
KINDS = "kind IN ('confirm', 'already_signed', 'receipt')"


def _kinds(condition: str) -> None:
    # SQLite rebuilds the table; reflecting it alone (not the signature table its foreign key
    # names, whose expression index SQLAlchemy cannot reflect) keeps the rebuild to itself.
    with op.batch_alter_table(
        "outbox_message", schema=None, reflect_kwargs={"resolve_fks": False}
    ) as batch_op:
        batch_op.drop_constraint(op.f("ck_outbox_message_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_outbox_message_kind"), condition)


def upgrade() -> None:
    _kinds(KINDS)


def downgrade() -> None:
    # Revision 0005's sender cannot compose a receipt (it has no template for one), so a
    # queued one would fail until it is dropped: refuse rather than lose it.
    waiting = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM outbox_message WHERE kind = 'receipt' AND sent_at IS NULL")
    )
    if waiting:
        raise RuntimeError(
            f"{waiting} queued receipts are composed when sent, which revision 0005 cannot do: "
            "let the sender deliver them before downgrading"
        )
    # A sent mail keeps its subject and bodies: without its kind it reads as one stored whole.
    op.execute("UPDATE outbox_message SET kind = NULL WHERE kind = 'receipt'")
    _kinds(KINDS_BEFORE)
