"""Trust (issue 17): the audit trail's head record and the plans approvals showed.

- ``audit_head``: one row per chain (``audit_log``) with its entry count and last id and
  hash, filled here from the existing chain so verification starts anchored;
- ``approval_plans``: the plan (counts and row ids) an approval request listed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAIN = "audit_log"


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "approval_plans",
        sa.Column("approval_id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("target_ids", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["approvals.id"],
            name=op.f("fk_approval_plans_approval_id_approvals"),
        ),
        sa.PrimaryKeyConstraint("approval_id", name=op.f("pk_approval_plans")),
    )
    connection = op.get_bind()
    last = connection.execute(
        sa.text("SELECT id, entry_hash FROM audit_log ORDER BY id DESC LIMIT 1")
    ).first()
    if last is not None:
        entries = connection.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO audit_head (name, entries, last_id, last_hash, updated_at) "
                "VALUES (:name, :entries, :last_id, :last_hash, :updated_at)"
            ),
            {
                "name": CHAIN,
                "entries": int(entries),
                "last_id": int(last[0]),
                "last_hash": last[1],
                "updated_at": datetime.now(UTC).replace(tzinfo=None),
            },
        )


def downgrade() -> None:
    op.drop_table("approval_plans")
    op.drop_table("audit_head")
