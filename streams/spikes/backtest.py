"""Replay historical articles through the live pipeline's own code: the same ArticleProcessor
(clean, dedupe, stories, classify), the same hits and the same SpikeDetector.

The costly, stateless part (cleaning, language, classification) first picks the articles that
are in any topic, in parallel over chunks of the file; only those then go, in published order,
through the processor's duplicate check and story grouping and into the detector. Articles in
no topic cannot be counted, so the one difference from the live stream is that they are not
there to be duplicates of, or share a story with, the articles that are.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from streams.classify.taxonomy import Taxonomy
from streams.pipeline import ArticleProcessor
from streams.spikes.detector import SpikeDetector, SpikeEvent
from streams.spikes.hits import article_hits, observe

SPARK = " ▁▂▃▄▅▆▇█"
CHUNK_ROWS = 2000


@dataclass
class BacktestResult:
    events: list[SpikeEvent] = field(default_factory=list)
    series: dict[str, list[tuple[float, int, float]]] = field(default_factory=dict)
    rows: int = 0
    skipped: int = 0  # no usable published date
    classified: int = 0  # in at least one topic
    duplicates: int = 0
    late: int = 0
    seconds: float = 0.0
    first: float = 0.0  # published time of the first and last article replayed
    last: float = 0.0


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


def raw_article(line: str, where: str, number: int) -> dict[str, Any] | None:
    """One JSONL line as the raw article a connector would publish; None without a date.
    Raises ValueError, naming ``where``, for a line that is not a JSON object."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON: {exc.msg}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: not a JSON object")
    published = parse_published(row.get("published"))
    if published is None:
        return None
    return {
        "article_id": str(row.get("id") or number),
        "url": row.get("url"),
        "title": row.get("title") or "",
        "body": row.get("text") or "",
        "source": row.get("source"),
        "published": published,
    }


_Chunk = tuple[int, int, list[dict[str, Any]]]  # rows, rows without a date, kept articles


class TopicFilter:
    """Which raw articles land in at least one topic, by the live ArticleProcessor itself
    (cleaning, language, classification), minus its stateful steps (duplicates, stories).
    Pure per article, so it can run in parallel; the stateful steps then run in order on what
    it keeps."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.processor = ArticleProcessor(taxonomy)
        self.fixed: dict[str, Any] = {}
        # Language detection is a quarter of the work; it matters only to language-limited topics.
        if all(topic.languages is None for topic in taxonomy.topics.values()):
            self.fixed["language"] = "any"

    def in_a_topic(self, raw: dict[str, Any]) -> bool:
        return bool(self.processor.classified({**raw, **self.fixed})[3])

    def chunk(self, path: str, lines: list[tuple[int, str]]) -> _Chunk:
        """(rows, rows without a usable date, raw articles in a topic) of numbered lines."""
        skipped, kept = 0, []
        for number, line in lines:
            raw = raw_article(line, f"{path}:{number}", number)
            if raw is None:
                skipped += 1
            elif self.in_a_topic(raw):
                kept.append(raw)
        return len(lines), skipped, kept


_worker_filter: TopicFilter | None = None


def _init_worker(taxonomy: Taxonomy) -> None:
    global _worker_filter
    _worker_filter = TopicFilter(taxonomy)


def _filter_in_worker(job: tuple[str, list[tuple[int, str]]]) -> _Chunk:
    assert _worker_filter is not None
    return _worker_filter.chunk(*job)


def _chunks(path: Path) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    chunk: list[tuple[int, str]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                chunk.append((number, line))
            if len(chunk) >= CHUNK_ROWS:
                yield str(path), chunk
                chunk = []
    if chunk:
        yield str(path), chunk


def select_articles(
    path: Path,
    taxonomy: Taxonomy,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, list[dict[str, Any]]]:
    """(rows, rows without a usable date, raw articles in a topic in file order), filtering
    chunks of the file in ``workers`` processes (1: in this one)."""
    rows = skipped = 0
    kept: list[dict[str, Any]] = []
    if workers > 1:
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        pool = context.Pool(workers, initializer=_init_worker, initargs=(taxonomy,))
        results: Iterable[_Chunk] = pool.imap(_filter_in_worker, _chunks(path))
    else:
        pool, local = None, TopicFilter(taxonomy)
        results = (local.chunk(*job) for job in _chunks(path))
    # Chunks come back in file order (imap), so the result does not depend on ``workers``.
    try:
        for job_rows, job_skipped, job_kept in results:
            rows += job_rows
            skipped += job_skipped
            kept.extend(job_kept)
            if progress is not None:
                progress(rows)
    finally:
        if pool is not None:
            pool.terminate()
    return rows, skipped, kept


def replay(
    path: Path,
    processor: ArticleProcessor,
    detector: SpikeDetector,
    entities: dict[str, list[str]] | None = None,
    keys: set[str] | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Replay the articles of a JSONL file, in published order, through ``processor`` (its
    duplicate check and story grouping) and ``detector``, as the live agents would."""
    result = BacktestResult()
    started = time.perf_counter()

    def closed(key: str, width: float, start: float, count: int, baseline: float) -> None:
        # The chart shows each key's widest buckets (a day by default).
        if width == max(detector.lane_rules(key)):
            result.series.setdefault(key, []).append((start, count, baseline))

    detector.on_close = closed
    result.rows, result.skipped, selected = select_articles(
        path, processor.taxonomy, workers, progress
    )
    selected.sort(key=lambda raw: raw["published"])  # stable: file order among equal times
    if selected:
        result.first, result.last = selected[0]["published"], selected[-1]["published"]
    for raw in selected:
        article = processor.process(raw, now=raw["published"]).article
        if article is None:
            result.duplicates += 1
            continue
        result.classified += 1
        for hit in article_hits(article, entities or {}):
            if keys is None or hit.key in keys:
                events, late = observe(detector, hit)
                result.events.extend(events)
                result.late += late
    result.events.extend(detector.flush())
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
            "width_seconds": data["width_seconds"],
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
        f"topic ({result.duplicates} duplicates dropped, {result.late} hits too late), "
        f"{len(starts)} spikes, {len(result.events)} events, {result.seconds:.1f} s\n\n"
    )
    for event in result.events:
        titles = "; ".join(s["title"][:60] for s in event.top_stories[:2])
        out.write(
            f"{_iso(event.window_start)}  {event.topic:<28} {event.state:<9} "
            f"{_width(event.width_seconds):>3}  count {event.count:>4}"
            f"  baseline {event.baseline:>6.2f}  score {event.score:>6.2f}  {titles}\n"
        )
    for key in sorted(result.series):
        out.write("\n" + chart(key, result.series[key], starts, width))


def _width(seconds: float) -> str:
    """``1h``, ``1d``: the bucket width an event was seen at, short."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def chart(key: str, series: list[tuple[float, int, float]], starts, width: int) -> str:
    """Counts (top line) and baseline (bottom line) on one scale; ^ marks spike starts."""
    if not series:
        return f"{key}: no buckets\n"
    per_column = max(1, -(-len(series) // width))
    columns = [series[i : i + per_column] for i in range(0, len(series), per_column)]
    counts = [max(c for _, c, _ in col) for col in columns]
    baselines = [sum(b for _, _, b in col) / len(col) for col in columns]
    top = max(max(counts), max(baselines), 1)

    def spark(values: Sequence[float]) -> str:
        # Anything above zero shows, however small next to the peak.
        levels = [min(8, max(1 if v > 0 else 0, round(v / top * 8))) for v in values]
        return "".join(SPARK[level] for level in levels)

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
