"""The suite's PostgreSQL pass: ``pytest --catalog postgresql`` runs the catalog on a real server.

A throwaway cluster (Debian's ``postgresql`` package: ``initdb`` and ``pg_ctl``) is made in
a temp folder and listens on a Unix socket only; nothing else on the machine can reach it.
``LOOKALIKE_TEST_POSTGRES=URL`` uses a server you already run instead. Every data dir a
test makes gets a database of its own, named after the data dir's path, so tests keep
the isolation they have with one ``catalog.sqlite`` per data dir; tests about SQLite
itself (its files, its locks, its disk-full errors) are marked ``sqlite_only``.
"""
from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

SUPERUSER = "lookalike"


def server_binary(name: str) -> str | None:
    """Debian keeps initdb and pg_ctl off PATH, under /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class Cluster:
    """A temp cluster run by pg_ctl; as root, run as the ``postgres`` user (initdb refuses root)."""

    root: Path
    port: int = 55432
    durable: bool = False  # fsync and synchronous commits, as a real server (benchmarks)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/postgres?host={self.root}&port={self.port}"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o755)
        self._run(server_binary("initdb"), "-D", str(self.root / "data"), "-A", "trust",
                  "-U", SUPERUSER, "-E", "UTF8", *([] if self.durable else ["--no-sync"]))
        options = (f"-k {self.root} -p {self.port} -c listen_addresses='' "
                   "-c max_connections=400 "
                   # a test that waits on a lock fails instead of hanging the suite
                   "-c lock_timeout=60s")
        if not self.durable:  # a test cluster that dies is thrown away anyway
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(server_binary("pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.log),
                  "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop the server (if it runs) and delete the cluster: nothing of it stays behind."""
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self._run(server_binary("pg_ctl"), "-D", str(self.root / "data"), "-m",
                          "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(durable: bool = False) -> Cluster:
    if server_binary("initdb") is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="lk-pg-")), durable=durable)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


class Databases:
    """One database per data dir on the server at *url*, made on first use."""

    def __init__(self, url: str):
        self.server = make_url(url)
        self.admin: Engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.made: set[str] = set()
        # Per session: a server that outlives the run (LOOKALIKE_TEST_POSTGRES) never hands
        # a later run's data dir an earlier run's catalog.
        self.session = secrets.token_hex(4)

    def name(self, data_dir: str | os.PathLike) -> str:
        digest = hashlib.sha256(os.fsencode(os.path.abspath(data_dir))).hexdigest()[:16]
        return f"lk_{self.session}_{digest}"

    def url(self, data_dir: str | os.PathLike) -> str:
        """The catalog URL of *data_dir*; its database exists (empty) when this returns."""
        name = self.name(data_dir)
        if name not in self.made:
            with self.admin.connect() as conn:
                if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                   {"n": name}):
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            self.made.add(name)
        return self.server.set(database=name).render_as_string(hide_password=False)

    def copy(self, src: str | os.PathLike, dst: str | os.PathLike) -> None:
        """Give *dst* a copy of *src*'s catalog; *src*'s open connections are cut
        (their pools reconnect: open_database pings server connections)."""
        source, target = self.name(src), self.name(dst)
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target}"'))
            for attempt in range(5):  # a pool may reconnect between the two statements
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"),
                             {"n": source})
                try:
                    conn.execute(text(f'CREATE DATABASE "{target}" TEMPLATE "{source}"'))
                    break
                except OperationalError:
                    if attempt == 4:
                        raise
        self.made.add(target)

    def close(self, drop: bool) -> None:
        """Let go of the server, first dropping this session's databases if *drop*
        (a server someone runs; a throwaway cluster goes as a whole)."""
        if drop:
            with self.admin.connect() as conn:
                for name in sorted(self.made):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()
