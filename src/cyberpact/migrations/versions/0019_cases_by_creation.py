"""cases listed newest first from an index: the desk's list of cases, its search and the wizard's picker

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 13:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every listing pages cases by (created_at, id), newest first: without this, each page sorted them all.
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_created', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_created')
