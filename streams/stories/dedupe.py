"""Exact duplicates and near-duplicate story grouping over a stream (pure: no I/O).

``ExactDeduper`` drops an article whose canonical URL or normalized text was seen within a
horizon. ``StoryClusterer`` gives the same ``story_id`` to articles telling the same story.
Sketching a text (``StoryClusterer.sketch``) needs no state and assigning a sketch
(``assign_sketch``) no text, so the costly part runs wherever the article is cleaned and the
stateful part in the one place that assigns stories (streams/stories/stage.py).

Sketches: **MinHash (bottom-k) over content words, plus sampled passage fingerprints, both in
an LSH index of one-row bands** (every sketch value is a band: articles sharing one are
candidates, then a rule decides).

- Word sketch: the ``sketch_size`` smallest 32-bit hashes (CRC-32: fast, and a rare collision costs little) of the article's content words
  (casefolded, stopwords dropped, plural ``s`` stripped). For headlines and short leads the
  sketch is the whole set, so their Jaccard similarity is exact: two short texts are one story
  when it reaches ``min_similarity`` and they share ``min_shared_words`` words.
- Passage fingerprints: hashes of 5-word shingles, keeping those equal to 0 modulo
  ``fingerprint_sampling`` (at most ``max_fingerprints`` per article). Two texts sharing
  ``min_shared_fingerprints`` of them share a passage, which is what syndicated and rewritten
  wire copy does: the two seed articles on the US letter to Germany have a 5-shingle Jaccard
  of only 0.05 (30 shared shingles) and a content-word Jaccard of 0.17, while other Huawei-ban
  articles share no shingle with them and reach word Jaccard 0.11, too close for a word
  estimate from a small sketch to separate (its standard error is about 0.04 at k=64).

Why not SimHash or classic MinHash banding: both estimate overall resemblance, and syndicated
copies are not resembling overall, they contain shared passages; banding needs one hash per
word and permutation, too slow in pure Python at thousands of articles per second, where these
sketches need one hash per word and per shingle. Memory is bounded: at most ``max_entries``
articles (``sketch_size + max_fingerprints`` ints each, in the entry and the index), and entries
older than ``horizon_seconds`` are expired as the stream advances.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from array import array
from collections import Counter, OrderedDict
from dataclasses import dataclass
from itertools import chain

from streams.stories import native as story_native

# Exact duplicates -------------------------------------------------------------------------------


def normalized_text_digest(text: str, words: list[str] | None = None) -> str:
    """A digest equal for texts that differ only in case, punctuation, spacing or Unicode form.
    ``words``: ``text_words(text)``, when the caller has them already."""
    if words is None:
        words = text_words(text)
    return hashlib.blake2b(" ".join(words).encode(), digest_size=16).hexdigest()


class ExactDeduper:
    """Remembers canonical URLs and text digests for ``horizon_seconds``, at most ``max_entries``
    of each (the oldest are forgotten first), with the article that brought each."""

    def __init__(self, horizon_seconds: float, max_entries: int) -> None:
        if horizon_seconds <= 0 or max_entries <= 0:
            raise ValueError("horizon_seconds and max_entries must be positive")
        self.horizon_seconds = horizon_seconds
        self.max_entries = max_entries
        # value -> (seen_at, article_id), oldest first
        self._urls: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._digests: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def check(
        self,
        canonical_url: str | None,
        text_digest: str,
        now: float,
        article_id: str | None = None,
    ) -> str | None:
        """``'same_url'`` or ``'same_text'`` for a duplicate, ``'redelivered'`` when the URL or
        text is held by ``article_id`` itself (the same record read twice); otherwise record
        it and return None."""
        self._expire(now)
        held = (canonical_url and self._urls.get(canonical_url)) or None
        reason = "same_url"
        if held is None:
            held, reason = self._digests.get(text_digest), "same_text"
        if held is not None:
            return "redelivered" if article_id is not None and held[1] == article_id else reason
        self.record(canonical_url, text_digest, now, article_id)
        return None

    def record(
        self, canonical_url: str | None, text_digest: str, seen_at: float, article_id: str | None
    ) -> None:
        """Remember a URL and digest as ``check`` does on a new article (also to rebuild the
        state from its changelog)."""
        if canonical_url:
            self._urls[canonical_url] = (seen_at, article_id)
        self._digests[text_digest] = (seen_at, article_id)
        self._expire(seen_at)

    def __len__(self) -> int:
        return len(self._urls) + len(self._digests)

    def _expire(self, now: float) -> None:
        oldest_kept = now - self.horizon_seconds
        for seen in (self._urls, self._digests):
            while seen and (
                len(seen) > self.max_entries or next(iter(seen.values()))[0] < oldest_kept
            ):
                seen.popitem(last=False)


# Near duplicates: story clusters ----------------------------------------------------------------

_STOPWORDS = frozenset(
    """a about after again against all also an and any are as at be been before being but by can
    could did do does down during each few for from further had has have having he her here him
    his how i if in into is it its just more most my new no nor not now of off on once one only
    or other our out over own said same says say she should so some such than that the their them
    then there these they this those through to too two under until up very was we were what
    when where which while who whom why will with would year years you your""".split()
)
_SHINGLE_WORDS = 5


def text_words(text: str) -> list[str]:
    """The words of ``text`` as the digest and the sketches see them (NFKC, casefolded): an
    article's are computed once and given to each (``ArticleProcessor.prepare``)."""
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())


