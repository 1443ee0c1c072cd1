"""``e2e-latency``: the whole path, open loop at fixed rates (50, 500, 2,000 articles/s), from an
entry's appearance on a local feed server to the signed webhook at a local receiver.

What runs: a fresh broker; ``bench/growingfeeds.py`` (its own process), whose ``FEEDS`` feeds
grow on a fixed schedule; ``newsalert connectors`` polling them (``POLL_SECONDS``); one
``newsalert streams`` worker (stream stages, spike detector, alert agent and dispatcher); and
a ``WebhookReceiver`` (newsalert/localservers.py, it checks each signature) for a subscriber
of the burst topics. Each rate's articles carry ``BURSTS`` bursts of ``BURST_SIZE`` articles
on a topic of their own (a keyword added to the default taxonomy), each burst topic set to
start a spike at ``SPIKE_STORIES`` distinct stories, alert group wait 0.

Legs, each p50/p99 per rate, from clocks of this one machine:
- poll wait: the entry's appearance -> the first poll that got it (the feed server notes it);
- feed leg: that poll -> the connector's publish (the raw record's producer timestamp);
- stream leg (``p50_seconds_at_R``, as before): publish -> arrival on the classified topic;
- alert leg: the spike's ``detected_at`` -> the webhook's receipt;
- end to end: the appearance of the article that made the spike qualify (its burst's
  ``SPIKE_STORIES``th distinct story on the topic-hits topic), less its poll wait, ->
  receipt; and ``end_to_end_with_poll_wait`` the same with the wait.
Then ``idle_seconds`` without a new entry and one more burst: the same legs once, and the
first article's stream leg (``first_after_idle_seconds``, as before).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import workset
from bench.growingfeeds import GrowingFeeds, item_xml
from bench.stream import NEWSALERT, START_TIMEOUT_SECONDS, stop_process

RATES = (50, 500, 2000)
SECONDS_PER_RATE = 10.0
DRAIN_SECONDS = 60.0  # after the last entry appeared, the longest wait for the rest
QUIET_DRAIN_SECONDS = 10.0  # ... or until nothing new arrived for this long
IDLE_SECONDS = 600.0  # set by --idle-seconds
FEEDS = 20  # entries go to the feeds in turn
POLL_SECONDS = 1.0  # poll_interval_seconds
WINDOW_SECONDS = 3.0  # a feed document carries the entries of its last 3 s
BURSTS = 5  # per rate
BURST_SIZE = 6
SPIKE_STORIES = 5  # absolute_threshold of each burst topic: distinct stories in a bucket
BURST_PREFIX = "bench-burst-"


def _keyword(number: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "zqburst" + letters[number // 26] + letters[number % 26]


def _topic(number: int) -> str:
    return f"{BURST_PREFIX}{_keyword(number)}"


def _quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


def _write_config(directory: Path, feeds: GrowingFeeds, receiver_url: str, topics: int) -> Path:
    """The default taxonomy plus one topic per burst keyword, and the service's config."""
    from newsalert.demo import DEMO_SECRET
    from streams.classify.taxonomy import DEFAULT_TAXONOMY

    taxonomy = yaml.safe_load(DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
    names = [_topic(n) for n in range(topics)]
    for number, name in enumerate(names):
        taxonomy["topics"][name] = {
            "description": "a burst of the benchmark",
            "min_paragraphs": 1,
            "rules": [_keyword(number)],
        }
    (directory / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy), encoding="utf-8")
    config = {
        "taxonomy": str(directory / "taxonomy.yaml"),
        "poll_interval_seconds": POLL_SECONDS,
        "allow_private_networks": "127.0.0.0/8",
        "feeds": [{"url": feeds.url(n), "name": f"bench-{n}"} for n in range(FEEDS)],
        "subscriptions": [
            {
                "name": "bench",
                "topics": names,
                "webhook": {"url": receiver_url, "secret": DEMO_SECRET},
            }
        ],
        "spike": {"topics": {name: {"absolute_threshold": SPIKE_STORIES} for name in names}},
        "alert_group_wait_seconds": 0,
    }
    for role in ("streams", "connectors"):  # each role's data directory
        (directory / role).mkdir()
    path = directory / "newsalert.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def _start(role: str, broker: workset.Broker, app_id: str, config: Path, data_dir: Path):
    """``newsalert ROLE --config CONFIG`` on the benchmark's broker; stderr to a log file."""
    env = workset.role_env(app_id, data_dir)
    log = data_dir / f"{role}.log"
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            str(NEWSALERT),
            role,
            "--broker",
            broker.url,
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            env=env,
        )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while b"running" not in (line := await process.stdout.readline()):
                if not line:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"newsalert {role} exited during start-up: {tail}")
    except BaseException:
        await stop_process(process)
        raise
    return process


