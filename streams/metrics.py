"""Metrics of the stream processors (default prometheus registry)."""

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

ARTICLES_PROCESSED = Counter(
    "newsalert_articles_processed_total", "Raw articles taken from the raw topic"
)
ARTICLES_DUPLICATE = Counter(
    "newsalert_articles_duplicate_total",
    "Exact duplicates dropped (same_url, same_text; redelivered: a record read twice)",
    ["reason"],
)
ARTICLES_CLASSIFIED = Counter(
    "newsalert_articles_classified_total", "Articles put in a topic", ["topic"]
)
ARTICLES_FAILED = Counter(
    "newsalert_articles_failed_total", "Articles that could not be processed (dead letters)"
)
DEAD_LETTERS = Counter(
    "newsalert_dead_letters_total",
    "Records an agent could never process, sent to the dead-letter topic with their error",
    ["stage"],
)
ARTICLES_LATE = Counter(
    "newsalert_articles_late_total",
    "Topic hits for a bucket already closed (later than allowed_lateness_seconds)",
)
SPIKES = Counter("newsalert_spikes_total", "Spike events emitted", ["topic", "state"])
PROCESS_LAG = Histogram(
    "newsalert_article_process_lag_seconds",
    "From fetch by a connector to classification",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STORY_STAGE_ACTIVE = Gauge(
    "newsalert_story_stage_active",
    "1 in the worker that decides duplicates and stories now (one per deployment), else 0",
)
STORY_STAGE_TRACKED = Gauge(
    "newsalert_story_stage_articles", "Articles the story stage remembers for story assignment"
)
PARTITIONS_HELD = Gauge(
    "newsalert_stream_partitions",
    "Partitions of each topic this worker holds now (Kafka consumer-group assignment)",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "newsalert_consumer_lag",
    "Records in each partition this worker holds after its committed offset (high watermark "
    "minus committed offset; the position while nothing is committed), every few seconds",
    ["topic", "partition"],
)


DUPLICATE_REASONS = ("same_url", "same_text", "redelivered")
SPIKE_STATES = ("started", "escalated", "resolved")


def initialise(topics: Iterable[str], stages: Iterable[str]) -> None:
    """Every label value known in advance gets its series at 0 from the start: a dashboard
    query or a rule finds it before the first event, and increase() sees the first one."""
    for reason in DUPLICATE_REASONS:
        ARTICLES_DUPLICATE.labels(reason)
    for stage in stages:
        DEAD_LETTERS.labels(stage)
    for topic in topics:
        ARTICLES_CLASSIFIED.labels(topic)
        for state in SPIKE_STATES:
            SPIKES.labels(topic, state)
