"""The stream path against its ceiling and its own work (issue 16).

``ceiling``: a bare aiokafka ``getmany`` loop over the preloaded raw topic that decodes each
JSON value and does nothing else. ``work``: ``ArticleProcessor.process`` (clean, dedupe,
stories, classify, hits) over the same articles without Kafka, pinned to one core; also on
the full-length articles alone. ``stream``: ``newsalert streams``, one worker process, timed
from the first to the last classified article a reader of the classified topic sees.

The ceiling and the work run in child processes of their own (``python -m bench.stream
ceiling|work ...``, one JSON line on stdout), so their CPU and peak RSS are theirs alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import workset

NEWSALERT = Path(sys.executable).with_name("newsalert")
START_TIMEOUT_SECONDS = 90.0


def per_10k(cpu_seconds: float, articles: int) -> float:
    return cpu_seconds / articles * 10_000 if articles else float("nan")


def child(args: list[str]) -> dict[str, Any]:
    """Run ``python -m bench.stream ARGS`` and return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.stream", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.stream {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _own_peak_rss_bytes() -> int:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child
    # would report the parent's peak when that was higher.
    return workset.peak_rss_bytes(os.getpid()) or 0


# -- ceiling ----------------------------------------------------------------------------------


async def _ceiling(bootstrap: str, topic: str, count: int) -> dict[str, Any]:
    consumer = await workset.reader_from_start(bootstrap, topic)
    try:
        decoded = 0
        first_wall = first_cpu = 0.0
        while decoded < count:
            batch = await consumer.getmany(timeout_ms=1000)
            if decoded == 0 and batch:
                first_wall, first_cpu = time.perf_counter(), time.process_time()
            for records in batch.values():
                for record in records:
                    json.loads(record.value)
                decoded += len(records)
        wall, cpu = time.perf_counter() - first_wall, time.process_time() - first_cpu
    finally:
        await consumer.stop()
    return {
        "articles": decoded,
        "articles_per_second": decoded / wall,
        "cpu_seconds_per_10k": per_10k(cpu, decoded),
        "peak_rss_bytes": _own_peak_rss_bytes(),
    }


def ceiling(broker: workset.Broker, topic: str, count: int) -> dict[str, float]:
    cpu_before = sum(workset.cpu_seconds(pid) for pid in broker.pids())
    figures = child(["ceiling", broker.bootstrap, topic, str(count)])
    broker_cpu = sum(workset.cpu_seconds(pid) for pid in broker.pids()) - cpu_before
    figures["broker_cpu_seconds_per_10k"] = per_10k(broker_cpu, count)
    return figures


# -- work -------------------------------------------------------------------------------------


# `python -m bench work --model PATH`: the work also with this topic model, in the same run.
MODEL_ENV = "NEWSALERT_BENCH_MODEL"


def _timed_process(articles: list[dict[str, Any]], model: Any = None) -> dict[str, Any]:
    from streams.classify.taxonomy import load_taxonomy
    from streams.pipeline import ArticleProcessor
    from streams.spikes.hits import article_hits

    processor = ArticleProcessor(load_taxonomy(None), model=model)
    durations = []
    kept = 0
    now = time.time()
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    for raw in articles:
        began = time.perf_counter()
        article = processor.process(raw, now).article
        if article is not None:
            article_hits(article, {})  # the default settings track no entities
            kept += 1
        durations.append(time.perf_counter() - began)
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    cuts = statistics.quantiles(durations, n=100)
    return {
        "articles": len(articles),
        "kept": kept,
        "articles_per_second": len(articles) / wall,
        "cpu_seconds_per_10k": per_10k(cpu, len(articles)),
        "p50_seconds": cuts[49],
        "p99_seconds": cuts[98],
    }


def _work(count: int) -> dict[str, Any]:
    with_affinity = hasattr(os, "sched_setaffinity")
    if with_affinity:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})  # one core
    mix = _timed_process(workset.raw_articles(count))
    fulltext = _timed_process(workset.fulltext_articles())
    figures = dict(mix)
    figures["peak_rss_bytes"] = _own_peak_rss_bytes()
    keys = ("articles_per_second", "cpu_seconds_per_10k", "p50_seconds", "p99_seconds")
    for key in keys:
        figures[f"fulltext_{key}"] = fulltext[key]
    figures["fulltext_articles"] = fulltext["articles"]
    if os.environ.get(MODEL_ENV):
        figures.update(_with_model(count, os.environ[MODEL_ENV], keys, mix, fulltext))
    return figures


