"""Raw article -> clean, de-duplicated, story-grouped, classified article (pure: no Faust).

Two steps, so that the stream can run them in different places: ``prepare`` (clean, language,
classification, the duplicate digest and the story sketch) depends on the article alone and
runs wherever its raw record is read; ``decide`` (exact duplicates, story assignment) depends
on every article before it and runs in one place (streams/stories/agent.py).
``process`` is both, for one process (the backtest, the evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.classify.classifier import classify
from streams.classify.model import TopicModel, add_model_topics
from streams.classify.taxonomy import Taxonomy
from streams.clean.text import clean_text, detect_language
from streams.stories.dedupe import StorySketch, normalized_text_digest, text_words
from streams.stories.stage import Entry, StoryStage


@dataclass(frozen=True)
class Processed:
    article: dict[str, Any] | None  # the classified article, or None when dropped
    duplicate_reason: str | None = None
    state_entry: Entry | None = None  # the story stage's changelog entry, if it changed


class ArticleProcessor:
    def __init__(
        self,
        taxonomy: Taxonomy,
        dedupe_horizon_seconds: float = 7 * 86400,
        max_tracked: int = 200_000,
        story_horizon_seconds: float = 3 * 86400,
        model: TopicModel | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.model = model  # may add topics the rules did not give (streams/classify/model.py)
        self._stage_params = (dedupe_horizon_seconds, max_tracked, story_horizon_seconds)
        self.stage = self.new_stage()

    def new_stage(self) -> StoryStage:
        """An empty story stage with this processor's horizons."""
        return StoryStage(*self._stage_params)

    def process(self, raw: dict[str, Any], now: float) -> Processed:
        return self.decide(self.prepare(raw), now)

    def classified(self, raw: dict[str, Any]) -> tuple[str, str, str | None, dict[str, Any]]:
        """Title and text cleaned, the language, and the topics (as JSON-ready dicts)."""
        title, text, _, _, language, topics = self._read(raw)
        return title, text, language, topics

    def _read(
        self, raw: dict[str, Any]
    ) -> tuple[str, str, str, list[str], str | None, dict[str, Any]]:
        """Title, text, both as one content string, its words, the language, the topics."""
        title = clean_text(raw.get("title") or "")
        text = clean_text(raw.get("body") or "", title=title)
        content = f"{title}\n{text}"
        # Split once: the language, the duplicate digest and the story sketch read the words.
        words = text_words(content)
        language = raw.get("language") or detect_language(content, words)
        matches = classify(title, text, self.taxonomy, language=language)
        found = {name: match.as_dict() for name, match in matches.items()}
        topics = add_model_topics(found, self.model, title, text)
        return title, text, content, words, language, topics

    def prepare(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The article cleaned and classified, with what ``decide`` needs (JSON-ready)."""
        title, text, content, words, language, topics = self._read(raw)
        sketch = self.stage.stories.sketch(content, words)
        return {
            "article_id": raw["article_id"],
            "url": raw.get("url"),
            "title": title,
            "text": text,
            "source": raw.get("source"),
            "published": raw["published"],
            "topics": topics,
            "language": language,
            "is_update": bool(raw.get("is_update")),
            "fetched_at": raw.get("fetched_at") or 0.0,
            "digest": normalized_text_digest(content, words),
            "words": sketch.words,
            "word_count": sketch.word_count,
            "fingerprints": sketch.fingerprints,
        }

    def decide(self, prepared: dict[str, Any], now: float) -> Processed:
        """Drop an exact duplicate, else the classified article with its story."""
        sketch = StorySketch(prepared["words"], prepared["word_count"], prepared["fingerprints"])
        decision = self.stage.decide(
            prepared["article_id"],
            prepared["url"],
            prepared["digest"],
            sketch,
            prepared["is_update"],
            now,
        )
        if decision.story_id is None:
            return Processed(article=None, duplicate_reason=decision.duplicate_reason)
        return Processed(
            article={
                "article_id": prepared["article_id"],
                "url": prepared["url"],
                "title": prepared["title"],
                "text": prepared["text"],
                "source": prepared["source"],
                "published": prepared["published"],
                "story_id": decision.story_id,
                "topics": prepared["topics"],
                "language": prepared["language"],
                "is_update": prepared["is_update"],
                "fetched_at": prepared.get("fetched_at") or 0.0,
            },
            state_entry=decision.entry,
        )
