"""Shared fixtures: real local servers on 127.0.0.1, started per test and always stopped;
the brokers the broker tests run on (`--broker-kind embedded|kafka|both`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from connectors import compiled
from newsalert.broker import BrokerError, EmbeddedBroker
from newsalert.localkafka import LocalKafka
from newsalert.localservers import PostgresCluster
from streams.stories import native

BROKER_KINDS = ("embedded", "kafka")
# What the tests on Apache Kafka set beyond the broker and app id: nothing, the defaults are
# what a deployment on Kafka gets (10 s group session timeout, newsalert/settings.py).
KAFKA_SETTINGS: dict[str, Any] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = compiled.stale_modules()
    if stale:  # the tests would run the last build, not the code in the tree
        pytest.exit(
            f"{', '.join(stale)}: the compiled module is older than its source;"
            " rebuild with `make test` or `.venv/bin/python -m connectors.compiled`",
            returncode=2,
        )
    if native.stale():
        pytest.exit(
            "streams/stories/_storyindex: the built story index is older than its crate;"
            " rebuild with `make test` or `.venv/bin/python -m streams.stories.native`",
            returncode=2,
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--broker-kind",
        choices=[*BROKER_KINDS, "both"],
        default="both",
        help="the broker(s) the broker tests run on: the embedded Tansu, Apache Kafka "
        "(newsalert/localkafka.py, one node started once per session; needs Java 17+ and "
        "Maven) or both (default)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "only_broker(kind): the test makes sense on this broker only (embedded or kafka); "
        "deselected when --broker-kind leaves that broker out",
    )


def selected_broker_kinds(config: pytest.Config) -> set[str]:
    chosen = config.getoption("--broker-kind")
    return set(BROKER_KINDS) if chosen == "both" else {chosen}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses a broker (the ``broker_kind`` fixture, directly or not) runs once per
    broker, or on the one its ``only_broker`` marker names."""
    if "broker_kind" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("only_broker")
        kinds = marker.args if marker else BROKER_KINDS
        metafunc.parametrize("broker_kind", kinds, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = selected_broker_kinds(config)
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        marker = item.get_closest_marker("only_broker")
        if callspec is not None and "broker_kind" in callspec.params:
            kinds = {callspec.params["broker_kind"]}
        else:
            kinds = set(marker.args) if marker else set()
        (drop if kinds and not kinds & selected else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
def broker_kind(request: pytest.FixtureRequest) -> str:
    """``embedded`` or ``kafka``, one per run of the test (see pytest_generate_tests)."""
    return str(request.param)


@dataclass(frozen=True)
class Broker:
    """The broker one test talks to, and the namespace it keeps to there: its own app id,
    hence its own topics, consumer groups and changelogs (streams/topics.py)."""

    kind: str
    bootstrap_servers: str
    app_id: str

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap_servers}"

    def topic(self, name: str) -> str:
        """A topic of this test's own, for tests that pick their own names."""
        return f"{self.app_id}.{name}"

    def settings(self) -> dict[str, Any]:
        """Overrides for load_settings: this broker, this test's app id, what Kafka needs."""
        extra = KAFKA_SETTINGS if self.kind == "kafka" else {}
        return {"broker": self.url, "app_id": self.app_id, **extra}


def new_app_id() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def run_in_new_loop(coroutine: Any) -> Any:
    """Run a coroutine from a synchronous fixture: on this thread (a broker started here dies
    with this thread, see newsalert/broker.py), in a loop of its own."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@pytest.fixture
def broker(broker_kind: str, request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A fresh embedded broker, or the session's Apache Kafka with a namespace of its own."""
    if broker_kind == "kafka":
        kafka: LocalKafka = request.getfixturevalue("kafka_cluster")
        yield Broker("kafka", kafka.bootstrap_servers, new_app_id())
        return
    embedded = EmbeddedBroker()
    run_in_new_loop(embedded.start())
    try:
        yield Broker("embedded", embedded.bootstrap_servers, new_app_id())
    finally:
        embedded.stop()


def start_kafka(kafka: LocalKafka) -> None:
    try:
        run_in_new_loop(kafka.start())
    except BrokerError as exc:
        kafka.stop()
        pytest.fail(f"{exc} (or run only the embedded broker's tests: --broker-kind embedded)")


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """One Apache Kafka node for the whole session, started for the first test that needs it;
    tests keep apart by app id (``broker``), not by a broker of their own."""
    kafka = LocalKafka(tmp_path_factory.mktemp("kafka"), nodes=1)
    start_kafka(kafka)
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def kafka_cluster3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """Three Apache Kafka nodes, for replication tests; started only if one is selected.
    A test that stops a node brings it back before it ends."""
    # A node that stops heartbeating is fenced after 3 s, not KRaft's 9 s: failover drills
    # then take seconds.
    fast_failover = {"broker.heartbeat.interval.ms": "500", "broker.session.timeout.ms": "3000"}
    kafka = LocalKafka(tmp_path_factory.mktemp("kafka3"), nodes=3, overrides=fast_failover)
    start_kafka(kafka)
    try:
        yield kafka
    finally:
        kafka.stop()


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


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, stopped on the way out."""
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
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the whole run."""
    with running_postgres() as cluster:
        yield cluster


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