def _with_model(
    count: int, path: str, keys: tuple[str, ...], *without: dict[str, Any]
) -> dict[str, Any]:
    """The same work with the model, in the order without, with, with, without (the first
    'without' is the caller's), so that a machine speeding up or slowing down during the run
    weighs on both sides; ``model_*`` are the means of the two runs with it and
    ``model_added_cpu_seconds_per_10k`` the difference of the means. Also the model's own
    share: ``add_model_topics`` alone over the cleaned articles, CPU seconds per article."""
    from streams.classify.evaluate import cleaned_fields
    from streams.classify.model import add_model_topics, load_model

    model = load_model(path)
    figures: dict[str, Any] = {}
    sets = (("", workset.raw_articles(count)), ("fulltext_", workset.fulltext_articles()))
    for (prefix, articles), first in zip(sets, without, strict=True):
        runs = [_timed_process(articles, model), _timed_process(articles, model)]
        again = _timed_process(articles)
        for key in keys:
            figures[f"{prefix}model_{key}"] = (runs[0][key] + runs[1][key]) / 2
        base = (first["cpu_seconds_per_10k"] + again["cpu_seconds_per_10k"]) / 2
        added = figures[f"{prefix}model_cpu_seconds_per_10k"] - base
        figures[f"{prefix}model_added_cpu_seconds_per_10k"] = added
        pairs = [cleaned_fields(raw["title"], raw["body"]) for raw in articles]
        started = time.process_time()
        for title, text in pairs:
            add_model_topics({}, model, title, text)
        alone = (time.process_time() - started) / len(pairs)
        figures[f"{prefix}model_only_seconds_per_article"] = alone
    return figures


def work(count: int) -> dict[str, float]:
    return child(["work", str(count)])


# -- stream -----------------------------------------------------------------------------------


async def _start_worker(broker: workset.Broker, app_id: str, data_dir: Path) -> Any:
    env = workset.role_env(app_id, data_dir)
    process = await asyncio.create_subprocess_exec(
        str(NEWSALERT),
        "streams",
        "--broker",
        broker.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    async with asyncio.timeout(START_TIMEOUT_SECONDS):
        while b"running" not in (line := await process.stdout.readline()):
            if not line:
                raise RuntimeError("newsalert streams exited during start-up")
    return process


async def stop_process(process: Any, timeout_seconds: float = 20.0) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout_seconds):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


def window_figures(
    seen: workset.Observed,
    pid: int | list[int],
    broker: workset.Broker,
    expected: int,
    inputs: int,
) -> dict[str, float]:
    """Throughput and CPU per 10k from a reader's first to its last record. The reader sees
    the ``expected`` classified articles of ``inputs`` raw ones (exact copies are dropped
    after the full work), so rates are given per raw article, as for ``ceiling`` and
    ``work``, and ``classified_per_second`` per article that came out. ``pid``: the worker,
    or the workers (their CPU summed)."""
    if seen.first_at is None and seen.before_window:
        raise RuntimeError(
            f"the consumer group settled only after all {seen.count} records came out: "
            "give the benchmark more articles (--articles)"
        )
    if seen.first_at is None or seen.last_at is None or seen.count < 2:
        raise RuntimeError(f"no output seen ({seen.count} of {expected} records)")
    if seen.count < expected:
        print(f"  warning: {seen.count} of {expected} records seen", file=sys.stderr)
    in_window = seen.count - seen.before_window
    processed = inputs * in_window / expected
    wall = seen.last_at - seen.first_at
    pids = [pid] if isinstance(pid, int) else pid
    cpu = sum(seen.cpu_at_last[p] - seen.cpu_at_first[p] for p in pids)
    broker_cpu = sum(seen.cpu_at_last[p] - seen.cpu_at_first[p] for p in broker.pids())
    return {
        "articles": processed,
        "classified": seen.count,
        "articles_per_second": processed / wall if wall > 0 else float("nan"),
        "classified_per_second": in_window / wall if wall > 0 else float("nan"),
        "cpu_seconds_per_10k": per_10k(cpu, processed),
        "broker_cpu_seconds_per_10k": per_10k(broker_cpu, processed),
    }


