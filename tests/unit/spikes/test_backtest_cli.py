"""`newsalert backtest`: a synthetic JSONL with one burst, replayed through the CLI."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsalert.cli import main

WORDS = (
    "harbor lantern orchard granite velvet falcon meadow quarry tundra pepper saddle compass "
    "thimble walrus biscuit juniper cobalt marble nectar oyster pebble quiver raven sapphire "
    "tulip umber violet willow yarrow zephyr acorn bramble cedar dahlia ember fjord glacier "
    "heather iris jasmine kelp lichen maple nutmeg opal poppy quartz rosemary sage thistle "
    "uplands vortex wheat yew zinnia amber birch clover dune elm fern grove hazel"
).split()
T0 = datetime(2021, 3, 1, tzinfo=UTC)
BURST_AT = T0 + timedelta(days=4, hours=10)  # 2021-03-05T10:00Z
BURST_STORIES = 12


def synthetic_rows(seed: int = 5) -> list[dict]:
    """Five days of one 'sanctions' story every three hours, and a burst of twelve distinct
    stories in the hour starting BURST_AT."""
    rng = random.Random(seed)
    rows: list[dict] = []

    def add(when: datetime, kind: str) -> None:
        n = len(rows) + 1
        # Words of their own, so that the story grouping sees distinct stories.
        words = " ".join(f"{word}{n}" for word in rng.sample(WORDS, 6))
        rows.append(
            {
                "id": f"t-{n}",
                "title": f"{kind} {n}: sanctions imposed on {words}",
                "text": "",
                "url": f"https://news.test/{n}",
                "source": f"outlet{n % 3}",
                "published": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )

    for hour in range(24 * 5):
        when = T0 + timedelta(hours=hour)
        if when == BURST_AT:
            for i in range(BURST_STORIES):
                add(when + timedelta(minutes=2 + 4 * i), "Burst")
        elif hour % 3 == 0:
            add(when + timedelta(minutes=10), "Quiet")
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("NEWSALERT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return write_jsonl(tmp_path / "small.jsonl", synthetic_rows())


def backtest(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def events(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_json_reports_the_injected_burst_and_its_end(small, capsys):
    code, out, err = backtest(capsys, "--from", str(small), "--json", "--workers", "1")
    assert code == 0 and err == ""
    found = events(out)
    assert [(e["topic"], e["state"]) for e in found] == [
        ("sanctions", "started"),
        ("sanctions", "escalated"),
        ("sanctions", "resolved"),
    ]
    started = found[0]
    assert started["window_start"] == "2021-03-05T10:00:00Z"
    assert started["window_end"] == "2021-03-05T11:00:00Z"
    assert 3 <= started["count"] < BURST_STORIES  # the floor is 3 stories
    assert 0 < started["baseline"] < 1  # one story every three hours
    assert started["score"] >= 2 and started["ratio"] >= 3  # medium: z 2, ratio 3
    titles = started["top_story_titles"]
    assert len(titles) == started["count"] and all(t.startswith("Burst") for t in titles)
    assert found[1]["count"] >= 2 * started["count"]
    assert found[2]["window_start"] > started["window_start"]


def test_text_report_lists_events_and_charts_counts_against_baseline(small, capsys):
    code, out, _ = backtest(capsys, "--from", str(small), "--workers", "1", "--width", "60")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{len(synthetic_rows())} rows (0 without a usable date)")
    assert "1 spikes, 3 events" in lines[0]
    assert any(
        line.startswith("2021-03-05T10:00:00Z  sanctions") and "started" in line for line in lines
    )
    chart = lines[lines.index(next(x for x in lines if x.startswith("sanctions  (2021-"))) :]
    count, baseline, spikes = (line.split("|")[1] for line in chart[1:4])
    assert chart[1].startswith("  count") and chart[2].startswith("  baseline")
    assert len(count) == len(baseline) == len(spikes) <= 60
    assert spikes.count("^") == 1
    assert count[spikes.index("^")] == "█"  # the burst is the tallest column
    assert baseline.strip() and set(baseline) <= set(" ▁▂")  # low and flat


def test_param_overrides_reach_the_detector(small, capsys):
    code, out, _ = backtest(capsys, "--from", str(small), "--json", "--param", "min_count=20")
    assert code == 0 and events(out) == []
    code, out, _ = backtest(
        capsys, "--from", str(small), "--json", "--param", "bucket_seconds=86400"
    )
    assert code == 0
    assert all(e["window_end"].endswith("T00:00:00Z") for e in events(out))


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("ratio=abc", "newsalert: --param ratio: Input should be a valid number"),
        ("min_count=0", "newsalert: --param min_count: Input should be greater than or equal to 1"),
        ("nope=1", "newsalert: --param 'nope=1': expected NAME=VALUE with NAME one of: "),
        ("ratio", "newsalert: --param 'ratio': expected NAME=VALUE with NAME one of: "),
    ],
)
def test_bad_param_is_a_one_line_error(small, capsys, param, expected):
    code, out, err = backtest(capsys, "--from", str(small), "--param", param)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(expected), err


def test_parallel_workers_and_shuffled_input_give_the_same_events(small, capsys):
    _, single, _ = backtest(capsys, "--from", str(small), "--json", "--workers", "1")
    _, parallel, _ = backtest(capsys, "--from", str(small), "--json", "--workers", "3")
    rows = synthetic_rows()
    random.Random(2).shuffle(rows)
    shuffled = write_jsonl(small.with_name("shuffled.jsonl"), rows)
    _, from_shuffled, _ = backtest(capsys, "--from", str(shuffled), "--json", "--workers", "2")
    assert events(single) and single == parallel == from_shuffled


def test_topic_option_limits_the_keys(small, capsys):
    code, out, _ = backtest(capsys, "--from", str(small), "--json", "--topic", "vendor-bans")
    assert code == 0 and out == ""


def test_a_line_that_is_not_json_is_reported_with_file_and_line(small, capsys):
    small.write_text(small.read_text() + "{broken\n", encoding="utf-8")
    code, _, err = backtest(capsys, "--from", str(small), "--workers", "2")
    assert code == 2
    assert err.startswith(f"newsalert: {small}:{len(synthetic_rows()) + 1}: not JSON")


def test_rows_without_a_date_are_counted_not_replayed(small, capsys):
    rows = synthetic_rows() + [{"id": "x", "title": "sanctions without a date", "published": None}]
    write_jsonl(small, rows)
    code, out, _ = backtest(capsys, "--from", str(small), "--workers", "1")
    assert code == 0 and out.startswith(f"{len(rows)} rows (1 without a usable date)")


@pytest.mark.parametrize(
    "topic, reason",
    [
        ("sanction", "no taxonomy defines topic 'sanction'"),
        ("entity:zte", "entity 'zte' has no spike detection"),
    ],
)
def test_a_topic_that_could_never_spike_is_an_error(tmp_path, capsys, topic, reason):
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in synthetic_rows()[:5]))
    assert main(["backtest", "--from", str(source), "--topic", topic]) == 2
    err = capsys.readouterr().err
    assert f"--topic {topic}: {reason}" in err
