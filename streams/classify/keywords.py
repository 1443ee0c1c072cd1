"""The query language as a subscriber's keyword filter: checked when a subscription is
configured, matched against a spike's story titles when it is routed (alerts/routing.py)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from streams.classify.classifier import classify
from streams.classify.query import QuerySyntaxError, parse_query
from streams.classify.taxonomy import build_taxonomy


def keyword_query_problem(query: str) -> str | None:
    """Why ``query`` is not a valid keyword filter, or None. Aliases (``@name``) belong to a
    taxonomy, so a subscriber's own query cannot use them."""

    def no_aliases(alias: str, position: int) -> list[Any]:
        raise QuerySyntaxError(position, f"aliases (@{alias}) are not available here")

    try:
        parse_query(query, no_aliases)
    except QuerySyntaxError as exc:
        return f"keyword query, position {exc.position}: {exc.reason}"
    return None


def keyword_match(query: str, title: str) -> bool:
    return bool(classify(title, "", _keyword_taxonomy(query)))


@lru_cache(maxsize=256)
def _keyword_taxonomy(query: str) -> Any:
    return build_taxonomy({"topics": {"keywords": {"rules": [query], "min_paragraphs": 1}}})
