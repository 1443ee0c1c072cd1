"""The work set of the stream benchmarks: real articles with unique ids, and the broker they
are preloaded into (the embedded one, or Apache Kafka with ``--kafka``).

Articles come from every per-dataset file of ``../shared/data/articles/`` (not
``dated_stream.jsonl``, which repeats them), shuffled with a fixed seed and cycled when more
are asked for than there are rows. Each gets a unique id and a unique URL, so that what the
story stage drops is decided by the text alone (exact copies, including the cycled ones), and
the number of articles that come out is the same in whatever order the partitions are read
(``expected_outputs``): the benchmarks stop when they have seen that many.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ARTICLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "articles"
FULLTEXT = "reuters-fulltext"
SEED = 16
PARTITIONS = 3
UNDATED = datetime(2020, 1, 1, tzinfo=UTC).timestamp()


def rows(datasets: list[str] | None = None) -> list[dict[str, Any]]:
    """Every row of the per-dataset files (or of ``datasets``), in file order."""
    found = []
    for path in sorted(ARTICLES_DIR.glob("*.jsonl")):
        if path.stem == "dated_stream" or (datasets is not None and path.stem not in datasets):
            continue
        with path.open(encoding="utf-8") as lines:
            found.extend(json.loads(line) for line in lines)
    return found


def _published(value: str | None) -> float:
    if not value:
        return UNDATED
    text = value.replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def raw_articles(count: int, datasets: list[str] | None = None) -> list[dict[str, Any]]:
    """``count`` raw articles (RawArticle fields) built from the real rows, unique ids."""
    source = rows(datasets)
    random.Random(SEED).shuffle(source)
    articles = []
    for n in range(count):
        row = source[n % len(source)]
        article_id = f"{row['id']}.{n // len(source)}"
        articles.append(
            {
                "article_id": article_id,
                "url": f"https://{row['dataset']}.bench.example/{article_id}",
                "title": row["title"] or "",
                "body": row["text"] or "",
                "source": row["source"],
                "feed_url": None,
                "published": _published(row["published"]),
            }
        )
    return articles


def fulltext_articles() -> list[dict[str, Any]]:
    """The full-length articles alone (reuters-fulltext.jsonl), once each."""
    return raw_articles(len(rows([FULLTEXT])), [FULLTEXT])


def expected_outputs(articles: list[dict[str, Any]]) -> int:
    """How many of ``articles`` the story stage keeps: one per distinct cleaned text (the
    URLs and ids are unique, so only exact copies of the text are dropped)."""
    from streams.clean.text import clean_text
    from streams.stories.dedupe import normalized_text_digest

    digests = set()
    for raw in articles:
        title = clean_text(raw["title"])
        text = clean_text(raw["body"], title=title)
        digests.add(normalized_text_digest(f"{title}\n{text}"))
    return len(digests)


async def preload(bootstrap: str, topic: str, articles: list[dict[str, Any]]) -> float:
    """Publish ``articles`` to ``topic`` with the project's publisher, many sends in flight
    (the publisher batches them); the seconds it took."""
    from connectors.publisher import KafkaPublisher
    from streams.records import RawArticle

    publisher = KafkaPublisher(bootstrap, topic=topic, linger_ms=5)
    await publisher.start()
    started = asyncio.get_running_loop().time()
    try:
        for first in range(0, len(articles), 2000):
            chunk = articles[first : first + 2000]
            await asyncio.gather(*(publisher.publish(RawArticle(**raw)) for raw in chunk))
    finally:
        await publisher.stop()
    return asyncio.get_running_loop().time() - started


class Broker:
    """Where a round runs: ``bootstrap`` and the broker's own processes (for its CPU)."""

    def __init__(self, kind: str, bootstrap: str, pids: Any) -> None:
        self.kind = kind
        self.bootstrap = bootstrap
        self._pids = pids

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def pids(self) -> list[int]:
        return list(self._pids())


