"""custody events found by kind: the deletions that wait for a second administrator

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 05:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('custody_events', schema=None) as batch_op:
        batch_op.create_index('ix_custody_events_kind', ['kind', 'seq'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('custody_events', schema=None) as batch_op:
        batch_op.drop_index('ix_custody_events_kind')
