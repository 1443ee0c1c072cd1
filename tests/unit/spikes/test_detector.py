"""Spike detection: event-time buckets, baselines, lifecycle, cold start, lateness, restore."""

from __future__ import annotations

import json
import math
import random

from streams.spikes.detector import SpikeDetector, SpikeRule, StoryRef

HOUR = 3600.0
T0 = 1_700_000_000 // 3600 * 3600  # a bucket boundary

WARM = dict(min_history_buckets=4, baseline_buckets=4, allowed_lateness_seconds=0, max_p_value=1.0)


def story(n: int, published: float, story_id: str | None = None, source: str = "src") -> StoryRef:
    return StoryRef(f"a{n}", story_id or f"s{n}", f"title {n}", None, source, published)


def feed(detector: SpikeDetector, key: str, stories: list[StoryRef]):
    return [e for s in stories for e in detector.observe(key, s, ["huawei"])]


def hourly(start_hour: int, hours: int, per_hour: int, first_id: int = 0) -> list[StoryRef]:
    return [
        story(first_id + h * 100 + i, T0 + (start_hour + h) * HOUR + i * 10)
        for h in range(hours)
        for i in range(per_hour)
    ]


def test_burst_over_quiet_baseline_starts_once_with_explanation():
    detector = SpikeDetector(SpikeRule(**WARM, min_count=5))
    assert feed(detector, "5g-security", hourly(0, 6, 1)) == []
    events = feed(detector, "5g-security", hourly(6, 1, 8, first_id=10_000))
    assert [e.state for e in events] == ["started"]
    event = events[0]
    assert event.topic == "5g-security" and event.count == 5  # fires as soon as the rule holds
    assert event.baseline == 1.0
    assert event.window_start == T0 + 6 * HOUR and event.window_end == T0 + 7 * HOUR
    assert event.top_terms == ["huawei"]
    assert [c["count"] for c in event.recent_counts][-3:] == [1, 1, 5]
    assert len(event.top_stories) == 5 and event.top_stories[0]["title"].startswith("title")


def test_count_below_ratio_does_not_fire():
    detector = SpikeDetector(SpikeRule(**WARM, min_count=5, ratio=3, z_threshold=0))
    assert feed(detector, "t", hourly(0, 6, 4)) == []
    assert feed(detector, "t", hourly(6, 1, 11, first_id=9000)) == []  # 11 < 3 x 4
    assert len(feed(detector, "t", hourly(6, 1, 12, first_id=9000))) == 1


def test_cold_start_does_not_alert_unless_absolute_threshold():
    cold = SpikeDetector(SpikeRule(min_history_buckets=24))
    assert feed(cold, "new-topic", hourly(0, 1, 50)) == []
    absolute = SpikeDetector(SpikeRule(min_history_buckets=24, absolute_threshold=20))
    events = feed(absolute, "new-topic", hourly(0, 1, 50))
    assert events[0].state == "started" and events[0].count == 20


def test_syndicated_copies_count_as_one_story_but_articles_mode_counts_them():
    copies = [story(i, T0 + 6 * HOUR + i, story_id="wire-story") for i in range(40)]
    stories = SpikeDetector(SpikeRule(**WARM, count_by="stories"))
    feed(stories, "t", hourly(0, 6, 1))
    assert feed(stories, "t", copies) == []
    articles = SpikeDetector(SpikeRule(**WARM, count_by="articles"))
    feed(articles, "t", hourly(0, 6, 1))
    assert feed(articles, "t", copies)[0].state == "started"


def test_sources_mode_counts_distinct_outlets():
    detector = SpikeDetector(SpikeRule(**WARM, count_by="sources", min_count=3, z_threshold=0))
    feed(detector, "t", hourly(0, 6, 1))
    same_outlet = [story(500 + i, T0 + 6 * HOUR + i, source="one") for i in range(10)]
    assert feed(detector, "t", same_outlet) == []
    others = [story(600 + i, T0 + 6 * HOUR + 50 + i, source=f"o{i}") for i in range(3)]
    assert len(feed(detector, "t", others)) == 1


def test_lifecycle_started_escalated_resolved_then_cooldown():
    rule = SpikeRule(**WARM, escalate_factor=2.0, resolve_buckets=2, cooldown_seconds=3 * HOUR)
    detector = SpikeDetector(rule)
    feed(detector, "t", hourly(0, 6, 1))
    events = feed(detector, "t", hourly(6, 1, 12, first_id=1000))
    assert [e.state for e in events] == ["started", "escalated"]
    assert events[1].count == 10  # twice the count at start (5)
    assert events[0].spike_id != events[1].spike_id
    # Two quiet hours close -> resolved (reported when the watermark passes them).
    events = feed(detector, "t", hourly(7, 3, 1, first_id=2000))
    assert [e.state for e in events] == ["resolved"]
    # Within the cool-down a new burst does not start a spike.
    assert feed(detector, "t", hourly(10, 1, 12, first_id=3000)) == []


