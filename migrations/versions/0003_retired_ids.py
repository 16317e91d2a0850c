"""retired image ids

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Rows removed by `lookalike index --prune` leave their id and content hash
here, so a file with that content that comes back gets its old id.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retired',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('path', sa.String(length=4096), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('retired_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('retired', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retired_sha256'), ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('retired', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retired_sha256'))
    op.drop_table('retired')
