"""Kafka topic names and layout in one place, and ``ensure_topics`` to create them.

Most topics get the same partition count (``partitions`` setting): the spike-state table's
changelog must have as many partitions as the topic-hits stream it follows. The prepared
articles and the story stage's state have one partition whatever the setting: story
assignment happens in one place (streams/stories/agent.py). Creating them up front matters
because a broker auto-creating a topic on first use picks its own default (Tansu: 4, Kafka:
``num.partitions``) while Faust would declare the changelog with ours.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

# The story stage's state topic keeps what it needs for the longest horizon, and a day more
# so that an entry is never deleted before the stage would forget it.
STATE_RETENTION_MARGIN_SECONDS = 86400


@dataclass(frozen=True)
class TopicNames:
    raw_articles: str = "newsalert.articles.raw"
    prepared: str = "newsalert.articles.prepared"
    articles: str = "newsalert.articles.classified"
    topic_hits: str = "newsalert.topic-hits"
    spikes: str = "newsalert.spikes"

    def all(
        self, app_id: str, partitions: int, state_retention_seconds: float | None = None
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
            changelog_topic(app_id, "spike-state"): (partitions, compacted),
            changelog_topic(app_id, "story-state"): (1, story_state),
        }


TOPICS = TopicNames()


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"  # Faust's naming


async def ensure_topics(
    bootstrap_servers: str,
    app_id: str,
    partitions: int,
    state_retention_seconds: float | None = None,
) -> None:
    """Create missing topics with their partitions (``partitions``, or one for the story
    stage's); warn where an existing one differs (its changelog writes then wrap onto the
    partitions it has; the story stage reads and writes partition 0 only).
    ``state_retention_seconds``: how long the story stage's state must be kept (its longest
    horizon); None leaves the broker's default retention."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()  # inside: a broker that cannot be reached still gets it closed
        wanted = TOPICS.all(app_id, partitions, state_retention_seconds)
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, count, 1, topic_configs=config)
            for name, (count, config) in wanted.items()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        described = await admin.describe_topics([n for n in wanted if n in existing])
        for topic in described:
            count = len(topic.get("partitions", []))
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
