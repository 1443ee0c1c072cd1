"""Measure a taxonomy against labelled articles: per-topic precision, recall, F1 and support
(pure apart from reading the labelled file).

Articles are cleaned and classified exactly as the stream does it (``streams/pipeline.py``):
``clean_text`` on title and body, ``detect_language`` unless the row gives a language, then
``classify``. Duplicate detection is left out on purpose: every labelled row is scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.classify.classifier import TopicMatch, classify
from streams.classify.model import TopicModel, add_model_topics
from streams.classify.taxonomy import Taxonomy
from streams.clean.text import clean_text, detect_language


class LabelledSetError(ValueError):
    """A labelled file that cannot be read: says the file, the line and why."""


@dataclass(frozen=True)
class LabelledArticle:
    article_id: str
    title: str
    text: str
    labels: frozenset[str]
    language: str | None = None
    split: str | None = None  # 'tuning' or 'report' (tests/data/DEVSET.md); None if unsplit


@dataclass(frozen=True)
class TopicScore:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def support(self) -> int:
        """Articles labelled with the topic."""
        return self.true_positives + self.false_negatives

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "support": self.support,
        }


@dataclass(frozen=True)
class Outcome:
    """One article's gold labels and predicted topics."""

    article: LabelledArticle
    predicted: frozenset[str]


def cleaned_fields(title: str, body: str) -> tuple[str, str]:
    """Title and text cleaned as the pipeline cleans them."""
    clean_title = clean_text(title or "")
    return clean_title, clean_text(body or "", title=clean_title)


def classify_article(
    title: str, body: str, taxonomy: Taxonomy, language: str | None = None
) -> tuple[str, str, str | None, dict[str, TopicMatch]]:
    """Clean and classify one raw article as the pipeline does: (title, text, language, topics)
    with the cleaned title and text that the matched terms' offsets refer to."""
    clean_title, clean_body = cleaned_fields(title, body)
    language = language or detect_language(f"{clean_title}\n{clean_body}")
    topics = classify(clean_title, clean_body, taxonomy, language=language)
    return clean_title, clean_body, language, topics


SPLITS = ("tuning", "report")


def read_labelled(
    path: Path, known_topics: Iterable[str], split: str | None = None
) -> list[LabelledArticle]:
    """Rows of a JSON Lines file of articles with ``labels``; refuses the first bad line with
    its number and the reason (bad JSON, missing title or labels, unknown topic or split).
    With ``split``, only the rows of that part (rows without a ``split`` field are in none)."""
    known = set(known_topics)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise LabelledSetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledSetError(f"{path}: cannot read: {exc}") from None
    articles = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        articles.append(_labelled_row(line, known, f"{path}: line {number}"))
    if not articles:
        raise LabelledSetError(f"{path}: no labelled articles")
    if split is not None:
        articles = [article for article in articles if article.split == split]
        if not articles:
            raise LabelledSetError(f"{path}: no labelled articles in the {split!r} part")
    return articles


def has_splits(articles: Iterable[LabelledArticle]) -> bool:
    """Whether the labelled set is divided into tuning and report parts."""
    return any(article.split is not None for article in articles)


def _labelled_row(line: str, known: set[str], where: str) -> LabelledArticle:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LabelledSetError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(row, dict):
        raise LabelledSetError(f"{where}: expected a JSON object, got {type(row).__name__}")
    title, text = row.get("title"), row.get("text", row.get("body", ""))
    if not isinstance(title, str):
        raise LabelledSetError(f"{where}: 'title' must be a string")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise LabelledSetError(f"{where}: 'text' must be a string or null")
    labels = row.get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise LabelledSetError(f"{where}: 'labels' must be a list of topic names")
    unknown = sorted(set(labels) - known)
    if unknown:
        raise LabelledSetError(
            f"{where}: unknown topic {unknown[0]!r} (the taxonomy has {', '.join(sorted(known))})"
        )
    language = row.get("language")
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise LabelledSetError(f"{where}: 'split' must be one of {', '.join(SPLITS)}")
    return LabelledArticle(
        article_id=str(row.get("id", where)),
        title=title,
        text=text,
        labels=frozenset(labels),
        language=language if isinstance(language, str) else None,
        split=split,
    )


def predict(
    articles: Iterable[LabelledArticle], taxonomy: Taxonomy, model: TopicModel | None = None
) -> Iterator[Outcome]:
    """Each article's topics: the rules', plus what ``model`` adds (as the pipeline does)."""
    for article in articles:
        title, text, _, matches = classify_article(
            article.title, article.text, taxonomy, article.language
        )
        topics = add_model_topics(dict(matches), model, title, text)
        yield Outcome(article, frozenset(topics))


def score(outcomes: Iterable[Outcome], topics: Iterable[str]) -> dict[str, TopicScore]:
    """Per-topic counts over (gold, predicted) pairs; a topic's support is its gold count."""
    names = list(topics)
    counts = {name: [0, 0, 0] for name in names}  # tp, fp, fn
    for outcome in outcomes:
        gold, predicted = outcome.article.labels, outcome.predicted
        for name in names:
            if name in gold and name in predicted:
                counts[name][0] += 1
            elif name in predicted:
                counts[name][1] += 1
            elif name in gold:
                counts[name][2] += 1
    return {name: TopicScore(*counts[name]) for name in names}


def labelled_topics(articles: Iterable[LabelledArticle], taxonomy: Taxonomy) -> list[str]:
    """The taxonomy's topics that some article is labelled with, in taxonomy order: a topic
    nobody labelled was not judged, so its predictions cannot be scored."""
    used = set().union(*(article.labels for article in articles))
    return [name for name in taxonomy.topics if name in used]


def evaluate(
    articles: list[LabelledArticle],
    taxonomy: Taxonomy,
    topics: Iterable[str] | None = None,
    model: TopicModel | None = None,
) -> dict[str, TopicScore]:
    names = list(topics) if topics is not None else labelled_topics(articles, taxonomy)
    return score(predict(articles, taxonomy, model), names)
