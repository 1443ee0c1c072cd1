"""Hits (topic and entity keys) shared by the agent and the backtest; per-entity spikes; the
detector state file kept under the data directory for the embedded broker."""

from __future__ import annotations

import json
import logging

from streams.records import TopicHit, decode
from streams.spikes import hits
from streams.spikes.agent import SnapshotFile, hit_records
from streams.spikes.detector import SpikeDetector, SpikeRule

HOUR = 3600.0
T0 = 1_700_000_000 // 3600 * 3600
ENTITIES = {"huawei": ["Huawei", "Huawei Technologies"], "zte": ["ZTE"]}


def article(n: int, published: float, topics: dict[str, list[str]]) -> dict:
    return {
        "article_id": f"a{n}",
        "url": f"https://news.test/{n}",
        "title": f"Title {n}",
        "text": "",
        "source": f"outlet{n % 4}",
        "published": published,
        "story_id": f"s{n}",
        "topics": {
            topic: {"score": 2.0, "terms": [{"term": t, "field": "title"} for t in terms]}
            for topic, terms in topics.items()
        },
        "language": "en",
        "is_update": False,
    }


def test_an_article_counts_under_each_topic_and_each_entity_it_names():
    found = hits.article_hits(
        article(1, T0, {"sanctions": ["Huawei", "sanctions"], "5g-security": ["5G", "huawei"]}),
        ENTITIES,
    )
    assert [(h.key, h.terms) for h in found] == [
        ("sanctions", ["Huawei", "sanctions"]),
        ("5g-security", ["5G", "huawei"]),
        ("entity:huawei", ["huawei"]),
    ]
    assert {h.story.url for h in found} == {"https://news.test/1"}


def test_agent_hit_records_carry_the_same_story_the_backtest_counts():
    data = article(2, T0 + 5, {"sanctions": ["ZTE", "sanctions"]})
    records = hit_records(data, ENTITIES)
    direct = hits.article_hits(data, ENTITIES)
    assert [key for key, _ in records] == [h.key for h in direct] == ["sanctions", "entity:zte"]
    decoded = [decode(TopicHit, value) for _, value in records]  # what the detector reads
    assert [hits.story_ref(r) for r in decoded] == [h.story for h in direct]
    assert [r.terms for r in decoded] == [h.terms for h in direct]


def test_entity_spikes_while_no_single_topic_does():
    # Huawei is named in six topics at once; each topic sees one story, the entity six.
    rule = SpikeRule(min_history_buckets=4, allowed_lateness_seconds=0, max_p_value=1.0)
    entity_rule = SpikeRule(
        min_history_buckets=4, allowed_lateness_seconds=0, max_p_value=1.0, min_count=6
    )
    detector = SpikeDetector(rule, {"entity:huawei": entity_rule})
    topics = [f"topic{i}" for i in range(6)]
    events = []
    n = 0
    for hour in range(6):  # quiet: one Huawei story an hour, in a different topic each time
        n += 1
        data = article(n, T0 + hour * HOUR, {topics[hour]: ["Huawei"]})
        for hit in hits.article_hits(data, ENTITIES):
            events += hits.observe(detector, hit)[0]
    for topic in topics:  # then six Huawei stories in one hour, one per topic
        n += 1
        data = article(n, T0 + 6 * HOUR + n, {topic: ["Huawei"]})
        for hit in hits.article_hits(data, ENTITIES):
            events += hits.observe(detector, hit)[0]
    assert [(e.topic, e.state, e.count) for e in events] == [("entity:huawei", "started", 6)]
    assert events[0].top_terms == ["huawei"]


def test_observe_says_when_a_hit_came_too_late():
    detector = SpikeDetector(SpikeRule(allowed_lateness_seconds=0))
    on_time = hits.article_hits(article(1, T0 + 10 * HOUR, {"t": ["x"]}), {})[0]
    late = hits.article_hits(article(2, T0, {"t": ["x"]}), {})[0]
    assert hits.observe(detector, on_time) == ([], False)
    assert hits.observe(detector, late) == ([], True)


def test_state_file_survives_a_restart_of_the_whole_service(tmp_path):
    rule = SpikeRule(min_history_buckets=4, allowed_lateness_seconds=0, max_p_value=1.0)
    before = SpikeDetector(rule)
    for h in range(8):
        for i in range(2):
            before.observe("t", hits.story_ref(article(h * 10 + i, T0 + h * HOUR + i, {})), [])
    path = tmp_path / "spike-state.json"
    SnapshotFile(path).save(before)
    assert not path.with_suffix(".tmp").exists()
    after = SpikeDetector(rule)
    assert SnapshotFile(path).load(after)
    assert after.baseline("t") == before.baseline("t") > 0
    assert after.snapshot() == json.loads(json.dumps(before.snapshot()))


def test_missing_or_corrupt_state_file_starts_empty_and_says_so(tmp_path, caplog):
    detector = SpikeDetector(SpikeRule())
    assert not SnapshotFile(tmp_path / "absent.json").load(detector)
    corrupt = tmp_path / "spike-state.json"
    corrupt.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert not SnapshotFile(corrupt).load(detector)
    assert "unreadable" in caplog.text and str(corrupt) in caplog.text
    assert detector.tracked_keys() == 0
