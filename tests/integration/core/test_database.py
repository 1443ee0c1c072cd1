"""The state database layer against both real backends: SQLite and a local PostgreSQL."""

from __future__ import annotations

import pytest

from newsalert.database import (
    SqliteDatabase,
    open_database,
    postgres_ddl,
    postgres_sql,
    redacted,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS things (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE, -- a comment; with a semicolon
    weight REAL,
    payload BLOB
);
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        target = tmp_path / "state.sqlite3"
    else:
        target = request.getfixturevalue("postgres_url")
    db = open_database(target)
    db.create_schema(SCHEMA)
    yield db
    db.close()


def test_rows_read_by_name_and_position(database):
    row = database.execute(
        "INSERT INTO things (name, weight) VALUES (?, ?) RETURNING id, name", ("a", 1.5)
    ).fetchone()
    assert row["name"] == row[1] == "a"
    assert dict(database.execute("SELECT name, weight FROM things").fetchone()) == {
        "name": "a",
        "weight": 1.5,
    }


def test_a_failed_transaction_leaves_nothing(database):
    with pytest.raises(RuntimeError):
        with database.transaction() as db:
            db.execute("INSERT INTO things (name) VALUES (?)", ("gone",))
            raise RuntimeError("boom")
    assert database.execute("SELECT COUNT(*) FROM things").fetchone()[0] == 0


def test_upserts_and_percent_signs_are_portable(database):
    sql = "INSERT INTO things (name) VALUES (?) ON CONFLICT (name) DO NOTHING"
    database.executemany(sql, [("50%",), ("50%",), ("x",)])
    names = [
        r[0]
        for r in database.execute(
            "SELECT name FROM things WHERE name LIKE '%\\%%' ESCAPE '\\' ORDER BY name"
        )
    ]
    assert names == ["50%"]


def test_schema_creation_is_repeatable_and_columns_are_listed(database):
    database.create_schema(SCHEMA)
    assert database.columns("things") == {"id", "name", "weight", "payload"}


def test_postgres_spelling_of_sqlite_words():
    assert postgres_sql("SELECT ? WHERE a LIKE 'x%'") == "SELECT %s WHERE a LIKE 'x%%'"
    assert "BIGSERIAL PRIMARY KEY" in postgres_ddl("id INTEGER PRIMARY KEY AUTOINCREMENT")
    assert postgres_ddl("w REAL, n INTEGER") == "w DOUBLE PRECISION, n BIGINT"


def test_passwords_never_appear_in_messages():
    assert redacted("postgresql://u:s3cret@db:5432/na") == "postgresql://u:***@db:5432/na"


def test_an_unreachable_server_is_a_clear_error(postgres_server):
    with pytest.raises(ConnectionError, match="cannot reach PostgreSQL at postgresql://"):
        open_database("postgresql://newsalert@127.0.0.1:1/none")


def test_sqlite_commits_survive_a_power_cut_unless_asked_otherwise(tmp_path):
    outbox = open_database(tmp_path / "outbox.sqlite3")
    assert outbox.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    outbox.close()
    feeds = SqliteDatabase(tmp_path / "feeds.sqlite3", synchronous="NORMAL")
    assert feeds.execute("PRAGMA synchronous").fetchone()[0] == 1
    feeds.close()


def _open_together(path: str, ready, results) -> None:
    ready.wait()
    try:
        database = SqliteDatabase(path)
        database.create_schema(SCHEMA)
        database.close()
        results.put("opened")
    except Exception as exc:
        results.put(repr(exc))


def test_processes_opening_a_new_sqlite_file_together_all_open_it(tmp_path):
    """Two stream workers started together on one data directory: SQLite can refuse the
    switch to WAL at once ("database is locked") while another process opens the same new
    file. Without the retry, about one round in five of six processes failed here."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    outcomes = []
    for round_number in range(15):
        path = str(tmp_path / f"state-{round_number}.sqlite3")
        ready, results = context.Barrier(6), context.Queue()
        processes = [
            context.Process(target=_open_together, args=(path, ready, results)) for _ in range(6)
        ]
        for process in processes:
            process.start()
        outcomes.extend(results.get(timeout=30) for _ in processes)
        for process in processes:
            process.join(timeout=30)
    assert set(outcomes) == {"opened"}, [o for o in outcomes if o != "opened"][:3]
