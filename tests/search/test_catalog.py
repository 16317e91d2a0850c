"""Migrations are the only way the schema changes, and they match the ORM."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from search.catalog import Base
from search.database import SchemaError, head_revision, open_database, upgrade_to_head

ROOT = Path(__file__).resolve().parents[2]


def _alembic(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args],
        env={"LOOKALIKE_DATABASE_URL": url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, cwd=ROOT,
    )


def test_alembic_upgrade_and_downgrade_from_the_command_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    up = _alembic("upgrade", "head", url=url)
    assert up.returncode == 0, up.stderr
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"images", "models", "meta", "alembic_version"} <= tables
    down = _alembic("downgrade", "base", url=url)
    assert down.returncode == 0, down.stderr
    assert set(inspect(create_engine(url)).get_table_names()) == {"alembic_version"}


def test_orm_matches_migrated_schema(tmp_path):
    engine, _ = open_database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_open_database_brings_new_database_to_head_and_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'c.sqlite'}"
    engine, _ = open_database(url)
    upgrade_to_head(engine)
    with engine.connect() as conn:
        assert conn.scalar(text("select version_num from alembic_version")) == head_revision()
        assert conn.scalar(text("pragma journal_mode")) == "wal"


def test_database_from_newer_code_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    engine, _ = open_database(url)
    with engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = 'from_the_future'"))
    with pytest.raises(SchemaError, match="newer Lookalike"):
        open_database(url)
