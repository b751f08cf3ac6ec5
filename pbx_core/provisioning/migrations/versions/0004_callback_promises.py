"""Callback promises: the start of the window a callback was promised (its due-by is the end).

Revision ID: 0004_callback_promises
Revises: 0002_callbacks
Create Date: 2026-11-24 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_callback_promises"
down_revision: str | Sequence[str] | None = "0002_callbacks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: callbacks booked before promises were windows have a due-by only.
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("promised_from", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("promised_from")
