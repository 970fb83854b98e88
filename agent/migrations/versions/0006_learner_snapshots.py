"""Learning: versioned snapshots of online learners' state.

- ``learner_snapshots``: one row per (learner, version): the policy file's bytes and their
  SHA-256, the total update count, the event ids learned since the previous version, when and
  in which cycle.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "learner_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("learner", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("n_updates", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("state_sha256", sa.String(length=64), nullable=False),
        sa.Column("learned_event_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycles.id"], name=op.f("fk_learner_snapshots_cycle_id_cycles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learner_snapshots")),
        sa.UniqueConstraint("learner", "version", name="uq_learner_snapshots_learner_version"),
    )
    with op.batch_alter_table("learner_snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_learner_snapshots_learner"), ["learner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("learner_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_learner_snapshots_learner"))
    op.drop_table("learner_snapshots")
