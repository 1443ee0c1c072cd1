"""What Apache Kafka adds to the processing guarantees: the connectors' idempotent producer,
and stream workers under processing_guarantee: exactly_once (Kafka transactions, consumers
reading committed records only). The embedded broker has neither: there the connectors send
plainly."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from alerts import agent as alert_agent
from connectors.runtime import build_poller
from newsalert.localkafka import LocalKafka
from newsalert.settings import load_settings
from streams.app import create_app
from streams.records import DeadLetter, RawArticle
from streams.topics import TopicNames, ensure_topics
from tests.conftest import eventually, sample_spike
from tests.integration.core.test_dead_letters import Sink, raw_article

TOPICS = TopicNames()  # the default app id

# Apache Kafka refuses session timeouts under group.min.session.timeout.ms (6 s).
KAFKA_SETTINGS: dict = {}  # the defaults work on Apache Kafka


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    """One Apache Kafka node for this module (its JVM does not need the test's event loop)."""
    local = LocalKafka(tmp_path_factory.mktemp("kafka"))
    asyncio.run(local.start())
    try:
        yield local
    finally:
        local.stop()


def article(article_id: str) -> RawArticle:
    return RawArticle(
        article_id=article_id,
        url=None,
        title="t",
        body="b",
        source=None,
        feed_url=None,
        published=0.0,
    )


async def read_committed(bootstrap_servers: str, topic: str, *keys: bytes) -> list:
    """The records of ``topic`` with these keys that a read_committed consumer sees, once it
    sees them all (the module's Kafka is shared: other tests' records are there too)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    records: list = []
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while {r.key for r in records} < set(keys):
                batch = await consumer.getmany(timeout_ms=500)
                records += [r for rs in batch.values() for r in rs if r.key in keys]
    finally:
        await consumer.stop()
    return records


async def test_the_connectors_publish_with_an_idempotent_producer_on_kafka(kafka, tmp_path):
    settings = load_settings(None, data_dir=tmp_path, broker=kafka.url, **KAFKA_SETTINGS)
    await ensure_topics(kafka.bootstrap_servers, settings.app_id, settings.partitions)
    runtime = await build_poller(settings, kafka.bootstrap_servers)
    try:
        await runtime.publisher.publish(article("a1"))
        # Kafka gave the producer an id: its sends carry sequence numbers the broker checks.
        assert runtime.publisher.producer_id is not None
    finally:
        await runtime.close()
    (record,) = await read_committed(kafka.bootstrap_servers, TOPICS.raw_articles, b"a1")
    assert RawArticle.loads(record.value) == article("a1")


async def test_the_connectors_publish_plainly_on_the_embedded_broker(embedded_broker, tmp_path):
    """Tansu answers InitProducerId with an error: an idempotent producer could send nothing."""
    settings = load_settings(None, data_dir=tmp_path)  # no broker: the embedded one
    runtime = await build_poller(settings, embedded_broker.bootstrap_servers)
    try:
        async with asyncio.timeout(20):
            await runtime.publisher.publish(article("a1"))
        assert runtime.publisher.producer_id is None
    finally:
        await runtime.close()


async def test_a_stream_app_with_exactly_once_processes_records_in_transactions(kafka, tmp_path):
    settings = load_settings(
        None,
        data_dir=tmp_path,
        app_id="exactly-once",
        broker=kafka.url,
        processing_guarantee="exactly_once",
        **KAFKA_SETTINGS,
    )
    await ensure_topics(kafka.bootstrap_servers, settings.app_id, settings.partitions)
    names = TopicNames(settings.app_id)
    app = create_app(settings, kafka.url)
    sink = Sink()
    alert_agent.register(app, app.spikes_topic, sink)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await app.start()
    await producer.start()
    try:
        assert app.in_transaction
        ids = [f"eo{i}" for i in range(5)]
        for article_id in ids[:2]:
            value = raw_article(article_id)
            await producer.send_and_wait(names.raw_articles, value, key=article_id.encode())
        await producer.send_and_wait(names.raw_articles, b"not json", key=b"bad")
        for article_id in ids[2:]:
            value = raw_article(article_id)
            await producer.send_and_wait(names.raw_articles, value, key=article_id.encode())
        keys = [article_id.encode() for article_id in ids]
        classified = await read_committed(kafka.bootstrap_servers, names.articles, *keys)
        (dead,) = await read_committed(kafka.bootstrap_servers, names.deadletters, b"bad")
        await producer.send_and_wait(names.spikes, json.dumps(sample_spike()).encode())
        await eventually(lambda: sink.accepted, 60, "a spike through the alert agent")
        # Output and offsets went through the transactional producer of the one partition.
        assert f"{settings.app_id}-0-0" in app.producer._transaction_producers
    finally:
        await producer.stop()
        await app.stop()
    assert sorted(json.loads(r.value)["article_id"] for r in classified) == ids
    letter = DeadLetter.loads(dead.value)
    assert (letter.stage, letter.value) == ("process-articles", "not json")
    assert time.time() - letter.failed_at < 120
