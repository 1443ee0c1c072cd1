"""`newsalert eval`: per-topic precision, recall and F1 of the taxonomy on labelled articles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from newsalert.cli import common_options
from newsalert.settings import ConfigError, Settings


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "eval",
        help="measure the taxonomy against labelled articles",
        description="Classify each article of a JSON Lines file (fields as in the article "
        "datasets: id, title, text, ... plus `labels`, a list of topic names, empty for none) "
        "the way the stream does, and print precision, recall, F1 and support per topic. "
        "Topics are those some article is labelled with, unless --topic is given.",
    )
    parser.add_argument("labelled", type=Path, metavar="LABELLED.jsonl", help="labelled articles")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object {topic: {precision, recall, f1, support}}",
    )
    parser.add_argument("--topic", action="append", help="score only this topic (repeat)")
    parser.add_argument(
        "--show-errors",
        action="store_true",
        help="after the table, list the false positives and false negatives per topic",
    )
    common_options(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.classify.evaluate import LabelledSetError, labelled_topics, predict, read_labelled
    from streams.classify.evaluate import score as score_outcomes
    from streams.classify.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy)  # newsalert.cli reports a TaxonomyError
    try:
        articles = read_labelled(args.labelled, taxonomy.topics)
    except LabelledSetError as exc:
        raise ConfigError(str(exc)) from None
    topics = args.topic or labelled_topics(articles, taxonomy)
    unknown = [name for name in topics if name not in taxonomy.topics]
    if unknown:
        raise ConfigError(f"--topic {unknown[0]!r}: not a topic of the taxonomy")
    outcomes = list(predict(articles, taxonomy))
    scores = score_outcomes(outcomes, topics)
    if args.json:
        print(json.dumps({name: s.as_dict() for name, s in scores.items()}))
        return 0
    name_width = max([len("topic"), *(len(name) for name in scores)])
    print(f"{'topic':<{name_width}}  precision  recall     f1  support")
    for name, s in scores.items():
        print(
            f"{name:<{name_width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:5.3f}  {s.support:7d}"
        )
    print(f"({len(articles)} articles in {args.labelled})")
    if args.show_errors:
        for name in topics:
            for outcome in outcomes:
                gold, predicted = name in outcome.article.labels, name in outcome.predicted
                if gold != predicted:
                    kind = "missed" if gold else "wrong "
                    article = outcome.article
                    print(f"{name} {kind} {article.article_id}: {article.title[:100]}")
    return 0
