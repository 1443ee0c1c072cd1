"""The story stage: split from preparation it decides what the one-step pipeline decides, and
its changelog entries rebuild a state that decides the rest of a stream the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.classify.taxonomy import load_taxonomy
from streams.pipeline import ArticleProcessor
from streams.records import decode_prepared, encode_prepared
from streams.stories.stage import decode_entries, encode_entries

DEVSET = Path(__file__).parents[2] / "data" / "devset.jsonl"


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(None)


def stream_of_copies() -> list[dict]:
    """Dev-set articles, every third followed by an exact duplicate; later a copy of every
    other one (other id and URL, a line added) and exact duplicates of early ones: what the
    story stage has to remember."""
    rows = [json.loads(line) for line in DEVSET.read_text().splitlines()][:240]
    raws = []
    for n, row in enumerate(rows):
        raw = {
            "article_id": row["id"],
            "url": f"https://a.example/{n}",
            "title": row["title"],
            "body": row["text"],
            "source": "a",
            "published": 1_700_000_000.0 + n,
        }
        raws.append(raw)
        if n % 3 == 0:
            raws.append(dict(raw, article_id=f"exact-{n}", url=f"https://b.example/{n}"))
    copies = [
        dict(
            raw,
            article_id=f"copy-{raw['article_id']}",
            url=f"https://c.example/{n}",
            body=f"{raw['body']} Reporting by the wire desk; editing by the night desk.",
        )
        for n, raw in enumerate(raws[::2])
    ]
    late_exact = [
        dict(raw, article_id=f"late-{raw['article_id']}", url=f"https://d.example/{n}")
        for n, raw in enumerate(raws[:80:4])
    ]
    return raws + copies + late_exact


def decisions(processor: ArticleProcessor, raws: list[dict], now: float) -> list[tuple]:
    out = []
    for raw in raws:
        result = processor.process(raw, now)
        story = result.article["story_id"] if result.article else None
        out.append((raw["article_id"], story, result.duplicate_reason))
    return out


def test_prepared_articles_cross_as_json_and_decide_as_one_step(taxonomy):
    raws = stream_of_copies()
    one_step, two_steps = ArticleProcessor(taxonomy), ArticleProcessor(taxonomy)
    expected = [one_step.process(raw, 1000.0) for raw in raws]
    prepared = [two_steps.prepare(raw) for raw in raws]
    crossed = [a for message in encode_prepared(prepared) for a in decode_prepared(message)]
    assert [two_steps.decide(p, 1000.0) for p in crossed] == expected
    assert sum(r.article is None for r in expected) > 20  # exact duplicates were dropped
    assert (
        sum(
            r.article is not None and r.article["story_id"] != r.article["article_id"]
            for r in expected
        )
        > 40
    )  # copies joined stories


def test_a_stage_rebuilt_from_its_entries_decides_the_rest_as_the_original(taxonomy):
    raws = stream_of_copies()
    first, rest = raws[: len(raws) // 2], raws[len(raws) // 2 :]
    original = ArticleProcessor(taxonomy)
    entries = [
        result.state_entry
        for raw in first
        if (result := original.process(raw, 1000.0)).state_entry is not None
    ]
    rebuilt = ArticleProcessor(taxonomy)
    for entry in decode_entries(encode_entries(entries)):  # as the state topic carries them
        rebuilt.stage.restore(entry)
    assert decisions(rebuilt, rest, 2000.0) == decisions(original, rest, 2000.0)
    # And not by luck: without the entries the copies would start stories of their own.
    assert decisions(ArticleProcessor(taxonomy), rest, 2000.0) != decisions(rebuilt, rest, 2000.0)


ONE_RAW = {
    "article_id": "a1",
    "url": "https://a.example/1",
    "title": "Huawei banned",
    "body": "The UK banned Huawei from its 5G networks.",
    "source": "a",
    "published": 0.0,
}


def test_a_record_read_twice_is_dropped_as_redelivered_not_sent_again(taxonomy):
    processor = ArticleProcessor(taxonomy)
    raw = dict(ONE_RAW)
    assert processor.process(raw, 1.0).article is not None
    again = processor.process(raw, 2.0)
    assert again.article is None and again.duplicate_reason == "redelivered"
    other = processor.process(dict(raw, article_id="a2"), 3.0)
    assert other.duplicate_reason == "same_url"


def test_an_update_keeps_its_story_and_records_no_duplicate(taxonomy):
    processor = ArticleProcessor(taxonomy)
    raw = dict(ONE_RAW)
    processor.process(raw, 1.0)
    edited = processor.process(dict(raw, body="The UK banned Huawei.", is_update=True), 2.0)
    assert edited.article["story_id"] == "a1"
    assert edited.state_entry is None  # nothing changed: nothing for the changelog


def test_prepared_batches_split_under_the_message_size():
    articles = [{"article_id": f"a{n}", "text": "x" * 1000} for n in range(50)]
    messages = list(encode_prepared(articles, max_bytes=10_000))
    assert len(messages) == 6 and all(len(m) <= 10_000 for m in messages)
    assert [a for m in messages for a in decode_prepared(m)] == articles
    with pytest.raises(ValueError):
        decode_prepared(b'{"version": 2, "articles": []}')
