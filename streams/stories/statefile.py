"""The story stage's state in a file under the data directory, for the embedded broker.

The embedded broker keeps its topics in memory, so a restarted `newsalert run` finds an empty
story-state topic. Every message written to that topic is also appended here (one JSON line),
and the stage reads this file back instead. Entries older than ``keep_seconds`` are dropped
when the file is read and whenever it has grown to twice what was kept (at least
``min_compact_bytes``), so it holds about one horizon of articles.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from streams.stories.stage import Entry, StoryStage, decode_entries, encode_entries

log = logging.getLogger(__name__)

_SEEN_AT = 2  # an entry's position of seen_at


class StoryStateFile:
    def __init__(
        self, path: Path, keep_seconds: float, min_compact_bytes: int = 64 * 1024 * 1024
    ) -> None:
        self.path = path
        self.keep_seconds = keep_seconds
        self.min_compact_bytes = min_compact_bytes
        self._compact_at = min_compact_bytes

    def load(self, stage: StoryStage, now: float) -> int:
        """Restore the entries of the last ``keep_seconds`` into ``stage``; how many. An
        unreadable file is logged and the stage starts empty."""
        try:
            entries = self._compact(now)
        except OSError as exc:
            log.error("story state %s unreadable (%s); stories start afresh", self.path, exc)
            return 0
        for entry in entries:
            stage.restore(entry)
        stage.stories.expire(now)
        return len(entries)

    def append(self, message: bytes, now: float) -> None:
        """One state-topic message more. A failed write is logged: the state is still on the
        topic, and only a restart would miss it."""
        try:
            with self.path.open("ab") as file:
                file.write(message + b"\n")
                size = file.tell()
            if size > self._compact_at:
                self._compact(now)
        except OSError as exc:
            log.error("story state not saved to %s: %s", self.path, exc)

    def _compact(self, now: float) -> list[Entry]:
        """The file's entries still within ``keep_seconds``, which replace its content."""
        kept: list[Entry] = []
        try:
            with self.path.open("rb") as file:
                for number, line in enumerate(file, 1):
                    try:
                        entries = decode_entries(line)
                    except ValueError as exc:  # a line cut short by a crash, say
                        log.error("%s line %d skipped: %s", self.path, number, exc)
                        continue
                    kept.extend(e for e in entries if e[_SEEN_AT] >= now - self.keep_seconds)
        except FileNotFoundError:
            return []
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as file:
            for start in range(0, len(kept), 200):
                file.write(encode_entries(kept[start : start + 200]) + b"\n")
            size = file.tell()
        os.replace(tmp, self.path)
        self._compact_at = max(2 * size, self.min_compact_bytes)
        return kept
