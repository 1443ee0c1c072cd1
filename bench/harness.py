"""The issue-16 benchmark suite: rounds of every benchmark, interleaved, then medians and ranges
printed as a table and written to bench/results/latest.json.

Each round starts a broker of its own (embedded, or Apache Kafka with ``--kafka``), preloads
the work set into a raw topic of 3 partitions, and runs the chosen benchmarks in an order
that rotates from round to round, so that a slow spell of this shared machine falls on
different benchmarks in different rounds. ``e2e-latency`` starts its own Apache Kafka, whatever
the kind (bench/latency.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import workset

NAMES = ["ceiling", "work", "stream", "peer-quixstreams", "e2e-latency", "ingest", "scaling"]
ON_BROKER = {"ceiling", "stream", "peer-quixstreams", "scaling"}
RESULTS = Path(__file__).with_name("results")

# figure key -> unit; the key is the metric name, with a ``fulltext_`` prefix for the
# full-length articles alone.
UNITS = {
    "articles_per_second": "articles/s",
    "classified_per_second": "articles/s",
    "p50_seconds": "s",
    "p99_seconds": "s",
    "cpu_seconds_per_10k": "s",
    "broker_cpu_seconds_per_10k": "s",
    "peak_rss_bytes": "bytes",
    "polls_per_minute_per_core": "polls/min",
    "polls_per_wall_minute": "polls/min",
    "articles": "articles",
    "classified": "articles",
    "kept": "articles",
    "seconds": "s",
}


def unit_of(metric: str) -> str:
    base = metric.removeprefix("fulltext_")
    if base in UNITS:
        return UNITS[base]
    if "articles_per_second" in base:  # scaling's two_workers_..., e2e-latency's ..._at_500
        return "articles/s"
    if base.startswith(("alerts_at_", "bursts_at_")):  # e2e-latency: webhooks, bursts sent
        return base.split("_")[0]
    if base == "speedup":
        return "ratio"
    if base == "cores" or base.endswith("_cores_busy"):
        return "cores"
    for part, unit in (("_seconds", "s"), ("_bytes", "bytes"), ("_fraction", "ratio")):
        if part in base:
            return unit
    return ""


async def _round(
    number: int, names: list[str], count: int, kind: str, idle_seconds: float
) -> dict[str, dict[str, float]]:
    from bench import peer, stream

    figures: dict[str, dict[str, float]] = {}
    order = names[number % len(names) :] + names[: number % len(names)]
    need_broker = any(name in ON_BROKER for name in order)
    articles = workset.raw_articles(count) if need_broker else []
    expected = workset.expected_outputs(articles) if need_broker else 0

    async def on_broker(broker: workset.Broker | None) -> None:
        app_id = f"bench-r{number}"
        raw_topic = f"{app_id}.articles.raw"
        if broker is not None:
            await workset.create_topics(broker.bootstrap, app_id)
            took = await workset.preload(broker.bootstrap, raw_topic, articles)
            print(f"  round {number + 1}: {count} articles preloaded in {took:.1f} s", flush=True)
        for name in order:
            started = time.monotonic()
            if name == "ceiling":
                assert broker is not None
                result = await asyncio.to_thread(stream.ceiling, broker, raw_topic, count)
            elif name == "work":
                result = await asyncio.to_thread(stream.work, count)
            elif name == "stream":
                assert broker is not None
                result = await stream.stream(broker, app_id, expected, count)
            elif name == "scaling":
                assert broker is not None
                copies = (f"{app_id}-one", f"{app_id}-two")  # a raw topic for each run
                for copy in copies:
                    await workset.create_topics(broker.bootstrap, copy)
                    await workset.preload(broker.bootstrap, f"{copy}.articles.raw", articles)
                result = await stream.scaling(broker, copies, expected, count)
            elif name == "peer-quixstreams":
                assert broker is not None
                result = await peer.peer(broker, raw_topic, app_id, expected, count)
            elif name == "ingest":
                result = await asyncio.to_thread(ingest)
            elif name == "e2e-latency":
                from bench import latency

                # The idle wait (10 minutes by default) in the first round only.
                idle = idle_seconds if number == 0 else 0.0
                result = await latency.run_latency(kind, idle)
            else:
                raise ValueError(f"unknown benchmark {name!r}; any of {NAMES}")
            figures[name] = result
            print(
                f"  round {number + 1} {name} ({time.monotonic() - started:.0f} s): "
                f"{_brief(result)}",
                flush=True,
            )

    if need_broker:
        async with workset.broker(kind) as broker:
            await on_broker(broker)
    else:
        await on_broker(None)
    return figures


def _brief(result: dict[str, float]) -> str:
    keys = ["articles_per_second", "cpu_seconds_per_10k", "polls_per_minute_per_core", "speedup"]
    return ", ".join(f"{k} {result[k]:.4g}" for k in keys if k in result)


def ingest() -> dict[str, float]:
    """Feed polls per minute per core against a local server (bench/feeds.py, the mix of
    80 % 304 Not Modified and 20 % changed feeds)."""
    from bench import feeds

    mixed = feeds.polls_per_minute(feeds.CHANGED_FRACTION)
    return {
        "polls_per_minute_per_core": mixed["polls_per_cpu_minute"],
        "polls_per_wall_minute": mixed["polls_per_wall_minute"],
    }


def summarise(rounds: list[dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """One result per (benchmark, metric): the median of the rounds, their range and values."""
    collected: dict[tuple[str, str], list[float]] = {}
    for figures in rounds:
        for benchmark, metrics in figures.items():
            for metric, value in metrics.items():
                if isinstance(value, int | float):
                    collected.setdefault((benchmark, metric), []).append(float(value))
    results = []
    for (benchmark, metric), values in collected.items():
        results.append(
            {
                "benchmark": benchmark,
                "metric": metric,
                "value": statistics.median(values),
                "unit": unit_of(metric),
                "min": min(values),
                "max": max(values),
                "rounds": values,
            }
        )
    return results


def machine(kind: str, count: int, rounds: int) -> dict[str, Any]:
    cpu_model = ""
    meminfo_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                meminfo_kb = int(line.split()[1])
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    ).stdout.strip()
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_bytes": meminfo_kb * 1024,
        "load_average": list(os.getloadavg()),
        "broker": "apache-kafka-4.4.0" if kind == "kafka" else "embedded-tansu",
        # e2e-latency runs `newsalert connectors` in a process of its own, whose idempotent
        # producer the embedded broker does not take: it is on Apache Kafka either way.
        "e2e_latency_broker": "apache-kafka-4.4.0",
        "articles": count,
        "rounds": rounds,
        "commit": commit,
    }


def write_latest(path: Path, machine_info: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """``{"machine": {...}, "results": [{"benchmark", "metric", "value", "unit", ...}]}``."""
    for result in results:
        missing = {"benchmark", "metric", "value", "unit"} - result.keys()
        if missing:
            raise ValueError(f"result {result} lacks {sorted(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine_info, "results": results}
    path.write_text(json.dumps(document, indent=2) + "\n")


COLUMNS = [
    ("articles_per_second", "articles/s", 1.0, "{:,.0f}"),
    ("p50_seconds", "p50 ms", 1000.0, "{:.3g}"),
    ("p99_seconds", "p99 ms", 1000.0, "{:.3g}"),
    ("cpu_seconds_per_10k", "CPU s/10k", 1.0, "{:.3g}"),
    ("broker_cpu_seconds_per_10k", "broker CPU s/10k", 1.0, "{:.3g}"),
    ("peak_rss_bytes", "peak RSS MiB", 1 / 2**20, "{:,.0f}"),
]


def table(results: list[dict[str, Any]]) -> str:
    """Benchmarks by row, the main metrics by column, ``median (min-max)``; then the other
    metrics one a line."""
    by_key = {(r["benchmark"], r["metric"]): r for r in results}
    in_columns = {c[0] for c in COLUMNS} | {"fulltext_" + c[0] for c in COLUMNS}
    rows: list[tuple[str, str]] = []
    others: list[str] = []
    for benchmark in dict.fromkeys(r["benchmark"] for r in results):
        for prefix, label in (("", benchmark), ("fulltext_", f"{benchmark} (full texts)")):
            if not any((benchmark, prefix + c[0]) in by_key for c in COLUMNS):
                continue
            cells = []
            for metric, _, scale, fmt in COLUMNS:
                result = by_key.get((benchmark, prefix + metric))
                cells.append(_cell(result, scale, fmt) if result else "-")
            rows.append((label, " | ".join(cells)))
        for (name, metric), result in by_key.items():
            if name == benchmark and metric not in in_columns:
                value = _cell(result, 1.0, "{:,.4g}")
                others.append(f"{benchmark} {metric}: {value} {result['unit']}".rstrip())
    header = "| benchmark | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (len(COLUMNS) + 1)]
    lines.extend(f"| {label} | {cells} |" for label, cells in rows)
    return "\n".join(lines + [""] + others)


def _cell(result: dict[str, Any], scale: float, fmt: str) -> str:
    value = fmt.format(result["value"] * scale)
    if result["min"] == result["max"]:
        return value
    return f"{value} ({fmt.format(result['min'] * scale)}-{fmt.format(result['max'] * scale)})"


def run(
    names: list[str],
    count: int,
    rounds: int,
    kind: str,
    idle_seconds: float = 600.0,
    out: str = "latest",
) -> list[dict[str, Any]]:
    """Writes bench/results/OUT.json, OUT.txt and OUT-rounds.json (``latest`` by default)."""
    per_round = []
    started = time.monotonic()
    for number in range(rounds):
        per_round.append(asyncio.run(_round(number, names, count, kind, idle_seconds)))
        # Each round's figures as they come: a run cut short still leaves what it measured.
        (RESULTS / f"{out}-rounds.json").write_text(json.dumps(per_round, indent=2) + "\n")
    results = summarise(per_round)
    info = machine(kind, count, rounds)
    info["seconds"] = round(time.monotonic() - started)
    info["idle_seconds"] = idle_seconds
    write_latest(RESULTS / f"{out}.json", info, results)
    rendered = table(results)
    (RESULTS / f"{out}.txt").write_text(
        f"{count} articles, {rounds} rounds, {info['broker']}, {info['when']}\n{rendered}\n"
    )
    print(rendered)
    return results
