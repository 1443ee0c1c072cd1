"""What the worker's Kafka consumer says about itself: the lag of each partition it holds
(``newsalert_consumer_lag``) and whether it is a member of its group (``/readyz``).

Both read Faust's consumer; the offsets Faust committed are its own bookkeeping
(``_committed_offset``, the next offset to read, as Kafka stores it), the high watermarks are
asked of the broker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from streams import metrics

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0
LAG_TIMEOUT_SECONDS = 3.0  # a broker that does not answer keeps the last lag shown
NO_GENERATION = -1  # aiokafka's generation before a join (OffsetCommitRequest's default)


def lag(highwater: int, committed: int | None, position: int | None) -> int:
    """Records after the committed offset, or after the position while nothing is committed."""
    done = committed if committed is not None else position
    return max(0, highwater - (done or 0))


class LagGauge:
    """Sets ``newsalert_consumer_lag{topic,partition}`` for the partitions held now and removes
    the series of partitions no longer held."""

    def __init__(self) -> None:
        self.shown: set[tuple[str, str]] = set()

    async def refresh(self, consumer: Any) -> None:
        assigned = consumer.assignment()
        held: dict[tuple[str, str], int] = {}
        if assigned:
            async with asyncio.timeout(LAG_TIMEOUT_SECONDS):
                highwaters = await consumer.highwaters(*assigned)
                for tp in assigned:
                    highwater = highwaters.get(tp)
                    if highwater is None:
                        continue
                    committed = consumer._committed_offset.get(tp)
                    position = None if committed is not None else await consumer.position(tp)
                    held[(tp.topic, str(tp.partition))] = lag(highwater, committed, position)
        for labels in self.shown - held.keys():
            metrics.CONSUMER_LAG.remove(*labels)
        for labels, records in held.items():
            metrics.CONSUMER_LAG.labels(*labels).set(records)
        self.shown = set(held)


def register_lag(app: Any, interval_seconds: float = LAG_INTERVAL_SECONDS) -> LagGauge:
    gauge = LagGauge()

    @app.timer(interval_seconds, name="consumer-lag")
    async def consumer_lag() -> None:
        try:
            await gauge.refresh(app.consumer)
        except (TimeoutError, OSError) as exc:  # the broker is away: /readyz says so
            log.debug("consumer lag not refreshed: %r", exc)
        except Exception as exc:  # aiokafka's errors, a consumer not started yet
            log.info("consumer lag not refreshed: %r", exc)

    return gauge


def group_problem(app: Any) -> str | None:
    """Why the worker is not a settled member of its consumer group now, or None."""
    try:
        coordinator = app.consumer._thread._consumer._coordinator
    except AttributeError:
        return "consumer not started"
    if coordinator.coordinator_id is None:
        return "no group coordinator known"
    if coordinator.generation == NO_GENERATION:
        return "not joined"
    if app.rebalancing:
        return "rebalancing"
    return None
