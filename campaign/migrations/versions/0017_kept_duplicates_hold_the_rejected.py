"""duplicates: the signature rejected by "keep this one" is held against the one kept

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 11:00:00.000000

"Same person: keep this one" used to mark the kept signature "distinct" (as "different
people" does) and leave the rejected one unflagged, so restoring the rejected one counted
the person twice. The decision now holds the rejected one against the one kept, as "keep
the other" always did. This revision does the same for decisions taken before it: a
signature rejected with the reason the decision writes, "duplicate of #<id>", naming a
signature of the same letter, is held against it; and that one, if it was marked distinct
from the rejected one, is no longer flagged. Only flags change: no count does (a rejected
signature counts nowhere). The downgrade leaves the flags: the older code reads them.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_REASON = re.compile(r"duplicate of #([0-9]{1,18})")

signature = sa.table(
    "signature",
    sa.column("id", sa.Integer),
    sa.column("campaign_id", sa.Integer),
    sa.column("rejected_at", sa.DateTime),
    sa.column("rejected_reason", sa.String),
    sa.column("duplicate_of_id", sa.Integer),
    sa.column("duplicate_state", sa.String),
)


def upgrade() -> None:
    bind = op.get_bind()
    rejected = bind.execute(
        sa.select(signature.c.id, signature.c.campaign_id, signature.c.rejected_reason).where(
            signature.c.rejected_at.is_not(None),
            signature.c.rejected_reason.like("duplicate of #%"),
            sa.or_(signature.c.duplicate_state.is_(None), signature.c.duplicate_state != "held"),
        )
    ).all()
    for row in rejected:
        found = _REASON.fullmatch(row.rejected_reason)
        if found is None:  # an organizer's own words that happen to start so
            continue
        kept_id = int(found.group(1))
        kept = bind.execute(
            sa.select(
                signature.c.id, signature.c.duplicate_of_id, signature.c.duplicate_state
            ).where(signature.c.id == kept_id, signature.c.campaign_id == row.campaign_id)
        ).first()
        if kept is None or kept_id == row.id:
            continue
        bind.execute(
            signature.update()
            .where(signature.c.id == row.id)
            .values(duplicate_of_id=kept_id, duplicate_state="held")
        )
        if kept.duplicate_of_id == row.id and kept.duplicate_state == "distinct":
            bind.execute(
                signature.update()
                .where(signature.c.id == kept_id)
                .values(duplicate_of_id=None, duplicate_state=None)
            )


def downgrade() -> None:
    pass
