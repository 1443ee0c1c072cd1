"""Kafka topic names and layout in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicNames:
    raw_articles: str = "newsalert.articles.raw"
    articles: str = "newsalert.articles.classified"
    topic_hits: str = "newsalert.topic-hits"
    spikes: str = "newsalert.spikes"


TOPICS = TopicNames()
