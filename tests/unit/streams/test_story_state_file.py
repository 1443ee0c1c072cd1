"""The story state file of the embedded broker: read back within its horizon, compacted."""

from __future__ import annotations

from streams.stories.stage import StoryStage, encode_entries
from streams.stories.statefile import StoryStateFile


def entry(article_id: str, seen_at: float) -> list:
    return [
        article_id,
        article_id,
        seen_at,
        f"https://a.example/{article_id}",
        article_id,
        3,
        [2, 4, 6],
        [1, 3],
    ]


def test_entries_come_back_within_the_horizon_and_the_rest_is_dropped(tmp_path):
    file = StoryStateFile(tmp_path / "story-state.jsonl", keep_seconds=100)
    file.append(encode_entries([entry("old", 0.0)]), now=0.0)
    file.append(encode_entries([entry("new-1", 150.0), entry("new-2", 160.0)]), now=160.0)
    with file.path.open("ab") as cut_short:  # a crash in the middle of a write
        cut_short.write(encode_entries([entry("cut", 170.0)])[:20])

    stage = StoryStage()
    assert file.load(stage, now=200.0) == 2
    assert stage.stories.known("new-1") and not stage.stories.known("old")
    assert stage.deduper.check("https://a.example/new-2", "x", 201.0) == "same_url"
    assert len(file.path.read_bytes().splitlines()) == 1  # rewritten with what was kept


def test_the_file_is_compacted_as_it_grows(tmp_path):
    file = StoryStateFile(tmp_path / "story-state.jsonl", keep_seconds=10, min_compact_bytes=2000)
    for n in range(100):
        file.append(encode_entries([entry(f"a{n}", float(n))]), now=float(n))
    assert file.path.stat().st_size < 4000  # without compaction: 100 lines of ~80 bytes
    stage = StoryStage()
    assert file.load(stage, now=99.0) == 11
