"""capture time

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

When each photo was taken, from its EXIF, so the library sorts and filters by the
file's date (this, else mtime), with indexes for the library's sorts. Rows indexed
before stay NULL until re-encoded.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('taken_at', sa.Float(), nullable=True))
        batch_op.create_index('ix_images_indexed_at', ['indexed_at'], unique=False)
        batch_op.create_index('ix_images_recon_error', ['recon_error'], unique=False)
    op.create_index('ix_images_file_date', 'images', [sa.text('coalesce(taken_at, mtime)')])


def downgrade() -> None:
    op.drop_index('ix_images_file_date', table_name='images')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_recon_error')
        batch_op.drop_index('ix_images_indexed_at')
        batch_op.drop_column('taken_at')

