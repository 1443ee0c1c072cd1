"""The story agent: prepared topic (one partition) -> exact duplicates and story ids ->
classified topic.

Story assignment for the whole stream happens here, in whichever worker holds the prepared
topic's one partition, so copies of a story meet whichever worker read them from the raw topic.
Each batch's state changes go to the story-state topic after the batch's articles were
delivered; a worker that gains the partition rebuilds the state from that topic before it
decides anything, and one that loses it forgets its copy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from newsalert.metrics import observe_article_latency
from streams import metrics
from streams.deadletters import DeadLetters, undecoded
from streams.pipeline import ArticleProcessor
from streams.records import (
    Article,
    UndecodableRecord,
    decode_prepared,
    encode_fields,
    encode_prepared,
)
from streams.stories.stage import Entry, StoryStage, decode_entries, encode_entries
from streams.stories.statefile import StoryStateFile

log = logging.getLogger(__name__)

STAGE = "assign-stories"

HitsOf = Callable[[dict[str, Any]], list[tuple[str, bytes]]]


class InOrder:
    """Coroutines run in the background one after another, in the order added; ``add`` waits
    while more than ``depth`` are unfinished, so the work ahead of them stays bounded."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._tasks: deque[asyncio.Task[None]] = deque()

    async def add(self, work: Coroutine[Any, Any, None]) -> None:
        previous = self._tasks[-1] if self._tasks else None
        self._tasks.append(asyncio.ensure_future(self._after(previous, work)))
        while self._tasks and (self._tasks[0].done() or len(self._tasks) > self.depth):
            await self._settle(self._tasks.popleft())

    async def wait(self) -> None:
        """Until everything added so far has finished."""
        while self._tasks:
            await self._settle(self._tasks.popleft())

    async def _after(self, previous: asyncio.Task[None] | None, work: Coroutine[Any, Any, None]):
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its own (``_settle``)
        await work

    @staticmethod
    async def _settle(task: asyncio.Task[None]) -> None:
        # Shielded: a caller cancelled (the agent stopping) leaves the work to finish.
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
        except Exception:
            log.exception("story stage: finishing a batch failed")