async def stream(
    broker: workset.Broker, app_id: str, expected: int, inputs: int
) -> dict[str, float]:
    """One ``newsalert streams`` worker over the preloaded raw topic of ``app_id``."""
    from streams.topics import TopicNames

    with tempfile.TemporaryDirectory(prefix="bench-stream-") as data_dir:
        worker = await _start_worker(broker, app_id, Path(data_dir))
        try:
            seen = await workset.observe(
                broker.bootstrap,
                TopicNames(app_id).articles,
                expected,
                [worker.pid, *broker.pids()],
                timeout_seconds=max(600.0, expected / 50),
            )
            figures = window_figures(seen, worker.pid, broker, expected, inputs)
            figures["peak_rss_bytes"] = workset.peak_rss_bytes(worker.pid) or float("nan")
        finally:
            await stop_process(worker)
    return figures


async def workers(
    broker: workset.Broker, app_id: str, count: int, expected: int, inputs: int
) -> dict[str, float]:
    """``count`` ``newsalert streams`` workers of one group over the preloaded raw topic of
    ``app_id``, started together. Timed once the group is stable with every worker holding
    partitions: workers join one after the other, each join a rebalance (and a move of the
    story stage, whose state the new holder reads back), which is start-up, not throughput;
    the records before are counted, outside the window."""
    from streams.topics import TopicNames

    with tempfile.TemporaryDirectory(prefix="bench-workers-") as data_dir:
        dirs = [Path(data_dir) / f"w{n}" for n in range(count)]
        started = await asyncio.gather(
            *(_start_worker(broker, app_id, d) for d in dirs), return_exceptions=True
        )
        running = [w for w in started if not isinstance(w, BaseException)]
        try:
            if len(running) < count:
                raise RuntimeError(f"{count - len(running)} of {count} workers did not start")
            pids = [w.pid for w in running]
            settled = asyncio.Event()
            waiting = asyncio.create_task(
                workset.group_settled(broker.bootstrap, app_id, count, settled)
            )
            try:
                seen = await workset.observe(
                    broker.bootstrap,
                    TopicNames(app_id).articles,
                    expected,
                    [*pids, *broker.pids()],
                    timeout_seconds=max(600.0, expected / 50),
                    window_opens=settled,
                )
            finally:
                waiting.cancel()
            figures = window_figures(seen, pids, broker, expected, inputs)
            figures["before_window"] = seen.before_window
        finally:
            for worker in running:
                await stop_process(worker)
    return figures


async def scaling(
    broker: workset.Broker, app_ids: tuple[str, str], expected: int, inputs: int
) -> dict[str, float]:
    """One worker, then two workers of one group, each over its own copy of the preloaded
    raw topic (3 partitions): the speedup of the second worker (issue 16's goal: >= 1.7 on
    Apache Kafka). Workers and broker share this machine's cores."""
    one = await workers(broker, app_ids[0], 1, expected, inputs)
    two = await workers(broker, app_ids[1], 2, expected, inputs)
    figures = {"speedup": two["articles_per_second"] / one["articles_per_second"]}
    for label, run in (("one_worker", one), ("two_workers", two)):
        figures[f"{label}_articles_per_second"] = run["articles_per_second"]
        # How many of the articles came out before the group settled (outside the window).
        figures[f"{label}_before_window"] = run["before_window"]
        figures[f"{label}_cpu_seconds_per_10k"] = run["cpu_seconds_per_10k"]
        figures[f"{label}_broker_cpu_seconds_per_10k"] = run["broker_cpu_seconds_per_10k"]
        # Cores the workers and the broker kept busy: where the machine, not the stream
        # path, sets the limit.
        per_article = (run["cpu_seconds_per_10k"] + run["broker_cpu_seconds_per_10k"]) / 10_000
        figures[f"{label}_cores_busy"] = per_article * run["articles_per_second"]
    figures["cores"] = (
        float(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 0.0
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream")
    parser.add_argument("what", choices=["ceiling", "work"])
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    if args.what == "ceiling":
        bootstrap, topic, count = args.rest
        figures = asyncio.run(_ceiling(bootstrap, topic, int(count)))
    else:
        (count,) = args.rest
        figures = _work(int(count))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