_words = text_words


def content_words(text: str) -> set[str]:
    """The word set a story's word sketch is built from."""
    return _content_words(_words(text))


def _content_words(words: list[str]) -> set[str]:
    return {
        word[:-1] if len(word) > 3 and word.endswith("s") else word
        for word in words
        if len(word) > 1 and word not in _STOPWORDS
    }


def word_sketch(text: str, size: int) -> tuple[tuple[int, ...], int]:
    """Bottom-``size`` MinHash sketch of ``content_words(text)`` (ascending) and the set size."""
    return _word_sketch(_words(text), size)


def _word_sketch(words: list[str], size: int) -> tuple[tuple[int, ...], int]:
    content = _content_words(words)
    crc32 = zlib.crc32
    # Word values are even, passage values odd: the two never collide in the index.
    return tuple(sorted([crc32(w.encode()) << 1 for w in content])[:size]), len(content)


def passage_fingerprints(text: str, sampling: int, limit: int) -> tuple[int, ...]:
    """Hashes of the 5-word shingles of ``text`` that are 0 modulo ``sampling``: the same
    passage gives the same fingerprints in every copy, wherever it sits in the article."""
    return _passage_fingerprints(_words(text), sampling, limit)


def _passage_fingerprints(words: list[str], sampling: int, limit: int) -> tuple[int, ...]:
    found: set[int] = set()
    crc32 = zlib.crc32
    for i in range(len(words) - _SHINGLE_WORDS + 1):
        value = crc32(" ".join(words[i : i + _SHINGLE_WORDS]).encode())
        if value % sampling == 0:
            found.add(value << 1 | 1)
    return tuple(sorted(found)[:limit])


def estimated_jaccard(a: tuple[int, ...], b: tuple[int, ...], size: int) -> float:
    """Jaccard similarity of two word sets, estimated from their bottom-k sketches."""
    if not a or not b:
        return 0.0
    union_bottom = sorted(set(a) | set(b))[:size]
    in_both = set(a) & set(b)
    return sum(value in in_both for value in union_bottom) / len(union_bottom)


@dataclass(frozen=True, slots=True)
class StorySketch:
    """What story assignment needs of an article's text: its word sketch (ascending), the size
    of its content-word set and its passage fingerprints. Computed where the article is
    cleaned, so that the one place that assigns stories only compares integers."""

    words: tuple[int, ...]
    word_count: int
    fingerprints: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    article_id: str
    story_id: str
    # The word sketch then the passage fingerprints, as 8-byte machine integers: a tuple of
    # Python ints costs 40 bytes a value, and an entry holds a dozen to a hundred values.
    values: array[int]
    sketch_length: int  # how many of ``values`` are the word sketch
    word_count: int
    seen_at: float

    @property
    def words(self) -> array[int]:
        return self.values[: self.sketch_length]

    @property
    def fingerprints(self) -> array[int]:
        return self.values[self.sketch_length :]


