"""Spike detection: event-time buckets, baselines, lifecycle, cold start, lateness, restore."""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import asdict

from streams.spikes.detector import SpikeDetector, SpikeRule, StoryRef

HOUR = 3600.0
T0 = 1_700_000_000 // 3600 * 3600  # a bucket boundary

# The single-width rule of before several widths (1 h buckets, min count 5, z 3, Poisson tail
# 1e-4 over a baseline of at least 0.5 an hour): these tests pin its behaviour.
LEGACY = dict(
    bucket_seconds=HOUR,
    min_count=5,
    z_threshold=3.0,
    max_p_value=0.0001,
    tail="poisson",
    baseline_floor_per_day=12.0,
)
WARM = dict(min_history_buckets=4, baseline_buckets=4, allowed_lateness_seconds=0, max_p_value=1.0)


def legacy(**params) -> SpikeRule:
    return SpikeRule(**{**LEGACY, **params})


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
    detector = SpikeDetector(legacy(**WARM, min_count=5))
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
    detector = SpikeDetector(legacy(**WARM, min_count=5, ratio=3, z_threshold=0))
    assert feed(detector, "t", hourly(0, 6, 4)) == []
    assert feed(detector, "t", hourly(6, 1, 11, first_id=9000)) == []  # 11 < 3 x 4
    assert len(feed(detector, "t", hourly(6, 1, 12, first_id=9000))) == 1


def test_cold_start_does_not_alert_unless_absolute_threshold():
    cold = SpikeDetector(legacy(min_history_buckets=24))
    assert feed(cold, "new-topic", hourly(0, 1, 50)) == []
    absolute = SpikeDetector(legacy(min_history_buckets=24, absolute_threshold=20))
    events = feed(absolute, "new-topic", hourly(0, 1, 50))
    assert events[0].state == "started" and events[0].count == 20


def test_syndicated_copies_count_as_one_story_but_articles_mode_counts_them():
    copies = [story(i, T0 + 6 * HOUR + i, story_id="wire-story") for i in range(40)]
    stories = SpikeDetector(legacy(**WARM, count_by="stories"))
    feed(stories, "t", hourly(0, 6, 1))
    assert feed(stories, "t", copies) == []
    articles = SpikeDetector(legacy(**WARM, count_by="articles"))
    feed(articles, "t", hourly(0, 6, 1))
    assert feed(articles, "t", copies)[0].state == "started"


def test_sources_mode_counts_distinct_outlets():
    detector = SpikeDetector(legacy(**WARM, count_by="sources", min_count=3, z_threshold=0))
    feed(detector, "t", hourly(0, 6, 1))
    same_outlet = [story(500 + i, T0 + 6 * HOUR + i, source="one") for i in range(10)]
    assert feed(detector, "t", same_outlet) == []
    others = [story(600 + i, T0 + 6 * HOUR + 50 + i, source=f"o{i}") for i in range(3)]
    assert len(feed(detector, "t", others)) == 1


def test_lifecycle_started_escalated_resolved_then_cooldown():
    rule = legacy(**WARM, escalate_factor=2.0, resolve_buckets=2, cooldown_seconds=3 * HOUR)
    detector = SpikeDetector(rule)
    feed(detector, "t", hourly(0, 6, 1))
    events = feed(detector, "t", hourly(6, 1, 12, first_id=1000))
    assert [e.state for e in events] == ["started", "escalated"]
    assert events[1].count == 10  # twice the count at start (5)
    assert events[0].spike_id != events[1].spike_id
    assert all(re.fullmatch(r"spk_[0-9a-f]{24}", e.spike_id) for e in events)
    # Two quiet hours close -> resolved (reported when the watermark passes them).
    events = feed(detector, "t", hourly(7, 3, 1, first_id=2000))
    assert [e.state for e in events] == ["resolved"]
    # Within the cool-down a new burst does not start a spike.
    assert feed(detector, "t", hourly(10, 1, 12, first_id=3000)) == []


def test_count_hovering_at_threshold_does_not_flap():
    rule = legacy(**WARM, min_count=5, z_threshold=0, cooldown_seconds=0)
    detector = SpikeDetector(rule)
    feed(detector, "t", hourly(0, 6, 1))
    events = []
    for h in range(6, 30):  # hovers around the start level (5 = 5 x baseline 1) for a day
        events += feed(detector, "t", hourly(h, 1, 6 if h % 2 == 0 else 4, first_id=h * 1000))
    assert [e.state for e in events].count("started") == 1, [e.state for e in events]


