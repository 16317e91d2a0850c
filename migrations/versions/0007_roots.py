"""roots

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

The folders indexed into a data dir, as ``lookalike index FOLDER`` named them, which a
re-index covers (search.catalog.RootRecord). Catalogs from before knew only their files,
so they start with what a re-index covered then: the outermost folders holding files;
the next ``lookalike index`` of a folder above them replaces them.
"""
import os
from datetime import datetime, timezone
from pathlib import Path

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    path_type = sa.LargeBinary() if postgresql else sa.String(length=4096)
    id_type = sa.BigInteger() if postgresql else sa.Integer()
    roots = op.create_table(
        'roots',
        sa.Column('id', id_type, nullable=False),
        sa.Column('path', path_type, nullable=False),
        sa.Column('added_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('path'),
    )
    folders = {os.path.dirname(_text(p))
               for p in op.get_bind().scalars(sa.text('SELECT path FROM images'))}
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(roots, [{'path': _stored(f, postgresql), 'added_at': now}
                           for f in _outermost(folders)])


def _text(value) -> str:
    """A path column's value as the OS's str (SQLite keeps names that are not UTF-8 as
    BLOBs, PostgreSQL every name as bytea)."""
    if isinstance(value, memoryview):
        value = value.tobytes()
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _stored(path: str, postgresql: bool):
    if postgresql:
        return os.fsencode(path)
    try:
        path.encode('utf-8')
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def _outermost(folders: set) -> list:
    kept: set = set()
    for folder in sorted(folders):
        if not any(str(p) in kept for p in (Path(folder), *Path(folder).parents)):
            kept.add(folder)
    return sorted(kept)


def downgrade() -> None:
    op.drop_table('roots')
