"""A synthetic taxonomy of any number of rules, in every shape the query language has, over the
vocabulary of real articles (pure): for the classify bench, and for testing that the classifier's
fast path gives what a plain evaluation of every rule gives."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any

from streams.classify.taxonomy import Taxonomy, build_taxonomy


def vocabulary(articles: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """Mid-frequency words, frequent word pairs and capitalised names from articles (``title``
    and ``body``), so generated rules hit about as often as hand-written ones."""
    words: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    names: Counter[str] = Counter()
    for raw in articles:
        text = f"{raw['title']} {raw['body']}"
        tokens = re.findall(r"[A-Za-z][A-Za-z-]+", text)
        lowered = [t.lower() for t in tokens]
        words.update(w for w in lowered if len(w) > 3)
        pairs.update(f"{a} {b}" for a, b in pairwise(lowered) if len(a) > 3 and len(b) > 3)
        names.update(t for t in tokens[1:] if t[0].isupper() and len(t) > 3)
    # Skip the most frequent (function words, near-stopwords): rules are about something.
    common_words = [w for w, _ in words.most_common(6000)][300:]
    common_pairs = [p for p, _ in pairs.most_common(3000)][100:]
    common_names = [n for n, _ in names.most_common(1500)][100:]
    return common_words, common_pairs, common_names


def generated_taxonomy_data(
    articles: Iterable[Mapping[str, Any]], rules: int = 1000, seed: int = 6
) -> dict[str, Any]:
    """The YAML-shaped data of ``rules`` rules over 100 topics and 60 alias lists: phrases,
    prefixes, aliases, AND/OR/NOT with parentheses, NEAR, field scopes and weights."""
    rng = random.Random(seed)
    words, phrases, names = vocabulary(articles)
    aliases = {f"list{n}": rng.sample(names, 8) for n in range(60)}

    def term() -> str:
        kind = rng.random()
        if kind < 0.35:
            return f'"{rng.choice(phrases)}"'
        if kind < 0.55:
            return rng.choice(words)[:-2] + "*"
        if kind < 0.75:
            return f"@list{rng.randrange(60)}"
        return rng.choice(words)

    shapes = [
        lambda: f"{term()} NEAR/{rng.randint(3, 12)} {term()}",
        lambda: f"({term()} OR {term()} OR {term()}) AND {term()}",
        lambda: f"{term()} AND {term()} NOT {term()}",
        lambda: f'title:{term()} OR "{rng.choice(phrases)}"^2',
        lambda: f"({term()} AND {term()}) NEAR/8 ({term()} OR {term()})",
        lambda: f"{term()}^2 OR {term()}",
    ]
    topics = {}
    per_topic = rules // 100
    for n in range(100):
        topics[f"topic{n}"] = {
            "threshold": rng.choice([1, 2, 2, 3]),
            "rules": [rng.choice(shapes)() for _ in range(per_topic)],
            "exclude": [f"{term()} NEAR/3 {term()}"] if n % 4 == 0 else None,
        }
    return {"aliases": aliases, "topics": topics}


def generated_taxonomy(
    articles: Iterable[Mapping[str, Any]], rules: int = 1000, seed: int = 6
) -> Taxonomy:
    """``generated_taxonomy_data`` built into a Taxonomy."""
    return build_taxonomy(generated_taxonomy_data(articles, rules, seed), source="generated")
