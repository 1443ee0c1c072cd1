"""What the fault drills publish and how they check the result: a corpus of real Reuters
articles with planted exact duplicates and undecodable records, the counter balances (raw
records = classified + duplicates dropped + dead-lettered; notifications due = delivered +
failed + dead-lettered) and a consumer group's lag, read from the broker without a group."""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.classify.taxonomy import load_taxonomy
from streams.pipeline import ArticleProcessor
from streams.records import RawArticle
from streams.topics import TopicNames

ARTICLES = Path("/work/shared/data/articles/reuters-fulltext.jsonl")
SYNDICATED = Path(__file__).parent / "data" / "syndicated.jsonl"
UNDECODABLE = b"<html>not json</html>"


def article_rows() -> list[dict]:
    return [json.loads(line) for line in ARTICLES.read_text(encoding="utf-8").splitlines()]


@functools.cache
def distinct_rows(avoid_topic: str | None = None) -> list[dict]:
    """Reuters rows the story stage keeps (no two with the same normalized text, none a copy
    of the syndicated burst's stories), and none classified under ``avoid_topic``: articles a
    drill adds as load must not change the burst's spike."""
    processor = ArticleProcessor(load_taxonomy())
    now = time.time()
    for n, line in enumerate(SYNDICATED.read_text(encoding="utf-8").splitlines()):
        story = json.loads(line)
        raw = {"article_id": f"s{n}", "title": story["title"], "body": story["text"]}
        processor.process(raw | {"published": now}, now)
    kept = []
    for n, row in enumerate(article_rows()):
        raw = {"article_id": f"r{n}", "title": row["title"], "body": row["text"]}
        processed = processor.process(raw | {"published": now}, now)
        if processed.article is None:
            continue
        if avoid_topic and avoid_topic in processed.article["topics"]:
            continue
        kept.append(row)
    return kept


@dataclass
class Corpus:
    """What one drill publishes to the raw topic, and what the stream must make of it."""

    articles: list[dict] = field(default_factory=list)  # RawArticle fields, in publish order
    # Planted exact duplicates: (first, copy) article ids; the stage keeps one of each pair.
    pairs: list[tuple[str, str]] = field(default_factory=list)
    undecodable: int = 0

    @property
    def ids(self) -> set[str]:
        return {a["article_id"] for a in self.articles}

    @property
    def records(self) -> int:
        return len(self.articles) + self.undecodable


def load(rows: list[dict], prefix: str, published: float) -> list[dict]:
    return [
        {
            "article_id": f"{prefix}-{i}",
            "url": f"https://news.example.org/{prefix}/{i}",
            "title": row["title"],
            "body": row["text"],
            "source": "reuters",
            "feed_url": None,
            "published": published + i,
        }
        for i, row in enumerate(rows)
    ]


def exact_copies(originals: list[dict], prefix: str) -> list[dict]:
    """Exact duplicates under other ids: every other one at the same URL (``same_url``), the
    rest at another URL with the same text (``same_text``)."""
    return [
        dict(
            a,
            article_id=f"{prefix}-{n}",
            url=a["url"] if n % 2 else f"https://mirror.example/{prefix}/{n}",
        )
        for n, a in enumerate(originals)
    ]


async def publish(bootstrap: str, topic: str, records: list[dict | bytes]) -> None:
    """Each record keyed by its article id (an undecodable one by ``bad-N``), acks=all and
    idempotent: a send retried over a broker fault is not written twice."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        for n, record in enumerate(records):
            if isinstance(record, bytes):
                await producer.send(topic, record, key=f"bad-{n}".encode())
                continue
            article = RawArticle(fetched_at=time.time(), **record)
            await producer.send(topic, article.dumps(), key=record["article_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def described_partitions(bootstrap: str, topic: str) -> list[dict]:
    """The broker's description of each partition of ``topic`` (partition, leader, ...)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return described["partitions"]


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    return [
        TopicPartition(topic, p["partition"]) for p in await described_partitions(bootstrap, topic)
    ]


async def read_topic(bootstrap: str, topic: str) -> list[tuple[TopicPartition, int, bytes]]:
    """(partition, offset, value) of every record on ``topic`` now (read without a group)."""
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        for tp in partitions:  # explicit offsets: seek_to_beginning can lose a race
            consumer.seek(tp, start[tp])
        found = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                found.extend((tp, r.offset, r.value) for r in records if r.offset < end[tp])
        return found
    finally:
        await consumer.stop()


async def classified_ids(bootstrap: str, names: TopicNames) -> list[str]:
    """Every article id on the classified topic, copies included."""
    return [json.loads(v)["article_id"] for _, _, v in await read_topic(bootstrap, names.articles)]


