"""sightings that arrived before what they sighted wait for it, and are counted when it comes

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cyberpact.kit.db

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('intel_open_sightings',
    sa.Column('collection_id', sa.Uuid(), nullable=False),
    sa.Column('sighting_id', sa.String(length=300), nullable=False),
    sa.Column('version', cyberpact.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('target_id', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['collection_id', 'sighting_id', 'version'], ['intel_objects.collection_id', 'intel_objects.stix_id', 'intel_objects.version'], name=op.f('fk_intel_open_sightings_collection_id_intel_objects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('collection_id', 'sighting_id', 'version', name=op.f('pk_intel_open_sightings'))
    )
    with op.batch_alter_table('intel_open_sightings', schema=None) as batch_op:
        batch_op.create_index('ix_intel_open_sightings_target', ['collection_id', 'target_id'], unique=False)
    # The sightings stored before this revision whose sighted object is still missing: from now on they
    # wait for it like any other.
    target = (
        "(s.raw::json ->> 'sighting_of_ref')"
        if op.get_bind().dialect.name == "postgresql"
        else "json_extract(s.raw, '$.sighting_of_ref')"
    )
    op.execute(
        "INSERT INTO intel_open_sightings (collection_id, sighting_id, version, target_id) "
        f"SELECT s.collection_id, s.stix_id, s.version, {target} FROM intel_objects s "
        f"WHERE s.stix_type = 'sighting' AND {target} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM intel_objects t WHERE t.collection_id = s.collection_id AND t.stix_id = {target})"
    )


def downgrade() -> None:
    with op.batch_alter_table('intel_open_sightings', schema=None) as batch_op:
        batch_op.drop_index('ix_intel_open_sightings_target')

    op.drop_table('intel_open_sightings')
