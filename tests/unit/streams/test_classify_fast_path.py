"""The classifier evaluates only the rules whose required terms occur; this checks it against a
plain evaluation of every rule of every topic, with terms found by str.find instead of the
automaton, over the development set with the bench's 1,000 generated rules plus NOT-heavy
topics (rules that hold on an absence, NOT excludes, requires)."""

from __future__ import annotations

import json
import random
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

import pytest

from streams.classify.classifier import (
    _PARAGRAPH_BREAK,
    _WORD,
    LONG_ARTICLE_PARAGRAPHS,
    MAX_COUNT_PER_TERM,
    TITLE_FACTOR,
    _lowered,
    classify,
)
from streams.classify.generated import generated_taxonomy_data, vocabulary
from streams.classify.query import And, Near, Node, Not, Or, Term, TermSpec, terms_of
from streams.classify.taxonomy import Taxonomy, build_taxonomy
from streams.clean.text import clean_text, detect_language

DEVSET = Path(__file__).parents[2] / "data" / "devset.jsonl"
NOT_SHAPES = [
    "NOT {0}",
    "{0} OR NOT {1}",
    "({0} OR NOT {1}) AND {2}",
    "{0} NEAR/5 ({1} AND NOT {2})",
    "NOT ({0} AND {1})",
    "{0} NOT ({1} OR {2})",
    "title:{0} OR NOT text:{1}",
    "{0}^2 AND NOT @list3",
]


def not_heavy_topics(words: list[str], seed: int = 7) -> dict[str, Any]:
    """Topics whose rules and excludes hold on the absence of frequent words, some requiring
    generated topics or each other."""
    rng = random.Random(seed)
    frequent = [w for w in words[:120] if w.isalpha()]

    def rule() -> str:
        shape = rng.choice(NOT_SHAPES)
        return shape.format(*(rng.choice(frequent) for _ in range(3)))

    topics: dict[str, Any] = {}
    for n in range(40):
        topic: dict[str, Any] = {"threshold": rng.choice([1, 1, 2]), "rules": [rule(), rule()]}
        if n % 3 == 0:
            topic["exclude"] = [f"NOT {rng.choice(frequent)}"]
        elif n % 3 == 1:
            topic["exclude"] = [f"{rng.choice(frequent)} OR NOT {rng.choice(frequent)}"]
        if n % 5 == 0:
            topic["requires"] = [f"topic{rng.randrange(100)}"]
        elif n % 5 == 1 and n > 1:
            topic["requires"] = [f"not{n - 1}"]
        if n % 7 == 0:
            topic["languages"] = ["de"]
        topics[f"not{n}"] = topic
    return topics


@pytest.fixture(scope="module")
def devset() -> list[tuple[str, str, str | None]]:
    articles = []
    for line in DEVSET.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        title = clean_text(row["title"] or "")
        text = clean_text(row["text"] or "", title=title)
        articles.append((title, text, detect_language(f"{title}\n{text}")))
    return articles


@pytest.fixture(scope="module")
def taxonomy(devset) -> Taxonomy:
    articles = [{"title": title, "body": text} for title, text, _ in devset]
    data = generated_taxonomy_data(articles, rules=1000, seed=6)
    data["topics"].update(not_heavy_topics(vocabulary(articles)[0]))
    return build_taxonomy(data, source="generated+not")


# A plain evaluation: every term searched with str.find, every rule of every topic evaluated.


def plain_hits(title: str, text: str, specs: list[TermSpec]) -> dict[TermSpec, list[tuple]]:
    hits: dict[TermSpec, list[tuple]] = {}
    for field_name, original in (("title", title), ("text", text)):
        lowered = _lowered(original)
        word_starts = [m.start() for m in _WORD.finditer(lowered)]
        line_starts = [m.end() for m in _PARAGRAPH_BREAK.finditer(lowered)]
        for spec in specs:
            key = spec.key
            start = lowered.find(key)
            while start >= 0:
                end = start + len(key)
                if spec.prefix:
                    while end < len(lowered) and lowered[end].isalnum():
                        end += 1
                ok = not (key[0].isalnum() and start > 0 and lowered[start - 1].isalnum())
                ok = ok and (
                    spec.prefix
                    or not (key[-1].isalnum() and end < len(lowered) and lowered[end].isalnum())
                )
                ok = ok and (not spec.case_sensitive or original.startswith(spec.text, start))
                if ok:
                    hits.setdefault(spec, []).append(
                        (
                            field_name,
                            start,
                            end,
                            bisect_right(word_starts, start) - 1,
                            bisect_left(word_starts, end) - 1,
                            bisect_right(line_starts, start),
                        )
                    )
                start = lowered.find(key, start + 1)
    return hits


