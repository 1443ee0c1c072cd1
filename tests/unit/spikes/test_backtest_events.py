"""`newsalert backtest --events FILE` (recall, other spikes per topic-week) and `--plot FILE.html`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from newsalert.cli import main
from streams.spikes.detector import SpikeEvent
from streams.spikes.plot import render_html
from streams.spikes.scoring import DAY, KnownEvent, load_events, score
from tests.unit.spikes.test_backtest_cli import small  # noqa: F401  (fixture)

D0 = 1_600_000_000 // 86400 * 86400  # a midnight


def spike(topic: str, day: float, state: str = "started", width: float = DAY) -> SpikeEvent:
    return SpikeEvent(
        "spk_x", topic, state, D0 + day * DAY, D0 + day * DAY + width, 6, 0.5, 6.0, 5.0,
        [{"title": f"story of {topic} on day {day}"}], [], [], width,
    )  # fmt: skip


def known(topic: str, start: int, end: int, split: str = "") -> KnownEvent:
    return KnownEvent(topic, D0 + start * DAY, D0 + (end + 1) * DAY, split, f"news {start}")


def test_an_event_is_found_by_a_spike_starting_within_a_day_of_it():
    event = known("t", 10, 11)  # days 10 and 11
    assert event.near(D0 + 9 * DAY) and event.near(D0 + 12 * DAY + 3600)
    assert not event.near(D0 + 8 * DAY + 86399) and not event.near(D0 + 13 * DAY)


def test_recall_and_other_spikes_per_topic_week():
    events = [known("a", 10, 10, "tuned"), known("a", 40, 41, "held-out"), known("b", 5, 5)]
    spikes = [
        spike("a", 9),  # finds a@10
        spike("a", 10, "escalated"),  # not a start: counts for nothing
        spike("a", 20),  # other
        spike("a", 43),  # two days after a@40..41: other
        spike("c", 3),  # other, topic with no events
    ]
    result = score(events, spikes, {"a", "b", "c"}, D0, D0 + 70 * DAY)  # ten weeks
    assert (result.found, result.events) == (1, 3)
    assert result.by_split == {"held-out": (0, 1), "tuned": (1, 1)}
    assert result.topics["a"].other_spikes == 2 and result.topics["c"].other_spikes == 1
    assert result.topics["b"].missed == [events[2]]
    assert result.other_per_topic_week == pytest.approx(3 / 3 / 10)


def test_an_events_file_that_is_wrong_says_where(tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{"topic": "a", "start": "2020-01-02", "end": "2020-01-01"}]))
    with pytest.raises(ValueError, match=r"events.json: event 0: end is before start"):
        load_events(path)
    path.write_text(json.dumps([{"topic": "a", "start": "yesterday"}]))
    with pytest.raises(ValueError, match=r"event 0: start: not a date"):
        load_events(path)
    path.write_text(json.dumps({"topic": "a"}))
    with pytest.raises(ValueError, match="expected a list"):
        load_events(path)


def test_the_shared_events_file_loads_and_has_both_splits():
    events = load_events(Path(__file__).parents[2] / "data" / "spike_events.json")
    assert {e.split for e in events} == {"tuned", "held-out"}
    assert all(e.what for e in events)


# --- the plot -----------------------------------------------------------------------------


def test_the_plot_names_each_topic_and_marks_each_spike_and_event():
    series = {
        "a": [(D0 + d * DAY, d % 3, 1.0) for d in range(30)],
        "b": [(D0 + d * DAY, 1, 1.0) for d in range(30)],
    }
    spikes = [
        spike("a", 5),
        spike("a", 12, width=3600.0),
        spike("b", 20),
        spike("a", 12, "resolved"),
    ]
    page = render_html(series, spikes, [known("a", 5, 6)], keys=["a", "b", "quiet"])
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no assets
    sections = re.findall(r'<section data-key="([^"]+)"><h2>([^<]+)</h2>', page)
    assert sections == [("a", "a"), ("b", "b"), ("quiet", "quiet")]
    section_a = page.split('<section data-key="a">')[1].split("</section>")[0]
    marks = re.findall(r'<g class="spike" data-start="([^"]+)" data-width="([^"]+)"', section_a)
    assert marks == [("2020-09-18", "86400"), ("2020-09-25", "3600")]  # starts only
    assert re.findall(r'<rect class="event" data-start="([^"]+)"', section_a) == ["2020-09-18"]
    assert "1 of 1 events found" in section_a
    assert page.count("<svg") == 3


def test_backtest_events_and_plot_options(small, capsys, tmp_path):  # noqa: F811
    events = tmp_path / "events.json"
    events.write_text(
        json.dumps(
            [
                {"topic": "sanctions", "start": "2021-03-05", "end": "2021-03-05", "split": "a"},
                {"topic": "sanctions", "start": "2021-03-01", "end": "2021-03-01", "split": "b"},
                {"topic": "vendor-bans", "start": "2021-03-03", "end": "2021-03-03"},
            ]
        )
    )
    plot = tmp_path / "spikes.html"
    args = ["backtest", "--from", str(small), "--workers", "1", "--events", str(events)]
    assert main([*args, "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("Events:"))
    assert line.startswith("Events: recall 1/3 (33%) (a 1/1 (100%), b 0/1 (0%)); other spikes")
    assert re.search(r"sanctions\s+found  1/2 .* missed 2021-03-01", out)
    page = plot.read_text(encoding="utf-8")
    for topic in ("sanctions", "vendor-bans", "5g-security"):  # every taxonomy topic
        assert f'<section data-key="{topic}">' in page
    assert page.count('<g class="spike"') == 1 and 'data-start="2021-03-05"' in page
    assert page.count('<rect class="event"') == 3

    assert main([*args, "--json"]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["score"]["recall"] == {"found": 1, "events": 3}


def test_backtest_refuses_a_plot_it_cannot_draw_and_a_bad_events_file(small, capsys, tmp_path):  # noqa: F811
    assert main(["backtest", "--from", str(small), "--plot", str(tmp_path / "x.png")]) == 2
    assert "only .html is supported" in capsys.readouterr().err
    bad = tmp_path / "events.json"
    bad.write_text("[{")
    assert main(["backtest", "--from", str(small), "--events", str(bad)]) == 2
    assert "--events" in capsys.readouterr().err


def test_param_sets_the_widths_and_the_sensitivity(small, capsys):  # noqa: F811
    args = ["backtest", "--from", str(small), "--json", "--workers", "1"]
    assert main([*args, "--param", "widths=3600"]) == 0
    hour_only = capsys.readouterr().out
    assert main([*args, "--param", "widths=3600,86400"]) == 0
    both = capsys.readouterr().out
    found = [json.loads(line) for line in hour_only.splitlines()]
    assert found and all(e["width_seconds"] == 3600 for e in found)
    assert hour_only == both  # five days: too short a history for the day width to start one
    assert main([*args, "--param", "sensitivity=low"]) == 0
    low = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert low[0]["count"] >= 5  # low: a floor of five stories


def test_bursts_against_a_low_baseline_are_counted_by_size_and_found_by_start_or_escalation():
    from streams.spikes.scoring import bursts

    daily = {
        "a": [
            (D0 + 1 * DAY, 7, 0.4),  # 6+, a spike started the day before: found
            (D0 + 10 * DAY, 4, 0.5),  # 3-5, escalated the same day: found
            (D0 + 20 * DAY, 3, 0.3),  # 3-5, nothing near: missed
            (D0 + 30 * DAY, 9, 1.5),  # baseline not below one: not a burst of this kind
            (D0 + 40 * DAY, 2, 0.1),  # under three stories
        ],
        "elsewhere": [(D0, 8, 0.1)],  # not a topic scored
    }
    spikes = [spike("a", 0), spike("a", 10, "escalated"), spike("a", 24)]
    assert bursts(daily, spikes, {"a"}) == {"6+": (1, 1), "3-5": (1, 2)}
