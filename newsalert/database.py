"""The state database: a SQLite file by default, PostgreSQL when ``database_url`` is set.

Stores (connectors.state, alerts.store) write one portable SQL text with ``?`` placeholders
and SQLite's schema words; this layer turns them into PostgreSQL's where they differ, so a
store has one body of queries and each dialect gets what it needs. Rows answer both
``row[0]`` and ``row["name"]``, as sqlite3.Row does.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
OUTAGE_RETRY_MAX_SECONDS = 30.0
log = logging.getLogger(__name__)
T = TypeVar("T")


class Row(tuple):
    """A result row readable by position and by column name."""

    _names: dict[str, int]

    def __new__(cls, names: dict[str, int], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database:
    """One connection; calls are short and come from one thread at a time."""

    dialect: str
    where: str  # for messages: a path, or the URL without its password

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def create_schema(self, ddl: str) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements separated by semicolons."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction that holds its locks from the first statement on."""
        raise NotImplementedError
        yield self

    def columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def add_column_sql(self, table: str, name: str, kind: str) -> str:
        raise NotImplementedError

    def prepare(self, schema: str, added_columns: dict[str, dict[str, str]]) -> None:
        """Create the tables, then add the columns each table gained after its first release
        (``{table: {column: SQLite type}}``); on failure the connection is closed. Two
        processes opening an old database at once both succeed."""
        try:
            self.create_schema(schema)
            for table, columns in added_columns.items():
                if not set(columns) - self.columns(table):
                    continue
                with self.transaction() as db:
                    present = db.columns(table)
                    for name, kind in columns.items():
                        if name not in present:
                            db.execute(self.add_column_sql(table, name, kind))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(
        self, path: Path | str, busy_timeout_seconds: float = 10.0, synchronous: str = "FULL"
    ) -> None:
        """``synchronous``: FULL (default) keeps every commit through a power cut, which the
        delivery outbox needs; NORMAL may lose the last commits then, never on a crash."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.where = str(path)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_seconds)
        self._db.row_factory = sqlite3.Row
        try:
            self._use_wal(busy_timeout_seconds)
        except BaseException:
            self._db.close()
            raise
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")

    def _use_wal(self, busy_timeout_seconds: float) -> None:
        """Put the file in WAL mode (it stays so). SQLite may refuse the switch at once with
        "database is locked" while another process opens the same new file, without waiting
        for the busy timeout (seen with two stream workers starting together on one data
        directory): retried until the timeout. A file already in WAL mode needs no switch."""
        deadline = time.monotonic() + busy_timeout_seconds
        while True:
            try:
                (mode,) = self._db.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def create_schema(self, ddl: str) -> None:
        self._db.executescript(ddl)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write
        try:
            yield self
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def columns(self, table: str) -> set[str]:
        return {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def add_column_sql(self, table: str, name: str, kind: str) -> str:
        return f"ALTER TABLE {table} ADD COLUMN {name} {kind}"  # BEGIN IMMEDIATE serialises

    def close(self) -> None:
        self._db.close()


# SQLite schema words and their PostgreSQL spelling; the SQL text is ours, so a few exact
# rewrites suffice (no parser).
_DDL_WORDS = [
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
]


@lru_cache(maxsize=512)
def postgres_sql(sql: str) -> str:
    """``?`` placeholders become ``%s`` (and a literal ``%`` is doubled) for psycopg."""
    return sql.replace("%", "%%").replace("?", "%s")


def postgres_ddl(ddl: str) -> str:
    for pattern, replacement in _DDL_WORDS:
        ddl = pattern.sub(replacement, ddl)
    return ddl


def _without_comments(ddl: str) -> str:
    return re.sub(r"--[^\n]*", "", ddl)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, connect_timeout_seconds: float = 10.0) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise RuntimeError("database_url needs psycopg: pip install 'psycopg[binary]'") from exc
        self._psycopg = psycopg
        self.url = url
        self.where = redacted(url)
        self._connect_timeout = max(1, int(connect_timeout_seconds))
        self._connection = self._connect()
        self._in_transaction = False

    def _connect(self) -> Any:
        try:
            connection = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=self._connect_timeout
            )
        except (self._psycopg.OperationalError, self._psycopg.ProgrammingError) as exc:
            # ProgrammingError: libpq refused the URL itself (an unknown ?parameter).
            reason = " ".join(str(exc).split())  # libpq's message spans lines; errors are one
            raise ConnectionError(f"cannot reach PostgreSQL at {self.where}: {reason}") from None
        connection.row_factory = _row_factory
        return connection

    def _cursor_for(self, run: Any) -> Any:
        """Run once; if the connection was lost outside a transaction, reconnect and rerun."""
        try:
            return run(self._connection.cursor())
        except self._psycopg.OperationalError:
            if self._in_transaction or not self._connection.broken:
                raise
            self._connection = self._connect()
            return run(self._connection.cursor())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        query = postgres_sql(sql)

        def run(cursor: Any) -> Any:
            cursor.execute(query, tuple(params))
            return cursor

        return self._cursor_for(run)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        query = postgres_sql(sql)
        batch = [tuple(row) for row in rows]
        if batch:
            self._cursor_for(lambda cursor: cursor.executemany(query, batch))

    def create_schema(self, ddl: str) -> None:
        statements = [s.strip() for s in _without_comments(postgres_ddl(ddl)).split(";")]
        with self.transaction():
            # Two processes creating the same schema at once would race on the catalog.
            self._connection.execute("SELECT pg_advisory_xact_lock(4242001)")
            for statement in statements:
                if statement:
                    self._connection.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        if self._connection.broken:
            self._connection = self._connect()
        self._in_transaction = True
        try:
            with self._connection.transaction():
                yield self
        finally:
            self._in_transaction = False

    def columns(self, table: str) -> set[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        ).fetchall()
        return {row[0] for row in rows}

    def add_column_sql(self, table: str, name: str, kind: str) -> str:
        # IF NOT EXISTS: another opener may have added it while this one waited for the lock.
        return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {postgres_ddl(kind)}"

    def close(self) -> None:
        self._connection.close()


def _row_factory(cursor: Any) -> Any:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


def redacted(url: str) -> str:
    """The URL with its password replaced (in the user part and a ``password=`` parameter),
    for logs, error messages and `check-config`."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[-1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(query=query))


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.split("://", 1)[0].lower() in POSTGRES_SCHEMES


