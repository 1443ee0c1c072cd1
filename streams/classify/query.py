"""The topic query language: parse a rule into an expression tree over terms (pure).

Grammar (operators are upper case; adjacent operands are joined by AND)::

    query   := or
    or      := and ("OR" and)*
    and     := near (["AND"] near | "NOT" near)*      # "a NOT b" means a AND NOT b
    near    := unary ("NEAR/" N unary)*              # within N words, same field
    unary   := "NOT" unary | primary
    primary := [("title" | "text") ":"] ("(" query ")" | term)
    term    := ["case:"] ("\"phrase\"" | word | word* | "@alias") ["^" weight]

- A word or phrase matches on word boundaries, case-insensitively; ``case:`` requires the case
  as written. A trailing ``*`` matches any word ending (``ban*``: ban, bans, banned, banning).
- ``@name`` is the alias list ``name`` from the taxonomy: an OR of its entries.
- ``title:`` / ``text:`` limit the terms inside to that field (default: either).
- ``^2`` gives the term weight 2 in the topic score (default 1).
See QUERY_LANGUAGE.md for the whole language and the scoring.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

FIELDS = ("title", "text")


class QuerySyntaxError(ValueError):
    """A rule that does not parse; ``position`` is the 0-based character offset in the rule."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"position {position}: {reason}")
        self.position = position
        self.reason = reason


class TermSpec(NamedTuple):
    """One literal the automaton looks for. A tuple, so the classifier's many look-ups by term
    hash it in C."""

    text: str  # as written, without quotes, ``*`` or ``case:``
    prefix: bool = False  # ``word*``: no word boundary required at the end
    case_sensitive: bool = False

    @property
    def key(self) -> str:
        """The string searched in lower-cased text."""
        return self.text.lower()


@dataclass(frozen=True)
class Term:
    spec: TermSpec
    field: str | None
    weight: float


# And, Or and Near also carry, derived when built, every term spec below them (``specs``) and
# whether they can hold when none of those occurs (``needs_hit`` false): the classifier skips a
# subtree none of whose terms occurs without looking at each of them.


@dataclass(frozen=True)
class _Branch:
    children: tuple[Node, ...]
    specs: frozenset[TermSpec] = field(init=False, repr=False, compare=False)
    needs_hit: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _derive(self)  # type: ignore[arg-type]  # only And and Or are ever built


@dataclass(frozen=True)
class And(_Branch):
    pass


@dataclass(frozen=True)
class Or(_Branch):
    pass


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Near:
    left: Node
    right: Node
    max_words: int
    specs: frozenset[TermSpec] = field(init=False, repr=False, compare=False)
    needs_hit: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _derive(self)


