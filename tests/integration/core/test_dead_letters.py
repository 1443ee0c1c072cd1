"""A record an agent can never process goes to the dead-letter topic with its error, and the
agent goes on with the next one: the stream app on the embedded broker."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from alerts import agent as alert_agent
from newsalert.settings import load_settings
from streams.app import create_app
from streams.pipeline import ArticleProcessor
from streams.records import DeadLetter, decode_prepared
from streams.topics import TopicNames, ensure_topics
from tests.conftest import eventually, sample_spike

TOPICS = TopicNames()  # the default app id


def raw_article(article_id: str) -> bytes:
    return json.dumps(
        {
            "article_id": article_id,
            "url": f"https://news.example/{article_id}",
            "title": f"Germany weighs a Huawei 5G ban ({article_id})",
            "body": "Huawei equipment in German 5G networks is a national security risk.",
            "source": "wire",
            "feed_url": None,
            "published": time.time(),
        }
    ).encode()


class TopicReader:
    """Every record of some topics from the beginning, collected as they arrive."""

    def __init__(self, bootstrap_servers: str, *topics: str) -> None:
        self.consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
        )
        self.records: list = []

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for record in self.consumer:
            self.records.append(record)

    async def __aexit__(self, *exc_info: object) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    def of(self, topic: str) -> list:
        return [r for r in self.records if r.topic == topic]

    def dead_letters(self) -> list[DeadLetter]:
        return [DeadLetter.loads(r.value) for r in self.of(TOPICS.deadletters)]

    def keys(self, topic: str) -> list[bytes]:
        return [r.key for r in self.of(topic)]


class Sink:
    """The dispatcher's part the alert agent uses."""

    def __init__(self) -> None:
        self.accepted: list[dict] = []

    async def accept(self, spike: dict) -> int:
        self.accepted.append(spike)
        return 1


@pytest.fixture
async def stream_app(tmp_path, embedded_broker):
    settings = load_settings(None, data_dir=tmp_path)  # the default app id: TOPICS
    await ensure_topics(embedded_broker.bootstrap_servers, settings.app_id, settings.partitions)
    app = create_app(settings, embedded_broker.url)
    app.sink = Sink()
    alert_agent.register(app, app.spikes_topic, app.sink)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def producer(embedded_broker):
    producer = AIOKafkaProducer(bootstrap_servers=embedded_broker.bootstrap_servers)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def dead_letters_counted(stage: str) -> float:
    return REGISTRY.get_sample_value("newsalert_dead_letters_total", {"stage": stage}) or 0.0


async def test_a_payload_that_does_not_decode_is_a_dead_letter_and_the_next_is_processed(
    stream_app, producer, embedded_broker
):
    before = dead_letters_counted("process-articles")
    async with TopicReader(
        embedded_broker.bootstrap_servers, TOPICS.deadletters, TOPICS.articles
    ) as topics:
        await producer.send_and_wait(TOPICS.raw_articles, b"<html>not json", key=b"bad")
        await producer.send_and_wait(TOPICS.raw_articles, raw_article("a2"), key=b"a2")
        await eventually(lambda: b"a2" in topics.keys(TOPICS.articles), what="a2 classified")
        await eventually(lambda: topics.dead_letters(), what="a dead letter")
    (letter,) = topics.dead_letters()
    assert letter.stage == "process-articles"
    assert (letter.topic, letter.partition, letter.offset) == (TOPICS.raw_articles, 0, 0)
    assert (letter.key, letter.value, letter.value_encoding) == ("bad", "<html>not json", "utf-8")
    assert letter.error.startswith("UndecodableRecord: not JSON: unexpected character")
    assert abs(letter.failed_at - time.time()) < 60
    assert dead_letters_counted("process-articles") == before + 1


@pytest.mark.parametrize(
    ("step", "stage"), [("prepare", "process-articles"), ("decide", "assign-stories")]
)
async def test_an_exception_in_the_processing_code_is_a_dead_letter_and_the_stream_goes_on(
    stream_app, producer, embedded_broker, monkeypatch, step, stage
):
    """A bug in a worker's preparation, or in the story stage's decision: the article alone
    goes to the dead letters (the story stage reads batches of prepared articles; its dead
    letter carries only the article that failed, so a replay brings back only that one)."""
    original = getattr(ArticleProcessor, step)

    def buggy(self, article, *args):
        if article["article_id"] == "boom":
            raise ZeroDivisionError("division by zero")
        return original(self, article, *args)

    monkeypatch.setattr(ArticleProcessor, step, buggy)
    async with TopicReader(
        embedded_broker.bootstrap_servers, TOPICS.deadletters, TOPICS.articles
    ) as topics:
        for article_id in ("boom", "a2"):
            value = raw_article(article_id)
            await producer.send_and_wait(TOPICS.raw_articles, value, key=article_id.encode())
        await eventually(lambda: b"a2" in topics.keys(TOPICS.articles), what="a2 classified")
        await eventually(lambda: topics.dead_letters(), what="a dead letter")
    (letter,) = topics.dead_letters()
    assert letter.stage == stage
    assert letter.error == "ZeroDivisionError: division by zero"
    if stage == "process-articles":
        assert (letter.topic, letter.key, letter.offset) == (TOPICS.raw_articles, "boom", 0)
        assert json.loads(letter.value)["article_id"] == "boom"
    else:
        assert letter.topic == TOPICS.prepared
        assert [a["article_id"] for a in decode_prepared(letter.original_value())] == ["boom"]
    assert b"boom" not in topics.keys(TOPICS.articles)


@pytest.mark.parametrize(
    ("topic", "stage"),
    [
        (TOPICS.topic_hits, "detect-spikes"),
        (TOPICS.spikes, "alert"),
    ],
)
async def test_every_agent_sends_what_it_cannot_decode_to_the_dead_letters(
    stream_app, producer, embedded_broker, topic, stage
):
    async with TopicReader(embedded_broker.bootstrap_servers, TOPICS.deadletters) as topics:
        await producer.send_and_wait(topic, b"\xff\xfe binary", key=b"k")
        await eventually(lambda: topics.dead_letters(), what="a dead letter")
    (letter,) = topics.dead_letters()
    assert (letter.stage, letter.topic, letter.key) == (stage, topic, "k")
    assert letter.value_encoding == "base64" and letter.original_value() == b"\xff\xfe binary"


async def test_the_alert_agent_accepts_the_spike_after_a_dead_letter(
    stream_app, producer, embedded_broker
):
    spike = sample_spike()
    async with TopicReader(embedded_broker.bootstrap_servers, TOPICS.deadletters) as topics:
        await producer.send_and_wait(TOPICS.spikes, json.dumps({"topic": "x"}).encode())
        await producer.send_and_wait(TOPICS.spikes, json.dumps(spike).encode())
        await eventually(lambda: stream_app.sink.accepted, what="the spike accepted")
        await eventually(lambda: topics.dead_letters(), what="a dead letter")
    assert stream_app.sink.accepted[0]["spike_id"] == spike["spike_id"]
    (letter,) = topics.dead_letters()
    assert letter.stage == "alert" and letter.error.startswith("UndecodableRecord: not a Spike")