def test_late_articles_within_allowed_lateness_count_older_ones_are_counted_as_late():
    rule = SpikeRule(
        widths=(HOUR,),
        min_history_buckets=0,
        min_count=3,
        max_p_value=1,
        allowed_lateness_seconds=HOUR,
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
    rule = legacy(**WARM)
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
    detector = SpikeDetector(legacy(min_history_buckets=1000))
    for h in range(24 * 60):  # two months, one article an hour
        detector.observe("t", story(h, T0 + h * HOUR), [])
    assert detector.tracked_buckets() <= 4
    snapshot = detector.snapshot()["keys"]["t"]["lanes"]["3600"]
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


DEFAULT = legacy(allowed_lateness_seconds=0)


def test_each_injected_burst_is_found_within_one_bucket_of_its_start():
    rng = random.Random(7)
    burst_hours = [24 * 4 + 5, 24 * 9 + 14, 24 * 15 + 20]
    stream = synthetic_stream(rng, 24 * 20, lambda h: 4.0, [(h, 25) for h in burst_hours])
    starts = run(DEFAULT, stream)
    for hour in burst_hours:
        assert any(hour <= s <= hour + 1 for s in starts), (hour, starts)
    assert len(starts) == len(burst_hours)


def daily_cycle(hour: int) -> float:
    """Between 1 and 9 articles an hour, peaking at 06:00 and lowest at 18:00."""
    return 5 + 4 * math.sin(2 * math.pi * (hour % 24) / 24)


def test_steady_daily_cycle_raises_at_most_one_false_alarm_a_week():
    # Parameters: the defaults (1 h buckets, 24-bucket EWMA baseline, ratio 3, z 3, min count 5,
    # Poisson tail 1e-4, 24 buckets of cold start) plus seasonal: true, on a daily cycle of
    # 1..9 Poisson articles an hour: five seeds of four weeks. Every single week has at most
    # one false alarm (the hour-of-day profile covers the first week, before the hour-of-week
    # one is learnt). The plain baseline, for comparison, stays under one a week on average.
    weeks, seeds = 4, range(5)

    def alarms_per_week(rule):
        per_week = []
        for seed in seeds:
            stream = synthetic_stream(random.Random(seed), 24 * 7 * weeks, daily_cycle)
            starts = run(rule, stream)
            per_week += [
                sum(1 for s in starts if w * 168 <= s < (w + 1) * 168) for w in range(weeks)
            ]
        return per_week

    seasonal = alarms_per_week(legacy(allowed_lateness_seconds=0, seasonal=True))
    plain = alarms_per_week(DEFAULT)
    assert max(seasonal) <= 1, seasonal
    assert sum(plain) <= len(plain), plain
    assert sum(seasonal) < sum(plain)  # the profile learns the rhythm the plain baseline flags


def test_bursts_on_a_daily_cycle_are_found_with_the_seasonal_profile():
    rule = legacy(allowed_lateness_seconds=0, seasonal=True)
    burst_hours = [24 * 9 + 3, 24 * 13 + 15, 24 * 20 + 6, 24 * 25 + 18]  # peak and trough hours
    found = injected = 0
    for seed in range(100, 105):
        stream = synthetic_stream(
            random.Random(seed), 24 * 7 * 4, daily_cycle, [(h, 25) for h in burst_hours]
        )
        starts = run(rule, stream)
        injected += len(burst_hours)
        found += sum(any(h <= s <= h + 1 for s in starts) for h in burst_hours)
    assert found >= 0.9 * injected, (found, injected)


# --- lateness, order, restarts ------------------------------------------------------------


def test_late_article_for_a_key_not_seen_before_is_counted_as_late():
    detector = SpikeDetector(legacy(allowed_lateness_seconds=HOUR))
    detector.observe("a", story(1, T0 + 100 * HOUR), [])
    detector.observe("b", story(2, T0 + 10 * HOUR), [])  # 90 h behind the watermark
    assert detector.late_dropped == 1
    assert detector.tracked_buckets() == 1  # only key a's bucket


LIFECYCLE = {"started": 0, "escalated": 1, "resolved": 2}


def summary(events):
    """What an alert says, in lifecycle order; independent of the order events were returned."""
    return sorted(
        (e.topic, e.window_start, LIFECYCLE[e.state], e.state, e.count, e.baseline) for e in events
    )


def test_out_of_order_articles_within_lateness_give_the_same_spikes_as_in_order():
    rule = legacy(**{**WARM, "allowed_lateness_seconds": 2 * HOUR}, cooldown_seconds=0)
    in_order = hourly(0, 8, 1) + hourly(8, 1, 12, first_id=5000) + hourly(9, 8, 1, first_id=7000)
    shuffled = list(in_order)
    rng = random.Random(3)
    # Swap articles at most 90 minutes apart: out of order, but never beyond the lateness.
    for _ in range(2000):
        i = rng.randrange(len(shuffled) - 1)
        if abs(shuffled[i].published - shuffled[i + 1].published) <= 1.5 * HOUR:
            shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    assert shuffled != in_order

    def events(stories):
        detector = SpikeDetector(rule)
        found = feed(detector, "t", stories) + detector.flush()
        assert detector.late_dropped == 0
        return summary(found)

    expected = events(in_order)
    assert [state for *_, state, _, _ in expected] == ["started", "escalated", "resolved"]
    assert events(shuffled) == expected


def spike_then_quiet() -> tuple[SpikeRule, list[StoryRef], list[StoryRef]]:
    """A stream cut in the middle of a spike: before (started) and after (escalated, resolved)."""
    rule = legacy(**WARM, escalate_factor=2.0, resolve_buckets=2, cooldown_seconds=HOUR)
    burst = hourly(6, 1, 12, first_id=1000)
    before = hourly(0, 6, 1) + burst[:6]
    after = burst[6:] + hourly(7, 4, 1, first_id=3000) + hourly(11, 1, 12, first_id=4000)
    return rule, before, after


def test_restart_mid_spike_resumes_it_from_a_snapshot():
    rule, before, after = spike_then_quiet()
    original = SpikeDetector(rule)
    assert [e.state for e in feed(original, "t", before)] == ["started"]
    restored = SpikeDetector(rule)
    restored.restore(json.loads(json.dumps(original.snapshot())))
    resumed = feed(restored, "t", after)
    assert [e.state for e in resumed] == ["escalated", "resolved", "started", "escalated"]
    assert summary(resumed) == summary(feed(original, "t", after))


def test_restart_mid_spike_resumes_it_from_per_key_table_state():
    # The Faust table path: each key's state is stored alone and restored when first seen.
    rule, before, after = spike_then_quiet()
    original = SpikeDetector(rule)
    feed(original, "t", before)
    feed(original, "other", [story(9, T0 + 6 * HOUR + 900)])
    table = {key: json.loads(json.dumps(original.key_state(key))) for key in ("t", "other")}
    restored = SpikeDetector(rule)
    restored.restore_key("t", table["t"])
    restored.restore_key("other", table["other"])
    assert restored.baseline("t") == original.baseline("t")
    assert summary(feed(restored, "t", after)) == summary(feed(original, "t", after))


def test_snapshot_written_by_the_previous_version_still_restores():
    old = {
        "watermark": T0 + 6 * HOUR + 50,
        "late_dropped": 2,
        "keys": {
            "t": {
                "buckets": {
                    str(int(T0 // HOUR) + 6): {
                        "articles": 4,
                        "stories": {
                            f"s{i}": {
                                "article_id": f"a{i}",
                                "story_id": f"s{i}",
                                "title": f"old {i}",
                                "url": None,
                                "source": "src",
                                "published": T0 + 6 * HOUR + i,
                            }
                            for i in range(4)
                        },
                        "sources": ["src"],
                        "terms": {"huawei": 4},
                    }
                },
                "closed_through": int(T0 // HOUR) + 5,
                "history": [{"start": T0 + h * HOUR, "count": 1} for h in range(6)],
                "closed_count": 6,
                "mean": 1.0,
                "var": 0.0,
                "seasonal_mean": {},
                "active": None,
                "cooldown_until": 0.0,
            }
        },
    }
    detector = SpikeDetector(legacy(**WARM, min_count=5))
    detector.restore(old)
    events = feed(detector, "t", [story(10, T0 + 6 * HOUR + 60)])
    assert [(e.state, e.count) for e in events] == [("started", 5)]
    assert [c["count"] for c in events[0].recent_counts] == [1] * 6 + [5]
    assert "old 3" in [s["title"] for s in events[0].top_stories]


# --- lifecycle and explanation ------------------------------------------------------------


def test_after_the_cooldown_a_new_burst_starts_a_new_spike():
    rule = legacy(**WARM, resolve_buckets=1, cooldown_seconds=2 * HOUR)
    detector = SpikeDetector(rule)
    feed(detector, "t", hourly(0, 6, 1))
    first = feed(detector, "t", hourly(6, 1, 6, first_id=1000))
    feed(detector, "t", hourly(7, 2, 1, first_id=2000))  # hour 7 quiet -> resolved at 8
    assert feed(detector, "t", hourly(9, 1, 8, first_id=3000)) == []  # cooling down until 10
    feed(detector, "t", hourly(10, 12, 1, first_id=4000))
    second = feed(detector, "t", hourly(22, 1, 8, first_id=5000))
    assert [e.state for e in first] == ["started"] and [e.state for e in second] == ["started"]
    assert first[0].spike_id != second[0].spike_id


def test_a_spike_escalates_once_however_far_it_grows():
    detector = SpikeDetector(legacy(**WARM, escalate_factor=2.0))
    feed(detector, "t", hourly(0, 6, 1))
    events = feed(detector, "t", hourly(6, 1, 60, first_id=1000))
    assert [e.state for e in events] == ["started", "escalated"]


def test_event_explains_itself_with_newest_stories_and_most_frequent_terms():
    detector = SpikeDetector(legacy(**WARM, top_stories=3, top_terms=2))
    feed(detector, "t", hourly(0, 6, 1))
    events = []
    for i in range(40):
        ref = StoryRef(f"b{i}", f"st{i}", f"Story {i}", f"https://x.test/{i}", f"src{i % 4}", 0.0)
        ref = StoryRef(**{**asdict(ref), "published": T0 + 6 * HOUR + i})
        terms = ["huawei", "5g"] if i % 2 else ["huawei", "ban"] if i % 3 else ["huawei"]
        events += detector.observe("t", ref, terms)
    started = events[0]
    assert started.state == "started" and started.count == 5
    assert started.ratio == 5.0 and started.baseline == 1.0
    assert started.score == round((5 - 1.0) / math.sqrt(1.0), 3)
    assert started.window_end - started.window_start == HOUR
    assert [s["title"] for s in started.top_stories] == ["Story 4", "Story 3", "Story 2"]
    assert set(started.top_stories[0]) >= {"title", "source", "url", "story_id", "published"}
    assert started.top_stories[0]["url"] == "https://x.test/4"
    assert started.top_stories[0]["source"] == "src0"
    assert started.top_terms == ["huawei", "5g"]
    escalated = events[1]
    assert escalated.count == 10
    assert [s["title"] for s in escalated.top_stories] == ["Story 9", "Story 8", "Story 7"]


def test_flush_closes_the_last_buckets_without_inventing_future_ones():
    detector = SpikeDetector(legacy(**{**WARM, "allowed_lateness_seconds": 2 * HOUR}))
    closed = []
    detector.on_close = lambda key, width, start, count, baseline: closed.append((start, count))
    feed(detector, "t", hourly(0, 10, 2))
    assert closed[-1][0] < T0 + 9 * HOUR  # the last hours are still open for late articles
    detector.flush()
    assert closed[-1] == (T0 + 9 * HOUR, 2)
    assert detector.tracked_buckets() == 0


def test_a_spike_followed_by_a_long_silence_resolves_right_after_it():
    rule = legacy(**WARM, resolve_buckets=2)
    detector = SpikeDetector(rule)
    feed(detector, "t", hourly(0, 6, 1))
    feed(detector, "t", hourly(6, 1, 6, first_id=1000))
    events = feed(detector, "t", [story(9000, T0 + 365 * 24 * HOUR)])  # a year later
    resolved = [e for e in events if e.state == "resolved"]
    assert [e.window_start for e in resolved] == [T0 + 8 * HOUR]
    assert detector.tracked_buckets() == 1


def test_a_long_silence_with_an_open_bucket_in_between_closes_it_in_order():
    detector = SpikeDetector(legacy(**{**WARM, "allowed_lateness_seconds": 200 * HOUR}))
    closed = []
    detector.on_close = lambda key, width, start, count, baseline: closed.append((start, count))
    feed(detector, "t", [story(1, T0), story(2, T0 + 100 * HOUR), story(3, T0 + 1000 * HOUR)])
    starts = [start for start, _ in closed]
    assert starts == sorted(starts) and len(starts) == len(set(starts))
    assert (T0 + 100 * HOUR, 1) in closed
