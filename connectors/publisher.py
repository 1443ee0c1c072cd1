"""The only writer to the raw-articles topic. ``publish`` returns once the broker has the record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber, UnknownProducerId

from newsalert.settings import LOCAL_KAFKA
from streams.records import RawArticle

log = logging.getLogger(__name__)

SEND_DEADLINE_MARGIN_SECONDS = 5.0
# The broker no longer takes this idempotent producer's sequence: every later batch of it
# would be refused the same way.
SEQUENCE_REFUSED = (OutOfOrderSequenceNumber, UnknownProducerId)


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
        self._options: dict[str, Any] = dict(
            bootstrap_servers=bootstrap_servers,
            linger_ms=linger_ms,
            acks="all",
            request_timeout_ms=request_timeout_ms,
            enable_idempotence=idempotent,
            # A poll publishes all its new entries at once: batches of up to 256 KiB a
            # partition (aiokafka's default, 16 KiB, is a dozen full entries), as the stream
            # workers' producer. With 16 KiB, at 2,000 entries/s from feeds, two thirds of the
            # connectors' time went to waiting for full batches to drain (bench e2e-latency).
            max_batch_size=256 * 1024,
        )
        # An idempotent producer never gives up on a batch (aiokafka retries it until the
        # broker takes it), so a send is bounded here: past this, publish raises and the
        # entry is published again on the feed's next poll.
        self.deadline_seconds = request_timeout_ms / 1000 + SEND_DEADLINE_MARGIN_SECONDS
        self._producer = AIOKafkaProducer(**self._options)
        self._renewing = asyncio.Lock()
        self._out_of_sequence: AIOKafkaProducer | None = None
        self.renewals = 0

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
        if not self._usable(self._producer):
            await self._renew(self._producer)
        producer = self._producer
        try:
            async with asyncio.timeout(self.deadline_seconds):
                await producer.send_and_wait(
                    self.topic, value=article.dumps(), key=article.article_id.encode("utf-8")
                )
        except TimeoutError as exc:
            raise KafkaTimeoutError(
                f"the broker did not acknowledge within {self.deadline_seconds:.0f} s"
            ) from exc
        except SEQUENCE_REFUSED:
            # aiokafka fails a batch that waited past request_timeout_ms for its partition's
            # leader (a broker restarting) after counting the batch's sequence numbers; the
            # broker, which never saw them, refuses each later batch as out of sequence while
            # the delivery loop goes on. Only a new producer id starts the sequence afresh.
            self._out_of_sequence = producer
            raise

    def _usable(self, producer: AIOKafkaProducer) -> bool:
        """False once the broker refused the producer's sequence, or once its background
        sender has ended (after a fatal error): every later send would fail or wait forever."""
        if producer is self._out_of_sequence:
            return False
        task = producer._sender.sender_task  # aiokafka's delivery loop
        return task is None or not task.done()

    async def _renew(self, broken: AIOKafkaProducer) -> None:
        """Replace a producer that is no longer usable with a fresh one (a new producer id)."""
        async with self._renewing:
            if self._producer is not broken:
                return  # another publish renewed it meanwhile
            log.warning("the producer to %s stopped working; starting a new one", self.topic)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SEND_DEADLINE_MARGIN_SECONDS):
                    await broken.stop()
            producer = AIOKafkaProducer(**self._options)
            await producer.start()
            self._producer = producer
            self._out_of_sequence = None
            self.renewals += 1
