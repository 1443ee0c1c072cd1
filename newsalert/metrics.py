"""Metrics every role shares: build info, process start, and the end-to-end article latency
that the stream (classification) and the alerts (notification) both observe."""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import PROCESS_COLLECTOR, Gauge, Histogram

BUILD_INFO = Gauge("newsalert_build_info", "Always 1; the running version in a label", ["version"])
PROCESS_START_TIME = Gauge(
    "newsalert_process_start_time_seconds", "When this process started, UTC epoch seconds"
)
# From seconds (a live feed) to days (a feed first polled, or back after an outage, brings
# old entries): the upper buckets say "backfill", the lower ones are the live pipeline.
ARTICLE_LATENCY = Histogram(
    "newsalert_article_latency_seconds",
    "From an article's publication (since=published) or its fetch by a connector "
    "(since=fetched) to its classification (stage=classified) or to a delivered notification "
    "of a spike it is the newest story of (stage=notified)",
    ["stage", "since"],
    buckets=(
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
        300,
        900,
        3600,
        4 * 3600,
        86400,
        7 * 86400,
    ),
)

for _stage in ("classified", "notified"):  # every series from the start: dashboards find them
    for _since in ("published", "fetched"):
        ARTICLE_LATENCY.labels(_stage, _since)


def running_version() -> str:
    try:
        return version("newsalert")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def observe_article_latency(stage: str, now: float, published: float, fetched_at: float) -> None:
    """One article's latency to ``stage``; a time of 0 (not known) is not observed."""
    if published:
        ARTICLE_LATENCY.labels(stage, "published").observe(max(0.0, now - published))
    if fetched_at:
        ARTICLE_LATENCY.labels(stage, "fetched").observe(max(0.0, now - fetched_at))


def process_start_time() -> float:
    """The kernel's start time of this process (what ``process_start_time_seconds`` says,
    where the platform has /proc), else now."""
    for family in PROCESS_COLLECTOR.collect():
        if family.name == "process_start_time_seconds" and family.samples:
            return family.samples[0].value
    return time.time()


def set_process_info() -> None:
    """Called once when a role starts."""
    BUILD_INFO.labels(running_version()).set(1)
    PROCESS_START_TIME.set(process_start_time())