async def read_state(bootstrap_servers: str, topic: str, stage: StoryStage) -> int:
    """Apply every entry of the story-state topic, oldest first, up to its end now; the
    number of entries applied."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    applied = 0
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        start = (await consumer.beginning_offsets([partition]))[partition]
        end = (await consumer.end_offsets([partition]))[partition]
        # An explicit offset: seek_to_beginning can lose to the reset that assign() started
        # (seen on Apache Kafka: the position came back as the end, and nothing was read).
        consumer.seek(partition, start)
        while await consumer.position(partition) < end:
            fetched = await consumer.getmany(partition, timeout_ms=1000)
            for message in fetched.get(partition, []):
                if message.offset >= end:
                    break
                try:
                    entries = decode_entries(message.value)
                except ValueError as exc:
                    log.error("%s offset %d skipped: %s", topic, message.offset, exc)
                    continue
                for entry in entries:
                    stage.restore(entry)
                applied += len(entries)
    finally:
        await consumer.stop()
    stage.stories.expire(time.time())
    return applied


def register(
    app: faust.App,
    prepared_topic: faust.TopicT,
    articles_topic: faust.TopicT,
    hits_topic: faust.TopicT,
    hits_of: HitsOf,
    state_topic: faust.TopicT,
    processor: ArticleProcessor,
    bootstrap_servers: str,
    dead_letters: DeadLetters,
    batch_size: int,
    batch_seconds: float,
    state_file: StoryStateFile | None = None,
) -> Any:
    """``hits_of``: a classified article's topic hits as ``(key, value)`` records of
    ``hits_topic`` (streams/spikes/agent.py ``hit_records``). ``state_file``: where the state
    is also kept, and read back from (the embedded broker's topics die with the process that
    runs it)."""
    # Both written as the bytes built here: no Faust record per article or hit.
    articles_out, hits_out = undecoded(articles_topic), undecoded(hits_topic)
    (prepared_name,) = prepared_topic.topics
    (state_name,) = state_topic.topics
    ours = TopicPartition(prepared_name, 0)
    held = {"stage": False}  # whether processor.stage is the stage's current state
    unwritten: list[Entry] = []  # of delivered articles, not yet on the state topic
    finishing = InOrder(depth=2)

    @app.on_partitions_revoked.connect
    async def forget(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        # Another worker may decide from now on: our copy of the state would go stale. Faust
        # calls this after the batch in progress is done, so no decision is half made.
        if ours in revoked:
            await finishing.wait()  # the batches decided here, delivered and acknowledged
            await write_state()  # entries a failed write left behind: a last try
            held["stage"] = False
            processor.stage = processor.new_stage()
            metrics.STORY_STAGE_ACTIVE.set(0)
            metrics.STORY_STAGE_TRACKED.set(0)

    async def recover() -> None:
        started = time.monotonic()
        stage = processor.new_stage()
        if state_file is not None:
            source = str(state_file.path)
            applied = state_file.load(stage, time.time())
        else:
            source = state_name
            applied = await read_state(bootstrap_servers, state_name, stage)
        processor.stage = stage
        held["stage"] = True
        metrics.STORY_STAGE_ACTIVE.set(1)
        log.info(
            "story stage: assigning stories here; %d state entries read from %s in %.2f s, "
            "%d articles remembered",
            applied,
            source,
            time.monotonic() - started,
            len(stage),
        )

    async def write_state() -> None:
        """The entries of delivered batches to the state topic (``finish``): a failed write is
        retried with the next batch; the entries stay in this worker's memory meanwhile."""
        if not unwritten:
            return
        entries = list(unwritten)
        message = encode_entries(entries)
        try:
            delivered = await state_topic.send(value=message, partition=0)
            await delivered
        except Exception as exc:
            log.warning("story state (%d entries) not written yet: %r", len(entries), exc)
            return
        del unwritten[: len(entries)]
        if state_file is not None:
            state_file.append(message, time.time())

    async def finish(
        stream: faust.StreamT[bytes], events: list[Any], sent: list[Any], entries: list[Entry]
    ) -> None:
        """After one batch's decisions: its articles and hits delivered, then its state entries
        written, then its events acknowledged (so its offsets may be committed). Runs while
        the agent decides the next batch; the batches finish in order (``InOrder``)."""
        # Articles first: an entry on the state topic means its article was sent, so the
        # worker after us may drop a record it finds there as redelivered.
        for result in await asyncio.gather(*sent, return_exceptions=True):
            if isinstance(result, BaseException):
                metrics.ARTICLES_FAILED.inc()
                log.error("classified article not delivered: %r", result)
        unwritten.extend(entries)
        await write_state()
        for event in events:
            await stream.ack(event)
        metrics.STORY_STAGE_TRACKED.set(len(processor.stage))

    @app.agent(prepared_topic, name=STAGE)
    async def assign_stories(stream: faust.StreamT[bytes]) -> None:
        # Events are acknowledged by ``finish``, after their batch's deliveries, and not when
        # the next batch is taken: deciding a batch overlaps the delivery of the one before.
        async for events in stream.noack_take(batch_size, within=batch_seconds):
            if not held["stage"]:
                await finishing.wait()  # the last holder's batches, if this worker had one
                await recover()
            now = time.time()
            sent: list[Any] = []
            entries: list[Entry] = []
            for event in events:
                try:
                    articles = decode_prepared(event.value)
                except ValueError as exc:
                    metrics.ARTICLES_FAILED.inc()
                    await dead_letters.send(STAGE, event.message, UndecodableRecord(str(exc)))
                    continue
                for prepared in articles:
                    try:
                        sent.extend(
                            await _decide(
                                processor, prepared, now, articles_out, hits_out, hits_of, entries
                            )
                        )
                    except Exception as exc:  # a bug: this article alone goes to the dead letters
                        metrics.ARTICLES_FAILED.inc()
                        await dead_letters.send(STAGE, one_article(event.message, prepared), exc)
            await finishing.add(finish(stream, list(events), sent, entries))

    return assign_stories


async def _decide(
    processor: ArticleProcessor,
    prepared: dict[str, Any],
    now: float,
    articles_topic: faust.TopicT,
    hits_topic: faust.TopicT,
    hits_of: HitsOf,
    unwritten: list[Entry],
) -> list[Any]:
    """Decide one prepared article; the pending deliveries of its classified article and its
    topic hits, if any. Sent, not awaited one by one: the batch waits for all of them."""
    result = processor.decide(prepared, now)
    if result.state_entry is not None:
        unwritten.append(result.state_entry)
    article = result.article
    if article is None:
        metrics.ARTICLES_DUPLICATE.labels(result.duplicate_reason).inc()
        return []
    records = hits_of(article)  # before sending anything: a failure here sends nothing
    value = encode_fields(Article, article)
    for topic in article["topics"]:
        metrics.ARTICLES_CLASSIFIED.labels(topic).inc()
    classified_at = time.time()
    if prepared.get("fetched_at"):
        metrics.PROCESS_LAG.observe(max(0.0, classified_at - prepared["fetched_at"]))
    observe_article_latency(
        "classified", classified_at, article["published"], article["fetched_at"]
    )
    sent = [await articles_topic.send(key=article["article_id"], value=value)]
    for key, hit in records:
        sent.append(await hits_topic.send(key=key, value=hit))
    return sent


def one_article(message: Any, prepared: dict[str, Any]) -> Any:
    """``message`` (a prepared-topic message of several articles) narrowed to ``prepared``: a
    replayed dead letter then brings back only the article that failed."""
    (value,) = encode_prepared([prepared])
    return SimpleNamespace(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=value,
    )
