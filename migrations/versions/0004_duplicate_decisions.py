"""duplicate decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The reviewer's decisions on duplicate groups ("not duplicates", "keep this
one"), by content hash, so that later runs of `lookalike duplicates` and the
/duplicates page honour them.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('duplicate_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('keep_id', sa.Integer(), nullable=True),
    sa.Column('keep_sha256', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True,
    )
    op.create_table('duplicate_decision_contents',
    sa.Column('decision_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['decision_id'], ['duplicate_decisions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('decision_id', 'sha256')
    )
    with op.batch_alter_table('duplicate_decision_contents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duplicate_decision_contents_sha256'), ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('duplicate_decision_contents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_duplicate_decision_contents_sha256'))

    op.drop_table('duplicate_decision_contents')
    op.drop_table('duplicate_decisions')
