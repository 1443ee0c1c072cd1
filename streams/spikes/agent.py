"""The spike agent: topic hits (one per topic and tracked entity of a classified article, keyed
by it; sent by the story stage, ``hit_records``) -> per-key event-time counts and baselines ->
spike events.

Detector state lives in a Faust table backed by a changelog topic (a restarted worker recovers
it), and is also saved under the data directory, because the embedded broker keeps its topics,
changelogs included, in memory only.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faust

from streams import metrics
from streams.deadletters import DeadLetters, undecoded
from streams.records import Spike, TopicHit, decode_fields, encode_fields
from streams.spikes import hits
from streams.spikes.detector import SpikeDetector

log = logging.getLogger(__name__)


class SnapshotFile:
    """The detector's state as one JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, detector: SpikeDetector) -> bool:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            log.error(
                "spike state %s unreadable (%s); starting with empty baselines", self.path, exc
            )
            return False
        detector.restore(data)
        return True

    def save(self, detector: SpikeDetector) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(detector.snapshot()), encoding="utf-8")
        os.replace(tmp, self.path)


async def _refresh_producer_metadata(app: faust.App) -> None:
    producer = getattr(app.producer, "_producer", None)  # Faust's aiokafka producer
    if producer is not None:
        await producer.client.force_metadata_update()


def hit_records(article: dict[str, Any], entities: dict[str, list[str]]) -> list[tuple[str, bytes]]:
    """The topic hits of one classified article (the processor's output) as the topic-hits
    topic carries them: ``(key, TopicHit JSON)``. Small records: the story stage sends them
    with the article (streams/stories/agent.py), and the detector never reads an article."""
    records = []
    for key, terms in hits.hit_keys(article["topics"], entities):
        fields = {
            "key": key,
            "article_id": article["article_id"],
            "story_id": article["story_id"],
            "title": article["title"],
            "url": article["url"],
            "source": article["source"],
            "published": article["published"],
            "terms": terms,
            "fetched_at": article.get("fetched_at") or 0.0,
        }
        records.append((key, encode_fields(TopicHit, fields)))
    return records


def register(
    app: faust.App,
    hits_topic: faust.TopicT,
    spikes_topic: faust.TopicT,
    detector: SpikeDetector,
    snapshot: SnapshotFile | None,
    dead_letters: DeadLetters,
    batch_size: int,
    batch_seconds: float,
) -> Any:
    table = app.Table("spike-state", default=None, partitions=app.conf.topic_partitions)
    if snapshot is not None and snapshot.load(detector):
        log.info("spike baselines restored from %s", snapshot.path)
    dirty = {"since": 0.0}
    (hits_name,) = hits_topic.topics
    partition_of: dict[str, int] = {}  # key -> the topic-hits partition its hits come from

    @app.on_partitions_revoked.connect
    async def forget_moved_keys(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        """Another worker may count these keys from now on: were they to come back here, the
        table (recovered from its changelog) holds their state, not our old copy. A stale
        copy would also close its buckets as our watermark moves, and emit events twice.
        A key the table lacks (restored from the snapshot file, not counted since) is kept:
        only the one process of the embedded broker has such keys."""
        gone = {tp.partition for tp in revoked if tp.topic == hits_name}
        for key, partition in list(partition_of.items()):
            if partition in gone:
                del partition_of[key]
                if table.data.get(key) is not None:
                    detector.forget(key)

    async def save_key(key: str, partition: int) -> None:
        """Write one key's whole state to the table and its changelog. Each write supersedes
        the last, so a failed write (e.g. the broker not yet knowing the changelog topic) is
        repaired by the next one; it is logged, never fatal to the stream."""
        state = detector.key_state(key)
        table.data[key] = state
        for attempt in (1, 2):
            try:
                await table.changelog_topic.send(key=key, value=state, partition=partition)
                return
            except AssertionError:
                # aiokafka cached the changelog topic's metadata while Tansu was still creating
                # it (no partitions) and would trust that for metadata_max_age_ms: refresh.
                if attempt == 1:
                    await _refresh_producer_metadata(app)
            except Exception as exc:
                log.warning("spike state of %s not written to the changelog yet: %r", key, exc)
                return
        log.warning("spike state of %s not written: changelog partition %d unknown", key, partition)

    @app.agent(undecoded(hits_topic), name="detect-spikes")
    async def detect_spikes(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(batch_size, within=batch_seconds):
            # The table is written once per key after the batch, when no current event names
            # a partition: each key's changelog goes to the partition its hits came from.
            touched: dict[str, int] = {}
            for event in events:
                try:
                    hit = decode_fields(TopicHit, event.value)
                    key = hit["key"]
                    if not detector.knows(key) and table.get(key) is not None:
                        detector.restore_key(key, table[key])  # recovered from changelog
                    counted = hits.Hit(key, list(hit["terms"]), hits.story_ref(hit))
                    found, late = hits.observe(detector, counted)
                    spikes = [Spike(detected_at=time.time(), **asdict(s)) for s in found]
                except Exception as exc:  # a record that can never be counted
                    await dead_letters.send("detect-spikes", event.message, exc)
                    continue
                for spike in spikes:
                    metrics.SPIKES.labels(spike.topic, spike.state).inc()
                    await spikes_topic.send(key=spike.topic, value=spike)
                if late:
                    metrics.ARTICLES_LATE.inc()
                touched[key] = partition_of[key] = event.message.partition
            for key, partition in touched.items():
                await save_key(key, partition)
            dirty["since"] = dirty["since"] or time.monotonic()

    if snapshot is not None:

        @app.timer(interval=2.0)
        async def save_snapshot() -> None:
            if dirty["since"]:
                dirty["since"] = 0.0
                snapshot.save(detector)

        app.state_savers.append(lambda: snapshot.save(detector))  # type: ignore[attr-defined]

    return detect_spikes
