"""trash

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Images moved to the trash (``lookalike trash``, search.trash): each keeps its catalog
row here, under the same id, with where its file went and the state of the move (the
journal a crash is finished from).
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

INDEXED = ('sha256', 'model_id', 'recon_error', 'indexed_at', 'trashed_at')


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    path_type = sa.LargeBinary() if postgresql else sa.String(length=4096)
    id_type = sa.BigInteger() if postgresql else sa.Integer()
    op.create_table(
        'trash',
        sa.Column('id', id_type, autoincrement=False, nullable=False),
        sa.Column('path', path_type, nullable=False),
        sa.Column('trash_path', path_type, nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('trashed_at', sa.DateTime(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', id_type, nullable=False),
        sa.Column('mtime', sa.Float(), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('format', sa.String(length=16), nullable=True),
        sa.Column('taken_at', sa.Float(), nullable=True),
        sa.Column('model_id', id_type, nullable=False),
        sa.Column('code', sa.LargeBinary(), nullable=False),
        sa.Column('recon_error', sa.Float(), nullable=False),
        sa.Column('indexed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('trash_path'),
    )
    for column in INDEXED:
        op.create_index(f'ix_trash_{column}', 'trash', [column], unique=False)


def downgrade() -> None:
    for column in INDEXED:
        op.drop_index(f'ix_trash_{column}', table_name='trash')
    op.drop_table('trash')
