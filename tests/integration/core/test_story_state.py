"""The story stage's state outlives its worker: with the embedded broker it comes back from
the data directory; a worker that loses the stage forgets its own copy and reads the state
topic again when it gets the stage back (another worker may have decided stories in between).
A worker taking over from one that stopped is tested end to end in tests/e2e/test_scaleout.py.

The stream app runs in this process against the embedded broker, as in test_spike_table.py.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.types import TP

from newsalert.broker import EmbeddedBroker
from newsalert.settings import load_settings
from streams.app import create_app
from streams.classify.taxonomy import load_taxonomy
from streams.pipeline import ArticleProcessor
from streams.records import RawArticle
from streams.stories.stage import encode_entries
from streams.topics import TopicNames, ensure_topics
from tests.conftest import eventually

NAMES = TopicNames("story-state")  # the app id of these tests' workers

WIRE = (
    "The U.S. Treasury Department on Thursday sanctioned 10 more Venezuelan officials, "
    "including several government ministers, who it said were involved in corruption and "
    "undermining last month's regional elections. The officials were added to a list of "
    "individuals whose assets in the United States are frozen and with whom Americans are "
    "barred from doing business, the Treasury said in a statement."
)


def raw(article_id: str, body: str = WIRE, url: str | None = None) -> dict:
    return {
        "article_id": article_id,
        "url": url or f"https://news.example/{article_id}",
        "title": "U.S. blacklists 10 Venezuelans for corruption",
        "body": body,
        "source": "wire",
        "feed_url": None,
        "published": time.time(),
    }


class Classified:
    """Reads the classified topic: article id -> story id."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.stories: dict[str, str] = {}

    async def __aenter__(self) -> Classified:
        self.consumer = AIOKafkaConsumer(
            NAMES.articles,
            bootstrap_servers=self.bootstrap_servers,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        await self.consumer.start()
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self.consumer:
            value = json.loads(message.value)
            self.stories[value["article_id"]] = value["story_id"]

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()


async def publish(bootstrap_servers: str, *articles: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for article in articles:
            value = RawArticle(**article).dumps()
            await producer.send_and_wait(
                NAMES.raw_articles, value, key=article["article_id"].encode()
            )
    finally:
        await producer.stop()


async def start_app(tmp_path, broker, persist_state=False):
    settings = load_settings(None, data_dir=tmp_path, app_id=NAMES.app_id)
    await ensure_topics(broker.bootstrap_servers, settings.app_id, settings.partitions)
    app = create_app(settings, broker.url, persist_state=persist_state)
    await app.start()
    return app


async def test_with_the_embedded_broker_the_story_state_survives_in_the_data_dir(
    tmp_path, embedded_broker
):
    """`newsalert run` starts a new, empty embedded broker each time: the state comes back
    from DATA_DIR/story-state.jsonl."""
    async with Classified(embedded_broker.bootstrap_servers) as out:
        app = await start_app(tmp_path, embedded_broker, persist_state=True)
        try:
            await publish(embedded_broker.bootstrap_servers, raw("wire-1"))
            await eventually(lambda: "wire-1" in out.stories, 30, "the first copy")
        finally:
            await app.stop()
    assert (tmp_path / "story-state.jsonl").exists()

    fresh = EmbeddedBroker()
    await fresh.start()
    try:
        async with Classified(fresh.bootstrap_servers) as out:
            again = await start_app(tmp_path, fresh, persist_state=True)
            try:
                copy = raw("portal-1", body=f"Related: our sanctions tracker. {WIRE} Copyright.")
                mirror = raw("mirror-1", url="https://mirror.example/1")
                last = raw("after-1", body="Unrelated weather news.")
                await publish(fresh.bootstrap_servers, mirror, copy, last)
                await eventually(lambda: "after-1" in out.stories, 30, "the later articles")
            finally:
                await again.stop()
    finally:
        fresh.stop()
    assert out.stories["portal-1"] == "wire-1"
    assert "mirror-1" not in out.stories


async def test_a_worker_that_loses_the_story_stage_reads_the_state_again(tmp_path, embedded_broker):
    servers = embedded_broker.bootstrap_servers
    async with Classified(servers) as out:
        app = await start_app(tmp_path, embedded_broker)
        try:
            await publish(servers, raw("wire-1"))
            await eventually(lambda: "wire-1" in out.stories, 30, "the first copy")
            # The stage moves away; meanwhile another worker decides a story of its own ...
            await app.on_partitions_revoked.send({TP(NAMES.prepared, 0)})
            elsewhere = ArticleProcessor(load_taxonomy(None))
            decided = elsewhere.process(raw("other-1", body=OTHER), time.time())
            producer = AIOKafkaProducer(bootstrap_servers=servers)
            await producer.start()
            try:
                await producer.send_and_wait(
                    NAMES.story_state,
                    encode_entries([decided.state_entry]),
                    partition=0,
                )
            finally:
                await producer.stop()
            # ... and when the stage comes back here, a copy of that story joins it.
            await publish(servers, raw("copy-1", body=f"Read more below. {OTHER} Copyright."))
            await eventually(lambda: "copy-1" in out.stories, 30, "the copy")
        finally:
            await app.stop()
    assert out.stories["copy-1"] == "other-1"


OTHER = (
    "North Korea called on Friday for a halt to what it called brutal sanctions, saying the "
    "measures imposed after its latest nuclear test violated the human rights of its people, "
    "especially women and children, and amounted to genocide. The sanctions, approved by the "
    "United Nations Security Council, were an attempt to undermine the country's economy."
)
