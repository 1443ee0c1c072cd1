"""Kafka topic names and layout in one place, and ``ensure_topics`` to create them.

Every topic the app reads gets the same partition count (``partitions`` setting): the
spike-state table's changelog must have as many partitions as the topic-hits stream it follows.
Creating them up front matters because a broker auto-creating a topic on first use picks its own
default (Tansu: 4, Kafka: ``num.partitions``) while Faust would declare the changelog with ours.
The dead-letter topic, which no agent reads, has one partition: its offsets name its records.
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

    def all(self) -> dict[str, dict[str, str]]:
        """Topic name -> topic config, the table changelogs included."""
        compacted = {"cleanup.policy": "compact"}
        return {
            self.raw_articles: {},
            self.articles: {},
            self.topic_hits: {},
            self.spikes: {},
            self.deadletters: {},
            changelog_topic(self.app_id, "spike-state"): compacted,
        }

    def partitions_of(self, name: str, partitions: int) -> int:
        """How many partitions topic ``name`` has when the setting says ``partitions``."""
        return 1 if name == self.deadletters else partitions


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"  # Faust's naming


async def ensure_topics(bootstrap_servers: str, app_id: str, partitions: int) -> None:
    """Create missing topics with ``partitions`` partitions, each on as many brokers as the
    cluster has, up to 3 (one broker lost loses nothing); warn where an existing one
    differs (its changelog writes then wrap onto the partitions it has)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()  # inside: a broker that cannot be reached still gets it closed
        names = TopicNames(app_id)
        wanted = names.all()
        existing = set(await admin.list_topics())
        brokers = len((await admin.describe_cluster()).get("brokers", [])) or 1
        replicas = min(brokers, MAX_REPLICAS)
        missing = [
            NewTopic(name, names.partitions_of(name, partitions), replicas, topic_configs=config)
            for name, config in wanted.items()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
            await _until_led(admin, [topic.name for topic in missing])
        described = await admin.describe_topics([n for n in wanted if n in existing])
        for topic in described:
            count = len(topic.get("partitions", []))
            if count and count != names.partitions_of(topic["topic"], partitions):
                log.warning(
                    "topic %s has %d partitions, the partitions setting says %d",
                    topic["topic"],
                    count,
                    partitions,
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
