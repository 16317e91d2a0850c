"""postgresql types

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

What PostgreSQL needs and SQLite never did: paths become ``bytea``, so names that are
not UTF-8 keep their exact bytes (search.catalog.FilePath), and ids and file sizes
become ``bigint`` (search.catalog.Int64), as SQLite's integers are, so that an id the
API accepts is one the database can compare. SQLite stores any value in any column:
nothing changes there.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

PATHS = (('models', 'checkpoint_path'), ('images', 'path'), ('excluded', 'path'),
         ('retired', 'path'))
INT64 = (('models', 'id'), ('images', 'id'), ('images', 'model_id'), ('images', 'size'),
         ('excluded', 'id'), ('retired', 'id'), ('duplicate_decisions', 'id'),
         ('duplicate_decisions', 'keep_id'), ('duplicate_decision_contents', 'decision_id'))
SERIAL = ('models', 'images', 'excluded', 'duplicate_decisions')


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in PATHS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE bytea "
                   f"USING convert_to({column}, 'UTF8')")
    _integers('bigint')


def _integers(kind: str) -> None:
    for table, column in INT64:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind}")
    for table in SERIAL:
        sequence = op.get_bind().scalar(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"),
                                        {"t": table})
        op.execute(f"ALTER SEQUENCE {sequence} AS {kind}")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    _integers('integer')
    for table, column in PATHS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(4096) "
                   f"USING convert_from({column}, 'UTF8')")
