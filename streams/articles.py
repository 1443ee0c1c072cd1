"""The article agent: raw topic -> clean, classify, sketch -> prepared topic.

This is the costly per-article work, and it needs nothing but the article: it runs on every
worker, on the raw partitions each one holds. Duplicates and stories are decided after, in one
place (streams/stories/agent.py).
"""

from __future__ import annotations

from typing import Any

import faust

from streams import metrics
from streams.deadletters import DeadLetters, undecoded
from streams.pipeline import ArticleProcessor
from streams.records import RawArticle, decode_fields, encode_prepared

STAGE = "process-articles"


def register(
    app: faust.App,
    raw_topic: faust.TopicT,
    prepared_topic: faust.TopicT,
    processor: ArticleProcessor,
    dead_letters: DeadLetters,
    batch_size: int,
    batch_seconds: float,
) -> Any:
    @app.agent(undecoded(raw_topic), name=STAGE)
    async def process_articles(stream: faust.StreamT[bytes]) -> None:
        # Batches amortise Faust's per-event overhead; each article is still handled on its own.
        async for events in stream.take_events(batch_size, within=batch_seconds):
            prepared = []
            for event in events:
                metrics.ARTICLES_PROCESSED.inc()
                try:
                    prepared.append(processor.prepare(decode_fields(RawArticle, event.value)))
                except Exception as exc:
                    # A record that can never be processed must not stop the stream.
                    metrics.ARTICLES_FAILED.inc()
                    await dead_letters.send(STAGE, event.message, exc)
            # A few messages per batch, all to the story stage's one partition.
            for message in encode_prepared(prepared):
                await prepared_topic.send(value=message, partition=0)

    return process_articles
