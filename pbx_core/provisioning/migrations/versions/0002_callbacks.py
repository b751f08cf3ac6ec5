"""Callbacks: the durable records of pbx_core.callbacks and their history.

Revision ID: 0002_callbacks
Revises: 0001_initial
Create Date: 2026-11-23 15:37:22.774449

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002_callbacks"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One open callback per (tenant, queue, number): a partial unique index, on both databases.
OPEN = sa.text("status IN ('pending', 'overdue', 'dialling')")


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.Double(), nullable=False),
        sa.Column("place_at", sa.Double(), nullable=False),
        sa.Column("due_by", sa.Double(), nullable=False),
        sa.Column("not_before", sa.Double(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempts_dialled", sa.Integer(), nullable=False),
        sa.Column("originate_id", sa.String(length=80), nullable=True),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.Column("dialled_at", sa.Double(), nullable=True),
        sa.Column("closed_at", sa.Double(), nullable=True),
        sa.Column("last_result", sa.String(length=24), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_callbacks_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    op.create_index(
        "uq_callbacks_open_number",
        "callbacks",
        ["tenant_id", "queue", "number"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index(
        "ix_callbacks_tenant_status_requested",
        "callbacks",
        ["tenant_id", "status", "requested_at"],
        unique=False,
    )
    op.create_index("ix_callbacks_tenant_requested", "callbacks", ["tenant_id", "requested_at"], unique=False)

    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("callback_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("change", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=24), nullable=True),
        sa.Column("originate_id", sa.String(length=80), nullable=True),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callbacks.id"],
            name=op.f("fk_callback_attempts_callback_id_callbacks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
    )
    op.create_index(
        op.f("ix_callback_attempts_callback_id"), "callback_attempts", ["callback_id"], unique=False
    )


def downgrade() -> None:
    """Drop both tables (their indexes go with them)."""
    op.drop_table("callback_attempts")
    op.drop_table("callbacks")
