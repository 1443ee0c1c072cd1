"""Alert delivery: notifications per second to a local receiver with 1,000 subscribers, and
p50/p99 from spike event (``Dispatcher.accept``) to webhook received.

The dispatcher is the service's own (``alerts.runtime.build_dispatcher``: SQLite outbox,
routing, signing, httpx with the SSRF guard) with its ``run()`` loop running. The receiver is
``newsalert.localservers.WebhookReceiver`` (it verifies every Standard Webhooks signature) in
its own process, so its CPU is not the dispatcher's; it stamps ``time.time()`` on arrival,
which is comparable with the dispatcher's clock on the same machine.

- throughput: one spike to 1,000 subscribers of one topic, each with its own webhook URL path
  on the one receiver -> 1,000 signed POSTs; from the ``accept`` call until every
  notification is recorded delivered in the outbox. Side by side: the same 1,000 subscribers
  sharing one URL (then ``delivery_concurrency_per_endpoint`` bounds it), and the outbox with
  ``PRAGMA synchronous=NORMAL``, and with at most 8 deliveries in flight (both what-ifs).
- latency: 1,000 subscribers over 100 topics (10 each); spikes on rotating topics at a steady
  rate, each to 10 subscribers; per notification, ``accept`` called -> POST received. The same
  with 10 subscribers in all, to show what the subscriber count costs per spike.
- e-mail: one spike to 100 e-mail subscribers, aiosmtpd ``SmtpSink`` in this process.
- breakdown: the steps of one notification timed alone on a store with 1,000 subscribers.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from newsalert.localservers import PostgresCluster

SECRET = "whsec_" + "YmVuY2gtc2VjcmV0LWtleS1mb3ItYWxlcnRz"
SUBSCRIBERS = 1000
THROUGHPUT_ROUNDS = 3
CAPPED_IN_FLIGHT = 8
LATENCY_TOPICS = 100
LATENCY_SPIKES_PER_SECOND = 5.0
LATENCY_SECONDS = 30.0
LATENCY_WARMUP_SECONDS = 2.0
EMAIL_SUBSCRIBERS = 100
DEADLINE_SECONDS = 120.0
# Where the outbox lives (fsync cost depends on the file system): the default temp dir.
TMP_ROOT = os.environ.get("NEWSALERT_BENCH_TMP")
_LOST_CANCELS: list[int] = []  # Dispatcher.run() cancels that did not stop it


# -- the receiver, in its own process --------------------------------------------------------


def _serve(port_queue: Any, secret: str) -> None:
    from aiohttp import web

    from newsalert.localservers import WebhookReceiver

    class Receiver(WebhookReceiver):
        """The test receiver plus a way to read what arrived: webhook-id, time, verified."""

        def routes(self, app: web.Application) -> None:
            app.router.add_get("/_arrivals", self._arrivals)
            super().routes(app)

        async def _arrivals(self, request: web.Request) -> web.Response:
            rows = [
                [r.headers.get("webhook-id", ""), r.received_at, r.verified] for r in self.received
            ]
            self.received.clear()
            return web.json_response(rows)

    async def main() -> None:
        receiver = Receiver(secret)
        await receiver.start()
        port_queue.put(receiver.port)
        await asyncio.Event().wait()

    asyncio.run(main())


class _ReceiverProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        self.process = context.Process(target=_serve, args=(queue, SECRET), daemon=True)
        self.process.start()
        self.port = queue.get(timeout=60)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def take_arrivals(self) -> dict[str, tuple[float, bool]]:
        """What arrived since the last call: webhook-id -> (received_at, signature verified)."""
        import httpx

        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(self.url("/_arrivals"), timeout=30)
        return {mid: (at, verified) for mid, at, verified in response.json()}

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


# -- helpers ---------------------------------------------------------------------------------


def _spike(spike_id: str, topic: str, story: str, now: float) -> dict[str, Any]:
    """A spike event as the detector emits it; a new story each time, so routing never skips
    it as already announced."""
    return {
        "spike_id": spike_id,
        "topic": topic,
        "state": "started",
        "window_start": now - 3600,
        "window_end": now,
        "count": 12,
        "baseline": 2.0,
        "ratio": 6.0,
        "score": 5.0,
        "detected_at": now,
        "top_stories": [
            {
                "article_id": f"a-{story}-{n}",
                "story_id": f"s-{story}-{n}",
                "title": f"Story {n} of {story}: US warns Germany over Huawei in 5G",
                "url": f"https://news.example/{story}/{n}",
                "source": "Reuters",
                "published": now - 600 * n,
            }
            for n in range(3)
        ],
        "top_terms": ["Huawei", "5G"],
        "recent_counts": [{"start": now - 3600 * (24 - h), "count": h % 5} for h in range(24)],
    }


def _settings(data_dir: Path, subscriptions: list[dict[str, Any]], **extra: Any):
    from newsalert.settings import load_settings

    return load_settings(
        None,
        data_dir=data_dir,
        allow_private_networks="127.0.0.0/8",
        alert_group_wait_seconds=0,
        # Every spike is a new one for its group: no group interval or repeat hold-back.
        alert_group_interval_seconds=0,
        alert_repeat_interval_seconds=0,
        subscriptions=subscriptions,
        **extra,
    )


def _webhook_subscribers(
    receiver: _ReceiverProcess, count: int, topics: int, shared_url: bool = False
) -> list[dict[str, Any]]:
    return [
        {
            "name": f"sub-{n:04d}",
            "topics": [f"topic-{n % topics}"],
            "webhook": {
                "url": receiver.url("/hook" if shared_url else f"/hook/{n}"),
                "secret": SECRET,
            },
        }
        for n in range(count)
    ]


async def _until(condition: Callable[[], bool], what: str, interval: float = 0.005) -> float:
    """Poll ``condition`` until true; return when it became true (time.time())."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"benchmark timed out after {DEADLINE_SECONDS:.0f} s: {what}")
        await asyncio.sleep(interval)
    return time.time()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class _Running:
    """A dispatcher built from settings, its ``run()`` loop as a task; closed on exit."""

    def __init__(self, settings: Any, synchronous: str | None = None) -> None:
        from alerts.runtime import build_dispatcher

        dispatcher = self.dispatcher = build_dispatcher(settings)
        # A what-if, not the service's behaviour: the SQLite outbox without an fsync per commit.
        if synchronous is not None:
            dispatcher.store._db.execute(f"PRAGMA synchronous={synchronous}")

    async def __aenter__(self):
        self.task = asyncio.create_task(self.dispatcher.run())
        return self.dispatcher

    async def __aexit__(self, *exc: object) -> None:
        # On Python 3.11 asyncio.wait_for swallows a cancel that coincides with its inner
        # wait finishing (a delivery's wake-up), and run() goes on looping: cancel again.
        self.task.cancel()
        while not (await asyncio.wait({self.task}, timeout=2.0))[0]:
            _LOST_CANCELS.append(1)
            self.task.cancel()
        await self.dispatcher.close()


