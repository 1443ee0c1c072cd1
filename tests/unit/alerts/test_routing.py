"""Who hears about a spike, by which channel, and when."""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.routing import Timing, keyword_match, route, severity
from newsalert.settings import SubscriptionConfig

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp()  # a Monday, noon UTC


class State:
    """The routing state as plain sets (the real one is alerts.store.DeliveryStore)."""

    def __init__(self) -> None:
        self.announced: set[tuple[str, str]] = set()
        self.silences: set[tuple[str, str]] = set()
        self.disabled: dict[tuple[str, str], str] = {}
        self.groups: dict[str, tuple[float | None, float | None]] = {}

    def already_announced(self, subscriber, story_id):
        return (subscriber, story_id) in self.announced

    def silenced(self, subscriber, key, now):
        return (subscriber, key) in self.silences

    def endpoint_disabled(self, subscriber, channel, target):
        return self.disabled.get((subscriber, channel))

    def group(self, group_key):
        return self.groups.get(group_key, (None, None))


def sub(**kwargs) -> SubscriptionConfig:
    base = {
        "name": "desk",
        "topics": ["5g-security"],
        "webhook": {"url": "https://hooks.example/x"},
    }
    return SubscriptionConfig(**{**base, **kwargs})


def routed(spike, subs, state=None, now=NOW, timing=None):
    return route(spike, subs, state or State(), now, timing or Timing())


def test_started_spike_reaches_each_channel_of_matching_subscribers(spike):
    subs = [sub(email="a@example.org"), sub(name="other", topics=["sanctions"])]
    notes, _ = routed(spike, subs)
    assert [(r.notification.subscriber, r.notification.channel) for r in notes] == [
        ("desk", "webhook"),
        ("desk", "email"),
    ]
    assert len({r.notification.message_id for r in notes}) == 2


def test_message_ids_are_stable_so_a_replayed_spike_is_not_sent_twice(spike):
    first, _ = routed(spike, [sub()])
    again, _ = routed(dict(spike), [sub()])
    assert [r.notification.message_id for r in first] == [r.notification.message_id for r in again]


def test_updates_only_for_subscribers_who_asked(spike):
    escalated = dict(spike, state="escalated")
    assert routed(escalated, [sub()])[0] == []
    assert len(routed(escalated, [sub(notify_on=["started", "escalated"])])[0]) == 1


def test_inactive_silenced_or_below_severity_get_nothing(spike):
    state = State()
    state.silences.add(("desk", "5g-security"))
    assert routed(spike, [sub()], state)[1][0].reason == "silenced"
    assert routed(spike, [sub(active=False)])[1][0].reason == "inactive"
    assert severity(spike) == "low"  # ratio 4.67
    assert routed(spike, [sub(min_severity="medium")])[0] == []
    assert len(routed(dict(spike, ratio=12.0), [sub(min_severity="high")])[0]) == 1


def test_entity_subscriptions_follow_entity_spikes(spike):
    entity_spike = dict(spike, topic="entity:huawei")
    assert len(routed(entity_spike, [sub(topics=[], entities=["huawei"])])[0]) == 1
    assert routed(entity_spike, [sub()])[0] == []


def test_keyword_filter_uses_the_query_language_on_story_titles(spike):
    assert len(routed(spike, [sub(keywords='"Germany" AND Huawei')])[0]) == 1
    assert routed(spike, [sub(keywords="Kaspersky OR Hikvision")])[0] == []
    assert keyword_match('"huawei" NEAR/3 "5G"', "US warns Germany over Huawei in 5G")


def test_a_spike_whose_stories_were_all_announced_is_not_sent_again(spike):
    state = State()
    state.announced |= {("desk", "s1"), ("desk", "s2")}
    assert routed(spike, [sub()], state)[0] == []
    state.announced.discard(("desk", "s2"))
    (r,) = routed(spike, [sub()], state)[0]
    assert r.notification.new_story_ids == ("s2",)


def test_disabled_channel_is_skipped_and_others_still_get_it(spike):
    state = State()
    state.disabled[("desk", "webhook")] = "410 Gone"
    notes, skipped = routed(spike, [sub(email="a@example.org")], state)
    assert [r.notification.channel for r in notes] == ["email"]
    assert "webhook disabled" in skipped[0].reason


def test_group_wait_then_group_interval_then_repeat_interval(spike):
    timing = Timing(group_wait_seconds=30, group_interval_seconds=300, repeat_interval_seconds=3600)
    state = State()
    (first,) = routed(spike, [sub()], state, timing=timing)[0]
    assert first.due_at == NOW + 30 and first.status == "pending"
    state.groups[first.notification.group_key] = (NOW - 10, NOW - 10)
    update = dict(spike, state="escalated")
    (second,) = routed(update, [sub(notify_on=["started", "escalated"])], state, timing=timing)[0]
    assert second.due_at == NOW - 10 + 300
    fresh = dict(
        spike,
        spike_id="5g-security:next",
        top_stories=[dict(spike["top_stories"][0], story_id="s9")],
    )
    (third,) = routed(fresh, [sub()], state, timing=timing)[0]
    assert third.due_at == NOW - 10 + 3600


def test_quiet_hours_hold_instant_alerts_until_they_end(spike):
    quiet = sub(timezone="Europe/Berlin", quiet_hours={"start": "12:00", "end": "14:00"})
    (r,) = routed(spike, [quiet], timing=Timing(group_wait_seconds=0))[0]
    # Noon UTC is 13:00 in Berlin in March: held until 14:00 Berlin = 13:00 UTC.
    assert r.due_at == NOW + 3600
    overnight = sub(quiet_hours={"start": "22:00", "end": "07:00"})
    (r,) = routed(spike, [overnight], timing=Timing(group_wait_seconds=0))[0]
    assert r.due_at == NOW


def test_digest_subscribers_get_items_held_for_their_digest_time(spike):
    (hourly,) = routed(spike, [sub(mode="hourly")])[0]
    assert hourly.status == "digest" and hourly.due_at == NOW + 3600
    (daily,) = routed(spike, [sub(mode="daily", digest_time="08:30", timezone="America/New_York")])[
        0
    ]
    # Next 08:30 in New York after noon UTC (07:00 EST) is today 13:30 UTC.
    assert daily.due_at == NOW + 5400