Node = Term | And | Or | Not | Near

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lparen>\() | (?P<rparen>\)) |
      (?P<near>NEAR/(?P<near_n>\d+)) |
      (?P<op>AND|OR|NOT)(?=[\s()"]|$) |
      (?P<field>title|text): |
      (?P<case>case:) |
      "(?P<phrase>[^"]*)"(?P<phrase_star>\*)? |
      @(?P<alias>[\w-]+) |
      (?P<word>[^\s()"^]+) |
      \^(?P<weight>\d+(?:\.\d+)?) |
      (?P<bad>\S)
    )""",
    re.VERBOSE,
)


@dataclass
class _Token:
    kind: str
    value: str
    position: int


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(query):
        match = _TOKEN.match(query, position)
        if match is None or match.end() == position:
            break  # only trailing whitespace is left
        kind = match.lastgroup
        start = match.start(kind) if kind else position
        if kind in ("alias", "phrase", "phrase_star"):
            start = match.start("alias" if kind == "alias" else "phrase") - 1  # the @ or the quote
        if kind == "near_n":
            kind = "near"
        if kind == "phrase_star":
            kind = "phrase"
        if kind == "bad":
            raise QuerySyntaxError(start, f"unexpected character {match.group('bad')!r}")
        if kind == "phrase":
            value = match.group("phrase")
            if not value.strip():
                raise QuerySyntaxError(start, "empty phrase")
            tokens.append(
                _Token("phrase", value + ("*" if match.group("phrase_star") else ""), start)
            )
        elif kind == "near":
            tokens.append(_Token("near", match.group("near_n"), match.start("near")))
        elif kind is not None:
            tokens.append(_Token(kind, match.group(kind), start))
        position = match.end()
    return tokens


def parse_term(literal: str, case_sensitive: bool = False) -> TermSpec:
    """A term from its written form (``ban*``, ``Huawei``, ``China Mobile``)."""
    if literal.startswith("case:"):
        literal, case_sensitive = literal[len("case:") :], True
    prefix = literal.endswith("*")
    text = " ".join(literal.rstrip("*").split())
    if not text:
        raise QuerySyntaxError(0, "empty term")
    if "*" in text:
        # Only a trailing * is a wildcard; inside a phrase it would silently never match.
        raise QuerySyntaxError(literal.index("*"), f"'*' only at the end of a term: {literal!r}")
    return TermSpec(text, prefix, case_sensitive)


class _Parser:
    def __init__(self, query: str, aliases: Callable[[str, int], list[TermSpec]]) -> None:
        self.query = query
        self.tokens = _tokenize(query)
        self.index = 0
        self.aliases = aliases

    def parse(self) -> Node:
        if not self.tokens:
            raise QuerySyntaxError(0, "empty query")
        node = self._or(None)
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            raise QuerySyntaxError(token.position, f"unexpected {token.value!r}")
        return node

    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise QuerySyntaxError(len(self.query), "query ends too early")
        self.index += 1
        return token

    def _or(self, field: str | None) -> Node:
        children = [self._and(field)]
        while (token := self._peek()) and token.kind == "op" and token.value == "OR":
            self._take()
            children.append(self._and(field))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def _and(self, field: str | None) -> Node:
        children = [self._near(field)]
        while (token := self._peek()) and not (
            token.kind == "rparen" or (token.kind == "op" and token.value == "OR")
        ):
            if token.kind == "op" and token.value == "AND":
                self._take()
                children.append(self._near(field))
            elif token.kind == "op" and token.value == "NOT":
                self._take()
                children.append(Not(self._near(field)))
            else:
                children.append(self._near(field))
        return children[0] if len(children) == 1 else And(tuple(children))

    def _near(self, field: str | None) -> Node:
        node = self._unary(field)
        while (token := self._peek()) and token.kind == "near":
            self._take()
            right = self._unary(field)
            if isinstance(node, Not) or isinstance(right, Not):
                raise QuerySyntaxError(token.position, "NEAR needs positive operands, not NOT")
            node = Near(node, right, int(token.value))
        return node

    def _unary(self, field: str | None) -> Node:
        token = self._peek()
        if token and token.kind == "op" and token.value == "NOT":
            self._take()
            return Not(self._unary(field))
        return self._primary(field)

    def _primary(self, field: str | None) -> Node:
        token = self._take()
        if token.kind == "field":
            if field is not None and field != token.value:
                raise QuerySyntaxError(token.position, f"{token.value}: inside {field}:")
            return self._primary(token.value)
        if token.kind == "lparen":
            node = self._or(field)
            closing = self._peek()
            if closing is None or closing.kind != "rparen":
                raise QuerySyntaxError(token.position, "unclosed parenthesis")
            self._take()
            return node
        case_sensitive = False
        if token.kind == "case":
            case_sensitive = True
            token = self._take()
        if token.kind == "alias":
            specs = self.aliases(token.value, token.position)
            if case_sensitive:
                specs = [TermSpec(s.text, s.prefix, True) for s in specs]
            weight = self._weight()
            terms = tuple(Term(spec, field, weight) for spec in specs)
            return terms[0] if len(terms) == 1 else Or(terms)
        if token.kind in ("phrase", "word"):
            try:
                spec = parse_term(token.value, case_sensitive)
            except QuerySyntaxError as error:
                quote = 1 if token.kind == "phrase" else 0
                raise QuerySyntaxError(
                    token.position + quote + error.position, error.reason
                ) from None
            return Term(spec, field, self._weight())
        raise QuerySyntaxError(token.position, f"expected a term, got {token.value!r}")

    def _weight(self) -> float:
        token = self._peek()
        if token and token.kind == "weight":
            self._take()
            return float(token.value)
        return 1.0


def parse_query(query: str, aliases: Callable[[str, int], list[TermSpec]]) -> Node:
    """The expression tree of ``query``; ``aliases(name, position)`` expands ``@name``."""
    return _Parser(query, aliases).parse()


def terms_of(node: Node) -> list[Term]:
    """Every term in the tree (positive or negated)."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return terms_of(node.child)
    if isinstance(node, Near):
        return terms_of(node.left) + terms_of(node.right)
    return [term for child in node.children for term in terms_of(child)]


def _derive(node: And | Or | Near) -> None:
    object.__setattr__(node, "specs", frozenset(term.spec for term in terms_of(node)))
    object.__setattr__(node, "needs_hit", not matches_without_hits(node))


def matches_without_hits(node: Node) -> bool:
    """Whether ``node`` can hold in a document where none of its terms occur."""
    if isinstance(node, Term | Near):
        return False
    if isinstance(node, Not):
        return True
    if isinstance(node, And):
        return all(matches_without_hits(child) for child in node.children)
    return any(matches_without_hits(child) for child in node.children)


def required_terms(node: Node) -> tuple[frozenset[TermSpec], ...]:
    """Term sets of which each must have a term that occurs for ``node`` to hold (a necessary
    condition, not a sufficient one: fields, NEAR distances and NOT are not looked at). Empty
    when ``node`` can hold with none of its terms occurring (``matches_without_hits``)."""
    if isinstance(node, Term):
        return (frozenset((node.spec,)),)
    if isinstance(node, Not):
        return ()
    if isinstance(node, And):
        return tuple(clause for child in node.children for clause in required_terms(child))
    if isinstance(node, Near):
        # Each side must give at least one occurrence: its own required sets must be met or,
        # when it has none, one of its positive terms must occur.
        return tuple(
            clause
            for side in (node.left, node.right)
            for clause in required_terms(side) or (occurring_terms(side),)
        )
    per_child = [required_terms(child) for child in node.children]
    if not all(per_child):
        return ()
    # Some branch must hold, so some branch's (smallest) required set has a term that occurs.
    return (frozenset().union(*(min(clauses, key=len) for clauses in per_child)),)


def occurring_terms(node: Node) -> frozenset[TermSpec]:
    """The terms whose occurrences ``node`` can contribute (those not under a NOT)."""
    if isinstance(node, Term):
        return frozenset((node.spec,))
    if isinstance(node, Not):
        return frozenset()
    if isinstance(node, Near):
        return occurring_terms(node.left) | occurring_terms(node.right)
    return frozenset().union(*(occurring_terms(child) for child in node.children))
