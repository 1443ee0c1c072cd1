"""The dispatcher: spikes in (``accept``), notifications out (``run``), nothing lost.

``accept`` routes a spike and writes its notifications to the outbox in one transaction,
before the alert agent commits the spike's offset. ``run`` delivers due notifications through
their channel, retrying on a Svix-like schedule with jitter (or when the receiver's
``Retry-After`` says), and moves a message that exhausted the schedule, or failed for good,
to the dead letters, from which ``newsalert deliveries replay`` can resend it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from alerts import metrics
from alerts.channels.base import Channel, DeliveryResult
from alerts.routing import Subscriber, route
from alerts.store import DeliveryStore, OutboxRow

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


def retry_delay(
    attempts: int,
    schedule: tuple[float, ...],
    retry_after_seconds: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds until the next try after ``attempts`` failed ones, or None once the schedule
    is exhausted. Jitter of +-10 % spreads retries of many messages to one endpoint."""
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1] * (0.9 + 0.2 * rand())
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, MAX_RETRY_AFTER_SECONDS))
    return delay


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        channels: dict[str, Channel],
        subscribers: Iterable[Subscriber],
        retry_schedule_seconds: tuple[float, ...],
        *,
        batch_size: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.channels = channels
        self.subscribers = list(subscribers)
        self.retry_schedule_seconds = retry_schedule_seconds
        self.batch_size = batch_size
        self.clock = clock
        self._wake = asyncio.Event()

    async def accept(self, spike: dict[str, Any]) -> int:
        notifications = route(spike, self.subscribers, self.store.already_announced)
        added = self.store.enqueue(notifications, now=self.clock())
        for n in notifications:
            metrics.NOTIFICATIONS_QUEUED.labels(n.channel).inc()
        if added:
            self._wake.set()
        metrics.OUTBOX_PENDING.set(self.store.pending_count())
        return added

    async def run(self) -> None:
        while True:
            delivered = await self.deliver_due()
            if delivered:
                continue
            now = self.clock()
            next_at = self.store.next_due_at()
            wait = 1.0 if next_at is None else min(max(next_at - now, 0.01), 1.0)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def deliver_due(self) -> int:
        """Try every due notification once (concurrently); return how many were tried."""
        rows = self.store.due(self.clock(), limit=self.batch_size)
        if rows:
            await asyncio.gather(*(self._deliver(row) for row in rows))
            metrics.OUTBOX_PENDING.set(self.store.pending_count())
        return len(rows)

    async def _deliver(self, row: OutboxRow) -> None:
        channel = self.channels.get(row.channel)
        started = time.perf_counter()
        if channel is None:
            result = DeliveryResult("failed", f"no channel {row.channel!r} configured")
        else:
            try:
                result = await channel.send(row.notification())
            except Exception as exc:  # a channel bug must not stop other deliveries
                log.exception("channel %s crashed delivering %s", row.channel, row.message_id)
                result = DeliveryResult("retry", f"internal error: {exc!r}")
        metrics.DELIVERY_DURATION.labels(row.channel).observe(time.perf_counter() - started)
        self._record(row, result)

    def _record(self, row: OutboxRow, result: DeliveryResult) -> None:
        now = self.clock()
        outcome = result.outcome
        if outcome == "delivered":
            self.store.record_attempt(
                row.message_id, outcome, result.detail, status="delivered", now=now
            )
            detected_at = row.spike.get("detected_at")
            if detected_at:
                metrics.NOTIFICATION_LATENCY.labels(row.channel).observe(max(now - detected_at, 0))
            metrics.DELIVERIES.labels(row.channel, "delivered").inc()
            log.info("delivered %s to %s by %s", row.message_id, row.subscriber, row.channel)
            return
        delay = None
        if outcome == "retry":
            delay = retry_delay(
                row.attempts + 1, self.retry_schedule_seconds, result.retry_after_seconds
            )
        if delay is None:
            status, shown = "dead", "dead" if outcome == "retry" else outcome
            log.warning(
                "notification %s for %s by %s is a dead letter after %d attempts: %s",
                row.message_id,
                row.subscriber,
                row.channel,
                row.attempts + 1,
                result.detail,
            )
            self.store.record_attempt(row.message_id, shown, result.detail, status=status, now=now)
            metrics.DELIVERIES.labels(row.channel, shown).inc()
            return
        log.warning(
            "delivery of %s to %s by %s failed (%s); retry in %.0f s",
            row.message_id,
            row.subscriber,
            row.channel,
            result.detail,
            delay,
        )
        self.store.record_attempt(
            row.message_id,
            "retry",
            result.detail,
            status="pending",
            next_attempt_at=now + delay,
            now=now,
        )
        metrics.DELIVERIES.labels(row.channel, "retry").inc()

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.aclose()
        self.store.close()
