"""Kafka topic names and layout in one place, and ``ensure_topics`` to create them.

Every topic the app reads gets the same partition count (``partitions`` setting): the
spike-state table's changelog must have as many partitions as the topic-hits stream it follows.
Creating them up front matters because a broker auto-creating a topic on first use picks its own
default (Tansu: 4, Kafka: ``num.partitions``) while Faust would declare the changelog with ours.
The dead-letter topic, which no agent reads, has one partition: its offsets name its records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicNames:
    raw_articles: str = "newsalert.articles.raw"
    articles: str = "newsalert.articles.classified"
    topic_hits: str = "newsalert.topic-hits"
    spikes: str = "newsalert.spikes"
    # Records an agent could never process, with their error (streams/deadletters.py).
    deadletters: str = "newsalert.deadletters"

    def all(self, app_id: str) -> dict[str, dict[str, str]]:
        """Topic name -> topic config, the table changelogs included."""
        compacted = {"cleanup.policy": "compact"}
        return {
            self.raw_articles: {},
            self.articles: {},
            self.topic_hits: {},
            self.spikes: {},
            self.deadletters: {},
            changelog_topic(app_id, "spike-state"): compacted,
        }

    def partitions_of(self, name: str, partitions: int) -> int:
        """How many partitions topic ``name`` has when the setting says ``partitions``."""
        return 1 if name == self.deadletters else partitions


TOPICS = TopicNames()


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"  # Faust's naming


async def ensure_topics(bootstrap_servers: str, app_id: str, partitions: int) -> None:
    """Create missing topics with ``partitions`` partitions; warn where an existing one
    differs (its changelog writes then wrap onto the partitions it has)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()  # inside: a broker that cannot be reached still gets it closed
        wanted = TOPICS.all(app_id)
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, TOPICS.partitions_of(name, partitions), 1, topic_configs=config)
            for name, config in wanted.items()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        described = await admin.describe_topics([n for n in wanted if n in existing])
        for topic in described:
            count = len(topic.get("partitions", []))
            if count and count != TOPICS.partitions_of(topic["topic"], partitions):
                log.warning(
                    "topic %s has %d partitions, the partitions setting says %d",
                    topic["topic"],
                    count,
                    partitions,
                )
    finally:
        await admin.close()
