"""The only writer to the raw-articles topic. ``publish`` returns once the broker has the record."""

from __future__ import annotations

from typing import Protocol

from aiokafka import AIOKafkaProducer

from newsalert.settings import LOCAL_KAFKA
from streams.records import RawArticle


class Publisher(Protocol):
    async def publish(self, article: RawArticle) -> None:
        """Return after the article is durably accepted; raise if it is not."""
        ...


def bootstrap_from_broker_url(broker: str) -> str:
    """``kafka://host:port[,host:port]`` (the settings form) -> ``host:port[,...]``.

    ``local-kafka`` names a broker by its data directory, not by an address: the command line
    resolves it (newsalert/localkafka.py) before anything connects."""
    if broker == LOCAL_KAFKA:
        raise ValueError(f"{LOCAL_KAFKA} is not an address; resolve it to kafka://HOST:PORT first")
    return broker.removeprefix("kafka://").rstrip("/")


class KafkaPublisher:
    """Keyed by article id, so every version of one article lands on the same partition.
    ``topic`` is the deployment's raw topic: ``TopicNames(settings.app_id).raw_articles``.

    ``idempotent`` (Apache Kafka): the broker drops the copy a retried send would otherwise
    add, and keeps each partition in send order. The embedded broker has no idempotent
    producer, so there sends stay plain.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str,
        linger_ms: float = 1.0,
        request_timeout_ms: int = 30000,
        idempotent: bool = False,
    ) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            linger_ms=linger_ms,
            acks="all",
            request_timeout_ms=request_timeout_ms,
            enable_idempotence=idempotent,
        )

    @property
    def producer_id(self) -> int | None:
        """The id the broker gave this idempotent producer (None: plain sends, or not yet)."""
        manager = self._producer._txn_manager  # aiokafka's idempotence bookkeeping
        if manager is None or manager.producer_id < 0:
            return None
        return int(manager.producer_id)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, article: RawArticle) -> None:
        await self._producer.send_and_wait(
            self.topic, value=article.dumps(), key=article.article_id.encode("utf-8")
        )
