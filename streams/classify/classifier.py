"""Classify an article against a taxonomy and say why: per topic, its score and the matched
terms with their positions (pure: no I/O).

One pass of the taxonomy's Aho-Corasick automaton over the title and over the text finds every
term occurrence; each topic's rules are then boolean expressions evaluated over those hits. Only
rules whose required terms occur are evaluated (Taxonomy.candidate_rules), so the work per
article follows what the article contains, not the number of rules.

Score: every occurrence that satisfies a matching rule counts its term weight times the rule
weight, doubled in the title; one term counts at most three times its weight, so a topic needs
several terms, or one term repeated or in the headline, to reach a threshold above 1.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.classify.query import And, Near, Node, Not, Or, Term, TermSpec
from streams.classify.taxonomy import Rule, Taxonomy, Topic

_WORD = re.compile(r"[^\W_]+")
_WORD_REST = re.compile(r"[^\W_]*")  # [^\W_] is exactly str.isalnum, one character at a time
_PARAGRAPH_BREAK = re.compile(r"\n+")  # clean_text leaves one newline per paragraph
TITLE_FACTOR = 2.0
LONG_ARTICLE_PARAGRAPHS = 4
MAX_COUNT_PER_TERM = 3.0


@dataclass(frozen=True)
class MatchedTerm:
    term: str
    field: str  # 'title' or 'text'
    start: int  # character offsets in that field
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {"term": self.term, "field": self.field, "start": self.start, "end": self.end}


@dataclass
class TopicMatch:
    topic: str
    score: float
    terms: list[MatchedTerm] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"score": round(self.score, 3), "terms": [t.as_dict() for t in self.terms]}


class _Hit(NamedTuple):
    """Where a term occurs. A tuple: built, hashed and compared in C, ~20 times an article."""

    field: str
    start: int
    end: int
    first_word: int
    last_word: int
    paragraph: int  # 0-based line number in the field


# An occurrence satisfying a rule: the term it is of, and where.
_Occurrence = tuple[Term, _Hit]


def classify(
    title: str, text: str, taxonomy: Taxonomy, language: str | None = None
) -> dict[str, TopicMatch]:
    """Topics of the article at or above their threshold, with scores and matched terms.
    Topics limited to languages are skipped when ``language`` is known and not among them."""
    hits = _find_hits({"title": title, "text": text}, taxonomy.automaton)
    if not hits:
        return {}  # a topic needs at least one occurrence to score
    found = frozenset(hits)  # hashes each term once; rules test against it without rehashing
    paragraph_count = text.count("\n") + 1 if text else 0
    matched: dict[str, TopicMatch] = {}
    # Only the rules that can contribute (their required terms occur), topic by topic in
    # evaluation order: the work per article follows what occurs, not the taxonomy's size.
    for name, (topic, rules) in taxonomy.candidate_rules(found).items():
        if topic.languages is not None and language and language.lower() not in topic.languages:
            continue
        if any(required not in matched for required in topic.requires):
            continue
        match = _match_topic(topic, rules, hits, found, paragraph_count)
        if match is not None:
            matched[name] = match
    return matched


def _beyond_passing_mention(
    weights: dict[_Hit, tuple[float, Term]], paragraph_count: int, topic: Topic
) -> bool:
    """In a long article (``LONG_ARTICLE_PARAGRAPHS`` or more), a topic must show in the title
    or in at least ``topic.min_paragraphs`` paragraphs (TOPICS.md: passing mentions do not
    count). Headlines and short leads are judged on what they have."""
    if paragraph_count < LONG_ARTICLE_PARAGRAPHS:
        return True
    if any(hit.field == "title" for hit in weights):
        return True
    paragraphs = {hit.paragraph for hit in weights}
    return len(paragraphs) >= topic.min_paragraphs


def _match_topic(
    topic: Topic,
    rules: list[Rule],
    hits: dict[TermSpec, list[_Hit]],
    found: frozenset[TermSpec],
    paragraph_count: int,
) -> TopicMatch | None:
    """``topic`` scored by ``rules``: those of its rules that can contribute, in their order
    (on a tie the first rule's term is the one reported for an occurrence)."""
    weights: dict[_Hit, tuple[float, Term]] = {}  # each occurrence counts once, at its best
    for rule in rules:
        occurrences = _evaluate(rule.node, hits, found)
        for term, hit in occurrences or ():
            weight = term.weight * rule.weight
            if hit not in weights or weights[hit][0] < weight:
                weights[hit] = (weight, term)
    if not weights:
        return None
    per_term: dict[str, tuple[float, float]] = {}  # term key -> (sum, cap)
    for hit, (weight, term) in weights.items():
        total, cap = per_term.get(term.spec.key, (0.0, 0.0))
        counted = weight * (TITLE_FACTOR if hit.field == "title" else 1.0)
        per_term[term.spec.key] = (total + counted, max(cap, MAX_COUNT_PER_TERM * weight))
    score = sum(min(total, cap) for total, cap in per_term.values())
    if score < topic.threshold or not _beyond_passing_mention(weights, paragraph_count, topic):
        return None
    if any(
        _holds(rule, found) and _evaluate(rule.node, hits, found) is not None
        for rule in topic.exclude
    ):
        return None  # vetoed; checked last as most topics have no exclude that holds
    terms = [
        MatchedTerm(term.spec.text, hit.field, hit.start, hit.end)
        for hit, (_, term) in sorted(
            weights.items(), key=lambda item: (item[0].field != "title", item[0].start)
        )
    ]
    return TopicMatch(topic.name, score, terms)


def _holds(rule: Rule, found: frozenset[TermSpec]) -> bool:
    """False when the rule surely fails: one of its required term sets has no found term (a
    rule that can hold on a NOT alone has none, so it is always evaluated)."""
    return all(not terms.isdisjoint(found) for terms in rule.required)


def _evaluate(
    node: Node, hits: dict[TermSpec, list[_Hit]], found: frozenset[TermSpec]
) -> list[_Occurrence] | None:
    """The occurrences that satisfy ``node``, or None when it does not hold. ``found`` is the
    set of specs in ``hits``."""
    if isinstance(node, Term):
        term_hits = hits.get(node.spec)
        if term_hits is None:
            return None
        if node.field is None:
            return [(node, hit) for hit in term_hits]
        occurrences = [(node, hit) for hit in term_hits if hit.field == node.field]
        return occurrences or None
    if isinstance(node, Not):
        return None if _evaluate(node.child, hits, found) is not None else []
    if node.needs_hit and node.specs.isdisjoint(found):
        return None  # none of its terms occurs, so none of its branches can hold
    if isinstance(node, And):
        occurrences = []
        for child in node.children:
            child_occurrences = _evaluate(child, hits, found)
            if child_occurrences is None:
                return None
            occurrences.extend(child_occurrences)
        return occurrences
    if isinstance(node, Or):
        any_holds = False
        occurrences = []
        for child in node.children:
            child_occurrences = _evaluate(child, hits, found)
            if child_occurrences is not None:
                any_holds = True
                occurrences.extend(child_occurrences)
        return occurrences if any_holds else None
    if isinstance(node, Near):
        return _near(node, hits, found)
    raise TypeError(f"unknown query node {node!r}")


def _near(
    node: Near, hits: dict[TermSpec, list[_Hit]], found: frozenset[TermSpec]
) -> list[_Occurrence] | None:
    left = _evaluate(node.left, hits, found)
    if not left:
        return None
    right = _evaluate(node.right, hits, found)
    if not right:
        return None
    close: dict[tuple[int, _Hit], _Occurrence] = {}
    for a in left:
        for b in right:
            ha, hb = a[1], b[1]
            if ha.field != hb.field or ha.paragraph != hb.paragraph or ha == hb:
                continue
            gap = max(hb.first_word - ha.last_word, ha.first_word - hb.last_word) - 1
            if gap <= node.max_words:
                close[(id(a[0]), ha)] = a
                close[(id(b[0]), hb)] = b
    return list(close.values()) or None


def _lowered(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # A few characters lower-case to two; keep offsets aligned with the original text.
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


def _find_hits(fields: dict[str, str], automaton: Any) -> dict[TermSpec, list[_Hit]]:
    hits: dict[TermSpec, list[_Hit]] = {}
    if not len(automaton):
        return hits
    for field_name, original in fields.items():
        if not original:
            continue
        text = _lowered(original)
        length = len(text)
        word_starts: list[int] | None = None
        line_starts: list[int] = []
        # Values as compiled by taxonomy._automaton: the key's length, whether it starts and
        # ends with a word character (then a word boundary is required there), its terms.
        for end_index, (key_length, word_first, word_last, specs) in automaton.iter(text):
            start, end = end_index - key_length + 1, end_index + 1
            if word_first and start > 0 and text[start - 1].isalnum():
                continue
            word_follows = end < length and text[end].isalnum()
            for spec in specs:
                hit_end = end
                if spec.prefix:
                    if word_follows:
                        hit_end = _WORD_REST.match(text, end).end()  # type: ignore[union-attr]
                elif word_last and word_follows:
                    continue
                if spec.case_sensitive and not original.startswith(spec.text, start):
                    continue
                if word_starts is None:
                    word_starts = [m.start() for m in _WORD.finditer(text)]
                    line_starts = [m.end() for m in _PARAGRAPH_BREAK.finditer(text)]
                first_word = bisect_right(word_starts, start) - 1
                last_word = bisect_left(word_starts, hit_end) - 1
                paragraph = bisect_right(line_starts, start)
                hit = _Hit(field_name, start, hit_end, first_word, last_word, paragraph)
                spec_hits = hits.get(spec)
                if spec_hits is None:
                    hits[spec] = [hit]
                else:
                    spec_hits.append(hit)
    return hits
