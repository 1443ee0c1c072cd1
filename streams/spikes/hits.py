"""Which keys an article counts under: its topics, and the tracked entities it names (pure)."""

from __future__ import annotations

from typing import Any


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
