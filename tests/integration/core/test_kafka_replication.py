"""On a three-node Apache Kafka cluster, newsalert's topics are replicated to all three nodes,
so losing one node loses no record and stops neither producing nor consuming."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.topics import TopicNames, ensure_topics
from tests.conftest import new_app_id

pytestmark = pytest.mark.only_broker("kafka")


async def describe(bootstrap: str, topics: list[str]) -> list[dict]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.describe_topics(topics)
    finally:
        await admin.close()


async def test_topics_get_three_replicas_and_records_survive_losing_a_node(kafka_cluster3):
    bootstrap = kafka_cluster3.bootstrap_servers
    names = TopicNames(new_app_id())
    await ensure_topics(bootstrap, names.app_id, partitions=2)
    wanted = names.all(partitions=2)
    described: list[dict] = []

    async def all_partitions_known() -> bool:
        # Each node learns of new topics from the controller on its own time: the node asked
        # here may not know yet what the one ensure_topics asked knew.
        described[:] = await describe(bootstrap, list(wanted))
        return sum(len(topic["partitions"]) for topic in described) == sum(
            count for count, _ in wanted.values()
        )

    deadline = asyncio.get_running_loop().time() + 30
    while not await all_partitions_known():
        assert asyncio.get_running_loop().time() < deadline, described
        await asyncio.sleep(0.1)
    replicas = {
        (topic["topic"], partition["partition"]): sorted(partition["replicas"])
        for topic in described
        for partition in topic["partitions"]
    }
    assert len(replicas) == sum(count for count, _ in wanted.values())
    assert set(map(tuple, replicas.values())) == {(1, 2, 3)}

    topic = names.raw_articles
    (raw,) = [t for t in described if t["topic"] == topic]
    leader = next(p["leader"] for p in raw["partitions"] if p["partition"] == 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=30000)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"before {i}".encode(), partition=i % 2)
        kafka_cluster3.kill_node(leader)  # SIGKILL: no controlled shutdown, no handover
        try:
            async with asyncio.timeout(60):
                for i in range(10):
                    await producer.send_and_wait(topic, f"after {i}".encode(), partition=i % 2)
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
            )
            await consumer.start()
            try:
                values: list[bytes] = []
                async with asyncio.timeout(60):
                    while len(values) < 20:
                        batch = await consumer.getmany(timeout_ms=1000)
                        values += [r.value for records in batch.values() for r in records]
            finally:
                await consumer.stop()
        finally:
            await kafka_cluster3.restart_node(leader)  # the next test gets three nodes
    finally:
        await producer.stop()
    expected = {f"{when} {i}".encode() for when in ("before", "after") for i in range(10)}
    assert sorted(values) == sorted(expected)
