"""the public list of signatories by pages: ix_signature_listed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Listed signers (counted and public) of one campaign and country in name order: a page
    # of /c/<slug>/signatories is one range of it. The predicate is written as the queries
    # write theirs (SQLAlchemy's is_(True)), so both databases see that the index applies.
    op.create_index(
        "ix_signature_listed",
        "signature",
        ["campaign_id", "country_code", sa.text("lower(name)"), "id"],
        unique=False,
        sqlite_where=sa.text("counted IS 1 AND public IS 1"),
        postgresql_where=sa.text("counted IS true AND public IS true"),
    )


def downgrade() -> None:
    op.drop_index("ix_signature_listed", table_name="signature")
