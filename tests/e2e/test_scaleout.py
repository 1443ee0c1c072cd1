"""Several `newsalert streams` workers on one broker decide what one worker decides: the same
story ids, the same duplicates dropped, the same spike and alert; and a worker that stops
hands story assignment to another without losing or repeating anything.

The burst is five real Reuters wire stories (tests/data/syndicated.jsonl: rows of
../shared/data/articles/reuters-fulltext.jsonl), each published four times as feeds carry
syndicated copy: the wire's own, a portal's with a related-coverage line and a footer, an
aggregator's cut short with a "continue reading" line and its name in the title, and a
mirror's with the wire's exact text under another URL (an exact duplicate). Raw articles are
keyed by article id, so with two partitions the copies of a story are spread over both.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from newsalert.demo import DEMO_SECRET
from newsalert.localservers import WebhookReceiver
from streams.records import RawArticle
from streams.topics import TopicNames, ensure_topics
from tests.conftest import Broker, eventually, new_app_id
from tests.e2e.test_pipeline import NEWSALERT, RunningService

pytestmark = pytest.mark.e2e
STORIES = Path(__file__).parents[1] / "data" / "syndicated.jsonl"
PARTITIONS = 2
COPIES = ("wire", "portal", "aggregator", "mirror")


def copies(number: int, story: dict, published: float) -> list[dict]:
    """The four copies of one story, as connectors publish them (RawArticle fields)."""
    title, text = story["title"], story["text"]
    sentences = text.split(". ")
    cut = ". ".join(sentences[: max(3, len(sentences) * 2 // 3)])
    bodies = {
        "wire": (title, text),
        "portal": (
            title,
            f"{sentences[0]}. Related coverage: our sanctions tracker, updated every day. "
            f"{'. '.join(sentences[1:])}\n\nCopyright 2017 Portal News. All rights reserved.",
        ),
        "aggregator": (f"{title} - News Aggregator", f"{cut}. Continue reading on the source site"),
        "mirror": (title, text),
    }
    return [
        {
            "article_id": f"{kind}-{number}",
            "url": f"https://{kind}.example/{number}/{story['id']}",
            "title": bodies[kind][0],
            "body": bodies[kind][1],
            "source": kind,
            "feed_url": f"https://{kind}.example/feed.xml",
            "published": published + number,
        }
        for kind in COPIES
    ]


def burst() -> tuple[list[list[dict]], dict[str, str]]:
    """Waves of raw articles, and the story id each article that is not a duplicate gets.

    The first copy of each story goes out (and is decided) before the others, so the story is
    named after it (``wire-N``) however the partitions interleave. Four stories and their copies
    come first: sanctions counts 4 stories, no spike. The fifth story makes 5: a spike starts.
    Were copies counted as stories of their own, it would start early and escalate.
    """
    stories = [json.loads(line) for line in STORIES.read_text().splitlines()]
    hour = int(time.time() // 3600) * 3600  # one bucket: the spike counts all five
    by_story = [copies(n, story, hour + 10 * n) for n, story in enumerate(stories)]
    waves = [
        [c[0] for c in by_story[:4]],
        [a for c in by_story[:4] for a in c[1:]],
        [by_story[4][0]],
        by_story[4][1:],
    ]
    expected = {f"{kind}-{n}": f"wire-{n}" for n in range(len(stories)) for kind in COPIES[:3]}
    return waves, expected


DUPLICATES = 5  # the mirror copies


class Deployment:
    """One deployment (an app id of its own on the test's broker), its `newsalert streams`
    workers, and what comes out of them."""

    def __init__(self, tmp_path: Path, name: str, broker: Broker) -> None:
        self.broker = broker
        self.names = TopicNames(new_app_id())
        self.data_dir = tmp_path / name
        self.config = tmp_path / f"{name}.yaml"
        self.receiver = WebhookReceiver(DEMO_SECRET)
        self.workers: list[RunningService] = []
        self.classified: dict[str, list[str]] = {}  # article id -> story ids it came out with
        self.spikes: list[dict] = []
        self.duplicates_of_stopped = 0.0
        self._reader: asyncio.Task | None = None

    async def start(self, workers: int) -> None:
        await self.receiver.start()
        config = {
            **self.broker.settings(),
            "app_id": self.names.app_id,
            "allow_private_networks": "127.0.0.0/8",
            "partitions": PARTITIONS,
            "alert_group_wait_seconds": 0.2,
            "subscriptions": [
                {
                    "name": "trade-desk",
                    "topics": ["sanctions"],
                    "webhook": {"url": self.receiver.url("/hook"), "secret": DEMO_SECRET},
                }
            ],
            "spike": {"bucket_seconds": 3600, "min_count": 5, "absolute_threshold": 5},
        }
        self.config.write_text(yaml.safe_dump(config))
        await ensure_topics(self.broker.bootstrap_servers, self.names.app_id, PARTITIONS)
        self._reader = asyncio.create_task(self._read())
        self.workers = list(await asyncio.gather(*(self._worker() for _ in range(workers))))
        # Each worker holds its share of the raw partitions before anything is sent.
        await self.wait_for_partitions([PARTITIONS // workers] * workers)

    async def _worker(self) -> RunningService:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
        env.update(NEWSALERT_METRICS_PORT="0", NEWSALERT_DATA_DIR=str(self.data_dir))
        process = await asyncio.create_subprocess_exec(
            str(NEWSALERT),
            "streams",
            "--config",
            str(self.config),
            "--broker",
            self.broker.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        worker = RunningService(process)
        try:
            await eventually(
                lambda: worker.find("running;") or process.returncode is not None, 60, "start"
            )
        except BaseException:
            worker.kill()
            raise
        assert process.returncode is None, "\n".join(worker.lines)
        return worker

    async def held(self, worker: RunningService, topic: str) -> int:
        metrics = await worker.metrics()
        return int(metrics.get(f"newsalert_stream_partitions|topic={topic}", 0))

    async def wait_for_partitions(self, shares: list[int]) -> None:
        async def settled() -> bool:
            held = [await self.held(w, self.names.raw_articles) for w in self.workers]
            return held == shares

        await _eventually_async(settled, 40, f"raw partitions held as {shares}")

    async def story_stage_worker(self) -> RunningService:
        """The worker that holds the prepared topic's one partition."""
        for worker in self.workers:
            if await self.held(worker, self.names.prepared) == 1:
                return worker
        raise AssertionError("no worker holds the prepared topic")

    async def duplicates(self) -> float:
        total = self.duplicates_of_stopped
        for worker in self.workers:
            total += (await worker.metrics()).get("newsalert_articles_duplicate_total", 0.0)
        return total

    async def publish(self, wave: list[dict]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap_servers)
        await producer.start()
        try:
            for raw in wave:
                article = RawArticle(fetched_at=time.time(), **raw)
                await producer.send(
                    self.names.raw_articles, article.dumps(), key=raw["article_id"].encode()
                )
            await producer.flush()
        finally:
            await producer.stop()

    async def send_and_wait(self, wave: list[dict], expected: dict[str, str]) -> None:
        await self.publish(wave)
        wanted = [raw["article_id"] for raw in wave if raw["article_id"] in expected]
        await eventually(
            lambda: all(a in self.classified for a in wanted), 30, f"articles {wanted}"
        )

    async def stop_worker(self, worker: RunningService) -> None:
        self.duplicates_of_stopped += (await worker.metrics()).get(
            "newsalert_articles_duplicate_total", 0.0
        )
        worker.process.send_signal(signal.SIGTERM)
        assert await worker.stop() == 0
        self.workers.remove(worker)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap_servers,
            fetch_max_wait_ms=20,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign(
                [
                    TopicPartition(topic, p)
                    for topic in (self.names.articles, self.names.spikes)
                    for p in range(PARTITIONS)
                ]
            )
            await consumer.seek_to_beginning()
            while True:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    for message in messages:
                        value = json.loads(message.value)
                        if message.topic == self.names.spikes:
                            self.spikes.append(value)
                        else:
                            stories = self.classified.setdefault(value["article_id"], [])
                            stories.append(value["story_id"])
        finally:
            await consumer.stop()

    def story_ids(self) -> dict[str, str]:
        return {article: stories[0] for article, stories in self.classified.items()}

    def spike_events(self) -> list[tuple]:
        """(topic, window start, state, count, top story ids) of each spike event."""
        return sorted(
            (
                s["topic"],
                s["window_start"],
                s["state"],
                s["count"],
                tuple(sorted(t["story_id"] for t in s["top_stories"])),
            )
            for s in self.spikes
        )

    async def stop(self) -> None:
        codes = []
        for worker in self.workers:
            codes.append(await worker.stop())
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.receiver.stop()
        assert codes == [0] * len(codes)

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()


async def _eventually_async(check, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds} s waiting for {what}")
        await asyncio.sleep(0.1)


async def finish(deployment: Deployment, duplicates: int = DUPLICATES) -> None:
    """Every article decided (the duplicates too) and the alert delivered."""

    async def all_duplicates_decided() -> bool:
        # Dropped, or (wrongly) passed on: either way decided, and the asserts say which.
        passed = sum(a.startswith(("mirror-", "again-")) for a in deployment.classified)
        return await deployment.duplicates() + passed >= duplicates

    await _eventually_async(all_duplicates_decided, 30, "the exact duplicates decided")
    await eventually(lambda: deployment.receiver.received, 30, "the webhook")


def expected_spike() -> list[tuple]:
    hour = int(time.time() // 3600) * 3600
    stories = tuple(sorted(f"wire-{n}" for n in range(5)))
    return [("sanctions", hour, "started", 5, stories)]


async def test_two_workers_give_the_story_ids_spike_and_alert_of_one(tmp_path, broker):
    waves, expected = burst()
    one = Deployment(tmp_path, "one", broker)
    two = Deployment(tmp_path, "two", broker)
    try:
        await asyncio.gather(one.start(workers=1), two.start(workers=2))
        for wave in waves:
            await asyncio.gather(*(d.send_and_wait(wave, expected) for d in (one, two)))
        await asyncio.gather(finish(one), finish(two))

        assert one.story_ids() == expected
        assert two.story_ids() == one.story_ids()
        assert one.spike_events() == expected_spike()
        assert two.spike_events() == one.spike_events()
        assert [s["spike_id"] for s in two.spikes] == [s["spike_id"] for s in one.spikes]
        assert len(one.receiver.received) == len(two.receiver.received) == 1
        assert [r.payload["count"] for r in two.receiver.received] == [5]
        # Each article came out once: the story stage took every record once.
        assert all(len(s) == 1 for s in two.classified.values()), two.classified
    finally:
        for deployment in (one, two):
            try:
                await deployment.stop()
            finally:
                deployment.kill()


async def test_stopping_the_story_worker_hands_its_state_to_the_other(tmp_path, broker):
    waves, expected = burst()
    two = Deployment(tmp_path, "two", broker)
    try:
        await two.start(workers=2)
        for wave in waves[:2]:
            await two.send_and_wait(wave, expected)

        # Stop the worker that decides stories: the other takes its partitions over and reads
        # the state it left on the story-state topic.
        await two.stop_worker(await two.story_stage_worker())
        await two.wait_for_partitions([PARTITIONS])
        # The first four stories again: a copy not seen yet (the same story), and a copy seen
        # by the stopped worker under another id and URL (an exact duplicate). Then the fifth.
        near = [
            dict(
                raw,
                article_id=f"digest-{n}",
                url=f"https://digest.example/{n}",
                title=f"Digest: {raw['title']}",
                body=f"From our wire partner. {raw['body']}",
            )
            for n, raw in enumerate(waves[0])
        ]
        exact = [
            dict(raw, article_id=f"again-{raw['article_id']}", url=f"https://again.example/{n}")
            for n, raw in enumerate(waves[1])
            if raw["source"] == "portal"
        ]
        after_stop = expected | {f"digest-{n}": f"wire-{n}" for n in range(4)}
        await two.send_and_wait(near + exact, after_stop)
        await two.send_and_wait(waves[2], after_stop)
        await two.send_and_wait(waves[3], after_stop)
        await finish(two, DUPLICATES + len(exact))

        assert two.story_ids() == after_stop
        assert two.spike_events() == expected_spike()
        assert [r.payload["count"] for r in two.receiver.received] == [5]
        assert all(len(s) == 1 for s in two.classified.values()), two.classified
    finally:
        try:
            await two.stop()
        finally:
            two.kill()
