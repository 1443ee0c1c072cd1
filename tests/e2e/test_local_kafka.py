"""`newsalert run --broker local-kafka`: the service starts the Apache Kafka under
DATA_DIR/kafka when it is not running and stops it on the way out; one that `newsalert kafka
start` started is used and left running, and it still holds the first run's articles."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from newsalert.demo import dated
from newsalert.localkafka import KAFKA_VERSION, LocalKafka, has_cluster, local_kafka_dir
from newsalert.localservers import load_demo_articles
from streams.topics import TopicNames
from tests.conftest import KAFKA_SETTINGS
from tests.e2e.test_pipeline import _eventually_async, start_service, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.only_broker("kafka")]
NEWSALERT = Path(sys.executable).with_name("newsalert")
LOCAL_KAFKA = {
    "NEWSALERT_BROKER": "local-kafka",
    **{f"NEWSALERT_{k.upper()}": str(v) for k, v in KAFKA_SETTINGS.items()},
}


@pytest.fixture
def data_dir(tmp_path: Path):
    data = tmp_path / "data"
    yield data
    if has_cluster(local_kafka_dir(data)):
        LocalKafka(local_kafka_dir(data)).stop()


async def raw_articles(bootstrap: str, at_least: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        TopicNames().raw_articles, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < at_least:
                batch = await consumer.getmany(timeout_ms=500)
                values += [r.value for records in batch.values() for r in records]
        values += [
            r.value
            for records in (await consumer.getmany(timeout_ms=500)).values()
            for r in records
        ]
    finally:
        await consumer.stop()
    return values


async def test_run_starts_and_stops_local_kafka_and_leaves_a_running_one_running(
    tmp_path, servers, data_dir
):
    feeds, receiver, smtp = servers
    sport = dated(load_demo_articles("sport"), time.time())
    feeds.set_feed("/sport.xml", "Sport Wire", sport)
    feeds.set_feed("/tech.xml", "Telecom Wire", [])
    config = write_config(tmp_path, feeds, receiver, smtp)
    kafka = LocalKafka(local_kafka_dir(data_dir))

    service = await start_service(config, data_dir, **LOCAL_KAFKA)
    try:
        started = service.find(
            rf"Apache Kafka {KAFKA_VERSION} \(local-kafka\) on (127\.0\.0\.1:\d+), started for "
            r"this run: durable"
        )
        assert started, "\n".join(service.lines)

        async def processed() -> bool:
            metrics = await service.metrics()
            return metrics.get("newsalert_articles_processed_total", 0) >= len(sport)

        await _eventually_async(processed, 30, "sport entries processed")
        assert kafka.running()
    finally:
        assert await service.stop() == 0
    assert not kafka.running(), "stopped with the run that started it"

    process = await asyncio.create_subprocess_exec(
        str(NEWSALERT), "kafka", "start", "--data-dir", str(data_dir)
    )
    assert await asyncio.wait_for(process.wait(), 120) == 0
    again = await start_service(config, data_dir, **LOCAL_KAFKA)
    try:
        assert again.find(f"{started.group(1)}, already running, left running"), again.lines
        # Durable: the first run's articles are on the raw topic still, once each.
        assert len(await raw_articles(started.group(1), len(sport))) == len(sport)
    finally:
        assert await again.stop() == 0
    assert kafka.running(), "left running: this run did not start it"
