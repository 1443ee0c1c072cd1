"""The metrics the dashboards and rules are built on, and the checks behind /readyz."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace

from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

import alerts.metrics  # noqa: F401  (registers the metrics the README lists)
import connectors.metrics  # noqa: F401
import streams.metrics  # noqa: F401
from alerts.dispatcher import observe_notified
from newsalert.metrics import set_process_info
from newsalert.readiness import Readiness, ping_database
from streams.consumer import LagGauge, group_problem, lag

README = Path(__file__).resolve().parents[3] / "README.md"


def registered_names() -> set[str]:
    return {m.name for m in REGISTRY.collect() if m.name.startswith("newsalert_")}


def readme_names() -> set[str]:
    table = README.read_text(encoding="utf-8").split("| metric | labels |", 1)[1].split("\n\n")[0]
    # the README names counters with their _total suffix; the registry without it
    return {name.removesuffix("_total") for name in re.findall(r"`(newsalert_\w+)`", table)}


def test_the_readme_metrics_table_names_every_metric_and_no_other():
    assert readme_names() == registered_names()


def test_build_info_says_the_installed_version():
    set_process_info()
    families = {m.name: m for m in REGISTRY.collect()}
    (sample,) = families["newsalert_build_info"].samples
    assert sample.value == 1 and sample.labels["version"]
    start = REGISTRY.get_sample_value("newsalert_process_start_time_seconds")
    assert start == REGISTRY.get_sample_value("process_start_time_seconds")


def test_lag_counts_from_the_committed_offset_else_the_position():
    assert lag(highwater=120, committed=100, position=110) == 20
    assert lag(highwater=120, committed=None, position=110) == 10
    assert lag(highwater=0, committed=None, position=None) == 0


class FakeConsumer:
    def __init__(self, highwaters: dict) -> None:
        self.highwaters_now = highwaters
        self._committed_offset = {tp: 5 for tp in highwaters}

    def assignment(self) -> set:
        return set(self.highwaters_now)

    async def highwaters(self, *tps):
        return {tp: self.highwaters_now[tp] for tp in tps}

    async def position(self, tp):
        return 0


def test_lag_series_of_a_partition_no_longer_held_are_removed():
    held, moved = (
        TopicPartition(topic="t-lag", partition=0),
        TopicPartition(topic="t-lag", partition=1),
    )
    gauge = LagGauge()
    asyncio.run(gauge.refresh(FakeConsumer({held: 12, moved: 7})))
    value = REGISTRY.get_sample_value
    assert value("newsalert_consumer_lag", {"topic": "t-lag", "partition": "1"}) == 2
    asyncio.run(gauge.refresh(FakeConsumer({held: 30})))
    assert value("newsalert_consumer_lag", {"topic": "t-lag", "partition": "0"}) == 25
    assert value("newsalert_consumer_lag", {"topic": "t-lag", "partition": "1"}) is None


def test_a_worker_is_in_its_group_only_when_joined_and_not_rebalancing():
    def app(coordinator_id, generation, rebalancing=False):
        coordinator = SimpleNamespace(coordinator_id=coordinator_id, generation=generation)
        consumer = SimpleNamespace(
            _thread=SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator))
        )
        return SimpleNamespace(consumer=consumer, rebalancing=rebalancing)

    assert group_problem(app(1, 3)) is None
    assert group_problem(app(None, 3)) == "no group coordinator known"
    assert group_problem(app(1, -1)) == "not joined"
    assert group_problem(app(1, 3, rebalancing=True)) == "rebalancing"
    unstarted = SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=None)))
    assert group_problem(unstarted) == "consumer not started"


def test_readiness_names_each_failing_check_and_bounds_a_slow_one():
    async def ok():
        return None

    async def refused():
        return "127.0.0.1:1 does not answer"

    async def slow():
        await asyncio.sleep(5)

    async def broken():
        raise RuntimeError("bad\nthing")

    readiness = Readiness(timeout_seconds=0.2)
    for name, check in {"a": ok, "broker": refused, "database": slow, "group": broken}.items():
        readiness.add(name, check)
    problems = asyncio.run(readiness.check_once())
    assert problems == {
        "broker": "127.0.0.1:1 does not answer",
        "database": "no answer within 0.2 s",
        "group": "bad thing",
    }


def test_the_database_check_says_when_the_sqlite_file_is_gone(tmp_path):
    import sqlite3

    path = tmp_path / "state.sqlite3"
    sqlite3.connect(path).close()
    assert ping_database(path, 1.0) is None
    path.unlink()
    assert "unable to open" in (ping_database(path, 1.0) or "")
    assert not path.exists()  # the check does not create an empty state file


def test_notification_latency_is_measured_from_the_newest_story():
    def count(since):
        labels = {"stage": "notified", "since": since}
        return REGISTRY.get_sample_value("newsalert_article_latency_seconds_count", labels) or 0

    def total(since):
        labels = {"stage": "notified", "since": since}
        return REGISTRY.get_sample_value("newsalert_article_latency_seconds_sum", labels) or 0

    before = {since: (count(since), total(since)) for since in ("published", "fetched")}
    stories = [
        {"published": 900.0, "fetched_at": 950.0},
        {"published": 1000.0, "fetched_at": 1010.0},
        {"published": 100.0},
    ]
    observe_notified({"top_stories": stories}, now=1030.0)
    assert count("published") == before["published"][0] + 1
    assert total("published") - before["published"][1] == 30.0
    assert total("fetched") - before["fetched"][1] == 20.0
    observe_notified({"top_stories": [{"published": 1000.0}]}, now=1030.0)  # no fetch time
    assert count("fetched") == before["fetched"][0] + 1