@contextlib.asynccontextmanager
async def broker(kind: str, directory: Path | None = None) -> AsyncIterator[Broker]:
    """A broker of the benchmark's own: ``embedded`` (Tansu) or ``kafka`` (Apache Kafka 4.4.0,
    one KRaft node, newsalert/localkafka.py), stopped after."""
    if kind == "embedded":
        from newsalert.broker import EmbeddedBroker, quiet_kafka_client

        embedded = EmbeddedBroker()
        with quiet_kafka_client():  # "Unable connect" while it starts is no news
            await embedded.start()
        try:
            yield Broker(kind, embedded.bootstrap_servers, lambda: [embedded.pid])
        finally:
            embedded.stop()
        return
    from newsalert.localkafka import LocalKafka

    with tempfile.TemporaryDirectory(prefix="bench-kafka-", dir=directory) as tmp:
        kafka = LocalKafka(Path(tmp) / "kafka")
        await kafka.start()
        try:
            yield Broker(kind, kafka.bootstrap_servers, lambda: kafka.pids().values())
        finally:
            kafka.stop()


async def create_topics(bootstrap: str, app_id: str, extra: list[str] = ()) -> None:
    """newsalert's topics for ``app_id`` (the raw topic with 3 partitions), and ``extra``
    topics of 3 partitions (the peer's output)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streams.topics import ensure_topics

    await ensure_topics(bootstrap, app_id, PARTITIONS)
    if extra:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in extra])
        finally:
            await admin.close()


def role_env(app_id: str, data_dir: Path) -> dict[str, str]:
    """The environment of a ``newsalert`` role the benchmark starts: the caller's without its
    ``NEWSALERT_`` settings, then the app id, 3 partitions, its own data directory, no fixed
    metrics port, warnings only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
    env.update(
        NEWSALERT_APP_ID=app_id,
        NEWSALERT_PARTITIONS=str(PARTITIONS),
        NEWSALERT_DATA_DIR=str(data_dir),
        NEWSALERT_METRICS_PORT="0",
        NEWSALERT_LOG_LEVEL="WARNING",
    )
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (/proc/PID/stat), 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes(pid: int) -> int | None:
    """The process's peak resident set (VmHWM), None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class Observed:
    """What a reader of an output topic saw: records counted, first and last arrival. The
    window starts at the first record (or the first after ``observe``'s ``window_opens``):
    ``before_window`` records came before it."""

    def __init__(self) -> None:
        self.count = 0
        self.before_window = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.cpu_at_first: dict[int, float] = {}
        self.cpu_at_last: dict[int, float] = {}


async def group_settled(bootstrap: str, group: str, members: int, opened: asyncio.Event) -> None:
    """Set ``opened`` once consumer group ``group`` is stable with ``members`` members: after
    the rebalances of workers joining one after the other. (Members' assignments are not
    checked: the embedded broker describes them as empty.)"""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            (described,) = await admin.describe_consumer_groups([group])
            (_error, _group, state, _protocol_type, _protocol, found) = described.groups[0][:6]
            if state == "Stable" and len(found) == members:
                opened.set()
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def reader_from_start(bootstrap: str, topic: str, **options: Any) -> Any:
    """A started aiokafka consumer (no group) at offset 0 of every partition of ``topic``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, 0)
    return consumer


async def observe(
    bootstrap: str,
    topic: str,
    expected: int,
    pids: list[int],
    timeout_seconds: float,
    idle_seconds: float = 60.0,
    window_opens: asyncio.Event | None = None,
) -> Observed:
    """Read ``topic`` from the beginning (no group) until ``expected`` records arrived, or
    nothing new for ``idle_seconds`` after the first, or ``timeout_seconds``. The CPU of
    ``pids`` is sampled at the first and the last record: the processing window.
    ``window_opens``: the window starts at the first record after it is set (records before
    are counted in ``before_window``)."""
    seen = Observed()
    consumer = await reader_from_start(bootstrap, topic, fetch_max_wait_ms=10)
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + timeout_seconds
        while seen.count < expected and loop.time() < deadline:
            if seen.last_at is not None and loop.time() - seen.last_at > idle_seconds:
                break
            batch = await consumer.getmany(timeout_ms=200)
            arrived = sum(len(records) for records in batch.values())
            if not arrived:
                continue
            now = loop.time()
            if seen.first_at is None:
                if window_opens is not None and not window_opens.is_set():
                    seen.count += arrived
                    seen.before_window = seen.count
                    continue
                seen.first_at = now
                seen.cpu_at_first = {pid: cpu_seconds(pid) for pid in pids}
                seen.before_window = seen.count  # the first batch is the window's start
            seen.count += arrived
            seen.last_at = now
            seen.cpu_at_last = {pid: cpu_seconds(pid) for pid in pids}
    finally:
        await consumer.stop()
    return seen
