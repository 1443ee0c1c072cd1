"""Shared fixtures: real local servers on 127.0.0.1, started per test and always stopped."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from newsalert.broker import EmbeddedBroker


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


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        pytest.fail(
            f"PostgreSQL's {name} not found: `make test` installs Debian's postgresql package; "
            "install it by hand with `apt-get install postgresql`"
        )
    return found[-1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole run; yields its base URL."""
    root = tempfile.mkdtemp(prefix="newsalert-pg-")
    data, sockets = os.path.join(root, "data"), os.path.join(root, "sockets")
    os.mkdir(sockets)
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(
        [*as_user, _postgres_bin("initdb"), "-D", data, "-A", "trust", "-U", "newsalert"]
        + ["--no-sync", "-E", "UTF8", "--locale", "C"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [*as_user, _postgres_bin("postgres"), "-D", data, "-p", str(port), "-k", sockets]
        + ["-h", "127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"]
        + ["-c", "synchronous_commit=off", "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(root, "postgres.log"), "wb"),
    )
    base = f"postgresql://newsalert@127.0.0.1:{port}"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(f"{base}/postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = open(os.path.join(root, "postgres.log")).read()[-2000:]
                    pytest.fail(f"PostgreSQL did not start: {log}")
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server for one test."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


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