class Topics:
    """What the benchmark reads of the service's topics, each record as it arrives: raw
    (publish time = the connector's producer timestamp), classified (arrival), topic hits of
    the burst topics (in order), spikes of the burst topics."""

    def __init__(self) -> None:
        self.published: dict[str, float] = {}
        self.classified: dict[str, float] = {}
        self.hits: dict[str, list[tuple[str, str]]] = {}  # topic -> [(article_id, story_id)]
        self.detected: dict[str, float] = {}  # topic -> detected_at of its started spike
        self.last_arrival = 0.0

    async def read(self, bootstrap: str, app_id: str, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.topics import TopicNames

        names = TopicNames(app_id)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()  # aiokafka's client
            wanted = [names.raw_articles, names.articles, names.topic_hits, names.spikes]
            partitions = [
                TopicPartition(topic, p)
                for topic in wanted
                for p in sorted(cluster.partitions_for_topic(topic) or ())
            ]
            if len({tp.topic for tp in partitions}) < len(wanted):
                raise RuntimeError(f"not every topic of {wanted} is known to the broker")
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, 0)
            burst = BURST_PREFIX.encode()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for tp, records in batch.items():
                    for record in records:
                        key = record.key.decode() if record.key else ""
                        if tp.topic == names.raw_articles:
                            self.published.setdefault(key, record.timestamp / 1000)
                        elif tp.topic == names.articles:
                            self.classified.setdefault(key, now)
                            self.last_arrival = now
                        elif tp.topic == names.topic_hits and record.key.startswith(burst):
                            hit = json.loads(record.value)
                            self.hits.setdefault(key, []).append(
                                (hit["article_id"], hit["story_id"])
                            )
                        elif tp.topic == names.spikes:
                            spike = json.loads(record.value)
                            topic = spike["topic"]
                            if topic.startswith(BURST_PREFIX) and spike["state"] == "started":
                                self.detected.setdefault(topic, spike["detected_at"])
        finally:
            await consumer.stop()

    def qualifying(self, topic: str) -> str | None:
        """The article whose hit made the topic's count reach ``SPIKE_STORIES`` stories."""
        stories: set[str] = set()
        for article_id, story_id in self.hits.get(topic, []):
            stories.add(story_id)
            if len(stories) == SPIKE_STORIES:
                return article_id
        return None


def _articles(count: int) -> list[dict[str, Any]]:
    """Distinct texts only: an exact copy is dropped by the story stage and never arrives."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for raw in workset.raw_articles(count * 2 + 10):
        if (raw["title"], raw["body"]) not in seen and raw["title"]:
            seen.add((raw["title"], raw["body"]))
            unique.append(raw)
        if len(unique) == count:
            break
    return unique


def _with_bursts(batch: list[dict[str, Any]], first_topic: int, bursts: int) -> dict[str, list]:
    """Turn ``bursts`` runs of ``BURST_SIZE`` articles, spread over ``batch``, into bursts on
    topics ``first_topic``...: the keyword in the title and the body. Topic -> article urls."""
    planned: dict[str, list[str]] = {}
    for k in range(bursts):
        number = first_topic + k
        start = int((k + 0.25) * len(batch) / bursts)
        for raw in batch[start : start + BURST_SIZE]:
            keyword = _keyword(number)
            raw["title"] = f"{raw['title']} ({keyword})"
            raw["body"] = f"{keyword}. {raw['body']}"
            planned.setdefault(_topic(number), []).append(raw["url"])
    return planned


async def _schedule(feeds: GrowingFeeds, batch: list[dict[str, Any]], rate: float) -> dict:
    """Give the feed server ``batch`` to make appear at ``rate`` from a second from now; the
    connector's article id of each -> its appearance time."""
    from connectors.identity import article_id

    start = time.time() + 1.0 + len(batch) / 10_000  # rendered and handed over before then
    entries, appear = [], {}
    for n, raw in enumerate(batch):
        at = start + n / rate
        key = article_id(url=raw["url"])
        appear[key] = at
        entries.append((n % FEEDS, key, at, item_xml(raw, at)))
    await asyncio.to_thread(feeds.add, entries)
    if time.time() > start:
        print(f"  warning: entries handed over {time.time() - start:.2f} s late", file=sys.stderr)
    return appear


