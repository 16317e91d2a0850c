"""The catalog reads every query makes, kept off SQLAlchemy's slower paths.

A query reads the index generation (is the loaded index still current?)
and the path and reconstruction error of each hit. Next to a ~4 ms
encode these reads are the biggest fixed cost of an answer: measured
between model passes (which evict the CPU caches), a Session read took
~0.7 ms, a pooled DBAPI cursor ~0.2-0.4 ms, and a cursor on a connection
the thread keeps ~0.05 ms. So each thread keeps one SQLite connection.

That is safe for SQLite only: pysqlite opens a transaction before writes,
never before a SELECT, so an idle connection holds no snapshot and every
read sees the latest commit. Other databases get Core statements.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import PoolProxiedConnection


class CatalogReader:
    """Plain SQL reads on one long-lived connection per thread (SQLite)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._own = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self._opened: list[PoolProxiedConnection] = []
        self._lock = threading.Lock()

    def fetch(self, sql: str, params: Sequence) -> list[tuple]:
        """Rows of *sql*, where ``{}`` marks each of *params* in turn."""
        if not self._own:
            names = [f"p{i}" for i in range(len(params))]
            with self.engine.connect() as conn:
                stmt = text(sql.format(*(f":{n}" for n in names)))
                return [tuple(r) for r in conn.execute(stmt, dict(zip(names, params)))]
        cursor = self._connection().cursor()
        try:
            cursor.execute(sql.format(*["?"] * len(params)), list(params))
            return cursor.fetchall()
        finally:
            cursor.close()

    def _connection(self) -> PoolProxiedConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # From the pool, so it gets the engine's connect-time pragmas (WAL,
            # busy timeout), then detached: it stays this thread's, open.
            conn = self.engine.raw_connection()
            conn.detach()
            with self._lock:
                self._opened.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every thread's connection (at app teardown; tests open many apps)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()
