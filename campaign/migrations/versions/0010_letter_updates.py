"""letter updates: organizers' messages to a letter's signers, and the outbox kind "update"

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 04:00:00.000000

An update is one row here and one outbox row per signature that counted when it was sent,
each pointing at it (outbox_message.update_id) and composed by the sender like a receipt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

KINDS_BEFORE = "kind IN ('confirm', 'already_signed', 'receipt')"
KINDS = "kind IN ('confirm', 'already_signed', 'receipt', 'update')"
ONLY_UPDATES = sa.text("update_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "letter_update",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=150), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", campaign.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_letter_update_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["organizer.id"],
            name=op.f("fk_letter_update_created_by_id_organizer"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_update")),
    )
    op.create_index(
        "ix_letter_update_campaign_created",
        "letter_update",
        ["campaign_id", "created_at"],
        unique=False,
    )
    # As 0006: SQLite rebuilds the outbox table (the kind constraint changes), reflecting it
    # alone; PostgreSQL adds a nullable column and swaps the constraint, rewriting nothing.
    with op.batch_alter_table(
        "outbox_message", schema=None, reflect_kwargs={"resolve_fks": False}
    ) as batch_op:
        batch_op.add_column(sa.Column("update_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_outbox_message_update_id_letter_update"),
            "letter_update",
            ["update_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.drop_constraint(op.f("ck_outbox_message_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_outbox_message_kind"), KINDS)
    op.create_index(
        "ix_outbox_message_update",
        "outbox_message",
        ["update_id", "sent_at"],
        unique=False,
        sqlite_where=ONLY_UPDATES,
        postgresql_where=ONLY_UPDATES,
    )


def downgrade() -> None:
    # Revision 0009's sender cannot compose an update: refuse rather than lose queued ones.
    waiting = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM outbox_message WHERE kind = 'update' AND sent_at IS NULL")
    )
    if waiting:
        raise RuntimeError(
            f"{waiting} queued update mails are composed when sent, which revision 0009 cannot "
            "do: let the sender deliver them before downgrading"
        )
    # A sent mail keeps its subject and bodies: without its kind it reads as one stored whole.
    op.execute("UPDATE outbox_message SET kind = NULL WHERE kind = 'update'")
    op.drop_index("ix_outbox_message_update", table_name="outbox_message")
    with op.batch_alter_table(
        "outbox_message", schema=None, reflect_kwargs={"resolve_fks": False}
    ) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_outbox_message_update_id_letter_update"), type_="foreignkey"
        )
        batch_op.drop_column("update_id")
        batch_op.drop_constraint(op.f("ck_outbox_message_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_outbox_message_kind"), KINDS_BEFORE)
    op.drop_index("ix_letter_update_campaign_created", table_name="letter_update")
    op.drop_table("letter_update")
