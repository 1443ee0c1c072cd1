"""The dispatcher: spikes in (``accept``), notifications out (``run``), nothing lost.

``accept`` routes a spike and writes its notifications to the outbox in one transaction,
before the alert agent commits the spike's offset. ``run`` delivers due notifications, each in
its own task (a slow or dead endpoint holds up only its own deliveries: bounded concurrency
per endpoint, a deadline per attempt), retrying on a Svix-like schedule with jitter (longer if
the receiver's ``Retry-After`` says so). A message that exhausts the schedule, or fails for
good, becomes a dead letter, which ``newsalert deliveries replay`` can resend. An endpoint
answering 410, or failing for days, is disabled and its subscriber told by e-mail; an address
that hard-bounces repeatedly is suppressed. Digest items are combined when their time comes.

Two dispatchers may share one database (two service processes on one PostgreSQL): each claims
the rows it delivers (``DeliveryStore.claim_due``), so a due message goes to one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alerts import metrics
from alerts.channels.base import Channel, DeliveryResult, Outgoing
from alerts.links import Links
from alerts.payload import iso, webhook_payload
from alerts.routing import Notification, Timing, channels_of, message_id, route
from alerts.store import DeliveryStore, OutboxRow
from newsalert.database import unavailable_errors, wait_out_outage, when_available
from newsalert.metrics import observe_article_latency
from newsalert.settings import SubscriptionConfig

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


def observe_notified(spike: dict[str, Any], now: float) -> None:
    """The end-to-end latency of a delivered spike notification: from the publication and the
    fetch of the newest of its stories, the one that most likely tipped the count over."""
    stories = [s for s in spike.get("top_stories", ()) if s.get("published")]
    if stories:
        newest = max(stories, key=lambda s: s["published"])
        observe_article_latency("notified", now, newest["published"], newest.get("fetched_at", 0))


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


@dataclass(frozen=True)
class Policy:
    retry_schedule_seconds: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000)
    timing: Timing = Timing()
    concurrency_per_endpoint: int = 4
    max_in_flight: int = 16
    attempt_timeout_seconds: float = 15.0
    disable_after_seconds: float = 5 * 86400.0
    suppress_after_hard_failures: int = 3


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        channels: dict[str, Channel],
        policy: Policy,
        links: Links | None = None,
        *,
        batch_size: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.channels = channels
        self.policy = policy
        self.links = links
        self.batch_size = batch_size
        self.clock = clock
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}

    # -- in: spikes ----------------------------------------------------------------------

    def subscribers(self) -> list[SubscriptionConfig]:
        """Read each time: the CLI and a SIGHUP reload change them while the service runs."""
        return [s.config for s in self.store.subscribers()]

    async def accept(self, spike: dict[str, Any]) -> int:
        """Route a spike into the outbox; while the state database is down, wait for it (the
        stream stays on this spike, so its offset is not committed and nothing is lost)."""
        return await when_available(lambda: self._accept(spike), f"spike {spike.get('spike_id')}")

    def _accept(self, spike: dict[str, Any]) -> int:
        now = self.clock()
        subscribers = self.subscribers()
        state = self.store.routing_state(spike, subscribers, now)
        routed, skipped = route(spike, subscribers, state, now, self.policy.timing)
        for skip in skipped:
            metrics.NOTIFICATIONS_SKIPPED.labels(skip.reason.split(":")[0]).inc()
            log.info("spike %s not sent to %s: %s", spike["spike_id"], skip.subscriber, skip.reason)
        added = self.store.enqueue([(r.notification, r.due_at, r.status) for r in routed], now=now)
        for r in routed:
            metrics.NOTIFICATIONS_QUEUED.labels(r.notification.channel).inc()
        if added:
            self._wake.set()
        self._show_pending()
        return added

    def _show_pending(self) -> None:
        """The outbox gauges as the outbox is now: after every change this process makes."""
        pending, retrying = self.store.pending_counts()
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_RETRYING.set(retrying)

    # -- out: deliveries -----------------------------------------------------------------

    async def run(self) -> None:
        outages = 0
        while True:
            try:
                self.collect_digests()
                self._start_due()
                now = self.clock()
                upcoming = [
                    t for t in (self.store.next_due_at(), self.store.next_due_at("digest")) if t
                ]
            except unavailable_errors() as problem:
                await wait_out_outage(problem, "delivery", outages)
                outages += 1
                continue
            outages = 0
            wait = min([1.0, *(max(t - now, 0.01) for t in upcoming)])
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
            # lands with a wake-up, and the service would hang at shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def deliver_due(self) -> int:
        """Collect due digests, try every due notification once and wait for the attempts;
        return how many were tried (tests and ``deliveries replay`` use this)."""
        self.collect_digests()
        tried = 0
        while tasks := self._start_due():
            await asyncio.gather(*tasks)
            tried += len(tasks)
        return tried

    def _start_due(self) -> list[asyncio.Task[None]]:
        # A cap on deliveries in flight: queueing a thousand requests in the HTTP pool at once
        # makes each wait behind the others (and time out) instead of going faster.
        room = min(self.batch_size, self.policy.max_in_flight - len(self._in_flight))
        if room <= 0:
            return []
        rows = self.store.claim_due(
            self.clock(), limit=room, lease_seconds=self.claim_seconds(), exclude=self._in_flight
        )
        tasks = []
        for row in rows:
            task = asyncio.create_task(self._deliver(row), name=f"deliver {row.message_id}")
            self._in_flight[row.message_id] = task
            task.add_done_callback(lambda _t, mid=row.message_id: self._done(mid))
            tasks.append(task)
        return tasks

    def claim_seconds(self) -> float:
        """How long a claimed delivery may take before another dispatcher may take it over:
        a wait for its endpoint's slot behind every other delivery in flight, then its own
        attempt, with one attempt to spare."""
        policy = self.policy
        waits = -(-policy.max_in_flight // max(policy.concurrency_per_endpoint, 1))
        return policy.attempt_timeout_seconds * (waits + 1) + 60.0

    def _done(self, message_id: str) -> None:
        self._in_flight.pop(message_id, None)
        self._wake.set()

    def collect_digests(self) -> int:
        """Turn held digest items whose time has come into one message per channel."""
        now = self.clock()
        made = 0
        for (subscriber, channel, target), items in self.store.due_digests(now).items():
            first = min(item.next_attempt_at for item in items)
            digest_id = message_id("digest", subscriber, channel, target, f"{first:.0f}")
            spike = {
                "topic": "digest",
                "state": "digest",
                "spike_id": digest_id,
                "period": {"start": iso(min(i.created_at for i in items)), "end": iso(now)},
                "items": [item.spike for item in items],
            }
            digest = Notification(digest_id, subscriber, channel, target, spike, kind="digest")
            made += self.store.replace_with_digest(items, digest, now=now)
        if made:
            self._show_pending()
        return made

    def outgoing(self, row: OutboxRow, sub: SubscriptionConfig | None, test: bool = False):
        note = row.notification()
        payload = webhook_payload(
            note.message_id,
            note.subscriber,
            note.spike,
            test=test,
            kind=note.kind,
            links=self.links,
        )
        secrets: tuple[str, ...] = ()
        if sub is not None and sub.webhook is not None and sub.webhook.url == note.target:
            secrets = tuple(sub.webhook.secrets())
        unsubscribe = None
        if self.links is not None and note.channel == "email":
            unsubscribe = self.links.unsubscribe_url(note.subscriber, note.target)
        return Outgoing(note, payload, secrets, unsubscribe)

    async def _deliver(self, row: OutboxRow) -> None:
        channel = self.channels.get(row.channel)
        sub = self.store.subscriber(row.subscriber)
        started = time.perf_counter()
        if channel is None:
            result = DeliveryResult("failed", f"no channel {row.channel!r} configured")
        elif sub is None and row.kind != "notice":
            result = DeliveryResult("failed", f"subscriber {row.subscriber!r} was removed")
        else:
            slot = self._slots.setdefault(
                row.target, asyncio.Semaphore(self.policy.concurrency_per_endpoint)
            )
            async with slot:
                result = await self._attempt(channel, self.outgoing(row, sub))
        metrics.DELIVERY_DURATION.labels(row.channel).observe(time.perf_counter() - started)
        # Sent but not yet recorded: wait for the database rather than send it again later.
        await when_available(
            lambda: self._record(row, result, sub), f"message {row.message_id} ({result.outcome})"
        )

    async def _attempt(self, channel: Channel, outgoing: Outgoing) -> DeliveryResult:
        try:
            return await asyncio.wait_for(
                channel.send(outgoing), timeout=self.policy.attempt_timeout_seconds
            )
        except TimeoutError:
            return DeliveryResult(
                "retry", f"no answer within {self.policy.attempt_timeout_seconds:g} s"
            )
        except Exception as exc:  # a channel bug must not stop other deliveries
            log.exception("channel %s crashed", channel.name)
            return DeliveryResult("retry", f"internal error: {exc!r}")

    def _record(
        self, row: OutboxRow, result: DeliveryResult, sub: SubscriptionConfig | None
    ) -> None:
        now = self.clock()
        outcome = result.outcome
        if outcome == "delivered":
            self.store.record_attempt(row, outcome, result.detail, status="delivered", now=now)
            detected_at = row.spike.get("detected_at")
            if row.kind == "spike":
                if detected_at:
                    latency = max(now - detected_at, 0)
                    metrics.NOTIFICATION_LATENCY.labels(row.channel).observe(latency)
                observe_notified(row.spike, now)
            metrics.DELIVERIES.labels(row.channel, "delivered").inc()
            log.info("delivered %s to %s by %s", row.message_id, row.subscriber, row.channel)
            self._show_pending()
            return
        delay = None
        if outcome == "retry":
            delay = retry_delay(
                row.attempts + 1, self.policy.retry_schedule_seconds, result.retry_after_seconds
            )
        if delay is not None:
            log.warning(
                "delivery of %s to %s by %s failed (%s); retry in %.0f s",
                row.message_id,
                row.subscriber,
                row.channel,
                result.detail,
                delay,
            )
            self.store.record_attempt(
                row, "retry", result.detail, status="pending", next_attempt_at=now + delay, now=now
            )
            metrics.DELIVERIES.labels(row.channel, "retry").inc()
        else:
            shown = "dead" if outcome == "retry" else outcome
            log.warning(
                "notification %s for %s by %s is a dead letter after %d attempts: %s",
                row.message_id,
                row.subscriber,
                row.channel,
                row.attempts + 1,
                result.detail,
            )
            self.store.record_attempt(row, shown, result.detail, status="dead", now=now)
            metrics.DELIVERIES.labels(row.channel, shown).inc()
        self._maybe_disable(row, result, sub, now)
        self._show_pending()

    def _maybe_disable(
        self, row: OutboxRow, result: DeliveryResult, sub: SubscriptionConfig | None, now: float
    ) -> None:
        endpoint = self.store.endpoint(row.subscriber, row.channel, row.target)
        reason = None
        if result.outcome == "disabled":
            reason = f"the endpoint answered 410 Gone ({iso(now)})"
        elif (
            endpoint
            and endpoint.failing_since is not None
            and (now - endpoint.failing_since >= self.policy.disable_after_seconds)
        ):
            days = (now - endpoint.failing_since) / 86400
            reason = f"failing for {days:.1f} days without a success; last error: {result.detail}"
        elif (
            row.channel == "email"
            and endpoint
            and endpoint.hard_failures >= self.policy.suppress_after_hard_failures
        ):
            reason = f"address suppressed after {endpoint.hard_failures} hard failures"
        if reason is None or row.kind == "notice":
            return
        if not self.store.disable_endpoint(row.subscriber, row.channel, row.target, reason, now):
            return
        metrics.ENDPOINTS_DISABLED.labels(row.channel).inc()
        log.warning("disabled %s %s of %s: %s", row.channel, row.target, row.subscriber, reason)
        if sub is not None and sub.email and row.channel != "email":
            self.notify_subscriber(
                sub,
                f"your {row.channel} endpoint was disabled",
                f"newsalert disabled the {row.channel} endpoint {row.target} of subscription "
                f"{sub.name!r}: {reason}. Alerts are not sent there until it is re-enabled "
                f"(newsalert subscribers enable {sub.name}).",
                now,
            )

    def notify_subscriber(
        self, sub: SubscriptionConfig, subject: str, text: str, now: float
    ) -> None:
        """A service notice to the subscriber's e-mail (outside the spike flow)."""
        assert sub.email is not None
        notice_id = message_id("notice", sub.name, subject, f"{now:.0f}")
        spike = {"topic": "notice", "state": "notice", "spike_id": notice_id}
        spike |= {"subject": subject, "text": text}
        note = Notification(notice_id, sub.name, "email", sub.email, spike, kind="notice")
        self.store.enqueue([(note, now, "pending")], now=now)
        self._wake.set()

    async def send_test(self, sub: SubscriptionConfig) -> list[tuple[str, str, DeliveryResult]]:
        """``subscribers test``: a marked test notification through each channel, now."""
        now = self.clock()
        spike = sample_spike(now)
        results = []
        for channel_name, target in channels_of(sub):
            test_id = message_id("test", sub.name, channel_name, f"{now:.6f}")
            note = Notification(test_id, sub.name, channel_name, target, spike)
            row = _transient_row(note, now)
            channel = self.channels[channel_name]
            outgoing = self.outgoing(row, sub, test=True)
            results.append((channel_name, target, await self._attempt(channel, outgoing)))
        return results

    async def close(self) -> None:
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        for channel in self.channels.values():
            await channel.aclose()
        self.store.close()


def sample_spike(now: float) -> dict[str, Any]:
    return {
        "spike_id": "test",
        "topic": "test",
        "state": "started",
        "window_start": now - 3600,
        "window_end": now,
        "count": 0,
        "baseline": 0.0,
        "ratio": 0.0,
        "score": 0.0,
        "detected_at": now,
        "top_stories": [],
        "top_terms": [],
        "recent_counts": [],
    }


def _transient_row(note: Notification, now: float) -> OutboxRow:
    return OutboxRow(
        message_id=note.message_id,
        subscriber=note.subscriber,
        channel=note.channel,
        target=note.target,
        topic=note.spike["topic"],
        state=note.spike["state"],
        spike_id=note.spike["spike_id"],
        group_key=note.group_key,
        kind=note.kind,
        spike=note.spike,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        last_error=None,
        created_at=now,
        delivered_at=None,
    )
