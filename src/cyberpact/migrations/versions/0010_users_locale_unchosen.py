"""a user's language may be unchosen

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: not chosen yet, the desk follows the browser. Existing rows keep their language: whether a
    # stored 'en' was chosen or defaulted cannot be told apart now.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('locale', existing_type=sa.String(length=16), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE users SET locale = 'en' WHERE locale IS NULL")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('locale', existing_type=sa.String(length=16), nullable=False)
