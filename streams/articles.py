"""The article agent: raw topic -> clean, dedupe, group, classify -> classified topic."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from streams import metrics
from streams.pipeline import ArticleProcessor
from streams.records import Article, RawArticle

log = logging.getLogger(__name__)


def register(
    app: faust.App,
    raw_topic: faust.TopicT,
    articles_topic: faust.TopicT,
    processor: ArticleProcessor,
    batch_size: int,
    batch_seconds: float,
) -> Any:
    @app.agent(raw_topic, name="process-articles")
    async def process_articles(stream: faust.StreamT[RawArticle]) -> None:
        # Batches amortise Faust's per-event overhead; each article is still handled on its own.
        async for batch in stream.take(batch_size, within=batch_seconds):
            now = time.time()
            for raw in batch:
                metrics.ARTICLES_PROCESSED.inc()
                try:
                    result = processor.process(raw.asdict(), now)
                except Exception:
                    # A bad record must not stop the stream: count it, log it with its id.
                    metrics.ARTICLES_FAILED.inc()
                    log.exception("article %s could not be processed", raw.article_id)
                    continue
                if result.article is None:
                    metrics.ARTICLES_DUPLICATE.labels(result.duplicate_reason).inc()
                    continue
                article = Article(**result.article)
                for topic in article.topics:
                    metrics.ARTICLES_CLASSIFIED.labels(topic).inc()
                if raw.fetched_at:
                    metrics.PROCESS_LAG.observe(max(0.0, now - raw.fetched_at))
                await articles_topic.send(key=article.article_id, value=article)

    return process_articles
