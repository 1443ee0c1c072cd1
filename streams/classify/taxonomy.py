"""The topic taxonomy: load and check a YAML file of topics, rules and alias lists, and compile
every term of every topic into one Aho-Corasick automaton (pure apart from reading the file).

File shape (see QUERY_LANGUAGE.md)::

    aliases:
      vendors: [Huawei, ZTE, Hikvision, "China Mobile"]
    topics:
      vendor-bans:
        description: ...
        threshold: 2          # minimum score (default 1)
        min_paragraphs: 2     # in long articles, paragraphs with hits (title counts; default 2)
        languages: [en]       # optional: only for articles in these languages
        requires: [other]     # optional: only when these topics also match
        rules:                # a query string, or {query: ..., weight: ...}
          - '@vendors NEAR/8 ban*'
        exclude:              # optional: any match vetoes the topic
          - 'sport* OR athlete*'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick
import yaml

from streams.classify.query import (
    Node,
    QuerySyntaxError,
    TermSpec,
    matches_without_hits,
    occurring_terms,
    parse_query,
    parse_term,
    required_terms,
    terms_of,
)

DEFAULT_TAXONOMY = Path(__file__).with_name("default_taxonomy.yaml")
_TOPIC_KEYS = {
    "description", "threshold", "languages", "requires", "rules", "exclude", "min_paragraphs"
}  # fmt: skip


class TaxonomyError(ValueError):
    """An invalid taxonomy: says the file, the topic, the rule and position, and why."""


@dataclass(frozen=True)
class Rule:
    query: str
    node: Node
    weight: float = 1.0
    # Every term of the rule, positive or negated; when ``needs_hit``, a document with none of
    # them cannot match.
    specs: frozenset[TermSpec] = frozenset()
    needs_hit: bool = True
    # Term sets of which each must have a found term for the rule to hold (required_terms):
    # empty exactly when not ``needs_hit``.
    required: tuple[frozenset[TermSpec], ...] = ()


@dataclass(frozen=True)
class Topic:
    name: str
    rules: tuple[Rule, ...]
    exclude: tuple[Rule, ...] = ()
    threshold: float = 1.0
    languages: frozenset[str] | None = None
    requires: tuple[str, ...] = ()
    description: str = ""
    min_paragraphs: int = 2


@dataclass
class Taxonomy:
    """Topics in evaluation order (required topics first), alias lists, and the automaton that
    finds every term: ``automaton`` values are (key length, whether the key starts with a word
    character, whether it ends with one, the TermSpecs sharing that lower-cased key)."""

    topics: dict[str, Topic]
    aliases: dict[str, list[TermSpec]]
    automaton: Any = field(repr=False)
    # The classifier evaluates only rules that can contribute to a score. A rule contributes
    # occurrences only when each of its required term sets (or, for one that holds on a NOT
    # alone, its positive terms) has a found term. ``rules_by_spec`` indexes each rule under
    # the terms of one of those sets (the smallest); ``scoring_rules[id]`` is (topic, rule, the
    # other sets to check). Ids follow topic order, then rule order, so sorted ids evaluate
    # required topics first and keep each topic's rules in the order written.
    rules_by_spec: dict[TermSpec, tuple[int, ...]] = field(init=False, repr=False)
    scoring_rules: tuple[tuple[Topic, Rule, tuple[frozenset[TermSpec], ...]], ...] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        by_spec: dict[TermSpec, list[int]] = {}
        scoring_rules: list[tuple[Topic, Rule, tuple[frozenset[TermSpec], ...]]] = []
        for topic in self.topics.values():
            for rule in topic.rules:
                needed = rule.required or (occurring_terms(rule.node),)
                position = min(range(len(needed)), key=lambda n: len(needed[n]))
                key, others = needed[position], needed[:position] + needed[position + 1 :]
                if not key:
                    continue  # holds only on NOTs: never contributes an occurrence
                for spec in key:
                    by_spec.setdefault(spec, []).append(len(scoring_rules))
                scoring_rules.append((topic, rule, others))
        self.rules_by_spec = {spec: tuple(ids) for spec, ids in by_spec.items()}
        self.scoring_rules = tuple(scoring_rules)

    def candidate_rules(self, found: frozenset[TermSpec]) -> dict[str, tuple[Topic, list[Rule]]]:
        """Per topic (in evaluation order), its rules that can contribute to its score in a
        document in which exactly ``found`` terms occur."""
        ids: set[int] = set()
        rules_by_spec = self.rules_by_spec
        for spec in found:
            indexed = rules_by_spec.get(spec)
            if indexed is not None:
                ids.update(indexed)
        candidates: dict[str, tuple[Topic, list[Rule]]] = {}
        for rule_id in sorted(ids):
            topic, rule, others = self.scoring_rules[rule_id]
            for clause in others:
                if clause.isdisjoint(found):
                    break
            else:
                entry = candidates.get(topic.name)
                if entry is None:
                    candidates[topic.name] = (topic, [rule])
                else:
                    entry[1].append(rule)
        return candidates

    def entity_spellings(self, entity: str) -> list[str]:
        """Term spellings that count as ``entity``: the members of alias list ``entity`` if
        there is one, else the alias member spelled like it, else the name itself."""
        if entity in self.aliases:
            return [spec.text for spec in self.aliases[entity]]
        for specs in self.aliases.values():
            for spec in specs:
                if spec.key == entity.lower():
                    return [spec.text]
        return [entity]


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """The taxonomy in ``path`` (None: the shipped default). Raises TaxonomyError if invalid."""
    path = Path(path) if path is not None else DEFAULT_TAXONOMY
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise TaxonomyError(f"taxonomy {path}: cannot read: {error}") from error
    return build_taxonomy(data, source=str(path))


def build_taxonomy(data: Any, source: str = "taxonomy") -> Taxonomy:
    """A Taxonomy from already-parsed YAML ``data`` (a mapping with ``topics`` and ``aliases``)."""
    if not isinstance(data, dict) or not isinstance(data.get("topics"), dict) or not data["topics"]:
        raise TaxonomyError(f"{source}: expected a mapping with a non-empty 'topics' mapping")
    aliases = _aliases(data.get("aliases") or {}, source)
    topics = {
        str(name): _topic(str(name), spec, aliases, source) for name, spec in data["topics"].items()
    }
    ordered = _dependency_order(topics, source)
    return Taxonomy(ordered, aliases, _automaton(ordered))


def _aliases(raw: Any, source: str) -> dict[str, list[TermSpec]]:
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{source}: 'aliases' must map a name to a list of terms")
    aliases = {}
    for name, members in raw.items():
        if not isinstance(members, list) or not members:
            raise TaxonomyError(f"{source}: alias {name!r}: must be a non-empty list of terms")
        specs = []
        for position, member in enumerate(members):
            if not isinstance(member, str) or not member.strip():
                raise TaxonomyError(f"{source}: alias {name!r}, entry {position}: not a term")
            try:
                specs.append(parse_term(member.strip()))
            except QuerySyntaxError as error:
                raise TaxonomyError(
                    f"{source}: alias {name!r}, entry {position}: {error.reason}"
                ) from None
        aliases[str(name)] = specs
    return aliases


def _topic(name: str, spec: Any, aliases: dict[str, list[TermSpec]], source: str) -> Topic:
    where = f"{source}: topic {name!r}"
    if not isinstance(spec, dict):
        raise TaxonomyError(f"{where}: must be a mapping with 'rules'")
    unknown = set(spec) - _TOPIC_KEYS
    if unknown:
        raise TaxonomyError(f"{where}: unknown keys {sorted(unknown)}")
    rules = _rules(spec.get("rules"), "rules", where, aliases, required=True)
    exclude = _rules(spec.get("exclude"), "exclude", where, aliases, required=False)
    threshold = spec.get("threshold", 1.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold <= 0:
        raise TaxonomyError(f"{where}: threshold must be a positive number")
    languages = spec.get("languages")
    if languages is not None and (
        not isinstance(languages, list) or not all(isinstance(x, str) for x in languages)
    ):
        raise TaxonomyError(f"{where}: languages must be a list of language codes")
    min_paragraphs = spec.get("min_paragraphs", 2)
    if (
        isinstance(min_paragraphs, bool)
        or not isinstance(min_paragraphs, int)
        or min_paragraphs < 1
    ):
        raise TaxonomyError(f"{where}: min_paragraphs must be a positive integer")
    requires = spec.get("requires") or []
    if not isinstance(requires, list) or not all(isinstance(x, str) for x in requires):
        raise TaxonomyError(f"{where}: requires must be a list of topic names")
    return Topic(
        name=name,
        rules=rules,
        exclude=exclude,
        threshold=float(threshold),
        languages=frozenset(x.lower() for x in languages) if languages is not None else None,
        requires=tuple(requires),
        description=str(spec.get("description", "")),
        min_paragraphs=min_paragraphs,
    )


def _rules(
    raw: Any, key: str, where: str, aliases: dict[str, list[TermSpec]], required: bool
) -> tuple[Rule, ...]:
    if raw is None and not required:
        return ()
    if isinstance(raw, str | dict):
        raw = [raw]
    if not isinstance(raw, list) or (required and not raw):
        raise TaxonomyError(f"{where}: '{key}' must be a non-empty list of queries")
    rules = []
    for number, item in enumerate(raw):
        query, weight = (item, 1.0) if isinstance(item, str) else (None, None)
        if isinstance(item, dict):
            query, weight = item.get("query"), item.get("weight", 1.0)
        if not isinstance(query, str) or not isinstance(weight, int | float):
            raise TaxonomyError(
                f"{where}, {key} {number}: expected a query string or {{query, weight}}"
            )

        def expand(alias: str, position: int) -> list[TermSpec]:
            if alias not in aliases:
                raise QuerySyntaxError(position, f"unknown alias @{alias}")
            return aliases[alias]

        try:
            node = parse_query(query, expand)
        except QuerySyntaxError as error:
            raise TaxonomyError(
                f"{where}, {key} {number} {query!r}: position {error.position}: {error.reason}"
            ) from error
        specs = frozenset(term.spec for term in terms_of(node))
        needs_hit = not matches_without_hits(node)
        rules.append(Rule(query, node, float(weight), specs, needs_hit, required_terms(node)))
    return tuple(rules)


def _dependency_order(topics: dict[str, Topic], source: str) -> dict[str, Topic]:
    ordered: dict[str, Topic] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name) :] + [name])
            raise TaxonomyError(f"{source}: topic {name!r}: requires forms a cycle: {cycle}")
        visiting.append(name)
        for required in topics[name].requires:
            if required not in topics:
                raise TaxonomyError(
                    f"{source}: topic {name!r}: requires unknown topic {required!r}"
                )
            visit(required)
        visiting.pop()
        ordered[name] = topics[name]

    for name in topics:
        visit(name)
    return ordered


def _automaton(topics: dict[str, Topic]) -> Any:
    """One automaton over the lower-cased key of every term of every topic."""
    by_key: dict[str, list[TermSpec]] = {}
    for topic in topics.values():
        for rule in topic.rules + topic.exclude:
            for term in terms_of(rule.node):
                specs = by_key.setdefault(term.spec.key, [])
                if term.spec not in specs:
                    specs.append(term.spec)
    automaton = ahocorasick.Automaton()
    for key, specs in by_key.items():
        automaton.add_word(key, (len(key), key[0].isalnum(), key[-1].isalnum(), tuple(specs)))
    automaton.make_automaton()
    return automaton
