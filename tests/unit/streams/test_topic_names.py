"""Topic names come from the app id: the default deployment keeps the names it always had,
another app id gets topics of its own on a shared broker."""

from __future__ import annotations

import pytest

from connectors.publisher import bootstrap_from_broker_url
from streams.topics import TopicNames


def test_the_default_app_id_keeps_the_documented_topic_names():
    assert set(TopicNames().all(partitions=3)) == {
        "newsalert.articles.raw",
        "newsalert.articles.prepared",
        "newsalert.articles.classified",
        "newsalert.topic-hits",
        "newsalert.spikes",
        "newsalert.deadletters",
        "newsalert-spike-state-changelog",
        "newsalert-story-state-changelog",
    }


def test_another_app_id_shares_no_topic_with_the_default():
    other = TopicNames("desk-b").all(partitions=3)
    assert other["desk-b-spike-state-changelog"] == (3, {"cleanup.policy": "compact"})
    assert other["desk-b.articles.prepared"][0] == other["desk-b.deadletters"][0] == 1
    assert all(name.startswith("desk-b") for name in other)
    assert not set(other) & set(TopicNames().all(partitions=3))


def test_local_kafka_is_not_taken_for_an_address():
    assert bootstrap_from_broker_url("kafka://127.0.0.1:9092/") == "127.0.0.1:9092"
    with pytest.raises(ValueError, match="local-kafka is not an address"):
        bootstrap_from_broker_url("local-kafka")