class StoryClusterer:
    """Assigns each article a ``story_id``: that of the most similar recent article when the
    rules above say it is the same story, else a new story named after the article (its
    ``article_id``)."""

    def __init__(
        self,
        horizon_seconds: float = 3 * 86400,
        max_entries: int = 100_000,
        sketch_size: int = 32,
        min_similarity: float = 0.3,
        min_shared_words: int = 3,
        fingerprint_sampling: int = 4,
        max_fingerprints: int = 64,
        min_shared_fingerprints: int = 2,
        max_candidates_per_value: int = 100,
        native: bool = True,
    ) -> None:
        if min(horizon_seconds, max_entries, sketch_size, fingerprint_sampling) <= 0:
            raise ValueError("horizon, max_entries, sketch_size and sampling must be positive")
        if not 0 < min_similarity <= 1:
            raise ValueError("min_similarity must be in (0, 1]")
        self.horizon_seconds = horizon_seconds
        self.max_entries = max_entries
        self.sketch_size = sketch_size
        self.min_similarity = min_similarity
        # Two headlines sharing one or two words are rarely the same story.
        self.min_shared_words = min_shared_words
        self.fingerprint_sampling = fingerprint_sampling
        self.max_fingerprints = max_fingerprints
        self.min_shared_fingerprints = min_shared_fingerprints
        # A value in very many recent articles (a frequent word) is no evidence of one story.
        self.max_candidates_per_value = max_candidates_per_value
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._by_article: dict[str, int] = {}
        self._index: dict[int, list[int]] = {}
        self._next_seq = 0
        # The same sketch, state and rules in Rust (streams/stories/native.py), when built: it
        # then holds the state and the Python structures above stay empty.
        self._native = self._sketcher = None
        if native and story_native.available():
            self._sketcher = story_native.Sketcher()
            self._native = story_native.StoryIndex(
                horizon_seconds,
                max_entries,
                sketch_size,
                min_similarity,
                min_shared_words,
                min_shared_fingerprints,
                max_candidates_per_value,
            )

    @property
    def is_native(self) -> bool:
        return self._native is not None

    def sketch(self, text: str, words: list[str] | None = None) -> StorySketch:
        """The sketch of ``text`` with this clusterer's parameters (pure: no state).
        ``words``: ``text_words(text)``, when the caller has them already."""
        all_words = text_words(text) if words is None else words
        if self._sketcher is not None:
            return StorySketch(
                *self._sketcher.sketch(
                    all_words, self.sketch_size, self.fingerprint_sampling, self.max_fingerprints
                )
            )
        sketch_words, word_count = _word_sketch(all_words, self.sketch_size)
        fingerprints = _passage_fingerprints(
            all_words, self.fingerprint_sampling, self.max_fingerprints
        )
        return StorySketch(sketch_words, word_count, fingerprints)

    def assign(self, article_id: str, text: str, now: float) -> str:
        """The story of ``article_id`` (stable if the same article is assigned again)."""
        return self.assign_sketch(article_id, self.sketch(text), now)

    def assign_sketch(self, article_id: str, sketch: StorySketch, now: float) -> str:
        """``assign`` for a text already sketched (``sketch``)."""
        if self._native is not None:
            return self._native.assign(
                article_id, sketch.words, sketch.word_count, sketch.fingerprints, now
            )
        self._expire(now)
        seq = self._by_article.get(article_id)
        if seq is not None:
            return self._entries[seq].story_id
        words, fingerprints = tuple(sketch.words), tuple(sketch.fingerprints)
        story_id = self._best_story(words, sketch.word_count, fingerprints) or article_id
        self.restore(article_id, story_id, sketch, now)
        return story_id

    def known(self, article_id: str) -> bool:
        if self._native is not None:
            return self._native.known(article_id)
        return article_id in self._by_article

    def restore(self, article_id: str, story_id: str, sketch: StorySketch, seen_at: float) -> None:
        """Record ``article_id`` in ``story_id`` as ``assign_sketch`` does after deciding (also to
        rebuild the state from its changelog: the same entries in the same order give the same
        index, caps and expiry included)."""
        if self._native is not None:
            self._native.restore(
                article_id, story_id, sketch.words, sketch.word_count, sketch.fingerprints, seen_at
            )
            return
        words, fingerprints = tuple(sketch.words), tuple(sketch.fingerprints)
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._entries[seq] = _Entry(
            article_id,
            story_id,
            array("Q", words + fingerprints),
            len(words),
            sketch.word_count,
            seen_at,
        )
        self._by_article[article_id] = seq
        for value in words + fingerprints:
            posting = self._index.setdefault(value, [])
            posting.append(seq)
            if len(posting) > self.max_candidates_per_value:
                del posting[0]  # saturated: ignored for candidates, bounded in memory
        self._expire(seen_at)

    def __len__(self) -> int:
        if self._native is not None:
            return len(self._native)
        return len(self._entries)

    def postings_total(self) -> int:
        """How many article references the index holds (bounded by ``max_entries``)."""
        if self._native is not None:
            return self._native.postings_total()
        return sum(len(posting) for posting in self._index.values())

    def _best_story(
        self, words: tuple[int, ...], word_count: int, fingerprints: tuple[int, ...]
    ) -> str | None:
        index, limit = self._index, self.max_candidates_per_value
        # The postings of the article's values, saturated ones left out: a value in very many
        # recent articles is no evidence. Counting runs in C (Counter over chained postings):
        # this is the story stage's inner loop, and the one stage that cannot scale out.
        passage_postings = []
        # The article's fingerprints that a candidate may share uncounted: those too frequent
        # to count. (A list loses its oldest article to the cap, and articles expire oldest
        # first, so while an article dropped from a list is tracked the list stays full.)
        uncounted_passages = 0
        for value in fingerprints:
            posting = index.get(value)
            if posting:
                if len(posting) >= limit:
                    uncounted_passages += 1
                else:
                    passage_postings.append(posting)
        shared_passages = Counter(chain.from_iterable(passage_postings))
        needed_passages = self.min_shared_fingerprints - uncounted_passages
        if word_count > self.sketch_size and needed_passages > 0:
            # A long text can only be the same story by its passages (the word rule holds
            # between two short texts), and a candidate must then share counted ones: the
            # word postings, most of the counting, are not needed.
            candidates = [o for o, n in shared_passages.items() if n >= needed_passages]
        else:
            word_postings = [p for v in words if (p := index.get(v)) and len(p) < limit]
            shared = Counter(chain.from_iterable(word_postings))  # candidate -> values shared
            shared.update(shared_passages)
            least = min(self.min_shared_words, self.min_shared_fingerprints)
            candidates = [other for other, count in shared.items() if count >= least]
        if not candidates:
            return None
        best_story, best_score = None, 0.0
        # The article's values as sets once, not once per candidate.
        word_set, fingerprint_set = frozenset(words), frozenset(fingerprints)
        entries = self._entries
        for other in candidates:
            entry = entries.get(other)
            if entry is None:
                continue
            # At most this many passages in common: with fewer than the rule asks, only the
            # word rule can hold, and it holds only between two short texts (exact sets).
            most_passages = shared_passages[other] + uncounted_passages
            passages_possible = most_passages >= self.min_shared_fingerprints
            if not passages_possible and max(word_count, entry.word_count) > self.sketch_size:
                continue
            score = self._same_story_score(
                word_set, word_count, fingerprint_set if passages_possible else None, entry
            )
            if score > best_score:
                best_story, best_score = entry.story_id, score
        return best_story

    def _same_story_score(
        self,
        words: frozenset[int],
        word_count: int,
        fingerprints: frozenset[int] | None,
        entry: _Entry,
    ) -> float:
        """> 0 when the rules say same story; higher is more similar. ``fingerprints`` None:
        the two cannot share enough passages (known from the index)."""
        if fingerprints is not None:
            shared_passages = len(fingerprints.intersection(entry.fingerprints))
            if shared_passages >= self.min_shared_fingerprints:
                return 1.0 + shared_passages
        exact = word_count <= self.sketch_size and entry.word_count <= self.sketch_size
        if not exact:
            return 0.0  # a small sketch's estimate is too noisy on long texts
        shared_words = len(words.intersection(entry.words))
        similarity = shared_words / (word_count + entry.word_count - shared_words)
        if similarity >= self.min_similarity and shared_words >= self.min_shared_words:
            return similarity
        return 0.0

    def expire(self, now: float) -> None:
        """Forget entries older than the horizon at ``now`` (and over the count cap)."""
        if self._native is not None:
            self._native.expire(now)
            return
        self._expire(now)

    def _expire(self, now: float) -> None:
        oldest_kept = now - self.horizon_seconds
        while self._entries:
            seq, entry = next(iter(self._entries.items()))
            if len(self._entries) <= self.max_entries and entry.seen_at >= oldest_kept:
                break
            del self._entries[seq]
            if self._by_article.get(entry.article_id) == seq:
                del self._by_article[entry.article_id]
            for value in entry.values:
                posting = self._index.get(value)
                if posting is None:
                    continue
                if seq in posting:
                    posting.remove(seq)
                if not posting:
                    del self._index[value]
