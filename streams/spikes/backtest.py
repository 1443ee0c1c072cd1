"""Replay historical articles through the live pipeline's own code: the same ArticleProcessor
(clean, dedupe, stories, classify), the same hit keys and the same SpikeDetector.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from streams.pipeline import ArticleProcessor
from streams.spikes.detector import SpikeDetector, SpikeEvent, StoryRef
from streams.spikes.hits import hit_keys

SPARK = " ▁▂▃▄▅▆▇█"


@dataclass
class BacktestResult:
    events: list[SpikeEvent] = field(default_factory=list)
    series: dict[str, list[tuple[float, int, float]]] = field(default_factory=dict)
    rows: int = 0
    skipped: int = 0
    classified: int = 0
    seconds: float = 0.0


def parse_published(value: Any) -> float | None:
    """ISO 8601 (``Z`` or offset) or a bare date, as UTC epoch seconds; None if unusable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from None
            if isinstance(row, dict):
                yield row


def replay(
    rows: Iterable[dict[str, Any]],
    processor: ArticleProcessor,
    detector: SpikeDetector,
    entities: dict[str, list[str]] | None = None,
    keys: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    result = BacktestResult()
    started = time.perf_counter()
    detector.on_close = lambda key, start, count, baseline: result.series.setdefault(
        key, []
    ).append((start, count, baseline))
    for row in rows:
        result.rows += 1
        if progress is not None and result.rows % 1000 == 0:
            progress(result.rows)
        published = parse_published(row.get("published"))
        if published is None:
            result.skipped += 1
            continue
        raw = {
            "article_id": str(row.get("id") or result.rows),
            "url": row.get("url"),
            "title": row.get("title") or "",
            "body": row.get("text") or "",
            "source": row.get("source"),
            "published": published,
        }
        processed = processor.process(raw, now=published)
        article = processed.article
        if article is None or not article["topics"]:
            continue
        result.classified += 1
        story = StoryRef(
            article["article_id"],
            article["story_id"],
            article["title"],
            article["url"],
            article["source"],
            published,
        )
        for key, terms in hit_keys(article["topics"], entities or {}):
            if keys is None or key in keys:
                result.events.extend(detector.observe(key, story, terms))
    result.events.extend(detector.advance(detector.watermark + 10 * 365 * 86400))
    result.seconds = time.perf_counter() - started
    return result


def event_json(event: SpikeEvent) -> str:
    data = asdict(event)
    return json.dumps(
        {
            "topic": data["topic"],
            "state": data["state"],
            "window_start": _iso(data["window_start"]),
            "window_end": _iso(data["window_end"]),
            "count": data["count"],
            "baseline": data["baseline"],
            "ratio": data["ratio"],
            "score": data["score"],
            "top_story_titles": [s["title"] for s in data["top_stories"]],
        },
        ensure_ascii=False,
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def print_report(result: BacktestResult, out: TextIO, width: int = 72) -> None:
    starts = [e for e in result.events if e.state == "started"]
    out.write(
        f"{result.rows} rows ({result.skipped} without a usable date), {result.classified} in a "
        f"topic, {len(starts)} spikes, {len(result.events)} events, {result.seconds:.1f} s\n\n"
    )
    for event in result.events:
        titles = "; ".join(s["title"][:60] for s in event.top_stories[:2])
        out.write(
            f"{_iso(event.window_start)}  {event.topic:<28} {event.state:<9} count {event.count:>4}"
            f"  baseline {event.baseline:>6.2f}  score {event.score:>6.2f}  {titles}\n"
        )
    for key in sorted(result.series):
        out.write("\n" + chart(key, result.series[key], starts, width))


def chart(key: str, series: list[tuple[float, int, float]], starts, width: int) -> str:
    """Counts (top line) and baseline (bottom line) on one scale; ^ marks spike starts."""
    if not series:
        return f"{key}: no buckets\n"
    per_column = max(1, -(-len(series) // width))
    columns = [series[i : i + per_column] for i in range(0, len(series), per_column)]
    counts = [max(c for _, c, _ in col) for col in columns]
    baselines = [sum(b for _, _, b in col) / len(col) for col in columns]
    top = max(max(counts), max(baselines), 1)

    def spark(values: list[float]) -> str:
        return "".join(SPARK[min(8, round(v / top * 8))] for v in values)

    first = series[0][0]
    span = per_column * (series[1][0] - first if len(series) > 1 else 1)
    marks = [" "] * len(columns)
    for event in starts:
        if event.topic == key:
            column = int((event.window_start - first) // span) if span else 0
            if 0 <= column < len(marks):
                marks[column] = "^"
    return (
        f"{key}  ({_iso(first)[:10]} .. {_iso(series[-1][0])[:10]}, max {top:.0f} per bucket)\n"
        f"  count    |{spark(counts)}|\n"
        f"  baseline |{spark(baselines)}|\n"
        f"  spikes   |{''.join(marks)}|\n"
    )