def open_database(
    target: Path | str, *, sqlite_synchronous: str = "FULL", busy_timeout_seconds: float = 10.0
) -> Database:
    """A PostgreSQL URL opens PostgreSQL; anything else is a SQLite file path (the options
    apply to SQLite only)."""
    if is_postgres_url(target):
        return PostgresDatabase(str(target))
    return SqliteDatabase(target, busy_timeout_seconds, sqlite_synchronous)


@lru_cache(maxsize=1)
def unavailable_errors() -> tuple[type[BaseException], ...]:
    """What 'the state database cannot answer now' looks like: PostgreSQL down or the
    connection lost (reconnecting failed), SQLite locked past its busy timeout. Long-running
    loops wait these out instead of dying; everything else is a bug and propagates."""
    errors: list[type[BaseException]] = [ConnectionError, sqlite3.OperationalError]
    try:
        import psycopg

        errors.append(psycopg.OperationalError)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return tuple(errors)


async def wait_out_outage(problem: BaseException, what: str, attempt: int) -> None:
    """Log that ``what`` is waiting for the state database, then sleep (exponential, capped)."""
    delay = min(0.5 * 2**attempt, OUTAGE_RETRY_MAX_SECONDS)
    reason = " ".join(str(problem).split())
    log.error("%s: state database unavailable (%s); retrying in %.1f s", what, reason, delay)
    await asyncio.sleep(delay)


async def when_available(operation: Callable[[], T], what: str) -> T:
    """``operation()``, retried for as long as the state database is unavailable."""
    attempt = 0
    while True:
        try:
            return operation()
        except unavailable_errors() as problem:
            await wait_out_outage(problem, what, attempt)
            attempt += 1
