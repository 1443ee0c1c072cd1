"""Scoring a backtest against known events (pure): recall, and the other spikes per topic-week.

An events file is JSON: a list of ``{"topic", "start", "end"}`` (dates, ``end`` included) with
optional ``split`` (e.g. ``tuned`` / ``held-out``) and ``what``. An event is found when a spike
of its topic *starts* within a day of it; a started spike near no event of its topic is an
"other" spike (a false alarm, or news nobody listed).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from streams.spikes.detector import SpikeEvent

DAY = 86400.0
WEEK = 7 * DAY


@dataclass(frozen=True)
class KnownEvent:
    topic: str
    start: float  # epoch of the first day's midnight (UTC)
    end: float  # epoch of the midnight after the last day
    split: str = ""
    what: str = ""

    def near(self, when: float) -> bool:
        """Whether a spike starting at ``when`` is within a day of this event."""
        return self.start - DAY <= when < self.end + DAY


def _day(value: Any, where: str) -> float:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a date (YYYY-MM-DD), got {value!r}")
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise ValueError(f"{where}: not a date (YYYY-MM-DD): {value!r}") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def load_events(path: Path) -> list[KnownEvent]:
    """The events of a JSON file; ValueError naming the file, the entry and the reason."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of {{topic, start, end}}")
    events = []
    for number, item in enumerate(raw):
        where = f"{path}: event {number}"
        if not isinstance(item, dict) or not isinstance(item.get("topic"), str):
            raise ValueError(f"{where}: expected an object with topic, start, end")
        start = _day(item.get("start"), f"{where}: start")
        end = _day(item.get("end", item.get("start")), f"{where}: end") + DAY
        if end <= start:
            raise ValueError(f"{where}: end is before start")
        events.append(
            KnownEvent(
                item["topic"], start, end, str(item.get("split", "")), str(item.get("what", ""))
            )
        )
    return events


@dataclass
class TopicScore:
    events: int = 0
    found: int = 0
    other_spikes: int = 0
    other_per_week: float = 0.0
    missed: list[KnownEvent] = field(default_factory=list)


@dataclass
class Score:
    weeks: float
    topics: dict[str, TopicScore]
    by_split: dict[str, tuple[int, int]]  # split -> (found, events)
    # Days of 6+ and of 3-5 stories against a daily baseline below one: (found, days).
    bursts: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def found(self) -> int:
        return sum(t.found for t in self.topics.values())

    @property
    def events(self) -> int:
        return sum(t.events for t in self.topics.values())

    @property
    def other_per_topic_week(self) -> float:
        """Other spikes per topic and week, over the topics scored."""
        if not self.topics or self.weeks <= 0:
            return 0.0
        return sum(t.other_spikes for t in self.topics.values()) / len(self.topics) / self.weeks

    def as_dict(self) -> dict[str, Any]:
        return {
            "weeks": round(self.weeks, 1),
            "recall": {"found": self.found, "events": self.events},
            "recall_by_split": {
                k: {"found": f, "events": n} for k, (f, n) in self.by_split.items()
            },
            "other_spikes_per_topic_week": round(self.other_per_topic_week, 4),
            "bursts": {k: {"found": f, "days": n} for k, (f, n) in self.bursts.items()},
            "topics": {
                name: {
                    "events": t.events,
                    "found": t.found,
                    "other_spikes": t.other_spikes,
                    "other_spikes_per_week": round(t.other_per_week, 4),
                    "missed": [_iso_day(e.start) for e in t.missed],
                }
                for name, t in sorted(self.topics.items())
            },
        }


def _iso_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")


def score(
    known: list[KnownEvent],
    spikes: list[SpikeEvent],
    topics: set[str],
    first: float,
    last: float,
) -> Score:
    """Recall of ``known`` and the other spikes per week of each of ``topics``, over the
    stream's span ``first`` .. ``last`` (epoch seconds)."""
    weeks = max((last - first) / WEEK, 1 / 7)
    starts: dict[str, list[float]] = defaultdict(list)
    for spike in spikes:
        if spike.state == "started":
            starts[spike.topic].append(spike.window_start)
    by_topic: dict[str, list[KnownEvent]] = defaultdict(list)
    for event in known:
        by_topic[event.topic].append(event)
    result: dict[str, TopicScore] = {}
    by_split: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for topic in sorted(topics | set(by_topic)):
        own = by_topic.get(topic, [])
        topic_score = result[topic] = TopicScore(events=len(own))
        for event in own:
            hit = any(event.near(when) for when in starts.get(topic, []))
            topic_score.found += hit
            if not hit:
                topic_score.missed.append(event)
            if event.split:
                by_split[event.split][0] += hit
                by_split[event.split][1] += 1
        topic_score.other_spikes = sum(
            1 for when in starts.get(topic, []) if not any(e.near(when) for e in own)
        )
        topic_score.other_per_week = topic_score.other_spikes / weeks
    return Score(weeks, result, {k: (v[0], v[1]) for k, v in sorted(by_split.items())})


def bursts(
    daily: dict[str, list[tuple[float, int, float]]], spikes: list[SpikeEvent], topics: set[str]
) -> dict[str, tuple[int, int]]:
    """The issue's own yardstick, from each topic's closed day buckets (start, count, baseline
    before it): days with 6+ stories, and with 3-5, against a baseline below one a day, and how
    many have a spike starting or escalating within a day."""
    signals: dict[str, list[float]] = defaultdict(list)
    for spike in spikes:
        if spike.state in ("started", "escalated"):
            signals[spike.topic].append(spike.window_start)
    found = {"6+": [0, 0], "3-5": [0, 0]}
    for topic, points in daily.items():
        if topic not in topics:
            continue
        for start, count, baseline in points:
            if count < 3 or baseline >= 1:
                continue
            size = "6+" if count >= 6 else "3-5"
            hit = any(start - DAY <= when < start + 2 * DAY for when in signals.get(topic, []))
            found[size][0] += hit
            found[size][1] += 1
    return {k: (v[0], v[1]) for k, v in found.items()}


def print_score(result: Score, out: Any) -> None:
    def pct(found: int, events: int) -> str:
        return f"{found}/{events} ({100 * found / events:.0f}%)" if events else "0/0"

    parts = [f"{name} {pct(*counts)}" for name, counts in result.by_split.items()]
    out.write(
        f"\nEvents: recall {pct(result.found, result.events)}"
        + (f" ({', '.join(parts)})" if parts else "")
        + f"; other spikes {result.other_per_topic_week:.3f} per topic-week "
        f"({len(result.topics)} topics, {result.weeks:.0f} weeks)\n"
    )
    if result.bursts:
        parts = [f"{size} stories {pct(*counts)}" for size, counts in result.bursts.items()]
        out.write(f"Bursts against a baseline below one a day found: {', '.join(parts)}\n")
    for name, topic in sorted(result.topics.items()):
        missed = ", ".join(_iso_day(e.start) for e in topic.missed)
        out.write(
            f"  {name:<28} found {topic.found:>2}/{topic.events:<2}  other spikes "
            f"{topic.other_spikes:>3} ({topic.other_per_week:.3f}/week)"
            + (f"  missed {missed}" if missed else "")
            + "\n"
        )