async def _drain(
    topics: Topics, receiver: Any, ids: list[str], hooks: int, until: float, patient: bool = False
) -> None:
    """Until every article arrived classified and ``hooks`` webhooks came, or nothing arrived
    for QUIET_DRAIN_SECONDS after ``until`` (the last appearance; unless ``patient``), or
    DRAIN_SECONDS after it."""
    # Polled with a deadline: the reader fills dicts, arrivals are not signalled.
    while time.time() < until + DRAIN_SECONDS:  # noqa: ASYNC110
        done = all(i in topics.classified for i in ids) and len(receiver.received) >= hooks
        quiet = time.time() - max(topics.last_arrival, until) > QUIET_DRAIN_SECONDS
        quiet = quiet and not patient
        if done or quiet:
            return
        await asyncio.sleep(0.1)


def _legs(
    topics: Topics,
    receiver: Any,
    appear: dict[str, float],
    served: dict[str, float],
    bursts: list[str],
) -> dict[str, list[float]]:
    """Each leg's durations over ``appear``'s articles and ``bursts``' spikes."""
    legs: dict[str, list[float]] = {
        "poll_wait": [served[i] - appear[i] for i in appear if i in served],
        "feed_leg": [topics.published[i] - served[i] for i in served if i in topics.published],
        "stream_leg": [
            topics.classified[i] - topics.published[i]
            for i in appear
            if i in topics.classified and i in topics.published
        ],
        "alert_leg": [],
        "end_to_end": [],
        "end_to_end_with_poll_wait": [],
    }
    received = {hook.payload["topic"]: hook.received_at for hook in receiver.received}
    for topic in bursts:
        if topic not in received:
            continue
        if topic in topics.detected:
            legs["alert_leg"].append(received[topic] - topics.detected[topic])
        article = topics.qualifying(topic)
        if article in served:
            legs["end_to_end"].append(received[topic] - served[article])
            legs["end_to_end_with_poll_wait"].append(received[topic] - appear[article])
    return legs


def _cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(workset.cpu_seconds(p) for p in group) for name, group in pids.items()}


async def run_latency(kind: str, idle_seconds: float | None = None) -> dict[str, float]:
    """On Apache Kafka whatever ``kind`` says: ``newsalert connectors`` in a process of its own
    publishes with an idempotent producer, which the embedded broker (Tansu) does not have."""
    from newsalert.demo import DEMO_SECRET
    from newsalert.localservers import WebhookReceiver

    del kind

    idle = IDLE_SECONDS if idle_seconds is None else idle_seconds
    figures: dict[str, float] = {}
    app_id = f"bench-latency-{int(time.time())}"
    pool = _articles(sum(int(r * SECONDS_PER_RATE) for r in RATES) + BURST_SIZE)
    feeds = GrowingFeeds(FEEDS, WINDOW_SECONDS)
    receiver = WebhookReceiver(DEMO_SECRET)
    await receiver.start()
    processes: list[Any] = []
    try:
        async with workset.broker("kafka") as broker:
            await workset.create_topics(broker.bootstrap, app_id)
            with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
                config = _write_config(
                    Path(tmp), feeds, receiver.url("/hook"), BURSTS * len(RATES) + 1
                )
                try:
                    for role in ("streams", "connectors"):
                        processes.append(
                            await _start(role, broker, app_id, config, Path(tmp) / role)
                        )
                    worker, connectors = processes
                    pids = {
                        "worker": [worker.pid],
                        "connectors": [connectors.pid],
                        "feed_server": [feeds.process.pid],
                        "broker": broker.pids(),
                        "bench": [os.getpid()],
                    }
                    await _measure(figures, feeds, receiver, broker, app_id, pool, pids, idle)
                finally:
                    for process in reversed(processes):
                        await stop_process(process)
                    for role in ("streams", "connectors"):
                        _show_errors(Path(tmp) / role / f"{role}.log")
    finally:
        await receiver.stop()
        feeds.stop()
    return figures


async def _measure(
    figures: dict[str, float],
    feeds: GrowingFeeds,
    receiver: Any,
    broker: workset.Broker,
    app_id: str,
    pool: list[dict[str, Any]],
    pids: dict[str, list[int]],
    idle: float,
) -> None:
    topics = Topics()
    stop = asyncio.Event()
    reader = asyncio.create_task(topics.read(broker.bootstrap, app_id, stop))
    try:
        await _rates(figures, feeds, topics, receiver, pool, pids)
        if idle > 0:
            await _after_idle(figures, feeds, topics, receiver, pool, pids, idle)
    finally:
        stop.set()
        await reader


def _show_errors(log: Path) -> None:
    text = log.read_text(errors="replace").splitlines()
    lines = [line for line in text if "ERROR" in line or "WARNING" in line]
    if lines:
        print(
            f"  {log.name}: {len(lines)} ERROR or WARNING lines, the last: {lines[-1]}",
            file=sys.stderr,
        )


