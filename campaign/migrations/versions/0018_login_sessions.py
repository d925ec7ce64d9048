"""login_session: organizers' sessions kept on the server, so that logging out ends them

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 14:00:00.000000

A session was a signed cookie only: "Log out" cleared that browser's cookie, and a copy
taken before stayed valid until its lifetime ended. A login now adds a row here, the cookie
carries its secret (the row keeps only its SHA-256), and a request counts as logged in only
while the row exists: logging out deletes it. Cookies issued before this revision carry no
secret, so upgrading logs every organizer out once. A new, empty table: nothing is rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("organizer_id", sa.Integer(), nullable=False),
        sa.Column("created_at", campaign.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", campaign.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("browser", sa.String(length=32), nullable=False),
        sa.Column("system", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["organizer_id"],
            ["organizer.id"],
            name=op.f("fk_login_session_organizer_id_organizer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_session")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_login_session_secret_hash")),
    )
    op.create_index(
        op.f("ix_login_session_organizer_id"), "login_session", ["organizer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_login_session_organizer_id"), table_name="login_session")
    op.drop_table("login_session")
