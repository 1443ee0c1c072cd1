"""A restarted worker resumes its spike baselines from the Faust table's changelog topic.

Two runs of the stream app against one broker (each kind): the first counts articles and
writes each key's detector state to the ``spike-state`` table; the second, a new process's
worth of objects with an empty detector, recovers the table from its changelog.
"""

from __future__ import annotations

import json
import time

from aiokafka import AIOKafkaProducer

from newsalert.settings import load_settings
from streams.app import create_app
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


def articles_counted(state: dict | None) -> int:
    return sum(bucket["articles"] for bucket in state["buckets"].values()) if state else 0


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
                value = json.dumps(article(i, now)).encode()
                await producer.send_and_wait(
                    TopicNames(settings.app_id).articles, value, key=f"a{i}".encode()
                )
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
