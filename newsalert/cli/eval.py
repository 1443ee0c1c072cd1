"""`newsalert eval`: per-topic precision, recall and F1 of the taxonomy on labelled articles,
by the rules alone and, when a model is configured, with the model beside them."""

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
        "Topics are those some article is labelled with, unless --topic is given. A file whose "
        "rows carry `split` (tests/data/DEVSET.md) is measured on its report part unless "
        "--split says otherwise. With a model (the `model` setting or --model), rules alone "
        "and rules with the model are printed side by side.",
    )
    parser.add_argument("labelled", type=Path, metavar="LABELLED.jsonl", help="labelled articles")
    parser.add_argument(
        "--split",
        choices=["report", "tuning", "all"],
        help="which part of a split set to measure (default: report; a file without "
        "splits is measured whole)",
    )
    parser.add_argument(
        "--model", type=Path, help="topic model file (default: the `model` setting)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object {topic: {precision, recall, f1, support}}; with a model "
        "{rules: {...}, with_model: {...}}",
    )
    parser.add_argument("--topic", action="append", help="score only this topic (repeat)")
    parser.add_argument(
        "--show-errors",
        action="store_true",
        help="after the table, list the false positives and false negatives per topic "
        "(not on the report part, which no rule is written against: use --split tuning)",
    )
    common_options(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.classify.evaluate import (
        LabelledSetError,
        has_splits,
        labelled_topics,
        predict,
        read_labelled,
    )
    from streams.classify.evaluate import score as score_outcomes
    from streams.classify.model import load_model
    from streams.classify.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy)  # newsalert.cli reports a TaxonomyError
    model_path = args.model or settings.model
    model = load_model(model_path) if model_path else None  # newsalert.cli: ModelError
    try:
        articles = read_labelled(args.labelled, taxonomy.topics)
        split = args.split or ("report" if has_splits(articles) else "all")
        if split != "all":
            articles = read_labelled(args.labelled, taxonomy.topics, split=split)
    except LabelledSetError as exc:
        raise ConfigError(str(exc)) from None
    if args.show_errors and split == "report":
        raise ConfigError(
            "--show-errors: the report part is only measured, never looked into while "
            "writing rules; use --split tuning"
        )
    topics = args.topic or labelled_topics(articles, taxonomy)
    unknown = [name for name in topics if name not in taxonomy.topics]
    if unknown:
        raise ConfigError(f"--topic {unknown[0]!r}: not a topic of the taxonomy")
    outcomes = list(predict(articles, taxonomy))
    scores = score_outcomes(outcomes, topics)
    with_model = None
    if model is not None:
        model_outcomes = list(predict(articles, taxonomy, model))
        with_model = score_outcomes(model_outcomes, topics)
    if args.json:
        rules_json = {name: s.as_dict() for name, s in scores.items()}
        if with_model is None:
            print(json.dumps(rules_json))
        else:
            model_json = {name: s.as_dict() for name, s in with_model.items()}
            print(json.dumps({"rules": rules_json, "with_model": model_json}))
        return 0
    name_width = max([len("topic"), *(len(name) for name in scores)])
    header = f"{'topic':<{name_width}}  precision  recall     f1  support"
    if with_model is not None:
        header += "  | with model: precision  recall     f1"
    print(header)
    for name, s in scores.items():
        line = f"{name:<{name_width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:5.3f}  {s.support:7d}"
        if with_model is not None:
            m = with_model[name]
            line += f"  |             {m.precision:9.3f}  {m.recall:6.3f}  {m.f1:5.3f}"
        print(line)
    part = "" if split == "all" else f" ({split} part)"
    print(f"({len(articles)} articles in {args.labelled}{part}", end="")
    print(f"; model {model_path})" if model is not None else ")")
    if args.show_errors:
        for name in topics:
            for outcome in outcomes:
                gold, predicted = name in outcome.article.labels, name in outcome.predicted
                if gold != predicted:
                    kind = "missed" if gold else "wrong "
                    article = outcome.article
                    print(f"{name} {kind} {article.article_id}: {article.title[:100]}")
    return 0
