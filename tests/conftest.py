"""Shared fixtures: real local servers on 127.0.0.1, started per test and always stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from connectors import compiled
from newsalert.broker import EmbeddedBroker
from newsalert.localservers import PostgresCluster


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = compiled.stale_modules()
    if stale:  # the tests would run the last build, not the code in the tree
        pytest.exit(
            f"{', '.join(stale)}: the compiled module is older than its source;"
            " rebuild with `make test` or `.venv/bin/python -m connectors.compiled`",
            returncode=2,
        )


async def eventually(
    condition: Callable[[], object], timeout_seconds: float = 20.0, what: str = ""
) -> None:
    """Poll ``condition`` until it is truthy; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds} s waiting for {what or condition}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def embedded_broker():
    broker = EmbeddedBroker()
    await broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def sample_spike(**changes: object) -> dict:
    """A spike event as the detector emits it (streams/records.py Spike), for alert tests."""
    spike = {
        "spike_id": "5g-security:1700000000",
        "topic": "5g-security",
        "state": "started",
        "window_start": 1_700_000_000.0,
        "window_end": 1_700_003_600.0,
        "count": 6,
        "baseline": 1.0,
        "ratio": 6.0,
        "score": 5.0,
        "detected_at": 1_700_001_000.0,
        "top_stories": [
            {
                "article_id": "a1",
                "story_id": "s1",
                "title": "US warns Germany over Huawei in 5G",
                "url": "https://news.example/a1",
                "source": "Reuters",
                "published": 1_700_000_100.0,
            }
        ],
        "top_terms": ["Huawei", "5G"],
        "recent_counts": [{"start": 1_700_000_000.0, "count": 6}],
    }
    spike.update(changes)
    return spike


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole run."""
    cluster = PostgresCluster()
    try:
        cluster.start()
    except RuntimeError as exc:
        cluster.stop()
        pytest.fail(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster: PostgresCluster) -> str:
    """The session cluster's base URL."""
    return postgres_cluster.base_url


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the session's PostgreSQL server for one test."""
    return postgres_cluster.create_database()


@pytest.fixture
def postgres_outage(postgres_server: str) -> Callable[[str], object]:
    """``with postgres_outage(url):`` the database refuses connections and every open one is
    cut, as when PostgreSQL goes down; it comes back when the block ends."""
    import psycopg

    @contextmanager
    def outage(url: str) -> Iterator[None]:
        database = url.rsplit("/", 1)[1]
        with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
            try:
                yield
            finally:
                admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")

    return outage
