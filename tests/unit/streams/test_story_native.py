"""The Rust story index (streams/stories/native.py) sketches and decides as the Python one
does: the same sketch and the same story for every article over real articles, short and long, with the default caps and with
caps small enough that values saturate and entries expire, and after a state restore."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from streams.clean.text import clean_text
from streams.stories import native
from streams.stories.dedupe import StoryClusterer, StorySketch

ARTICLES = Path("/work/shared/data/articles")

pytestmark = [
    pytest.mark.skipif(not ARTICLES.exists(), reason="shared data not mounted"),
    pytest.mark.skipif(
        not native.available() and not shutil.which("cargo"),
        reason="cargo not installed: the Rust story index is not built",
    ),
]


def test_the_story_index_is_built_and_current_where_cargo_is():
    assert native.available(), "cargo is installed but the story index is not built: run make"
    assert not native.stale()


def _texts(count: int) -> list[tuple[str, str]]:
    """Headlines and leads from three datasets interleaved with full Reuters stories."""
    files = ("uci-news.jsonl", "reuters.jsonl", "huffpost.jsonl", "reuters-fulltext.jsonl")
    readers = [(ARTICLES / name).open(encoding="utf-8") for name in files]
    texts = []
    for lines in itertools.zip_longest(*readers):
        for line in lines:
            if line:
                row = json.loads(line)
                texts.append(
                    (row["id"], f"{row['title']}\n{clean_text(row['text'], row['title'])}")
                )
    return texts[:count]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"max_candidates_per_value": 4, "max_entries": 500, "horizon_seconds": 900},
        {"min_similarity": 0.5, "min_shared_fingerprints": 3, "sketch_size": 16},
    ],
)
def test_both_implementations_give_every_article_the_same_story(settings):
    texts = _texts(12_000)
    rust, python = StoryClusterer(**settings), StoryClusterer(native=False, **settings)
    assert rust.is_native and not python.is_native
    got, expected = [], []
    for n, (article_id, text) in enumerate(texts):
        sketch = python.sketch(text)
        assert rust.sketch(text) == sketch, article_id
        now = n * 0.5
        expected.append(python.assign_sketch(article_id, sketch, now))
        got.append(rust.assign_sketch(article_id, rust.sketch(text), now))
        if n % 997 == 0:  # an article assigned again keeps its story
            assert rust.assign_sketch(article_id, sketch, now) == got[-1]
    assert got == expected
    assert sum(g != a for g, (a, _) in zip(got, texts, strict=True)) > 200  # stories were joined
    assert len(rust) == len(python)
    assert rust.postings_total() == python.postings_total()


def test_sketches_agree_on_unicode_short_words_and_texts_shorter_than_a_shingle():
    rust, python = StoryClusterer(), StoryClusterer(native=False)
    for text in (
        "",
        "a b",
        "Ünïcödé façades ßs s ss news 5g",
        "İstanbul ΣΊΣΥΦΟΣ ǅemal naïves cafés x y z w v u",
        "the of and huawei huawei huaweis",
        "one two three four five six seven eight nine ten eleven twelve " * 20,
    ):
        assert rust.sketch(text) == python.sketch(text), text


def test_a_restored_index_decides_as_the_python_one_restored_the_same_way():
    texts = _texts(4_000)
    python = StoryClusterer(native=False)
    first, later = texts[:3_000], texts[3_000:]
    entries = []
    for n, (article_id, text) in enumerate(first):
        sketch = python.sketch(text)
        entries.append((article_id, python.assign_sketch(article_id, sketch, n), sketch, n))
    rust, again = StoryClusterer(), StoryClusterer(native=False)
    for article_id, story_id, sketch, seen_at in entries:
        round_trip = StorySketch(list(sketch.words), sketch.word_count, list(sketch.fingerprints))
        rust.restore(article_id, story_id, round_trip, seen_at)
        again.restore(article_id, story_id, round_trip, seen_at)
    assert all(rust.known(article_id) for article_id, *_ in entries)
    for n, (article_id, text) in enumerate(later, start=3_000):
        sketch = python.sketch(text)
        assert rust.assign_sketch(article_id, sketch, n) == again.assign_sketch(
            article_id, sketch, n
        )
    rust.expire(10**9)
    again.expire(10**9)
    assert len(rust) == len(again) == 0 and rust.postings_total() == 0
