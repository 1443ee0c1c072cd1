"""`newsalert feeds backfill` publishes JSON Lines articles to the raw topic of a real broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.identity import article_id
from newsalert.cli import main
from newsalert.localkafka import LocalKafka, local_kafka_dir
from streams.records import RawArticle
from streams.topics import TopicNames


async def test_backfill_publishes_each_article_once(broker, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEWSALERT_APP_ID", broker.app_id)
    raw_topic = TopicNames(broker.app_id).raw_articles
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(raw_topic, 1, 1)])
    finally:
        await admin.close()
    lines = tmp_path / "cnbc.jsonl"
    lines.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"cnbc-{n}",
                    "title": f"Headline {n}",
                    "text": "A sentence.",
                    "url": f"https://cnbc.test/{n}",
                    "source": "CNBC",
                    "published": "2020-07-17T23:51:00Z",
                }
            )
            for n in range(3)
        )
    )
    argv = [
        "feeds",
        "backfill",
        str(lines),
        "--broker",
        broker.url,
        "--data-dir",
        str(tmp_path),
    ]
    assert await asyncio.to_thread(main, argv) == 0
    assert f"{lines}: jsonl, 3 entries, 3 published" in capsys.readouterr().out
    assert await asyncio.to_thread(main, argv) == 0, "a second run is fine ..."
    assert f"{lines}: jsonl, 3 entries, 0 published" in capsys.readouterr().out  # ... and idle

    consumer = AIOKafkaConsumer(
        raw_topic,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(15):
            records = [await consumer.getone() for _ in range(3)]
        assert await consumer.getmany(timeout_ms=500) == {}, "nothing was published twice"
    finally:
        await consumer.stop()
    articles = [RawArticle.loads(record.value) for record in records]
    assert [a.article_id for a in articles] == [
        article_id(url=f"https://cnbc.test/{n}") for n in range(3)
    ]
    assert {(a.source, a.published, a.published_is_fetch_time) for a in articles} == {
        ("CNBC", 1595029860.0, False)
    }


@pytest.mark.only_broker("kafka")
async def test_backfill_to_local_kafka_starts_it_for_the_backfill_and_stops_it_after(tmp_path):
    lines = tmp_path / "wire.jsonl"
    lines.write_text(
        "\n".join(
            json.dumps({"id": f"w{n}", "title": f"Wire {n}", "text": "Text.", "source": "Wire"})
            for n in range(3)
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("newsalert")),
        *("feeds", "backfill", str(lines), "--broker", "local-kafka"),
        *("--data-dir", str(tmp_path / "data")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, err.decode()
    assert f"{lines}: jsonl, 3 entries, 3 published" in out.decode()
    kafka = LocalKafka(local_kafka_dir(tmp_path / "data"))
    said = [line for line in err.decode().splitlines() if line.startswith("newsalert")]
    assert said == [
        f"newsalert feeds backfill: started Apache Kafka (local-kafka) on {kafka.url}; "
        "stopped after the backfill"
    ]
    assert not kafka.running()

    async with kafka:  # started again: the backfilled articles are there
        consumer = AIOKafkaConsumer(
            TopicNames().raw_articles,
            bootstrap_servers=kafka.bootstrap_servers,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                records = [await consumer.getone() for _ in range(3)]
        finally:
            await consumer.stop()
    assert sorted(RawArticle.loads(r.value).title for r in records) == [
        "Wire 0",
        "Wire 1",
        "Wire 2",
    ]
