"""A restarted worker resumes its spike baselines from the Faust table's changelog topic.

Two runs of the stream app against one broker (each kind): the first counts articles and
writes each key's detector state to the ``spike-state`` table; the second, a new process's
worth of objects with an empty detector, recovers the table from its changelog.
"""

from __future__ import annotations

import json
import time

from aiokafka import AIOKafkaProducer
from faust.types import TP

from newsalert.settings import load_settings
from streams.app import build_detector, create_app
from streams.spikes.agent import hit_records
from streams.spikes.hits import story_ref
from streams.topics import TopicNames, ensure_topics
from tests.conftest import eventually


def article(i: int, now: float) -> dict:
    return {
        "article_id": f"a{i}",
        "url": f"https://news.example/{i}",
        "title": f"Story {i}",
        "text": "text",
        "source": "wire",
        "published": now - 1200 * (i % 3),  # in the last hour or two: none late
        "story_id": f"s{i}",
        "topics": {"sanctions": {"score": 2.0, "terms": [{"term": "sanctions"}]}},
    }


async def send_hits(producer: AIOKafkaProducer, settings, classified: dict) -> None:
    """The topic hits of a classified article, as the story stage sends them."""
    for key, value in hit_records(classified, {}):
        await producer.send_and_wait(
            TopicNames(settings.app_id).topic_hits, value, key=key.encode()
        )


def hour_buckets(state: dict | None) -> list[dict]:
    """The open buckets of a key's hour width (each width counts every article once)."""
    return list(state["lanes"]["3600"]["buckets"].values()) if state else []


def articles_counted(state: dict | None) -> int:
    return sum(bucket["articles"] for bucket in hour_buckets(state))


async def start_app(settings, broker):
    await ensure_topics(broker.bootstrap_servers, settings.app_id, settings.partitions)
    app = create_app(settings, broker.url)
    # A fresh detector: whatever it knows after the start came through the table.
    assert not app.detector.knows("sanctions")
    await app.start()
    return app, app.tables["spike-state"]


async def test_table_changelog_restores_baselines_after_a_worker_restart(tmp_path, broker):
    settings = load_settings(None, data_dir=tmp_path, **broker.settings())
    app, table = await start_app(settings, broker)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        now = time.time()
        try:
            for i in range(10):
                await send_hits(producer, settings, article(i, now))
        finally:
            await producer.stop()
        # All ten counted (not just the first batch) and in the table, before the stop: what
        # the restarted app recovers is then this state, not one the stop cut short.
        await eventually(
            lambda: (
                articles_counted(table.data.get("sanctions")) == 10
                and table.data["sanctions"] == app.detector.key_state("sanctions")
            ),
            30,
            "all ten hits in the table",
        )
        written = json.loads(json.dumps(table.data["sanctions"]))
    finally:
        await app.stop()

    again, recovered = await start_app(settings, broker)
    try:
        # Its baselines are back, as the changelog carried them (JSON). The changelog
        # holds every update of the key, replayed in order (Kafka: over several fetches).
        await eventually(
            lambda: json.loads(json.dumps(recovered.data.get("sanctions"))) == written,
            30,
            "the last written state recovered",
        )
    finally:
        await again.stop()


def story_ids(state: dict | None) -> set[str]:
    return {s for bucket in hour_buckets(state) for s in bucket["story_ids"]}


async def test_a_key_that_moved_away_is_counted_from_the_table_when_it_comes_back(tmp_path, broker):
    """A worker that loses a key's partition forgets its copy: when the key comes back, its
    state is what the table recovered (what the other worker counted), not the old copy."""
    settings = load_settings(None, data_dir=tmp_path, **broker.settings())
    names = TopicNames(settings.app_id)
    app, table = await start_app(settings, broker)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()

    async def send(number: int) -> None:
        await send_hits(
            producer, settings, dict(article(number, time.time()), published=time.time())
        )

    try:
        for number in range(3):
            await send(number)
        await eventually(
            lambda: len(story_ids(table.data.get("sanctions"))) == 3,
            30,
            "three stories counted",
        )
        # The partition moves to another worker, which counts six stories of its own; when it
        # comes back, Faust has recovered the table from the changelog.
        await app.on_partitions_revoked.send({TP(names.topic_hits, 0)})
        elsewhere = build_detector(settings, ["sanctions"])
        for number in range(100, 106):
            counted = dict(article(number, time.time()), published=time.time())
            elsewhere.observe("sanctions", story_ref(counted), ["sanctions"])
        table.data["sanctions"] = elsewhere.key_state("sanctions")

        await send(3)
        await eventually(
            lambda: "s3" in story_ids(table.data["sanctions"]), 30, "the next story counted"
        )
    finally:
        await producer.stop()
        await app.stop()
    assert story_ids(table.data["sanctions"]) == {f"s{n}" for n in [*range(100, 106), 3]}
