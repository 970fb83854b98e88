"""The audit head's signature (issue 17): ``audit_head.mac``, an HMAC-SHA256 of the head record
under the key ``AUTOPILOT_AUDIT_KEY`` (:func:`agent.audit.head_mac`); NULL while no key is set.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("mac")