@dataclass(frozen=True)
class Balance:
    published: int  # records on the raw topic
    classified: int  # distinct article ids on the classified topic
    duplicates: int  # published articles the story stage dropped
    dead_lettered: int  # distinct raw records on the dead-letter topic
    copies: int  # classified records beyond the first of each article (at least once)

    def __str__(self) -> str:
        return (
            f"published {self.published} = classified {self.classified} + duplicates "
            f"{self.duplicates} + dead-lettered {self.dead_lettered}; {self.copies} copies"
        )


async def article_balance(bootstrap: str, names: TopicNames, corpus: Corpus) -> Balance:
    """Count from the topics and check every term: the raw topic holds each published record
    once; each planted pair has exactly one article classified; nothing else is missing; each
    undecodable record is dead-lettered (once or more: distinct by its raw offset)."""
    raw = await read_topic(bootstrap, names.raw_articles)
    raw_ids = Counter(json.loads(v)["article_id"] for _, _, v in raw if v != UNDECODABLE)
    bad_offsets = {(tp.partition, offset) for tp, offset, v in raw if v == UNDECODABLE}
    assert len(raw) == corpus.records, f"{len(raw)} raw records, {corpus.records} published"
    assert set(raw_ids) == corpus.ids and max(raw_ids.values()) == 1
    classified = await classified_ids(bootstrap, names)
    kept = set(classified)
    assert kept <= corpus.ids, f"classified but never published: {sorted(kept - corpus.ids)}"
    both = [pair for pair in corpus.pairs if set(pair) <= kept]
    assert not both, f"both copies of an exact duplicate classified: {both}"
    dropped = corpus.ids - kept
    planted = {a for pair in corpus.pairs for a in pair}
    assert dropped <= planted, f"lost: {sorted(dropped - planted)[:10]}"
    letters = [json.loads(v) for _, _, v in await read_topic(bootstrap, names.deadletters)]
    dead = {
        (letter["partition"], letter["offset"])
        for letter in letters
        if letter["topic"] == names.raw_articles
    }
    assert dead == bad_offsets, f"dead letters of raw records {dead}, undecodable {bad_offsets}"
    balance = Balance(len(raw), len(kept), len(dropped), len(dead), len(classified) - len(kept))
    assert balance.published == balance.classified + balance.duplicates + balance.dead_lettered
    assert balance.duplicates == len(corpus.pairs) and balance.dead_lettered == corpus.undecodable
    return balance


def metrics_balance(metrics: dict[str, float], balance: Balance) -> None:
    """The same balance from a worker's /metrics (one that ran the whole drill): its dropped
    duplicates (same URL or text; a record read twice is ``redelivered``, not a duplicate)
    and its dead letters from the raw topic."""
    duplicates = sum(
        metrics.get(f"newsalert_articles_duplicate_total|reason={reason}", 0.0)
        for reason in ("same_url", "same_text")
    )
    dead = metrics.get("newsalert_dead_letters_total|stage=process-articles", 0.0)
    assert (duplicates, dead) == (balance.duplicates, balance.dead_lettered), (
        f"/metrics: {duplicates:.0f} duplicates, {dead:.0f} dead letters; topics: {balance}"
    )
    assert balance.published == balance.classified + duplicates + dead


@dataclass(frozen=True)
class OutboxBalance:
    due: int
    delivered: int
    failed: int
    dead_lettered: int

    def __str__(self) -> str:
        return (
            f"notifications due {self.due} = delivered {self.delivered} + failed "
            f"{self.failed} + dead-lettered {self.dead_lettered}"
        )


def outbox_balance(database: Path) -> OutboxBalance:
    """Read the state database's outbox once the drill is over: every notification that came
    due (rows not replaced by a later one of their group, nor folded into a digest) ended
    delivered, failed for good (a dead row whose last attempt failed) or dead-lettered (a
    dead row whose retries ran out); none is still pending."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT o.status, (SELECT outcome FROM delivery_attempts a WHERE a.message_id = "
            "o.message_id ORDER BY a.attempt DESC, a.id DESC LIMIT 1) FROM outbox o "
            "WHERE o.status NOT IN ('superseded', 'digested')"
        ).fetchall()
    outcomes = Counter(
        "delivered" if status == "delivered" else f"{status}:{last}" for status, last in rows
    )
    balance = OutboxBalance(
        due=len(rows),
        delivered=outcomes.pop("delivered", 0),
        failed=outcomes.pop("dead:failed", 0),
        dead_lettered=outcomes.pop("dead:dead", 0),
    )
    assert not outcomes, f"notifications neither delivered, failed nor dead-lettered: {outcomes}"
    assert balance.due == balance.delivered + balance.failed + balance.dead_lettered
    return balance


async def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records on ``topic`` that ``group`` has not committed yet (high watermark minus
    committed offset, summed over the partitions; a partition without a commit counts whole)."""
    partitions = await partitions_of(bootstrap, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await consumer.start()
    try:
        end = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    lag = 0
    for tp in partitions:
        meta = committed.get(tp)
        offset = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag += max(end[tp] - offset, 0)
    return lag
