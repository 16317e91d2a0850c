"""excluded images

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Images deleted through the admin API stay out of later re-indexing: their
path and content hash are kept here until an admin lifts the exclusion.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('excluded',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=4096), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('excluded_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('path')
    )
    with op.batch_alter_table('excluded', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_excluded_sha256'), ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('excluded', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_excluded_sha256'))
    op.drop_table('excluded')
