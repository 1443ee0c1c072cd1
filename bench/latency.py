"""``e2e-latency``, the stream leg: an open-loop run at fixed rates (50, 500, 2,000 articles/s)
from an article's publication to the raw topic (KafkaPublisher, ``fetched_at`` = that moment)
to its arrival on the classified topic, read by a consumer of the benchmark; p50/p99 per rate.
Then the first article after ``IDLE_SECONDS`` without any (faust-streaming issue 306 reports
a stall on wake-up).

Not measured yet: the legs before and after (a local feed server's entry to the publisher,
the spike notification to the webhook receiver). A feed's own polling interval (300 s by
default) is excluded by construction: the clock starts when the connector would publish.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import workset
from bench.stream import _start_worker, stop_process

RATES = (50, 500, 2000)
SECONDS_PER_RATE = 10.0
DRAIN_SECONDS = 60.0  # after the last send, how long arrivals are awaited
IDLE_SECONDS = 600.0  # set by --idle-seconds


async def _open_loop(publisher: Any, articles: list[dict[str, Any]], rate: float) -> int:
    """Send ``articles`` at ``rate`` per second on a fixed schedule, whatever the broker and
    the worker do (open loop): a send is started when it is due, not when the last returned.
    The number of sends that failed (the producer gave up: a broker that cannot keep up)."""
    from streams.records import RawArticle

    loop = asyncio.get_running_loop()
    started = loop.time()
    sends = []
    for n, raw in enumerate(articles):
        due = started + n / rate
        delay = due - loop.time()
        if delay > 0.002:
            await asyncio.sleep(delay)
        record = RawArticle(**{**raw, "fetched_at": time.time()})
        sends.append(asyncio.create_task(publisher.publish(record)))
    outcomes = await asyncio.gather(*sends, return_exceptions=True)
    return sum(isinstance(outcome, Exception) for outcome in outcomes)


class Arrivals:
    """Latency of each classified article: arrival (wall clock) minus its ``fetched_at``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    async def read(self, bootstrap: str, topic: str, stop: asyncio.Event) -> None:
        consumer = await workset.reader_from_start(bootstrap, topic, fetch_max_wait_ms=10)
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for records in batch.values():
                    for record in records:
                        article = json.loads(record.value)
                        self.seconds[article["article_id"]] = now - article["fetched_at"]
        finally:
            await consumer.stop()

    async def until(self, ids: list[str], timeout_seconds: float) -> list[float]:
        deadline = time.monotonic() + timeout_seconds
        # Polled with a deadline: the reader fills a dict, arrivals are not signalled.
        while time.monotonic() < deadline and any(i not in self.seconds for i in ids):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return [self.seconds[i] for i in ids if i in self.seconds]


def _quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


async def run_latency(kind: str, idle_seconds: float | None = None) -> dict[str, float]:
    from connectors.publisher import KafkaPublisher
    from streams.topics import TopicNames

    idle = IDLE_SECONDS if idle_seconds is None else idle_seconds
    figures: dict[str, float] = {}
    app_id = f"bench-latency-{int(time.time())}"
    names = TopicNames(app_id)
    # Distinct texts only: an exact copy is dropped and never arrives.
    pool = workset.raw_articles(sum(int(r * SECONDS_PER_RATE) for r in RATES) * 2 + 10)
    seen_titles: set[tuple[str, str]] = set()
    unique = []
    for raw in pool:
        if (raw["title"], raw["body"]) not in seen_titles:
            seen_titles.add((raw["title"], raw["body"]))
            unique.append(raw)
    async with workset.broker(kind) as broker:
        await workset.create_topics(broker.bootstrap, app_id)
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as data_dir:
            worker = await _start_worker(broker, app_id, Path(data_dir))
            publisher = KafkaPublisher(broker.bootstrap, topic=names.raw_articles)
            await publisher.start()
            arrivals = Arrivals()
            stop = asyncio.Event()
            reader = asyncio.create_task(arrivals.read(broker.bootstrap, names.articles, stop))
            try:
                offset = 0
                for rate in RATES:
                    batch = unique[offset : offset + int(rate * SECONDS_PER_RATE)]
                    offset += len(batch)
                    failed = await _open_loop(publisher, batch, rate)
                    figures[f"failed_sends_at_{rate}"] = failed
                    ids = [raw["article_id"] for raw in batch]
                    got = await arrivals.until(ids, DRAIN_SECONDS)
                    p50, p99 = _quantiles(got)
                    figures[f"p50_seconds_at_{rate}"] = p50
                    figures[f"p99_seconds_at_{rate}"] = p99
                    figures[f"arrived_fraction_at_{rate}"] = len(got) / len(ids)
                    if rate == 500:  # the goal's rate, for the table's columns
                        figures["p50_seconds"], figures["p99_seconds"] = p50, p99
                if idle <= 0:
                    return figures
                # What a quiet worker and broker cost: the fetch loop (10 ms waits) goes on.
                before = [workset.cpu_seconds(p) for p in (worker.pid, *broker.pids())]
                await asyncio.sleep(idle)
                after = [workset.cpu_seconds(p) for p in (worker.pid, *broker.pids())]
                figures["idle_worker_cpu_fraction"] = (after[0] - before[0]) / idle
                figures["idle_broker_cpu_fraction"] = (sum(after[1:]) - sum(before[1:])) / idle
                lone = unique[offset]
                await _open_loop(publisher, [lone], 1.0)
                got = await arrivals.until([lone["article_id"]], DRAIN_SECONDS)
                figures["first_after_idle_seconds"] = got[0] if got else float("nan")
                figures["idle_seconds"] = idle
            finally:
                stop.set()
                await reader
                await publisher.stop()
                await stop_process(worker)
    return figures
