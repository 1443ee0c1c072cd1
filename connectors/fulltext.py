"""Full text for feeds that carry only a summary (per-feed ``full_text`` setting): fetch the
article page through the shared Fetcher (SSRF guard, deadline, size limit) and keep the main
text that trafilatura extracts, without navigation, related-story lists and footers.

trafilatura is imported on first use, so feeds without the setting never load it.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from typing import Any

from connectors import metrics
from connectors.fetcher import Fetcher, FetchError

log = logging.getLogger(__name__)

MAX_CONCURRENT_PAGES = 8  # per poller: article pages are fetched on top of the feeds
MIN_GAIN_CHARACTERS = 80  # the extraction must add at least this much to replace the summary
_TAG = re.compile(r"<[^>]*>")


def extract_text(page: bytes | str, url: str | None = None) -> str | None:
    """The main text of an article page, paragraphs separated by blank lines; None if the
    extractor finds no article in it."""
    import trafilatura

    text = trafilatura.extract(
        page,
        url=url,
        favor_precision=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        deduplicate=True,
    )
    if not text or not text.strip():
        return None
    paragraphs = [line.strip() for line in text.splitlines() if line.strip()]
    return "\n\n".join(paragraphs)


def _as_html(text: str) -> str:
    """The body field carries HTML or text; paragraphs as <p> keep their breaks downstream."""
    return "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in text.split("\n\n"))


class FullTextFetcher:
    """Replaces article bodies with the extracted page text, at most ``max_concurrent`` pages
    at a time. A page that cannot be fetched or extracted leaves the feed's summary."""

    def __init__(self, fetcher: Fetcher, *, max_concurrent: int = MAX_CONCURRENT_PAGES) -> None:
        self._fetcher = fetcher
        self._slots = asyncio.Semaphore(max_concurrent)

    async def enrich(self, articles: list[Any]) -> None:
        await asyncio.gather(*(self._enrich_one(a) for a in articles if a.url))

    async def _enrich_one(self, article: Any) -> None:
        async with self._slots:
            try:
                response = await self._fetcher.fetch(article.url)
            except FetchError as exc:
                metrics.FULL_TEXT_FETCHES.labels("fetch_error").inc()
                log.info("article %s: full text not fetched: %s", article.url, exc)
                return
        try:
            text = await asyncio.to_thread(extract_text, response.body, response.url)
        except ImportError:
            metrics.FULL_TEXT_FETCHES.labels("unavailable").inc()
            log.error("full_text is set but trafilatura is not installed: pip install trafilatura")
            return
        summary_length = len(_TAG.sub("", article.body or ""))
        if text is None or len(text) < summary_length + MIN_GAIN_CHARACTERS:
            metrics.FULL_TEXT_FETCHES.labels("no_gain").inc()
            return
        article.body = _as_html(text)
        metrics.FULL_TEXT_FETCHES.labels("extracted").inc()