def test_count_hovering_at_threshold_does_not_flap():
    rule = SpikeRule(**WARM, min_count=5, z_threshold=0, cooldown_seconds=0)
    detector = SpikeDetector(rule)
    feed(detector, "t", hourly(0, 6, 1))
    events = []
    for h in range(6, 30):  # hovers around the start level (5 = 5 x baseline 1) for a day
        events += feed(detector, "t", hourly(h, 1, 6 if h % 2 == 0 else 4, first_id=h * 1000))
    assert [e.state for e in events].count("started") == 1, [e.state for e in events]


def test_late_articles_within_allowed_lateness_count_older_ones_are_counted_as_late():
    rule = SpikeRule(
        min_history_buckets=0, min_count=3, max_p_value=1, allowed_lateness_seconds=HOUR
    )
    detector = SpikeDetector(rule)
    feed(detector, "t", [story(1, T0 + 2 * HOUR + 10)])
    # Out of order: two articles for the previous hour, still within the allowed lateness.
    late_ok = [story(2, T0 + HOUR + 5), story(3, T0 + HOUR + 6), story(4, T0 + HOUR + 7)]
    assert [e.state for e in feed(detector, "t", late_ok)] == ["started"]
    feed(detector, "t", [story(5, T0 + 5 * HOUR)])  # moves the watermark on
    before = detector.late_dropped
    feed(detector, "t", [story(6, T0 + HOUR + 8)])
    assert detector.late_dropped == before + 1


def test_restored_state_resumes_baselines_and_open_buckets():
    rule = SpikeRule(**WARM)
    original = SpikeDetector(rule)
    feed(original, "t", hourly(0, 6, 2))
    feed(original, "t", hourly(6, 1, 4, first_id=5000))
    restored = SpikeDetector(rule)
    restored.restore(json.loads(json.dumps(original.snapshot())))
    assert restored.baseline("t") == original.baseline("t") > 0
    rest = hourly(6, 1, 12, first_id=5000)[4:]
    assert [e.state for e in feed(restored, "t", rest)] == [
        e.state for e in feed(original, "t", rest)
    ]


def test_memory_is_bounded_over_long_streams():
    detector = SpikeDetector(SpikeRule(min_history_buckets=1000))
    for h in range(24 * 60):  # two months, one article an hour
        detector.observe("t", story(h, T0 + h * HOUR), [])
    assert detector.tracked_buckets() <= 4
    snapshot = detector.snapshot()["keys"]["t"]
    assert len(snapshot["history"]) <= SpikeRule().recent_buckets


# --- statistical behaviour on synthetic streams -------------------------------------------


def poisson(rng: random.Random, lam: float) -> int:
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def synthetic_stream(rng, hours, rate_for_hour, bursts=()):
    """Articles of one topic: Poisson counts per hour, plus ``bursts`` of (hour, extra)."""
    extra = dict(bursts)
    n = 0
    for h in range(hours):
        count = poisson(rng, rate_for_hour(h)) + extra.get(h, 0)
        for _ in range(count):
            n += 1
            yield story(n, T0 + h * HOUR + rng.random() * HOUR * 0.999)


def run(rule, stream):
    detector = SpikeDetector(rule)
    starts = []
    for s in stream:
        for e in detector.observe("t", s, []):
            if e.state == "started":
                starts.append(int((e.window_start - T0) // HOUR))
    return starts


DEFAULT = SpikeRule(allowed_lateness_seconds=0)


def test_each_injected_burst_is_found_within_one_bucket_of_its_start():
    rng = random.Random(7)
    burst_hours = [24 * 4 + 5, 24 * 9 + 14, 24 * 15 + 20]
    stream = synthetic_stream(rng, 24 * 20, lambda h: 4.0, [(h, 25) for h in burst_hours])
    starts = run(DEFAULT, stream)
    for hour in burst_hours:
        assert any(hour <= s <= hour + 1 for s in starts), (hour, starts)
    assert len(starts) == len(burst_hours)


def test_steady_daily_cycle_raises_at_most_one_false_alarm_a_week():
    # Parameters: default rule (24 one-hour buckets of EWMA baseline, ratio 3, z 3, min 5),
    # seasonal profile on; a daily cycle between 1 and 9 articles an hour, four weeks.
    rng = random.Random(11)
    weeks = 4

    def rate(h):
        return 5 + 4 * math.sin(2 * math.pi * (h % 24) / 24)

    seasonal = SpikeRule(allowed_lateness_seconds=0, seasonal=True)
    starts = run(seasonal, synthetic_stream(rng, 24 * 7 * weeks, rate))
    assert len(starts) <= weeks, starts
    plain = run(DEFAULT, synthetic_stream(random.Random(11), 24 * 7 * weeks, rate))
    assert len(plain) <= weeks, plain
