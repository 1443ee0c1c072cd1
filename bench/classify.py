"""Cleaning, classification and story grouping: articles per CPU-second (one core) with the
default taxonomy and with 1,000 generated rules, near-duplicate assignments per second, memory
per 100,000 stories, and the whole ``ArticleProcessor.process`` path, all in one run so the
ratios between them hold even on a busy machine."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

from streams.classify.classifier import classify
from streams.classify.generated import generated_taxonomy
from streams.classify.taxonomy import Taxonomy, load_taxonomy
from streams.clean.text import clean_text, detect_language
from streams.pipeline import ArticleProcessor
from streams.spikes.backtest import raw_article
from streams.stories.dedupe import StoryClusterer

ARTICLES_FILE = Path(
    os.environ.get("NEWSALERT_BENCH_ARTICLES", "/work/shared/data/articles/dated_stream.jsonl")
)
SAMPLE = int(os.environ.get("NEWSALERT_BENCH_CLASSIFY_SAMPLE", "20000"))
GOAL_PER_SECOND = 5000


def load_articles(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Raw articles as a connector publishes them, in publication order."""
    articles = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            raw = raw_article(line, f"{path}:{number}", number)
            if raw is not None:
                articles.append(raw)
    articles.sort(key=lambda raw: raw["published"])
    return articles[:limit] if limit else articles


def _cpu_rate(count: int, work: Any) -> float:
    started = time.process_time()
    work()
    return count / (time.process_time() - started)


def clean_and_classify_rate(articles: list[dict[str, Any]], taxonomy: Taxonomy) -> float:
    """What the pipeline does per article minus duplicates and stories: clean title and body,
    detect the language, classify."""

    def work() -> None:
        for raw in articles:
            title = clean_text(raw["title"])
            text = clean_text(raw["body"], title=title)
            language = detect_language(f"{title}\n{text}")
            classify(title, text, taxonomy, language=language)

    return _cpu_rate(len(articles), work)


def clean_rate(articles: list[dict[str, Any]]) -> float:
    def work() -> None:
        for raw in articles:
            title = clean_text(raw["title"])
            text = clean_text(raw["body"], title=title)
            detect_language(f"{title}\n{text}")

    return _cpu_rate(len(articles), work)


def cleaned(articles: list[dict[str, Any]]) -> list[tuple[str, str]]:
    pairs = []
    for raw in articles:
        title = clean_text(raw["title"])
        pairs.append((title, clean_text(raw["body"], title=title)))
    return pairs


def classify_only_rate(pairs: list[tuple[str, str]], taxonomy: Taxonomy) -> float:
    def work() -> None:
        for title, text in pairs:
            classify(title, text, taxonomy, language="en")

    return _cpu_rate(len(pairs), work)


def story_assign_rate(articles: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> float:
    """``StoryClusterer.assign`` with its defaults (3-day horizon, 100,000 entries) over the
    stream in publication order."""
    clusterer = StoryClusterer()

    def work() -> None:
        for raw, (title, text) in zip(articles, pairs, strict=True):
            clusterer.assign(raw["article_id"], f"{title}\n{text}", raw["published"])

    return _cpu_rate(len(articles), work)


def process_rate(articles: list[dict[str, Any]], taxonomy: Taxonomy) -> tuple[float, int]:
    """The whole ``ArticleProcessor.process`` path; also how many were exact duplicates."""
    processor = ArticleProcessor(taxonomy)
    duplicates = 0

    def work() -> None:
        nonlocal duplicates
        for raw in articles:
            duplicates += processor.process(raw, now=raw["published"]).article is None

    return _cpu_rate(len(articles), work), duplicates


def memory_per_100k_stories(articles: list[dict[str, Any]]) -> tuple[float, int]:
    """tracemalloc bytes held by a clusterer after ``len(articles)`` stories (no expiry),
    scaled to 100,000; the texts themselves are the caller's and not counted."""
    texts = [(raw["article_id"], f"{raw['title']}\n{raw['body']}") for raw in articles]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    clusterer = StoryClusterer(horizon_seconds=1e12, max_entries=len(texts) + 1)
    for n, (article_id, text) in enumerate(texts):
        clusterer.assign(article_id, text, float(n))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return used / len(texts) * 100_000, len(clusterer)


def run() -> dict[str, float | str]:
    if not ARTICLES_FILE.is_file():
        return {"skipped": f"no {ARTICLES_FILE} (set NEWSALERT_BENCH_ARTICLES)"}
    load_before = os.getloadavg()
    everything = load_articles(ARTICLES_FILE)
    # An evenly spread sample, so every year and source of the file is in it.
    step = max(1, len(everything) // SAMPLE)
    articles = everything[::step][:SAMPLE]
    default = load_taxonomy(None)
    generated = generated_taxonomy(everything[1::7])
    pairs = cleaned(articles)

    clean_only = clean_rate(articles)
    classify_default = classify_only_rate(pairs, default)
    classify_generated = classify_only_rate(pairs, generated)
    with_clean_default = clean_and_classify_rate(articles, default)
    with_clean_generated = clean_and_classify_rate(articles, generated)
    assign = story_assign_rate(articles, pairs)
    process, duplicates = process_rate(articles, default)
    process_generated, _ = process_rate(articles, generated)
    memory, stories = memory_per_100k_stories(everything[:100_000])
    load_after = os.getloadavg()
    generated_rules = sum(len(t.rules) for t in generated.topics.values())
    return {
        "articles": len(articles),
        "exact_duplicates_in_sample": duplicates,
        "clean_and_language_per_cpu_second": round(clean_only),
        "classify_default_per_cpu_second": round(classify_default),
        "classify_generated_per_cpu_second": round(classify_generated),
        "clean_classify_default_per_cpu_second": round(with_clean_default),
        "clean_classify_generated_per_cpu_second": round(with_clean_generated),
        "story_assignments_per_cpu_second": round(assign),
        "process_path_per_cpu_second": round(process),
        "process_path_generated_per_cpu_second": round(process_generated),
        "ratio_generated_to_default_clean_classify": round(
            with_clean_generated / with_clean_default, 2
        ),
        "ratio_process_to_clean_classify_default": round(process / with_clean_default, 2),
        "ratio_process_to_goal": round(process / GOAL_PER_SECOND, 2),
        "ratio_process_generated_to_goal": round(process_generated / GOAL_PER_SECOND, 2),
        "story_memory_bytes_per_100k_stories": round(memory),
        "stories_for_memory": stories,
        "default_taxonomy": f"{len(default.topics)} topics, "
        f"{sum(len(t.rules) + len(t.exclude) for t in default.topics.values())} rules, "
        f"{len(default.automaton)} automaton keys",
        "generated_taxonomy": f"{len(generated.topics)} topics, {generated_rules} rules "
        f"(+{sum(len(t.exclude) for t in generated.topics.values())} excludes), "
        f"{len(generated.automaton)} automaton keys",
        "load_average_1min_before_after": f"{load_before[0]:.2f} / {load_after[0]:.2f}",
        "note": "process CPU time, one core; memory by tracemalloc (clusterer only, no expiry)",
    }
