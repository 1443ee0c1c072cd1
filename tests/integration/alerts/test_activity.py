"""The pages' record of the stream (alerts/activity.py) on SQLite and PostgreSQL: distinct
stories per bucket, latest stories, spike events, and the 31-day bound."""

from __future__ import annotations

import pytest

from alerts.activity import KEEP_SECONDS, ActivityStore

NOW = 1_800_001_800.0  # half way through an hour


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    target = tmp_path / "db.sqlite3"
    if request.param == "postgresql":
        target = request.getfixturevalue("postgres_url")
    opened = ActivityStore(target)
    yield opened
    opened.close()


def hit(story_id: str, published: float, key: str = "5g-security") -> dict:
    return {
        "key": key,
        "story_id": story_id,
        "published": published,
        "title": f"story {story_id}",
        "url": None,
        "source": "wire",
        "terms": ["huawei"],
    }


def test_volume_counts_each_story_once_per_bucket(store):
    store.record_hits([hit("a", NOW - 10), hit("a", NOW - 5), hit("b", NOW - 3600)], now=NOW)
    store.record_hits([hit("a", NOW - 1)], now=NOW)  # another copy of story a, later
    assert store.volume("5g-security", NOW - 7200, 3600) == {
        int((NOW - 10) // 3600): 1,
        int((NOW - 3600) // 3600): 1,
    }
    assert [s["story_id"] for s in store.latest_stories("5g-security")] == ["a", "b"]
    assert store.latest_stories("5g-security")[0]["terms"] == ["huawei"]
    assert store.titles_since(NOW - 60, ["5g-security"]) == {"a": "story a"}
    assert store.keys() == ["5g-security"]


def test_old_stories_and_spikes_are_deleted(store):
    old = NOW - KEEP_SECONDS - 10
    store.record_spike({"spike_id": "s", "state": "started", "topic": "t", "detected_at": old})
    store.record_hits([hit("old", old)], now=old)
    store.record_hits([hit("new", NOW)], now=NOW)
    assert [s["story_id"] for s in store.latest_stories("5g-security")] == ["new"]
    assert store.spike("s") == []


def test_each_spike_is_listed_once_by_its_newest_event(store):
    for state, at in (("started", NOW), ("escalated", NOW + 60), ("started", NOW)):
        store.record_spike({"spike_id": "s1", "state": state, "topic": "t", "detected_at": at})
    store.record_spike({"spike_id": "s2", "state": "started", "topic": "u", "detected_at": NOW})
    assert [(s["spike_id"], s["state"]) for s in store.spikes()] == [
        ("s1", "escalated"),
        ("s2", "started"),
    ]
    assert [s["state"] for s in store.spike("s1")] == ["started", "escalated"]
    assert [s["spike_id"] for s in store.spikes(topic="u")] == ["s2"]
