"""Kafka topic names and layout in one place, and ``ensure_topics`` to create them.

Most topics get the same partition count (``partitions`` setting): the spike-state table's
changelog must have as many partitions as the topic-hits stream it follows. The prepared
articles and the story stage's state have one partition whatever the setting: story
assignment happens in one place (streams/stories/agent.py). The dead-letter topic, which no
agent reads, has one partition too: its offsets name its records. Creating them up front
matters because a broker auto-creating a topic on first use picks its own default (Tansu: 4,
Kafka: ``num.partitions``) while Faust would declare the changelog with ours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Copies of each partition on a cluster of three or more brokers (Kafka's usual choice).
MAX_REPLICAS = 3
# The story stage's state topic keeps what it needs for the longest horizon, and a day more
# so that an entry is never deleted before the stage would forget it.
STATE_RETENTION_MARGIN_SECONDS = 86400


@dataclass(frozen=True)
class TopicNames:
    """The topics of one deployment, named after its ``app_id`` (which also names Faust's
    consumer group and changelogs), so two deployments can share a broker without meeting.
    The default app id ``newsalert`` gives ``newsalert.articles.raw`` and so on."""

    app_id: str = "newsalert"

    @property
    def raw_articles(self) -> str:
        return f"{self.app_id}.articles.raw"

    @property
    def prepared(self) -> str:
        """Articles cleaned and sketched by the workers, for the story stage (one partition)."""
        return f"{self.app_id}.articles.prepared"

    @property
    def articles(self) -> str:
        return f"{self.app_id}.articles.classified"

    @property
    def topic_hits(self) -> str:
        return f"{self.app_id}.topic-hits"

    @property
    def spikes(self) -> str:
        return f"{self.app_id}.spikes"

    @property
    def deadletters(self) -> str:
        """Records an agent could never process, with their error (streams/deadletters.py)."""
        return f"{self.app_id}.deadletters"

    @property
    def story_state(self) -> str:
        return changelog_topic(self.app_id, "story-state")

    def all(
        self, partitions: int, state_retention_seconds: float | None = None
    ) -> dict[str, tuple[int, dict[str, str]]]:
        """Topic name -> (partitions, topic config), the state topics included."""
        compacted = {"cleanup.policy": "compact"}
        story_state = {"cleanup.policy": "delete"}
        if state_retention_seconds is not None:
            retention = state_retention_seconds + STATE_RETENTION_MARGIN_SECONDS
            story_state["retention.ms"] = str(int(retention * 1000))
        return {
            self.raw_articles: (partitions, {}),
            self.prepared: (1, {}),
            self.articles: (partitions, {}),
            self.topic_hits: (partitions, {}),
            self.spikes: (partitions, {}),
            self.deadletters: (1, {}),
            changelog_topic(self.app_id, "spike-state"): (partitions, compacted),
            self.story_state: (1, story_state),
        }


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"  # Faust's naming


async def ensure_topics(
    bootstrap_servers: str,
    app_id: str,
    partitions: int,
    state_retention_seconds: float | None = None,
) -> None:
    """Create missing topics with their partitions (``partitions``, or one for the story
    stage's and the dead letters), each on as many brokers as the cluster has, up to 3 (one
    broker lost loses nothing); warn where an existing one differs (its changelog writes then
    wrap onto the partitions it has; the story stage reads and writes partition 0 only).
    ``state_retention_seconds``: how long the story stage's state must be kept (its longest
    horizon); None leaves the broker's default retention."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()  # inside: a broker that cannot be reached still gets it closed
        wanted = TopicNames(app_id).all(partitions, state_retention_seconds)
        existing = set(await admin.list_topics())
        brokers = len((await admin.describe_cluster()).get("brokers", [])) or 1
        replicas = min(brokers, MAX_REPLICAS)
        missing = [
            NewTopic(name, count, replicas, topic_configs=config)
            for name, (count, config) in wanted.items()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
            await _until_led(admin, [topic.name for topic in missing])
        described = await admin.describe_topics([n for n in wanted if n in existing])
        for topic in described:
            count = len(topic.get("partitions", []))
            if topic["topic"] not in wanted:
                continue  # Tansu may describe topics it was not asked about
            expected = wanted[topic["topic"]][0]
            if count and count != expected:
                log.warning(
                    "topic %s has %d partitions, %d expected",
                    topic["topic"],
                    count,
                    expected,
                )
    finally:
        await admin.close()


async def _until_led(admin: Any, names: list[str], timeout_seconds: float = 10.0) -> None:
    """Until every partition of the new topics has a leader. Kafka elects them within a
    second of creating a topic; a producer that comes first is told NOT_LEADER and retries
    with a warning in the log. This spares most of those (a broker takes the lead a moment
    after the metadata names it); after the deadline the producers' retries take over."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if all(
            not topic.get("error_code")
            and topic.get("partitions")
            and all(partition.get("leader", -1) >= 0 for partition in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.05)
