"""The autonomous cycle: execution idempotency keys, approval expiry and the cycle lock.

- ``executions``: ``cycle_id``, ``target`` and a unique ``idempotency_key`` (``cycle|action|
  target``), so an action runs at most once per cycle and target, whoever triggers it.
- ``approvals.expires_at``: an approval can no longer be given after it.
- ``cycle_locks``: one row per running cycle, keyed by the lock name (one cycle per database).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cycle_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("target", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=300), nullable=True))
        batch_op.create_index(batch_op.f("ix_executions_cycle_id"), ["cycle_id"], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_executions_idempotency_key"), ["idempotency_key"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_executions_cycle_id_cycles"), "cycles", ["cycle_id"], ["id"]
        )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
    op.create_table(
        "cycle_locks",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cycle_locks")),
    )


def downgrade() -> None:
    op.drop_table("cycle_locks")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_executions_cycle_id_cycles"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_executions_idempotency_key"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_executions_cycle_id"))
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("target")
        batch_op.drop_column("cycle_id")
