"""a preservation is held while the follow-up request it waits for is decided

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_by', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_requests_held_by'), ['held_by'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_requests_held_by'))
        batch_op.drop_column('held_by')
