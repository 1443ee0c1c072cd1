"""`newsalert backtest`: replay a JSON Lines file of articles through the live detector code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from newsalert.settings import ConfigError, Settings, SpikeParams


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "backtest",
        help="replay historical articles and print the spikes they would have raised",
        description="Replay articles (JSON Lines with id, title, text, url, source, published) "
        "through the same cleaning, classification and spike detector as the live stream, in "
        "published order, and print the spike events with a text chart of counts vs baseline.",
    )
    parser.add_argument("--from", dest="source", type=Path, required=True, help="JSONL file")
    parser.add_argument(
        "--topic",
        action="append",
        metavar="NAME",
        help="only this topic, or entity:NAME for an entity in spike.entities (repeat); "
        "a name that no taxonomy defines is an error",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="override a spike parameter, e.g. sensitivity=high or widths=3600,86400 (repeat)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per spike event")
    parser.add_argument(
        "--events",
        type=Path,
        metavar="FILE",
        help="JSON list of known events {topic, start, end}: print the recall (events with a "
        "spike starting within a day) and the other spikes per topic-week",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.html",
        help="write each topic's daily volume with spikes (and --events) marked, as HTML",
    )
    parser.add_argument("--config", type=Path, help="YAML config (taxonomy, spike settings)")
    parser.add_argument("--width", type=int, default=72, help="chart width in columns")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that clean and classify in parallel (default: one per CPU)",
    )


def spike_overrides(pairs: list[str]) -> dict[str, Any]:
    fields = SpikeParams.model_fields
    raw: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE with NAME one of: {known}")
        raw[name] = value.split(",") if name == "widths" else value
    try:
        parsed = SpikeParams(**raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(f"--param {error['loc'][0]}: {error['msg']}") from None
    return {name: getattr(parsed, name) for name in raw}


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.app import build_detector
    from streams.classify.taxonomy import load_taxonomy
    from streams.pipeline import ArticleProcessor
    from streams.spikes.backtest import event_json, print_report, replay
    from streams.spikes.detector import DAY_SECONDS
    from streams.spikes.plot import render_html
    from streams.spikes.scoring import bursts, load_events, print_score, score

    overrides = spike_overrides(args.param)
    spike = settings.spike
    # --param wins over the configured defaults and over per-topic and per-entity overrides.
    spike = spike.model_copy(
        update={
            **overrides,
            "topics": {name: {**params, **overrides} for name, params in spike.topics.items()},
            "entity": {**spike.entity, **overrides},
        }
    )
    settings = settings.model_copy(update={"spike": spike})
    taxonomy = load_taxonomy(settings.taxonomy)
    for key in args.topic or ():
        _check_key(key, taxonomy, settings)
    detector = build_detector(settings, list(taxonomy.topics))
    entities = {e: taxonomy.entity_spellings(e) for e in settings.spike.entities}
    processor = ArticleProcessor(
        taxonomy,
        dedupe_horizon_seconds=settings.dedupe_horizon_seconds,
        story_horizon_seconds=settings.story_horizon_seconds,
    )
    if not args.source.is_file():
        raise ConfigError(f"{args.source}: no such file")
    if args.plot is not None and args.plot.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--plot {args.plot}: only .html is supported (inline SVG charts)")
    try:
        known = load_events(args.events) if args.events is not None else None
    except ValueError as exc:
        raise ConfigError(f"--events {exc}") from None
    progress = _progress_bar(args.source) if sys.stderr.isatty() else None
    try:
        result = replay(
            args.source,
            processor,
            detector,
            entities,
            keys=set(args.topic) if args.topic else None,
            workers=max(1, args.workers),
            progress=progress,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        if progress is not None:
            sys.stderr.write("\r\033[K")
    scored = None
    if known is not None:
        topics = set(args.topic) if args.topic else set(taxonomy.topics)
        known = [e for e in known if e.topic in topics]
        scored = score(known, result.events, topics, result.first, result.last)
        if all(max(detector.lane_rules(key)) == DAY_SECONDS for key in result.series):
            scored.bursts = bursts(result.series, result.events, topics)
    if args.plot is not None:
        charted = sorted(
            set(args.topic) if args.topic else set(result.series) | set(taxonomy.topics)
        )
        page = render_html(
            result.series, result.events, known, f"newsalert backtest: {args.source.name}", charted
        )
        args.plot.write_text(page, encoding="utf-8")
    try:
        if args.json:
            for event in result.events:
                print(event_json(event))
            if scored is not None:
                print(json.dumps({"score": scored.as_dict()}))
        else:
            print_report(result, sys.stdout, width=args.width)
            if scored is not None:
                print_score(scored, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _check_key(key: str, taxonomy: Any, settings: Settings) -> None:
    """A --topic that could never have a spike is a mistake, not an empty result."""
    from newsalert.preflight import unfollowed_entity, unknown_topic

    entity = key.removeprefix("entity:")
    if key != entity and entity not in settings.spike.entities:
        raise ConfigError(f"--topic {key}: {unfollowed_entity(entity)}")
    if key == entity and key not in taxonomy.topics:
        raise ConfigError(f"--topic {key}: {unknown_topic(key, taxonomy)}")


def _progress_bar(path: Path):
    with path.open("rb") as handle:
        total = sum(1 for _ in handle) or 1

    def show(done: int) -> None:
        filled = int(30 * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} articles")
        sys.stderr.flush()

    return show
