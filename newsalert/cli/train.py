"""`newsalert train`: fit the topic model (a learned second opinion, streams/classify/model.py)
on the tuning part of a labelled set and write it as a versioned JSON file."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from newsalert.cli import common_options
from newsalert.settings import ConfigError, Settings

CORE_TOPICS = ("5g-security", "sanctions", "vendor-bans")


def add_parser(commands: Any) -> None:
    from streams.classify.model import DEFAULT_THRESHOLD
    from streams.classify.training import DEFAULT_C, DEFAULT_MIN_ARTICLES

    parser = commands.add_parser(
        "train",
        help="train the topic model from labelled articles",
        description="Fit one logistic regression per topic over the words of the labelled "
        "articles (the 'tuning' part when the file is split, see tests/data/DEVSET.md) and "
        "write the model file that the `model` setting points at. Needs scikit-learn (the "
        "dev extras); running the model does not.",
    )
    parser.add_argument("labelled", type=Path, metavar="LABELLED.jsonl", help="labelled articles")
    parser.add_argument("--output", "-o", type=Path, required=True, help="model file to write")
    parser.add_argument(
        "--topic",
        action="append",
        help=f"train this topic (repeat; default {', '.join(CORE_TOPICS)})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"probability from which the model adds a topic ({DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--c", type=float, default=DEFAULT_C, help=f"inverse regularisation ({DEFAULT_C})"
    )
    parser.add_argument(
        "--min-articles",
        type=int,
        default=DEFAULT_MIN_ARTICLES,
        help=f"articles a word must occur in to get a weight ({DEFAULT_MIN_ARTICLES})",
    )
    common_options(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.classify.evaluate import LabelledSetError, has_splits, read_labelled
    from streams.classify.model import rows_digest, save_model
    from streams.classify.taxonomy import load_taxonomy
    from streams.classify.training import train_model

    if importlib.util.find_spec("sklearn") is None:  # pragma: no cover - installed extras
        raise ConfigError("newsalert train needs scikit-learn: pip install 'newsalert[dev]'")
    if not 0.0 < args.threshold < 1.0:
        raise ConfigError("--threshold must be between 0 and 1")
    taxonomy = load_taxonomy(settings.taxonomy)
    topics = args.topic or [name for name in CORE_TOPICS if name in taxonomy.topics]
    unknown = [name for name in topics if name not in taxonomy.topics]
    if unknown:
        raise ConfigError(f"--topic {unknown[0]!r}: not a topic of the taxonomy")
    try:
        articles = read_labelled(args.labelled, taxonomy.topics)
        if has_splits(articles):  # never the report part: it measures what this learns
            articles = read_labelled(args.labelled, taxonomy.topics, split="tuning")
    except LabelledSetError as exc:
        raise ConfigError(str(exc)) from None
    rows = sorted(f"{a.article_id}\t{sorted(a.labels)}\t{a.title}\t{a.text}" for a in articles)
    try:
        model = train_model(
            articles,
            topics,
            threshold=args.threshold,
            c=args.c,
            min_articles=args.min_articles,
            trained_on=rows_digest(rows),
        )
    except ValueError as exc:
        raise ConfigError(f"{args.labelled}: {exc}") from None
    save_model(model, args.output)
    sizes = ", ".join(f"{name} {len(t.weights)} words" for name, t in model.topics.items())
    print(f"{args.output}: {len(articles)} articles; {sizes}; threshold {args.threshold}")
    return 0
