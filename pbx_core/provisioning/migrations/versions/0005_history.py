"""History: one row per queue call and the agents' sessions, written by ``pbx-core history``.

Revision ID: 0005_history
Revises: 0004_callback_promises
Create Date: 2026-12-04 17:45:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_history"
down_revision: str | Sequence[str] | None = "0004_callback_promises"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "history_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=80), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("did", sa.String(length=80), nullable=True),
        sa.Column("ivr_path", sa.String(length=200), nullable=True),
        sa.Column("joined_at", sa.Double(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("announced_wait_s", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("waited_s", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.Column("agent_name", sa.String(length=120), nullable=True),
        sa.Column("talk_s", sa.Integer(), nullable=True),
        sa.Column("wrapup_s", sa.Integer(), nullable=True),
        sa.Column("completed_at", sa.Double(), nullable=True),
        sa.Column("end_reason", sa.String(length=24), nullable=True),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("anonymised", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history_calls")),
        sa.UniqueConstraint("uniqueid", "queue", "tenant", "epoch", name="uq_history_calls_key"),
    )
    op.create_index("ix_history_calls_tenant_joined", "history_calls", ["tenant", "joined_at"])
    op.create_index("ix_history_calls_tenant_queue_joined", "history_calls", ["tenant", "queue", "joined_at"])
    op.create_index("ix_history_calls_tenant_number", "history_calls", ["tenant", "number", "joined_at"])

    op.create_table(
        "history_agent_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=80), nullable=False),
        sa.Column("interface", sa.String(length=120), nullable=False),
        sa.Column("agent_name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("reason", sa.String(length=80), nullable=True),
        sa.Column("uniqueid", sa.String(length=64), nullable=True),
        sa.Column("ring_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history_agent_sessions")),
        sa.UniqueConstraint("tenant", "epoch", "queue", "interface", "kind", "started_at",
                            name="uq_history_agent_sessions_key"),
    )
    op.create_index("ix_history_agent_sessions_tenant_started", "history_agent_sessions",
                    ["tenant", "started_at"])
    op.create_index("ix_history_agent_sessions_tenant_ended", "history_agent_sessions",
                    ["tenant", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_history_agent_sessions_tenant_ended", table_name="history_agent_sessions")
    op.drop_index("ix_history_agent_sessions_tenant_started", table_name="history_agent_sessions")
    op.drop_table("history_agent_sessions")
    op.drop_index("ix_history_calls_tenant_number", table_name="history_calls")
    op.drop_index("ix_history_calls_tenant_queue_joined", table_name="history_calls")
    op.drop_index("ix_history_calls_tenant_joined", table_name="history_calls")
    op.drop_table("history_calls")
