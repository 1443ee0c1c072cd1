"""Spikes at several widths (an hour and a day): one lifecycle per key, the adaptive floor."""

from __future__ import annotations

import json
import logging
import random

from streams.spikes.detector import SpikeDetector, SpikeRule, StoryRef, negbin_tail, poisson_tail

HOUR = 3600.0
DAY = 86400.0
D0 = 1_700_006_400  # a midnight (UTC)
assert D0 % DAY == 0

# Warm after four buckets of each width (four hours, four days), no lateness.
RULE = SpikeRule(min_history_buckets=4, baseline_buckets=8, allowed_lateness_seconds=0)


def story(n: int, published: float) -> StoryRef:
    return StoryRef(f"a{n}", f"s{n}", f"title {n}", None, "src", published)


def background(days: int, per_day: int, first_id: int = 0) -> list[StoryRef]:
    """``per_day`` stories a day, evenly spread, off the hour (never at midnight)."""
    step = DAY / per_day
    return [
        story(first_id + d * 100 + i, D0 + d * DAY + i * step + 1800)
        for d in range(days)
        for i in range(per_day)
    ]


def run(rule: SpikeRule, stories: list[StoryRef], key: str = "t"):
    detector = SpikeDetector(rule)
    events = []
    for s in sorted(stories, key=lambda s: s.published):
        events += detector.observe(key, s, [])
    return detector, events + detector.flush()


