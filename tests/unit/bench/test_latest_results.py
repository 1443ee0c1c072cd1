"""bench/results/latest.json: the shape the issue asks for, medians and ranges of the rounds
(no timing is asserted: the figures are whatever the machine gives)."""

from __future__ import annotations

import json

import pytest

from bench.harness import summarise, table, unit_of, write_latest

ROUNDS = [
    {"stream": {"articles_per_second": 800.0, "peak_rss_bytes": 100}, "work": {"p99_seconds": 2}},
    {"stream": {"articles_per_second": 900.0, "peak_rss_bytes": 120}},
    {"stream": {"articles_per_second": 750.0, "peak_rss_bytes": 110}},
]


def test_each_metric_is_the_median_of_its_rounds_with_their_range():
    results = {(r["benchmark"], r["metric"]): r for r in summarise(ROUNDS)}
    throughput = results[("stream", "articles_per_second")]
    assert throughput["value"] == 800.0
    assert (throughput["min"], throughput["max"]) == (750.0, 900.0)
    assert throughput["rounds"] == [800.0, 900.0, 750.0]
    assert throughput["unit"] == "articles/s"
    assert results[("work", "p99_seconds")]["rounds"] == [2.0]


def test_latest_json_holds_the_machine_and_one_result_per_benchmark_and_metric(tmp_path):
    path = tmp_path / "results" / "latest.json"
    write_latest(path, {"cores": 2, "broker": "embedded-tansu"}, summarise(ROUNDS))
    document = json.loads(path.read_text())
    assert set(document) == {"machine", "results"}
    assert document["machine"]["broker"] == "embedded-tansu"
    for result in document["results"]:
        assert {"benchmark", "metric", "value", "unit"} <= set(result)
    pairs = [(r["benchmark"], r["metric"]) for r in document["results"]]
    assert len(pairs) == len(set(pairs)) == 3


def test_a_result_without_a_unit_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unit"):
        write_latest(
            tmp_path / "latest.json", {}, [{"benchmark": "work", "metric": "x", "value": 1}]
        )


def test_units_follow_the_metric_names():
    assert unit_of("cpu_seconds_per_10k") == "s"
    assert unit_of("fulltext_articles_per_second") == "articles/s"
    assert unit_of("p99_seconds_at_500") == "s"
    assert unit_of("peak_rss_bytes") == "bytes"
    # scaling: one worker against two
    assert unit_of("two_workers_articles_per_second") == "articles/s"
    assert unit_of("two_workers_cpu_seconds_per_10k") == "s"
    assert unit_of("speedup") == "ratio"
    # e2e-latency: the legs at each rate, the rate the connectors achieved, alerts received
    assert unit_of("end_to_end_p99_seconds_at_500") == "s"
    assert unit_of("poll_wait_p50_seconds_at_2000") == "s"
    assert unit_of("achieved_articles_per_second_at_2000") == "articles/s"
    assert unit_of("connectors_cpu_fraction_at_500") == "ratio"
    assert unit_of("alerts_at_500") == "alerts"


def test_the_table_has_a_row_per_benchmark_and_a_column_per_main_metric():
    rendered = table(summarise(ROUNDS))
    header, _, stream_row, work_row = rendered.splitlines()[:4]
    assert "articles/s" in header and "peak RSS MiB" in header
    assert stream_row.startswith("| stream | 800 (750-900) |")
    assert work_row.startswith("| work |")
