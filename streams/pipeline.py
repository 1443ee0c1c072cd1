"""Raw article -> clean, de-duplicated, story-grouped, classified article (pure: no Faust)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.classify.classifier import classify
from streams.classify.taxonomy import Taxonomy
from streams.clean.text import clean_text, detect_language
from streams.stories.dedupe import ExactDeduper, StoryClusterer, normalized_text_digest


@dataclass(frozen=True)
class Processed:
    article: dict[str, Any] | None  # the classified article, or None when dropped
    duplicate_reason: str | None = None


class ArticleProcessor:
    def __init__(
        self,
        taxonomy: Taxonomy,
        dedupe_horizon_seconds: float = 7 * 86400,
        max_tracked: int = 200_000,
        story_horizon_seconds: float = 3 * 86400,
    ) -> None:
        self.taxonomy = taxonomy
        self.deduper = ExactDeduper(horizon_seconds=dedupe_horizon_seconds, max_entries=max_tracked)
        self.stories = StoryClusterer(horizon_seconds=story_horizon_seconds)

    def process(self, raw: dict[str, Any], now: float) -> Processed:
        title = clean_text(raw.get("title") or "")
        text = clean_text(raw.get("body") or "", title=title)
        digest = normalized_text_digest(f"{title}\n{text}")
        if not raw.get("is_update"):
            reason = self.deduper.check(raw.get("url"), digest, now)
            if reason is not None:
                return Processed(article=None, duplicate_reason=reason)
        language = raw.get("language") or detect_language(f"{title}\n{text}")
        story_id = self.stories.assign(raw["article_id"], f"{title}\n{text}", now)
        topics = classify(title, text, self.taxonomy, language=language)
        return Processed(
            article={
                "article_id": raw["article_id"],
                "url": raw.get("url"),
                "title": title,
                "text": text,
                "source": raw.get("source"),
                "published": raw["published"],
                "story_id": story_id,
                "topics": {name: match.as_dict() for name, match in topics.items()},
                "language": language,
                "is_update": bool(raw.get("is_update")),
            }
        )
