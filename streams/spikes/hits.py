"""What a classified article is counted as, and under which keys (pure).

Shared by the live agents (streams/spikes/agent.py) and ``newsalert backtest``, so that both feed
the detector exactly the same hits: one per topic, one per tracked entity it names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.spikes.detector import SpikeDetector, SpikeEvent, StoryRef


@dataclass(frozen=True)
class Hit:
    key: str  # a topic name, or ``entity:<name>``
    terms: list[str]  # the matched terms that put the article under ``key``
    story: StoryRef


def hit_keys(topics: dict[str, Any], entities: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """``[(key, matched terms)]``: one per topic, one per entity (``entity:<name>``) whose
    spellings appear among the matched terms."""
    keys = []
    seen_terms: set[str] = set()
    for topic, match in topics.items():
        terms = sorted({t["term"] for t in match.get("terms", [])})
        seen_terms.update(t.lower() for t in terms)
        keys.append((topic, terms))
    for entity, spellings in entities.items():
        if any(spelling.lower() in seen_terms for spelling in spellings):
            keys.append((f"entity:{entity}", [entity]))
    return keys


def story_ref(item: Any) -> StoryRef:
    """The story details the detector keeps, from a classified article or a topic hit (a
    mapping or a record with those fields)."""
    mapping = isinstance(item, Mapping)
    get: Callable[[str], Any] = item.__getitem__ if mapping else lambda name: getattr(item, name)
    fetched_at = item.get("fetched_at") if mapping else getattr(item, "fetched_at", None)
    return StoryRef(
        article_id=get("article_id"),
        story_id=get("story_id"),
        title=get("title"),
        url=get("url"),
        source=get("source"),
        published=float(get("published")),
        fetched_at=float(fetched_at or 0.0),
    )


def article_hits(article: Mapping[str, Any], entities: dict[str, list[str]]) -> list[Hit]:
    """The hits of one classified article (the processor's output, or ``Article.asdict()``)."""
    story = story_ref(article)
    return [Hit(key, terms, story) for key, terms in hit_keys(article["topics"], entities)]


def observe(detector: SpikeDetector, hit: Hit) -> tuple[list[SpikeEvent], bool]:
    """Count ``hit``; the spike events it causes, and whether it came too late to count."""
    late_before = detector.late_dropped
    events = detector.observe(hit.key, hit.story, list(hit.terms))
    return events, detector.late_dropped != late_before
