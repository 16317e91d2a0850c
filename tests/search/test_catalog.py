"""Migrations are the only way the schema changes, and they match the ORM."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from search.catalog import Base, ImageRecord, RootRecord
from search.database import (SCHEMA_HEAD, SchemaError, head_revision, open_database,
                             upgrade_to_head)

ROOT = Path(__file__).resolve().parents[2]


def _alembic(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args],
        env={"LOOKALIKE_DATABASE_URL": url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, cwd=ROOT,
    )


def test_alembic_upgrade_and_downgrade_from_the_command_line(catalog_url):
    url = catalog_url
    up = _alembic("upgrade", "head", url=url)
    assert up.returncode == 0, up.stderr
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"images", "models", "meta", "alembic_version"} <= tables
    down = _alembic("downgrade", "base", url=url)
    assert down.returncode == 0, down.stderr
    assert set(inspect(create_engine(url)).get_table_names()) == {"alembic_version"}


def test_orm_matches_migrated_schema(catalog_url):
    engine, _ = open_database(catalog_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.mark.sqlite_only
def test_open_database_brings_new_database_to_head_and_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'c.sqlite'}"
    engine, _ = open_database(url)
    upgrade_to_head(engine)
    with engine.connect() as conn:
        assert conn.scalar(text("select version_num from alembic_version")) == head_revision()
        assert conn.scalar(text("pragma journal_mode")) == "wal"


def test_the_fast_path_knows_the_newest_migration():
    """SCHEMA_HEAD lets a catalog at head open without Alembic: it must be the real head."""
    assert SCHEMA_HEAD == head_revision()


def test_database_from_newer_code_is_refused(catalog_url):
    url = catalog_url
    engine, _ = open_database(url)
    with engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = 'from_the_future'"))
    with pytest.raises(SchemaError, match="newer Lookalike"):
        open_database(url)


def test_a_catalog_of_the_previous_release_upgrades_in_place_and_keeps_its_rows(catalog_url):
    """0003 → head adds the duplicate decisions beside the images, which stay as they were
    (on PostgreSQL their paths become bytea); decisions recorded then are there after the
    next open and its (no-op) migration."""
    url = catalog_url
    assert _alembic("upgrade", "0003", url=url).returncode == 0
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("insert into models (id, kind, config, checkpoint_path, "
                          "checkpoint_sha256, latent_dim, created_at) values (1, 'ae', '{}', "
                          "'m.pt', 'abc', 4, '2026-01-01')"))
        for i in (1, 2):
            conn.execute(text("insert into images (id, path, sha256, size, mtime, width, height, "
                              "model_id, code, recon_error, indexed_at) values (:i, :p, :s, 1, "
                              "0, 8, 8, 1, :c, 0, '2026-01-01')"),
                         {"i": i, "p": f"/x/{i}.png", "s": f"{i:064d}", "c": b"\x00"})
    engine.dispose()
    engine, sessions = open_database(url)
    with engine.begin() as conn:
        assert conn.scalar(text("select count(*) from images")) == 2
        conn.execute(text("insert into duplicate_decisions (id, kind, decided_at) "
                          "values (1, 'not_duplicates', '2026-01-02')"))
        for i in (1, 2):
            conn.execute(text("insert into duplicate_decision_contents values (1, :s)"),
                         {"s": f"{i:064d}"})
    with sessions() as session:
        assert sorted(session.scalars(select(ImageRecord.path))) == ["/x/1.png", "/x/2.png"]
    engine.dispose()
    engine, _ = open_database(url)
    with engine.connect() as conn:
        assert conn.scalar(text("select count(*) from duplicate_decision_contents")) == 2
        assert conn.scalar(text("select version_num from alembic_version")) == head_revision()
    down = _alembic("downgrade", "0003", url=url)
    assert down.returncode == 0, down.stderr
    with create_engine(url).connect() as conn:
        assert conn.scalar(text("select count(*) from images")) == 2


OPENER = """
import sys, time
from pathlib import Path
from search.database import open_database
print("ready", flush=True)
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.002)
engine, _ = open_database(sys.argv[1])
engine.dispose()
print("opened")
"""


@pytest.mark.parametrize("round_", range(4))
def test_processes_opening_an_old_catalog_at_once_migrate_it_once(catalog_url, tmp_path,
                                                                  round_):
    """A server and a cron ``index`` starting together on an old catalog: one migrates, the
    others wait for it and find the catalog at head; nobody dies, no row is lost."""
    url = catalog_url
    old = _alembic("upgrade", "0003", url=url)
    assert old.returncode == 0, old.stderr
    with create_engine(url).begin() as conn:
        conn.execute(text("insert into models (id, kind, config, checkpoint_path, "
                          "checkpoint_sha256, latent_dim, created_at) values (1, 'ae', '{}', "
                          "'/m.pt', 'abc', 4, '2026-01-01')"))
        for i in (1, 2, 3):
            conn.execute(text("insert into images (id, path, sha256, size, mtime, width, "
                              "height, model_id, code, recon_error, indexed_at) values "
                              f"({i}, '/x/{i}.png', 's{i}', 1, 0, 1, 1, 1, :c, 0, "
                              "'2026-01-01')"), {"c": b"\0" * 16})
    go = tmp_path / f"go-{round_}"
    openers = [subprocess.Popen([sys.executable, "-c", OPENER, url, str(go)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(6)]
    for opener in openers:  # every one imported and waiting
        assert opener.stdout.readline().strip() == "ready"
    go.touch()
    for opener in openers:
        out, err = opener.communicate(timeout=120)
        assert opener.returncode == 0 and out.strip() == "opened", err
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(text("select version_num from alembic_version")) == head_revision()
        assert conn.scalar(text("select count(*) from images")) == 3
        if engine.dialect.name == "sqlite":
            assert conn.scalar(text("pragma integrity_check")) == "ok"
    engine.dispose()


def test_an_old_catalog_gets_the_roots_a_reindex_covered_before(catalog_url):
    """Catalogs from before 0007 knew only their files: they start with the outermost
    folders holding them (a non-UTF-8 name keeps its bytes)."""
    url = catalog_url
    assert _alembic("upgrade", "0006", url=url).returncode == 0
    odd = os.fsdecode(b"/odd/\xff")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("insert into models (id, kind, config, checkpoint_path, "
                          "checkpoint_sha256, latent_dim, created_at) values (1, 'ae', '{}', "
                          ":p, 'abc', 4, '2026-01-01')"), {"p": os.fsencode("/m.pt")
                                                          if engine.dialect.name == "postgresql"
                                                          else "/m.pt"})
        for i, path in enumerate(["/x/a/1.png", "/x/a/deeper/2.png", "/x/b/3.png",
                                  f"{odd}/4.png"]):
            stored = (os.fsencode(path) if engine.dialect.name == "postgresql" or path[1] == "o"
                      else path)
            conn.execute(text("insert into images (id, path, sha256, size, mtime, width, "
                              "height, model_id, code, recon_error, indexed_at) values "
                              "(:i, :p, 's', 1, 0, 1, 1, 1, :c, 0, '2026-01-01')"),
                         {"i": i + 1, "p": stored, "c": b"\0" * 16})
    engine.dispose()
    engine, sessions = open_database(url)
    with sessions() as session:
        assert sorted(session.scalars(select(RootRecord.path))) == sorted(["/x/a", "/x/b", odd])
    engine.dispose()


@pytest.mark.sqlite_only
def test_an_old_catalog_in_a_folder_named_in_any_script_is_upgraded(tmp_path):
    """The upgrade's lock file lies beside the catalog, found from the engine's URL, whose
    text form percent-encodes a name that is not ASCII: "Ähnliche λ" named no folder."""
    folder = tmp_path / "Ähnliche λ"
    folder.mkdir()
    url = f"sqlite:///{folder / 'catalog.sqlite'}"
    assert _alembic("upgrade", "0006", url=url).returncode == 0
    engine, _ = open_database(url)
    with engine.connect() as conn:
        assert conn.scalar(text("select version_num from alembic_version")) == head_revision()
    assert (folder / ".catalog.sqlite-upgrade.lock").exists()
    assert not any(p.name.startswith("%") for p in tmp_path.rglob("*"))


@pytest.mark.sqlite_only
def test_a_data_dir_name_with_url_characters_gets_its_own_catalog(tmp_path):
    """A URL made by pasting the path in sent "a?b" to a file "a" and failed on "%41"."""
    from search.database import database_url, sqlite_file

    folder = tmp_path / "a?b #c x%41y"
    folder.mkdir()
    url = database_url(folder)
    assert sqlite_file(url) == folder / "catalog.sqlite"
    engine, _ = open_database(url)
    engine.dispose()
    assert (folder / "catalog.sqlite").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
