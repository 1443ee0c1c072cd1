"""Topic names come from the app id: the default deployment keeps the names it always had,
another app id gets topics of its own on a shared broker."""

from __future__ import annotations

from streams.topics import TopicNames


def test_the_default_app_id_keeps_the_documented_topic_names():
    assert set(TopicNames().all()) == {
        "newsalert.articles.raw",
        "newsalert.articles.classified",
        "newsalert.topic-hits",
        "newsalert.spikes",
        "newsalert.deadletters",
        "newsalert-spike-state-changelog",
    }


def test_another_app_id_shares_no_topic_with_the_default():
    other = TopicNames("desk-b").all()
    assert other["desk-b-spike-state-changelog"] == {"cleanup.policy": "compact"}
    assert all(name.startswith("desk-b") for name in other)
    assert not set(other) & set(TopicNames().all())