def plain_evaluate(node: Node, hits: dict) -> list | None:
    if isinstance(node, Term):
        found = [(node, h) for h in hits.get(node.spec, []) if node.field in (None, h[0])]
        return found or None
    if isinstance(node, Not):
        return None if plain_evaluate(node.child, hits) is not None else []
    if isinstance(node, And):
        occurrences: list = []
        for child in node.children:
            result = plain_evaluate(child, hits)
            if result is None:
                return None
            occurrences += result
        return occurrences
    if isinstance(node, Or):
        results = [r for child in node.children if (r := plain_evaluate(child, hits)) is not None]
        return [occurrence for r in results for occurrence in r] if results else None
    assert isinstance(node, Near)
    left, right = plain_evaluate(node.left, hits), plain_evaluate(node.right, hits)
    if not left or not right:
        return None
    close: dict = {}
    for a in left:
        for b in right:
            ha, hb = a[1], b[1]
            if ha[0] != hb[0] or ha[5] != hb[5] or ha == hb:
                continue
            if max(hb[3] - ha[4], ha[3] - hb[4]) - 1 <= node.max_words:
                close[(id(a[0]), ha)] = a
                close[(id(b[0]), hb)] = b
    return list(close.values()) or None


def every_term(taxonomy: Taxonomy) -> list[TermSpec]:
    return list(
        {
            term.spec: None
            for topic in taxonomy.topics.values()
            for rule in topic.rules + topic.exclude
            for term in terms_of(rule.node)
        }
    )


def plain_classify(
    title: str, text: str, taxonomy: Taxonomy, language: str | None, specs: list[TermSpec]
) -> dict:
    hits = plain_hits(title, text, specs)
    paragraph_count = text.count("\n") + 1 if text else 0
    matched: dict = {}
    for topic in taxonomy.topics.values():
        if topic.languages is not None and language and language not in topic.languages:
            continue  # an unknown language (None) does not rule a topic out
        if any(required not in matched for required in topic.requires):
            continue
        if any(plain_evaluate(rule.node, hits) is not None for rule in topic.exclude):
            continue
        weights: dict = {}
        for rule in topic.rules:
            for term, hit in plain_evaluate(rule.node, hits) or []:
                weight = term.weight * rule.weight
                if hit not in weights or weights[hit][0] < weight:
                    weights[hit] = (weight, term)
        per_term: dict = {}
        for hit, (weight, term) in weights.items():
            total, cap = per_term.get(term.spec.key, (0.0, 0.0))
            counted = weight * (TITLE_FACTOR if hit[0] == "title" else 1.0)
            per_term[term.spec.key] = (total + counted, max(cap, MAX_COUNT_PER_TERM * weight))
        score = sum(min(total, cap) for total, cap in per_term.values())
        evidence = (
            paragraph_count < LONG_ARTICLE_PARAGRAPHS
            or any(hit[0] == "title" for hit in weights)
            or len({hit[5] for hit in weights}) >= topic.min_paragraphs
        )
        if not weights or score < topic.threshold or not evidence:
            continue
        ordered = sorted(weights.items(), key=lambda item: (item[0][0] != "title", item[0][1]))
        matched[topic.name] = (
            score,
            [(term.spec.text, hit[0], hit[1], hit[2]) for hit, (_, term) in ordered],
        )
    return matched


def test_fast_path_classifies_the_devset_like_a_plain_evaluation_of_every_rule(devset, taxonomy):
    assert sum(len(t.rules) for t in taxonomy.topics.values()) >= 1000
    specs = every_term(taxonomy)
    matches = not_matches = 0
    for title, text, language in devset:
        fast = {
            name: (match.score, [(t.term, t.field, t.start, t.end) for t in match.terms])
            for name, match in classify(title, text, taxonomy, language=language).items()
        }
        assert fast == plain_classify(title, text, taxonomy, language, specs), title
        matches += len(fast)
        not_matches += sum(name.startswith("not") for name in fast)
    # Not vacuous: generated and NOT-heavy topics both match, and NOT-heavy ones not always.
    assert matches - not_matches > len(devset)
    assert 0 < not_matches < 40 * len(devset) // 2
