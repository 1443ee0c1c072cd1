"""The story stage: exact duplicates and story assignment for the whole stream, in one place
(pure: no Faust, no I/O).

Every decision that changes the state also returns it as a changelog entry; replaying the
entries in order with ``restore`` rebuilds the same state (the same duplicates remembered, the
same story index, caps and expiry included), which is how a worker that takes the stage over
carries on where the last one stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streams.stories.dedupe import ExactDeduper, StoryClusterer, StorySketch

STATE_VERSION = 1

# [article_id, story_id, seen_at, url, digest, word_count, words, fingerprints]; url and digest
# are None when the article was not recorded as a possible duplicate (an update).
Entry = list[Any]


@dataclass(frozen=True, slots=True)
class Decision:
    story_id: str | None  # None when dropped
    duplicate_reason: str | None = None  # same_url | same_text | redelivered
    entry: Entry | None = None  # what changed, for the changelog; None: nothing did


class StoryStage:
    def __init__(
        self,
        dedupe_horizon_seconds: float = 7 * 86400,
        max_tracked: int = 200_000,
        story_horizon_seconds: float = 3 * 86400,
    ) -> None:
        self.deduper = ExactDeduper(horizon_seconds=dedupe_horizon_seconds, max_entries=max_tracked)
        self.stories = StoryClusterer(horizon_seconds=story_horizon_seconds)

    def decide(
        self,
        article_id: str,
        url: str | None,
        digest: str,
        sketch: StorySketch,
        is_update: bool,
        now: float,
    ) -> Decision:
        """Drop an exact duplicate (or a record seen before, ``redelivered``), else give the
        article its story. An update skips the duplicate check and keeps its story."""
        recorded = False
        if not is_update:
            reason = self.deduper.check(url, digest, now, article_id)
            if reason is not None:
                return Decision(None, reason)
            recorded = True
        new = not self.stories.known(article_id)
        story_id = self.stories.assign_sketch(article_id, sketch, now)
        if not (recorded or new):
            return Decision(story_id)
        entry = [
            article_id,
            story_id,
            now,
            url if recorded else None,
            digest if recorded else None,
            sketch.word_count,
            list(sketch.words),
            list(sketch.fingerprints),
        ]
        return Decision(story_id, entry=entry)

    def restore(self, entry: Entry) -> None:
        """Apply one changelog entry, as ``decide`` changed the state when it wrote it."""
        article_id, story_id, seen_at, url, digest, word_count, words, fingerprints = entry
        if digest is not None:
            self.deduper.record(url, digest, seen_at, article_id)
        self.stories.expire(seen_at)
        if not self.stories.known(article_id):
            sketch = StorySketch(tuple(words), word_count, tuple(fingerprints))
            self.stories.restore(article_id, story_id, sketch, seen_at)

    def __len__(self) -> int:
        return len(self.stories)


def encode_entries(entries: list[Entry]) -> bytes:
    return json.dumps({"version": STATE_VERSION, "entries": entries}).encode()


def decode_entries(data: bytes) -> list[Entry]:
    """The entries of one changelog message; ValueError for one this code cannot read."""
    decoded = json.loads(data)
    if not isinstance(decoded, dict) or decoded.get("version") != STATE_VERSION:
        raise ValueError("not a story-state changelog message of version 1")
    entries = decoded.get("entries")
    if not isinstance(entries, list):
        raise ValueError("story-state changelog message without a list of entries")
    return entries