async def _rates(
    figures: dict[str, float],
    feeds: GrowingFeeds,
    topics: Topics,
    receiver: Any,
    pool: list[dict[str, Any]],
    pids: dict[str, list[int]],
) -> None:
    offset = 0
    for number, rate in enumerate(RATES):
        batch = [dict(raw) for raw in pool[offset : offset + int(rate * SECONDS_PER_RATE)]]
        offset += len(batch)
        bursts = list(_with_bursts(batch, number * BURSTS, BURSTS))
        hooks_before = len(receiver.received)
        appear = await _schedule(feeds, batch, rate)
        ids = list(appear)
        first_at, last_at = min(appear.values()), max(appear.values())
        await asyncio.sleep(first_at - time.time())
        cpu_before = _cpu(pids)
        await asyncio.sleep(last_at - time.time())
        cpu_after = _cpu(pids)  # while the entries appear: who is busy
        figures[f"load_average_at_{rate}"] = os.getloadavg()[0]
        await _drain(topics, receiver, ids, hooks_before + len(bursts), last_at)
        served = await asyncio.to_thread(feeds.first_served, ids)
        legs = _legs(topics, receiver, appear, served, bursts)
        for leg, values in legs.items():
            p50, p99 = _quantiles(values)
            name = "" if leg == "stream_leg" else f"{leg}_"  # the stream leg's old names
            figures[f"{name}p50_seconds_at_{rate}"] = p50
            figures[f"{name}p99_seconds_at_{rate}"] = p99
            if rate == 500 and leg == "stream_leg":  # the table's columns
                figures["p50_seconds"], figures["p99_seconds"] = p50, p99
        published = [topics.published[i] for i in ids if i in topics.published]
        span = max(published) - min(published) if len(published) > 1 else float("nan")
        figures[f"achieved_articles_per_second_at_{rate}"] = (len(published) - 1) / span
        figures[f"served_fraction_at_{rate}"] = len(served) / len(ids)
        figures[f"published_fraction_at_{rate}"] = len(published) / len(ids)
        figures[f"arrived_fraction_at_{rate}"] = sum(i in topics.classified for i in ids) / len(ids)
        figures[f"alerts_at_{rate}"] = len(legs["alert_leg"])
        figures[f"bursts_at_{rate}"] = len(bursts)
        for name, seconds in cpu_after.items():
            figures[f"{name}_cpu_fraction_at_{rate}"] = (seconds - cpu_before[name]) / (
                last_at - first_at
            )
        print(
            f"  e2e-latency at {rate}/s: {len(published)}/{len(ids)} published at "
            f"{figures[f'achieved_articles_per_second_at_{rate}']:.0f}/s, "
            f"{figures[f'alerts_at_{rate}']:.0f}/{len(bursts)} alerts, end-to-end p99 "
            f"{figures[f'end_to_end_p99_seconds_at_{rate}']:.3f} s",
            flush=True,
        )


async def _after_idle(
    figures: dict[str, float],
    feeds: GrowingFeeds,
    topics: Topics,
    receiver: Any,
    pool: list[dict[str, Any]],
    pids: dict[str, list[int]],
    idle: float,
) -> None:
    """A quiet service for ``idle`` seconds (what it costs), then one burst."""
    before = _cpu(pids)
    await asyncio.sleep(idle)
    after = _cpu(pids)
    for name in ("worker", "broker", "connectors", "feed_server"):
        figures[f"idle_{name}_cpu_fraction"] = (after[name] - before[name]) / idle
    batch = [dict(raw) for raw in pool[-BURST_SIZE:]]
    (topic,) = _with_bursts(batch, BURSTS * len(RATES), 1)
    hooks_before = len(receiver.received)
    appear = await _schedule(feeds, batch, 500.0)
    ids = list(appear)
    await _drain(topics, receiver, ids, hooks_before + 1, max(appear.values()), patient=True)
    served = await asyncio.to_thread(feeds.first_served, ids)
    legs = _legs(topics, receiver, appear, served, [topic])
    print(
        f"  after idle: {len(served)} served, {sum(i in topics.classified for i in ids)} "
        f"classified, hits {len(topics.hits.get(topic, []))}, spike "
        f"{topic in topics.detected}, webhooks {len(receiver.received) - hooks_before}",
        flush=True,
    )
    for leg in ("alert_leg", "end_to_end", "end_to_end_with_poll_wait"):
        figures[f"{leg}_after_idle_seconds"] = legs[leg][0] if legs[leg] else float("nan")
    first = min(ids, key=lambda i: topics.published.get(i, float("inf")))
    figures["poll_wait_after_idle_seconds"] = served.get(first, float("nan")) - appear[first]
    if first in topics.classified and first in topics.published:
        figures["first_after_idle_seconds"] = topics.classified[first] - topics.published[first]
    else:
        figures["first_after_idle_seconds"] = float("nan")
    figures["idle_seconds"] = idle
