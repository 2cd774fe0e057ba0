"""intel version index

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 12:30:00.000000
"""

from __future__ import annotations

from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # match[version]=<timestamp> without match[id]: one ordered range of this index per timestamp.
    with op.batch_alter_table('intel_objects', schema=None) as batch_op:
        batch_op.create_index(
            'ix_intel_objects_version', ['collection_id', 'version', 'date_added', 'seq'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('intel_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_intel_objects_version')
