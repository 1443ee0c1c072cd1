"""The article agent: raw topic -> clean, classify, sketch -> prepared topic.

This is the costly per-article work, and it needs nothing but the article: it runs on every
worker, on the raw partitions each one holds. Duplicates and stories are decided after, in one
place (streams/stories/agent.py).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from streams import metrics
from streams.pipeline import ArticleProcessor
from streams.records import RawArticle, encode_prepared

log = logging.getLogger(__name__)


def register(
    app: faust.App,
    raw_topic: faust.TopicT,
    prepared_topic: faust.TopicT,
    processor: ArticleProcessor,
    batch_size: int,
    batch_seconds: float,
) -> Any:
    @app.agent(raw_topic, name="process-articles")
    async def process_articles(stream: faust.StreamT[RawArticle]) -> None:
        # Batches amortise Faust's per-event overhead; each article is still handled on its own.
        async for batch in stream.take(batch_size, within=batch_seconds):
            prepared = []
            for raw in batch:
                metrics.ARTICLES_PROCESSED.inc()
                try:
                    prepared.append(processor.prepare(raw.asdict()))
                except Exception:
                    # A bad record must not stop the stream: count it, log it with its id.
                    metrics.ARTICLES_FAILED.inc()
                    log.exception("article %s could not be processed", raw.article_id)
            # A few messages per batch, all to the story stage's one partition.
            for message in encode_prepared(prepared):
                await prepared_topic.send(value=message, partition=0)

    return process_articles