def starts(events):
    return [
        (e.width_seconds, int((e.window_start - D0) // HOUR))
        for e in events
        if e.state == "started"
    ]


def test_a_burst_spread_over_a_day_is_found_at_the_day_width():
    day = 10
    spread = [story(5000 + i, D0 + day * DAY + i * 2 * HOUR + 600) for i in range(12)]
    _, events = run(RULE, background(20, 4) + spread)
    assert starts(events) == [(DAY, day * 24)]  # one a day-wide bucket, no hour ever qualifies


def test_an_hour_burst_is_found_at_the_hour_width_and_the_day_adds_no_second_spike():
    day, hour = 10, 9
    burst = [story(5000 + i, D0 + day * DAY + hour * HOUR + 60 * i + 5) for i in range(8)]
    _, events = run(RULE, background(20, 4) + burst)
    assert starts(events) == [(HOUR, day * 24 + hour)]
    # The day's own count (4 + 8) qualifies too, but the key has one spike at a time.
    states = [e.state for e in events]
    assert states.count("started") == 1 and states.count("resolved") == 1
    assert states.index("started") < states.index("resolved")


def test_a_bigger_burst_at_another_width_escalates_the_running_spike():
    day = 10
    # Four stories in hour 9 start a spike at the hour width; two an hour after that keep it
    # running (not quiet) until the day's count reaches twice four and qualifies by itself.
    first = [story(5000 + i, D0 + day * DAY + 9 * HOUR + 60 * i + 5) for i in range(4)]
    later = [story(6000 + i, D0 + day * DAY + (10 + i // 2) * HOUR + 600 + i) for i in range(6)]
    _, events = run(RULE, background(20, 4) + first + later)
    seen = [(e.state, e.width_seconds) for e in events if e.state != "resolved"]
    assert seen == [("started", HOUR), ("escalated", DAY)]


def test_date_only_articles_count_at_the_day_width_only():
    # Articles dated (published at midnight exactly): at the hour width they would all pile
    # up in the first hour of the day.
    dated = [story(i, D0 + d * DAY) for d in range(20) for i in range(d * 10, d * 10 + 1)]
    burst = [story(9000 + i, D0 + 12 * DAY) for i in range(6)]
    _, events = run(RULE, dated + burst)
    assert starts(events) == [(DAY, 12 * 24)]


def test_one_lifecycle_per_key_and_separate_keys_are_independent():
    burst = [story(5000 + i, D0 + 10 * DAY + 9 * HOUR + 60 * i + 5) for i in range(8)]
    detector = SpikeDetector(RULE)
    stream = sorted(
        [("a", s) for s in background(20, 4) + burst] + [("b", s) for s in background(20, 4)],
        key=lambda pair: pair[1].published,
    )
    found = [e for key, s in stream for e in detector.observe(key, s, [])]
    assert [(e.topic, e.state) for e in found if e.state == "started"] == [("a", "started")]


# --- the adaptive floor -------------------------------------------------------------------


def test_a_quiet_topic_alerts_on_three_distinct_stories_in_a_day():
    # One story every five days: three in a day are improbable, and three is the floor.
    quiet = [story(i, D0 + d * DAY + 7200) for i, d in enumerate(range(0, 40, 5))]
    burst = [story(900 + i, D0 + 41 * DAY + 3 * 3600 * i + 7200) for i in range(3)]
    _, events = run(SpikeRule(allowed_lateness_seconds=0), quiet + burst)
    assert starts(events) == [(DAY, 41 * 24)]


def test_two_stories_never_alert_however_quiet_the_topic():
    quiet = [story(i, D0 + d * DAY + 7200) for i, d in enumerate(range(0, 40, 10))]
    pair = [story(900 + i, D0 + 41 * DAY + 3 * 3600 * i + 7200) for i in range(2)]
    _, events = run(SpikeRule(allowed_lateness_seconds=0), quiet + pair)
    assert starts(events) == []


def test_a_busy_topic_needs_a_real_rise():
    rule = SpikeRule(allowed_lateness_seconds=0, widths=(DAY,))
    busy = background(40, 20)
    small_rise = [story(9000 + i, D0 + 35 * DAY + i * 3000 + 100) for i in range(8)]
    _, events = run(rule, busy + small_rise)
    assert starts(events) == []  # 28 against 20 a day: not improbable
    big_rise = [story(9000 + i, D0 + 35 * DAY + i * 1000 + 100) for i in range(45)]
    _, events = run(rule, busy + big_rise)
    assert starts(events) == [(DAY, 35 * 24)]


def test_negative_binomial_tail_is_heavier_than_poisson_for_overdispersed_baselines():
    assert negbin_tail(5, 1.0, 1.0) == poisson_tail(5, 1.0)
    assert negbin_tail(5, 1.0, 4.0) > 10 * poisson_tail(5, 1.0)
    assert abs(poisson_tail(3, 0.5) - 0.01439) < 1e-4


# --- state --------------------------------------------------------------------------------


def test_state_of_every_width_survives_a_snapshot_round_trip():
    stories = background(12, 4)
    original, _ = run(RULE, stories)
    snapshot = json.loads(json.dumps(original.snapshot()))
    assert set(snapshot["keys"]["t"]["lanes"]) == {"3600", "86400"}
    restored = SpikeDetector(RULE)
    restored.restore(snapshot)
    for width in (HOUR, DAY):
        assert restored.baseline("t", width) == original.baseline("t", width) > 0
    burst = [story(5000 + i, D0 + 13 * DAY + 9 * HOUR + 60 * i + 5) for i in range(8)]
    after = [
        [(e.state, e.width_seconds, e.count) for s in burst for e in d.observe("t", s, [])]
        for d in (original, restored)
    ]
    assert after[0] == after[1] and after[0][0][:2] == ("started", HOUR)


def test_a_single_width_state_file_is_migrated_with_a_log_line(caplog):
    old_rule = SpikeRule(widths=(HOUR,), min_history_buckets=4, allowed_lateness_seconds=0)
    old, _ = run(old_rule, background(3, 4))
    old_state = old.snapshot()
    lane = old_state["keys"]["t"].pop("lanes")["3600"]
    old_state["keys"]["t"].update(lane)  # the format before several widths: one flat state
    del old_state["version"]
    migrated = SpikeDetector(RULE)
    with caplog.at_level(logging.WARNING):
        migrated.restore(json.loads(json.dumps(old_state)))
    assert "restored as its 3600 s buckets" in caplog.text
    assert migrated.baseline("t", HOUR) == old.baseline("t", HOUR)
    assert migrated.snapshot()["keys"]["t"]["lanes"].keys() == {"3600"}


# --- a busy topic with a daily rhythm, timed to the minute --------------------------------


def test_defaults_on_a_busy_daily_cycle_rarely_alarm_and_find_the_bursts():
    # Between 1 and 9 Poisson articles an hour (five seeds of four weeks): the negative
    # binomial tail takes the rhythm's spread from the baseline's variance, and the per-day
    # significance holds each hour to a 24th of it.
    from tests.unit.spikes.test_detector import daily_cycle, run, synthetic_stream

    rule = SpikeRule(allowed_lateness_seconds=0)
    false_alarms = sum(
        len(run(rule, synthetic_stream(random.Random(seed), 24 * 7 * 4, daily_cycle)))
        for seed in range(5)
    )
    assert false_alarms <= 2  # 1 with these seeds, in 20 weeks
    burst_hours = [24 * 9 + 3, 24 * 13 + 15, 24 * 20 + 6, 24 * 25 + 18]
    found = 0
    for seed in range(100, 105):
        stream = synthetic_stream(
            random.Random(seed), 24 * 7 * 4, daily_cycle, [(h, 25) for h in burst_hours]
        )
        starts = run(rule, stream)
        found += sum(any(h <= s <= h + 1 for s in starts) for h in burst_hours)
    assert found >= 18  # 19 of 20 with these seeds


def test_a_spike_does_not_widen_the_variance_that_the_next_burst_is_judged_by():
    # Three days of burst (one spike: the second and third days are not quiet), then four
    # stories a few days later: judged against the quiet days' spread, not the burst's.
    rule = SpikeRule(widths=(DAY,), min_history_buckets=4, allowed_lateness_seconds=0)
    quiet = [story(i, D0 + d * DAY + 7200) for i, d in enumerate(range(0, 30, 4))]
    burst = [story(500 + i, D0 + (30 + i // 6) * DAY + 600 * i + 60) for i in range(18)]
    later = [story(700 + i, D0 + 37 * DAY + 600 * i + 60) for i in range(4)]
    _, events = run(rule, quiet + burst + later)
    assert starts(events) == [(DAY, 30 * 24), (DAY, 37 * 24)]
