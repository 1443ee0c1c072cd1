"""The article agent: raw topic -> clean, dedupe, group, classify -> classified topic."""

from __future__ import annotations

import time
from typing import Any

import faust

from streams import metrics
from streams.deadletters import DeadLetters, undecoded
from streams.pipeline import ArticleProcessor
from streams.records import Article, RawArticle, decode

STAGE = "process-articles"


def register(
    app: faust.App,
    raw_topic: faust.TopicT,
    articles_topic: faust.TopicT,
    processor: ArticleProcessor,
    dead_letters: DeadLetters,
    batch_size: int,
    batch_seconds: float,
) -> Any:
    @app.agent(undecoded(raw_topic), name=STAGE)
    async def process_articles(stream: faust.StreamT[bytes]) -> None:
        # Batches amortise Faust's per-event overhead; each article is still handled on its own.
        async for events in stream.take_events(batch_size, within=batch_seconds):
            now = time.time()
            for event in events:
                metrics.ARTICLES_PROCESSED.inc()
                try:
                    raw = decode(RawArticle, event.value)
                    result = processor.process(raw.asdict(), now)
                    article = Article(**result.article) if result.article is not None else None
                    lag = max(0.0, now - raw.fetched_at) if raw.fetched_at else None
                except Exception as exc:
                    # A record that can never be processed must not stop the stream.
                    metrics.ARTICLES_FAILED.inc()
                    await dead_letters.send(STAGE, event.message, exc)
                    continue
                if article is None:
                    metrics.ARTICLES_DUPLICATE.labels(result.duplicate_reason).inc()
                    continue
                for topic in article.topics:
                    metrics.ARTICLES_CLASSIFIED.labels(topic).inc()
                if lag is not None:
                    metrics.PROCESS_LAG.observe(lag)
                await articles_topic.send(key=article.article_id, value=article)

    return process_articles
