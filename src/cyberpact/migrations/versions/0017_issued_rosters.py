"""the rosters this node signed as a publisher, so that their serials only grow whatever the clock does

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cyberpact.kit.db

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('issued_rosters',
    sa.Column('serial', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('issued_at', cyberpact.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_until', cyberpact.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('issued_by', sa.String(length=120), nullable=False),
    sa.Column('nodes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('serial', name=op.f('pk_issued_rosters'))
    )


def downgrade() -> None:
    op.drop_table('issued_rosters')