# -- (a) throughput --------------------------------------------------------------------------


async def _one_burst(
    receiver: _ReceiverProcess, shared_url: bool, synchronous: str | None, **extra: Any
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=TMP_ROOT) as tmp:
        subs = _webhook_subscribers(receiver, SUBSCRIBERS, topics=1, shared_url=shared_url)
        settings = _settings(Path(tmp), subs, **extra)
        async with _Running(settings, synchronous) as dispatcher:
            await receiver.take_arrivals()
            started = time.time()
            added = await dispatcher.accept(_spike("burst", "topic-0", "burst", started))
            accepted = time.time()
            recorded = await _until(lambda: dispatcher.store.pending_count() == 0, "all delivered")
    arrivals = await receiver.take_arrivals()
    if added != SUBSCRIBERS or len(arrivals) != SUBSCRIBERS:
        raise RuntimeError(f"queued {added}, received {len(arrivals)} of {SUBSCRIBERS}")
    if not all(verified for _, verified in arrivals.values()):
        raise RuntimeError("a webhook signature did not verify")
    last_received = max(at for at, _ in arrivals.values())
    return {
        "accept_seconds": accepted - started,
        "to_last_received_seconds": last_received - started,
        "to_all_recorded_seconds": recorded - started,
    }


async def _throughput(
    receiver: _ReceiverProcess, postgres: PostgresCluster
) -> dict[str, float | str]:
    # name -> (one URL for all, SQLite synchronous what-if, settings); the default is the
    # service's: own URL each, SQLite FULL, delivery_max_in_flight 16.
    cases: dict[str, tuple[bool, str | None, dict[str, Any]]] = {
        "own_url": (False, None, {}),
        "shared_url": (True, None, {}),
        "own_url_sync_normal": (False, "NORMAL", {}),
        f"own_url_max_{CAPPED_IN_FLIGHT}_in_flight": (
            False,
            None,
            {"delivery_max_in_flight": CAPPED_IN_FLIGHT},
        ),
        "own_url_unbounded_in_flight": (False, None, {"delivery_max_in_flight": SUBSCRIBERS}),
        "own_url_postgresql": (False, None, {"database_url": ""}),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(THROUGHPUT_ROUNDS):  # interleaved: load changes hit every case alike
        for name, (shared_url, synchronous, extra) in cases.items():
            if "database_url" in extra:
                extra = {"database_url": postgres.create_database()}  # empty each round
            runs[name].append(await _one_burst(receiver, shared_url, synchronous, **extra))
    figures: dict[str, float | str] = {}
    rate: dict[str, float] = {}
    for name, rounds in runs.items():
        recorded = statistics.median(r["to_all_recorded_seconds"] for r in rounds)
        received = statistics.median(r["to_last_received_seconds"] for r in rounds)
        accept = statistics.median(r["accept_seconds"] for r in rounds)
        rate[name] = SUBSCRIBERS / recorded
        figures[f"burst_{name}_notifications_per_second"] = round(rate[name])
        figures[f"burst_{name}_to_last_received_per_second"] = round(SUBSCRIBERS / received)
        figures[f"burst_{name}_accept_ms"] = round(accept * 1000, 1)
        figures[f"burst_{name}_rounds_per_second"] = ", ".join(
            str(round(SUBSCRIBERS / r["to_all_recorded_seconds"])) for r in rounds
        )
    for name in cases:
        if name != "own_url":
            figures[f"burst_ratio_{name}_to_own_url"] = round(rate[name] / rate["own_url"], 2)
    return figures


# -- (b) latency -----------------------------------------------------------------------------


async def _latency(receiver: _ReceiverProcess, subscribers: int) -> dict[str, float]:
    from alerts.routing import message_id

    topics = min(LATENCY_TOPICS, subscribers)
    subs = _webhook_subscribers(receiver, subscribers, topics=topics)
    by_topic: dict[str, list[str]] = {}
    for sub in subs:
        by_topic.setdefault(sub["topics"][0], []).append(sub["name"])
    sent_at: dict[str, float] = {}  # message id -> when accept() was called
    accept_seconds: list[float] = []
    warm: set[str] = set()
    with tempfile.TemporaryDirectory(dir=TMP_ROOT) as tmp:
        async with _Running(_settings(Path(tmp), subs)) as dispatcher:
            await receiver.take_arrivals()
            count = round(LATENCY_SPIKES_PER_SECOND * LATENCY_SECONDS)
            begin = time.monotonic()
            for n in range(count):
                # A fixed schedule: a slow accept() delays the next spike, not the whole rate.
                await asyncio.sleep(
                    max(0.0, begin + n / LATENCY_SPIKES_PER_SECOND - time.monotonic())
                )
                topic = f"topic-{n % topics}"
                spike_id = f"{topic}:{n}"
                started = time.time()
                await dispatcher.accept(_spike(spike_id, topic, f"l{n}", started))
                accept_seconds.append(time.time() - started)
                for name in by_topic[topic]:
                    mid = message_id(spike_id, "started", name, "webhook")
                    sent_at[mid] = started
                    if n < LATENCY_WARMUP_SECONDS * LATENCY_SPIKES_PER_SECOND:
                        warm.add(mid)
            elapsed = time.monotonic() - begin
            await _until(lambda: dispatcher.store.pending_count() == 0, "all delivered")
        arrivals = await receiver.take_arrivals()
    missing = set(sent_at) - set(arrivals)
    if missing:
        raise RuntimeError(f"{len(missing)} notifications never arrived")
    latencies = [(arrivals[mid][0] - at) * 1000 for mid, at in sent_at.items() if mid not in warm]
    return {
        "spikes": count,
        "notifications": len(sent_at),
        "offered_notifications_per_second": round(len(sent_at) / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 50), 1),
        "p99_ms": round(_percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "accept_p50_ms": round(_percentile([s * 1000 for s in accept_seconds], 50), 1),
        "accept_p99_ms": round(_percentile([s * 1000 for s in accept_seconds], 99), 1),
    }


# -- (c) e-mail ------------------------------------------------------------------------------


async def _email() -> dict[str, float]:
    from newsalert.localservers import SmtpSink

    sink = SmtpSink()
    await sink.start()
    try:
        subs = [
            {"name": f"mail-{n:03d}", "topics": ["topic-0"], "email": f"reader{n}@example.org"}
            for n in range(EMAIL_SUBSCRIBERS)
        ]
        with tempfile.TemporaryDirectory(dir=TMP_ROOT) as tmp:
            settings = _settings(Path(tmp), subs, smtp={"host": "127.0.0.1", "port": sink.port})
            async with _Running(settings) as dispatcher:
                started = time.time()
                await dispatcher.accept(_spike("mail", "topic-0", "mail", started))
                recorded = await _until(lambda: dispatcher.store.pending_count() == 0, "all mailed")
        if len(sink.messages) != EMAIL_SUBSCRIBERS:
            raise RuntimeError(f"sink got {len(sink.messages)} of {EMAIL_SUBSCRIBERS}")
    finally:
        await sink.stop()
    return {
        "email_messages_per_second": round(EMAIL_SUBSCRIBERS / (recorded - started)),
        "email_seconds_for_100": round(recorded - started, 2),
    }


# -- breakdown -------------------------------------------------------------------------------


def _breakdown() -> dict[str, float]:
    """Each step of one notification, timed alone (wall, median of a few repeats)."""
    from httpcore._synchronization import current_async_library

    from alerts.dispatcher import Dispatcher, Policy
    from alerts.payload import webhook_body, webhook_payload
    from alerts.routing import Timing, route
    from alerts.signing import signature_header
    from alerts.store import DeliveryStore
    from newsalert.settings import SubscriptionConfig

    def timed(step: Callable[[], object], repeat: int = 5) -> float:
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            step()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    figures: dict[str, float] = {}
    configs = [
        SubscriptionConfig.model_validate(
            {
                "name": f"sub-{n:04d}",
                "topics": ["topic-0"],
                "webhook": {"url": f"http://127.0.0.1:9/hook/{n}", "secret": SECRET},
            }
        )
        for n in range(SUBSCRIBERS)
    ]
    with tempfile.TemporaryDirectory(dir=TMP_ROOT) as tmp:
        store = DeliveryStore(Path(tmp) / "bench.sqlite3")
        store.sync_config(configs)
        dispatcher = Dispatcher(store, {}, Policy(timing=Timing(0, 0, 0)))
        now = time.time()
        spike = _spike("parts", "topic-0", "parts", now)
        encoded = json.dumps(spike)
        figures["accept_read_1000_subscribers_ms"] = timed(lambda: dispatcher.subscribers()) * 1e3
        subs = dispatcher.subscribers()
        routed: list[Any] = []
        figures["accept_route_1000_subscribers_ms"] = (
            timed(lambda: routed.__setitem__(slice(None), route(spike, subs, store, now)[0])) * 1e3
        )
        figures["accept_enqueue_1000_notifications_ms"] = (
            timed(lambda: store.enqueue([(r.notification, now, r.status) for r in routed], now), 1)
            * 1e3
        )
        rows = store.due(now + 1, limit=SUBSCRIBERS)
        figures["deliver_due_query_100_rows_ms"] = (
            timed(lambda: store.due(now + 1, limit=100, exclude=[r.message_id for r in rows[:100]]))
            * 1e3
        )
        figures["deliver_read_subscriber_us"] = (
            timed(lambda: [store.subscriber(r.subscriber) for r in rows[:200]]) / 200 * 1e6
        )

        def payloads() -> None:
            for r in rows[:200]:
                body = webhook_body(webhook_payload(r.message_id, r.subscriber, r.spike))
                signature_header([SECRET], r.message_id, int(now), body)

        figures["deliver_payload_and_signature_us"] = timed(payloads) / 200 * 1e6
        # enqueue serialises the (same) spike once per notification; due() parses it per row.
        figures["accept_spike_json_per_notification_us"] = (
            timed(lambda: [json.dumps(spike) for _ in range(200)]) / 200 * 1e6
        )
        figures["deliver_spike_json_parse_per_row_us"] = (
            timed(lambda: [json.loads(encoded) for _ in range(200)]) / 200 * 1e6
        )
        # httpcore tries ``import sniffio`` on every lock it makes (~4 per request); without
        # sniffio installed each try searches sys.path and fails.
        figures["deliver_httpcore_async_library_check_us"] = (
            timed(lambda: [current_async_library() for _ in range(200)]) / 200 * 1e6
        )

        def record(synchronous: str) -> float:
            store._db.execute(f"PRAGMA synchronous={synchronous}")
            batch = rows[:200] if synchronous == "FULL" else rows[200:400]
            started = time.perf_counter()
            for r in batch:
                store.record_attempt(r, "delivered", "HTTP 200", status="delivered", now=now)
            return (time.perf_counter() - started) / len(batch) * 1e6

        figures["deliver_record_attempt_us"] = record("FULL")
        figures["deliver_record_attempt_sync_normal_us"] = record("NORMAL")
        store.close()
    return {key: round(value, 1) for key, value in figures.items()}


# -- entry -----------------------------------------------------------------------------------


async def _measure() -> dict[str, float | str]:
    receiver = _ReceiverProcess()
    postgres = PostgresCluster()
    try:
        postgres.start()
        figures: dict[str, float | str] = {"subscribers": SUBSCRIBERS}
        figures.update(await _throughput(receiver, postgres))
        for subscribers in (SUBSCRIBERS, 10):
            for key, value in (await _latency(receiver, subscribers)).items():
                figures[f"latency_{subscribers}_subscribers_{key}"] = value
    finally:
        receiver.stop()
        postgres.stop()
    figures.update(await _email())
    figures["run_loop_cancels_lost"] = len(_LOST_CANCELS)
    return figures


def run() -> dict[str, float | str]:
    figures = asyncio.run(_measure())
    figures.update(_breakdown())
    figures["note"] = (
        "wall clock; service dispatcher (run() loop, SQLite outbox in the temp dir unless "
        "the case says postgresql: a local throwaway cluster without fsync, httpx) in "
        "this process; WebhookReceiver verifying signatures in another process; "
        f"burst = 1 spike -> {SUBSCRIBERS} signed POSTs, median of {THROUGHPUT_ROUNDS} rounds; "
        f"latency = accept() called -> POST received, {LATENCY_SPIKES_PER_SECOND:g} spikes/s "
        f"for {LATENCY_SECONDS:g} s (first {LATENCY_WARMUP_SECONDS:g} s not counted); "
        f"e-mail = 1 spike -> {EMAIL_SUBSCRIBERS} messages to aiosmtpd in this process"
    )
    figures["load_average_1_min_after"] = round(os.getloadavg()[0], 2)
    return figures
