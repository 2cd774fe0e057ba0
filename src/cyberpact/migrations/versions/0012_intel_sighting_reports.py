"""a sighting keeps the observables it reported, so that revoking it takes back exactly those

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cyberpact.kit.db

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy): the table may hold millions of rows, and a nullable column
    # needs no rewrite on either database.
    op.add_column('intel_objects', sa.Column('reported', cyberpact.kit.db.JSONType(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('intel_objects', schema=None) as batch_op:
        batch_op.drop_column('reported')
