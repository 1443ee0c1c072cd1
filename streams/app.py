"""create_app(settings) -> faust.App: the whole stream flow on one screen.

connectors --raw_articles (keyed by article)--> process-articles (every worker)
    --prepared (one partition)--> assign-stories (one worker) --+--> articles (the output)
                                                                +--> topic_hits (keyed by
    topic/entity: small records) --> detect-spikes --spikes--> alert -> outbox

The alert agent (alerts/agent.py) is attached to ``app.spikes_topic`` by newsalert/service.py:
streams/ does not import alerts/. Every agent sends a record it can never process to the
dead-letter topic and goes on (streams/deadletters.py). Each agent runs one actor (Faust's
``concurrency=1``, the default): with more, Faust can commit an offset past a record another
actor is still processing (faust-streaming issue 606), and a crash then loses that record.
"""

from __future__ import annotations

from functools import partial
from time import monotonic
from typing import Any

import faust
from faust.sensors.monitor import Monitor

from newsalert.settings import Settings
from streams import articles, consumer, metrics
from streams.classify.model import load_model
from streams.classify.taxonomy import load_taxonomy
from streams.deadletters import STAGES, DeadLetters, undecoded
from streams.pipeline import ArticleProcessor
from streams.records import Article, RawArticle, Spike, TopicHit
from streams.spikes import agent as spikes_agent
from streams.spikes.agent import SnapshotFile
from streams.spikes.detector import SpikeDetector, SpikeRule
from streams.stories import agent as stories_agent
from streams.stories.statefile import StoryStateFile
from streams.topics import TopicNames
from streams.transport import make_transport


class QuietMonitor(Monitor):
    """Faust's Monitor without its per-event statistics: they feed Faust's own web views,
    which this app turns off (web_enabled=False; our metrics are newsalert/metrics.py), and
    cost ~5 % of the worker's CPU per article. It stays a sensor (Faust expects one for its
    rebalance bookkeeping); the hooks called per message, stream event and send keep only
    what Faust itself reads back (when a partition's stream last took an event)."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        # Kept: Faust's consumer reads it to tell a stalled stream from a working one.
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> None:
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        pass


class NewsalertApp(faust.App):
    """faust.App whose transport uses our fetch wait (see streams/transport.py)."""

    fetch_max_wait_ms: int = 10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Called by the service before the app stops: state that must outlive the process.
        self.state_savers: list[Any] = []
        self.detector: SpikeDetector | None = None  # for tests and diagnostics
        # Spike events, as bytes: the service attaches the alert agent to it (alerts/agent.py),
        # which decodes each and sends what it cannot process to ``dead_letters``.
        self.spikes_topic: Any = None
        self.hits_topic: Any = None
        self.dead_letters = DeadLetters(self)
        # Faust honours processing_guarantee only in a worker (faust.Worker sets this); the
        # service runs the app itself, as its worker.
        self.in_worker = True

    def group_problem(self) -> str | None:
        """Why this worker is not a settled member of its consumer group, or None (/readyz)."""
        return consumer.group_problem(self)

    def save_state(self) -> None:
        for save in self.state_savers:
            save()

    def _new_transport(self) -> Any:
        transport_cls = make_transport(self.fetch_max_wait_ms)
        return transport_cls(self.conf.broker_consumer, self)


def build_detector(settings: Settings, topic_names: list[str]) -> SpikeDetector:
    spike = settings.spike
    keys = topic_names + list(spike.topics) + [f"entity:{e}" for e in spike.entities]
    rules = {key: SpikeRule(**spike.params_for(key)) for key in keys}
    return SpikeDetector(SpikeRule(**spike.base_params()), rules)


def create_app(
    settings: Settings,
    broker_url: str,
    persist_state: bool = False,
) -> NewsalertApp:
    app = NewsalertApp(
        settings.app_id,
        monitor=QuietMonitor(),
        broker=broker_url,
        store="memory://",
        # Faust's own directory (table files, its version marker) under --data-dir, not in
        # the working directory.
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Tansu holds a first JoinGroup for about half the session timeout; Faust's 60 s
        # defaults would make the first join take ~30 s.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_rebalance_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_seconds,
        producer_linger=settings.producer_linger_ms / 1000.0,
        # Batches of up to 256 KiB a partition (aiokafka's default, 16 KiB, is a dozen full
        # articles): fewer produce requests for the broker to handle.
        producer_max_batch_size=256 * 1024,
        processing_guarantee=settings.processing_guarantee,
    )
    app.fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms

    names = TopicNames(settings.app_id)
    raw_topic = app.topic(names.raw_articles, key_type=str, value_type=RawArticle)
    # Batches of prepared articles, and the story stage's state: one partition each, bytes
    # decoded by their own readers (streams/records.py, streams/stories/stage.py).
    prepared_topic = app.topic(names.prepared, partitions=1, value_serializer="raw")
    story_state_topic = app.topic(names.story_state, partitions=1, value_serializer="raw")
    articles_topic = app.topic(names.articles, key_type=str, value_type=Article)
    hits_topic = app.topic(names.topic_hits, key_type=str, value_type=TopicHit)
    spikes_topic = app.topic(names.spikes, key_type=str, value_type=Spike)

    taxonomy = load_taxonomy(settings.taxonomy)
    metrics.initialise(taxonomy.topics, STAGES)
    processor = ArticleProcessor(
        taxonomy,
        dedupe_horizon_seconds=settings.dedupe_horizon_seconds,
        story_horizon_seconds=settings.story_horizon_seconds,
        model=load_model(settings.model) if settings.model else None,
    )
    detector = build_detector(settings, list(taxonomy.topics))
    app.detector = detector
    entities = {e: taxonomy.entity_spellings(e) for e in settings.spike.entities}
    snapshot = SnapshotFile(settings.data_dir / "spike-state.json") if persist_state else None
    story_file = None
    if persist_state:
        keep = max(settings.dedupe_horizon_seconds, settings.story_horizon_seconds)
        story_file = StoryStateFile(settings.data_dir / "story-state.jsonl", keep)
    batch = (settings.process_batch_size, settings.process_batch_seconds)
    dead_letters = app.dead_letters
    articles.register(app, raw_topic, prepared_topic, processor, dead_letters, *batch)
    stories_agent.register(
        app,
        prepared_topic,
        articles_topic,
        hits_topic,
        partial(spikes_agent.hit_records, entities=entities),
        story_state_topic,
        processor,
        broker_url.removeprefix("kafka://"),
        dead_letters,
        *batch,
        state_file=story_file,
    )
    spikes_agent.register(
        app,
        hits_topic,
        spikes_topic,
        detector,
        snapshot,
        dead_letters,
        *batch,
    )
    app.spikes_topic = undecoded(spikes_topic)
    app.hits_topic = undecoded(hits_topic)  # also read by alerts/activity.py

    consumer.register_lag(app)

    @app.on_partitions_assigned.connect
    async def count_partitions(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        for name in (names.raw_articles, names.prepared, names.articles, names.topic_hits):
            held = sum(tp.topic == name for tp in assigned)
            metrics.PARTITIONS_HELD.labels(name).set(held)

    return app
