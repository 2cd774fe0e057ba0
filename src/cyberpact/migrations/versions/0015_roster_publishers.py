"""peers trusted to publish signed rosters, with the serial of the last roster taken from each

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cyberpact.kit.db

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('roster_publishers',
    sa.Column('node_id', sa.String(length=120), nullable=False),
    sa.Column('trusted_at', cyberpact.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('trusted_by', sa.String(length=120), nullable=False),
    sa.Column('last_serial', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['peers.node_id'], name=op.f('fk_roster_publishers_node_id_peers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('node_id', name=op.f('pk_roster_publishers'))
    )


def downgrade() -> None:
    op.drop_table('roster_publishers')
