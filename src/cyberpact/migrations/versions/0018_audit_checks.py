"""checks of the whole audit chain, run in the background and kept with what they found

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cyberpact.kit.db

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_checks',
    sa.Column('requested_by', sa.String(length=120), nullable=False),
    sa.Column('requested_at', cyberpact.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('started_at', cyberpact.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', cyberpact.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('records_total', sa.BigInteger(), nullable=True),
    sa.Column('records_checked', sa.BigInteger(), nullable=False),
    sa.Column('anchors', sa.Integer(), nullable=True),
    sa.Column('finding_seq', sa.BigInteger(), nullable=True),
    sa.Column('finding_kind', sa.String(length=10), nullable=True),
    sa.Column('finding_message', sa.Text(), nullable=True),
    sa.Column('error', sa.String(length=200), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checks'))
    )
    op.create_index('ix_audit_checks_requested_at', 'audit_checks', ['requested_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_checks_requested_at', table_name='audit_checks')
    op.drop_table('audit_checks')
