"""Spike detector: updates per second on one core, memory per 1,000 tracked keys, and
`newsalert backtest` rows per second on a real multi-year file."""

from __future__ import annotations

import os
import random
import time
import tracemalloc
from pathlib import Path

from streams.spikes.detector import SpikeDetector, SpikeRule, StoryRef

HOUR = 3600.0
T0 = 1_700_000_000 // 3600 * 3600


def _stories(count: int, keys: int, hours: int, seed: int = 1):
    rng = random.Random(seed)
    per_hour = count / hours
    for n in range(count):
        published = T0 + (n / per_hour) * HOUR
        yield f"k{rng.randrange(keys)}", StoryRef(f"a{n}", f"s{n}", "t", None, "src", published)


def updates_per_second(keys: int, count: int = 200_000) -> float:
    detector = SpikeDetector(SpikeRule())
    items = list(_stories(count, keys, hours=24 * 14))
    started = time.process_time()
    for key, story in items:
        detector.observe(key, story, ["huawei"])
    return count / (time.process_time() - started)


def memory_per_thousand_keys(keys: int = 5000) -> float:
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    detector = SpikeDetector(SpikeRule())
    # Two days at ~3 stories per key and hour: full baselines and open buckets for every key.
    for key, story in _stories(keys * 48 * 3, keys, hours=48):
        detector.observe(key, story, ["huawei", "5g"])
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return used / keys * 1000


BACKTEST_FILE = Path(
    os.environ.get("NEWSALERT_BENCH_ARTICLES", "/work/shared/data/articles/dated_stream.jsonl")
)


def backtest_rows_per_second(workers: int) -> float:
    """Wall-clock rows per second of the whole backtest (filter, processor, detector)."""
    from newsalert.settings import Settings
    from streams.app import build_detector
    from streams.classify.taxonomy import load_taxonomy
    from streams.pipeline import ArticleProcessor
    from streams.spikes.backtest import replay

    taxonomy = load_taxonomy(None)
    detector = build_detector(Settings(), list(taxonomy.topics))
    started = time.perf_counter()
    result = replay(BACKTEST_FILE, ArticleProcessor(taxonomy), detector, workers=workers)
    return result.rows / (time.perf_counter() - started)


def run() -> dict[str, float | str]:
    figures: dict[str, float | str] = {
        "updates_per_second_cpu_10_keys": round(updates_per_second(10)),
        "updates_per_second_cpu_1000_keys": round(updates_per_second(1000)),
        "memory_bytes_per_1000_keys": round(memory_per_thousand_keys()),
        "note": "process CPU time, one core; memory by tracemalloc with 2 days of hourly buckets",
    }
    if BACKTEST_FILE.is_file():
        workers = os.cpu_count() or 1
        figures[f"backtest_rows_per_second_wall_{workers}_workers"] = round(
            backtest_rows_per_second(workers)
        )
        figures["backtest_rows_per_second_wall_1_worker"] = round(backtest_rows_per_second(1))
        figures["backtest_file"] = f"{BACKTEST_FILE} (default taxonomy and spike settings)"
        # Wall-clock figures depend on what else the machine runs: record how busy it was.
        figures["load_average_1_min_after"] = round(os.getloadavg()[0], 2)
    return figures
