"""organizer.locale: the language of the organizer's daily summary

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 05:30:00.000000

The language the organizer's pages were in when they last saved the daily summary choice;
NULL (every existing row) means the site's first language, as before. A nullable column
with no default: no table is rewritten on either database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("organizer", sa.Column("locale", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("organizer", "locale")
