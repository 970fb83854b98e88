"""The decision log: what a reward is joined by and what actually ran.

- ``decisions.event_id`` (unique): the join key, generated or sent by an API client;
- ``source``, ``executed_action``, ``propensity``, ``ope_usable``: who proposed the decision,
  what ran after the guardrails, with which logged probability, and whether the record can
  serve off-policy estimates;
- ``reward_deadline``, ``reward_source``: when the join window closes and how the reward came;
- ``request_hash``, ``response``: idempotent answers to a repeated API ``event_id``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("executed_action", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("propensity", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("ope_usable", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("reward_deadline", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("reward_source", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("response", sa.JSON(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_decisions_event_id"), ["event_id"])


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_decisions_event_id"), type_="unique")
        for column in (
            "response",
            "request_hash",
            "reward_source",
            "reward_deadline",
            "ope_usable",
            "propensity",
            "executed_action",
            "source",
            "event_id",
        ):
            batch_op.drop_column(column)
