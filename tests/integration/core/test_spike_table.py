"""A restarted worker resumes its spike baselines from the Faust table's changelog topic.

Two runs of the stream app against one embedded broker: the first counts articles and writes
each key's detector state to the ``spike-state`` table; the second, a new process's worth of
objects with an empty detector, recovers the table from its changelog.
"""

from __future__ import annotations

import json
import time

from aiokafka import AIOKafkaProducer
from faust.types import TP

from newsalert.settings import load_settings
from streams.app import build_detector, create_app
from streams.spikes.hits import story_ref
from streams.topics import TOPICS, ensure_topics
from tests.conftest import eventually


def article(i: int, now: float) -> dict:
    return {
        "article_id": f"a{i}",
        "url": f"https://news.example/{i}",
        "title": f"Story {i}",
        "text": "text",
        "source": "wire",
        "published": now - 3600 * (i % 5),
        "story_id": f"s{i}",
        "topics": {"sanctions": {"score": 2.0, "terms": [{"term": "sanctions"}]}},
    }


async def start_app(settings, broker):
    await ensure_topics(broker.bootstrap_servers, settings.app_id, settings.partitions)
    app = create_app(settings, broker.url)
    await app.start()
    return app, app.tables["spike-state"]


async def test_table_changelog_restores_baselines_after_a_worker_restart(tmp_path, embedded_broker):
    settings = load_settings(None, data_dir=tmp_path, app_id="table-restart")
    app, table = await start_app(settings, embedded_broker)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=embedded_broker.bootstrap_servers)
        await producer.start()
        now = time.time()
        try:
            for i in range(10):
                value = json.dumps(article(i, now)).encode()
                await producer.send_and_wait(TOPICS.articles, value, key=f"a{i}".encode())
        finally:
            await producer.stop()
        await eventually(lambda: table.data.get("sanctions") is not None, 30, "state in the table")
        await eventually(
            lambda: table.data["sanctions"] == app.detector.key_state("sanctions"), 10, "all hits"
        )
        written = json.loads(json.dumps(table.data["sanctions"]))
    finally:
        await app.stop()

    again, recovered = await start_app(settings, embedded_broker)
    try:
        assert not again.detector.knows("sanctions")  # a fresh detector ...
        await eventually(lambda: recovered.data.get("sanctions") is not None, 30, "recovery")
        # ... and its baselines are back, as the changelog carried them (JSON).
        assert json.loads(json.dumps(recovered.data["sanctions"])) == written
    finally:
        await again.stop()


def story_ids(state: dict) -> set[str]:
    return {s for bucket in state["buckets"].values() for s in bucket["story_ids"]}


async def test_a_key_that_moved_away_is_counted_from_the_table_when_it_comes_back(
    tmp_path, embedded_broker
):
    """A worker that loses a key's partition forgets its copy: when the key comes back, its
    state is what the table recovered (what the other worker counted), not the old copy."""
    settings = load_settings(None, data_dir=tmp_path, app_id="table-move")
    app, table = await start_app(settings, embedded_broker)
    producer = AIOKafkaProducer(bootstrap_servers=embedded_broker.bootstrap_servers)
    await producer.start()

    async def send(number: int) -> None:
        value = dict(article(number, time.time()), published=time.time())
        await producer.send_and_wait(
            TOPICS.articles, json.dumps(value).encode(), key=f"a{number}".encode()
        )

    try:
        for number in range(3):
            await send(number)
        await eventually(
            lambda: len(story_ids(table.data.get("sanctions") or {"buckets": {}})) == 3,
            30,
            "three stories counted",
        )
        # The partition moves to another worker, which counts six stories of its own; when it
        # comes back, Faust has recovered the table from the changelog.
        await app.on_partitions_revoked.send({TP(TOPICS.topic_hits, 0)})
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
