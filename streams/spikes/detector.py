"""Event-time spike detection per topic or entity (pure: no Faust, no I/O).

Each key (a topic, or an entity such as ``entity:huawei``) has buckets of ``bucket_seconds`` by
the article's published time. What a bucket counts is ``count_by``: articles, distinct stories
(default, so forty syndicated copies of one wire story count once) or distinct sources.

A bucket stays open for late articles until the watermark (the newest event time seen, less
``allowed_lateness_seconds``) passes its end; then it closes and its count joins the baseline.
Articles for a bucket already closed are counted as late and do not change any decision.

Baseline: an exponentially weighted mean and variance of closed buckets (``ewma_alpha``), plus
optionally a seasonal profile by hour of week so a daily rhythm is not a spike. A spike starts
when all hold for the current count ``c`` and baseline mean ``m`` (variance ``v``):

    c >= min_count,  c >= ratio * max(m, 1),  (c - m) / sqrt(max(v, m, 1)) >= z_threshold,
    P(X >= c) <= max_p_value  for X ~ Poisson(max(m, 0.5))

(the variance floor ``m`` is the Poisson variance, so sparse topics are judged as counts; the
Poisson tail keeps a baseline that happens to sit low from turning noise into an alert).
Cold start: a key with fewer than ``min_history_buckets`` closed buckets never starts a spike
unless ``c >= absolute_threshold`` (when set).

Lifecycle: ``started`` -> ``escalated`` (count reaches ``escalate_factor`` x the count at start,
once per spike) -> ``resolved`` (``resolve_buckets`` consecutive closed buckets below
``resolve_ratio`` x baseline; hysteresis: the resolve level is below the start level, so a count
hovering at the threshold does not flap) and then no new spike for ``cooldown_seconds``.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CountBy = Literal["articles", "stories", "sources"]
HOURS_A_DAY = 24
HOURS_A_WEEK = 168


@dataclass(frozen=True)
class SpikeRule:
    bucket_seconds: float = 3600.0
    count_by: CountBy = "stories"
    allowed_lateness_seconds: float = 7200.0
    baseline_buckets: int = 24
    ewma_alpha: float | None = None  # default 2 / (baseline_buckets + 1)
    seasonal: bool = False
    min_count: int = 5
    ratio: float = 3.0
    z_threshold: float = 3.0
    max_p_value: float = 0.0001
    min_history_buckets: int = 24
    absolute_threshold: int | None = None
    escalate_factor: float = 2.0
    resolve_ratio: float = 1.5
    resolve_buckets: int = 2
    cooldown_seconds: float = 6 * 3600.0
    top_stories: int = 5
    top_terms: int = 10
    recent_buckets: int = 24

    @property
    def alpha(self) -> float:
        return self.ewma_alpha or 2.0 / (self.baseline_buckets + 1)


@dataclass(frozen=True, slots=True)
class StoryRef:
    article_id: str
    story_id: str
    title: str
    url: str | None
    source: str | None
    published: float
    fetched_at: float = 0.0  # 0: not known (the backtest, snapshots from before it was kept)


@dataclass(frozen=True)
class SpikeEvent:
    spike_id: str
    topic: str
    state: str
    window_start: float
    window_end: float
    count: int
    baseline: float
    ratio: float
    score: float
    top_stories: list[dict[str, Any]]
    top_terms: list[str]
    recent_counts: list[dict[str, Any]]


@dataclass(slots=True)
class _Bucket:
    articles: int = 0
    story_ids: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    terms: Counter[str] = field(default_factory=Counter)
    # Details of the newest ``top_stories`` stories only: an alert shows no more.
    newest: list[StoryRef] = field(default_factory=list)

    def add(self, story: StoryRef, terms: list[str], keep: int) -> None:
        self.articles += 1
        if story.source:
            self.sources.add(story.source)
        self.terms.update(terms)
        if story.story_id in self.story_ids:
            return
        self.story_ids.add(story.story_id)
        if len(self.newest) < keep:
            self.newest.append(story)
            return
        oldest = min(range(len(self.newest)), key=lambda i: self.newest[i].published)
        if story.published > self.newest[oldest].published:
            self.newest[oldest] = story

    def top_stories(self, limit: int) -> list[dict[str, Any]]:
        stories = sorted(self.newest, key=lambda s: s.published, reverse=True)
        return [asdict(s) for s in stories[:limit]]

    def count(self, count_by: CountBy) -> int:
        if count_by == "articles":
            return self.articles
        if count_by == "sources":
            return len(self.sources)
        return len(self.story_ids)


@dataclass(slots=True)
class _KeyState:
    buckets: dict[int, _Bucket] = field(default_factory=dict)
    closed_through: int = 0  # highest closed bucket index
    history: list[int] = field(default_factory=list)  # counts of the last closed buckets
    closed_count: int = 0
    # (mean, var, closed_count) after each of the last few closed buckets, ending at
    # ``closed_through``: what a decision about an open bucket is measured against.
    past: list[tuple[float, float, int]] = field(default_factory=list)
    mean: float = 0.0
    var: float = 0.0
    seasonal_mean: dict[int, float] = field(default_factory=dict)  # by hour of the week
    daily_mean: dict[int, float] = field(default_factory=dict)  # by hour of the day
    active: dict[str, Any] | None = None  # {start_index, start_count, escalated, quiet}
    cooldown_until: float = 0.0


def poisson_tail(count: int, mean: float) -> float:
    """P(X >= count) for X ~ Poisson(mean), summed in log space (exact, no SciPy)."""
    if count <= 0:
        return 1.0
    log_term = -mean  # log P(X = 0)
    below = 0.0
    for k in range(count):
        if k:
            log_term += math.log(mean) - math.log(k)
        below += math.exp(log_term)
    return max(0.0, 1.0 - below)


class SpikeDetector:
    """Counts per key and bucket, keeps baselines, and emits spike lifecycle events."""

    def __init__(self, rule: SpikeRule, rules: dict[str, SpikeRule] | None = None) -> None:
        self.rule = rule
        self.rules = rules or {}
        self._keys: dict[str, _KeyState] = {}
        self._next_close_at = math.inf
        self.watermark = 0.0
        self.late_dropped = 0
        # Optional observer of closed buckets: (key, bucket start, count, baseline before it).
        self.on_close: Callable[[str, float, int, float], None] | None = None

    def rule_for(self, key: str) -> SpikeRule:
        return self.rules.get(key, self.rule)

    # --- input ---------------------------------------------------------------------------

    def observe(self, key: str, story: StoryRef, terms: list[str]) -> list[SpikeEvent]:
        """Count ``story`` under ``key``; return the events this causes, oldest first.

        The article's time first moves the watermark, which may close buckets of any key
        (and so resolve spikes); then the article's own bucket is checked.
        """
        rule = self.rule_for(key)
        index = int(story.published // rule.bucket_seconds)
        events = self.advance(story.published)
        state = self._keys.get(key)
        if state is None:
            # A new key's buckets are open from where the watermark allows, as for any key, so
            # an article too late for the others is too late for it as well.
            open_from = int((self.watermark - rule.allowed_lateness_seconds) // rule.bucket_seconds)
            state = self._keys[key] = _KeyState(closed_through=open_from - 1)
            self._schedule(state, rule)
        if index <= state.closed_through:
            self.late_dropped += 1
            return events
        bucket = state.buckets.get(index)
        if bucket is None:
            bucket = state.buckets[index] = _Bucket()
        bucket.add(story, terms, rule.top_stories)
        event = self._check(key, state, rule, index, bucket)
        if event is not None:
            events.append(event)
        return events

    def advance(self, event_time: float) -> list[SpikeEvent]:
        """Move the watermark to ``event_time`` and close every bucket it has passed."""
        if event_time > self.watermark:
            self.watermark = event_time
        events: list[SpikeEvent] = []
        if self.watermark < self._next_close_at:
            return events  # the common case: no bucket of any key can close yet
        self._next_close_at = math.inf
        for key, state in self._keys.items():
            rule = self.rule_for(key)
            # A bucket closes once the watermark is past its end plus the allowed lateness.
            last = int((self.watermark - rule.allowed_lateness_seconds) // rule.bucket_seconds) - 1
            events.extend(self._close_through(key, state, rule, last))
        return events

    def flush(self) -> list[SpikeEvent]:
        """Close every open bucket up to the watermark's own: the input has ended (backtest).

        Spikes still running at the end stay active; no empty future buckets are invented to
        resolve them.
        """
        self._next_close_at = math.inf
        events: list[SpikeEvent] = []
        for key, state in self._keys.items():
            rule = self.rule_for(key)
            last = max([int(self.watermark // rule.bucket_seconds), *state.buckets])
            events.extend(self._close_through(key, state, rule, last))
        return events

    def _close_through(
        self, key: str, state: _KeyState, rule: SpikeRule, last: int
    ) -> list[SpikeEvent]:
        events = []
        while state.closed_through < last:
            # Long silences: learn the empty buckets in bulk, keep a few to close one by one
            # (not while a spike is active: it must resolve in the right bucket).
            if state.active is None and last - state.closed_through > rule.baseline_buckets * 4:
                if self._skip_empty(key, state, rule, last - rule.baseline_buckets * 4):
                    continue
            event = self._close(key, state, rule, state.closed_through + 1)
            if event is not None:
                events.append(event)
        self._schedule(state, rule)
        return events

    def _schedule(self, state: _KeyState, rule: SpikeRule) -> None:
        closes_at = (state.closed_through + 2) * rule.bucket_seconds + rule.allowed_lateness_seconds
        self._next_close_at = min(self._next_close_at, closes_at)

    # --- decisions -----------------------------------------------------------------------

    def _baseline(
        self, state: _KeyState, rule: SpikeRule, index: int, known: tuple[float, float, int]
    ) -> tuple[float, float]:
        mean, var, closed_count = known
        if rule.seasonal and closed_count >= HOURS_A_WEEK:
            slot_mean = state.seasonal_mean.get(self._slot(rule, index), mean)
            return slot_mean, max(var, slot_mean)
        if rule.seasonal and closed_count >= HOURS_A_DAY:
            # Until a whole week is known, the hour of the day already carries most of the
            # rhythm of news (a day of history instead of a week).
            slot_mean = state.daily_mean.get(self._slot(rule, index) % HOURS_A_DAY, mean)
            return slot_mean, max(var, slot_mean)
        return mean, var

    @staticmethod
    def _settled(state: _KeyState, rule: SpikeRule, index: int) -> tuple[float, float, int]:
        """The baseline as it was once bucket ``index - 1 - lateness in buckets`` closed.

        That bucket is always closed by the time any article of bucket ``index`` is seen, so
        a decision about an open bucket does not depend on how far the watermark happens to
        be, i.e. on the order articles arrived in (within the allowed lateness).
        """
        lateness_buckets = math.ceil(rule.allowed_lateness_seconds / rule.bucket_seconds)
        offset = state.closed_through - (index - 1 - lateness_buckets)
        if 0 <= offset < len(state.past):
            return state.past[-1 - offset]
        if offset >= state.closed_count:
            return 0.0, 0.0, 0  # before this key's first closed bucket: nothing known
        return state.mean, state.var, state.closed_count

    def _check(
        self, key: str, state: _KeyState, rule: SpikeRule, index: int, bucket: _Bucket
    ) -> SpikeEvent | None:
        count = bucket.count(rule.count_by)
        known = self._settled(state, rule, index)
        mean, var = self._baseline(state, rule, index, known)
        start = index * rule.bucket_seconds
        active = state.active
        if active is not None:
            if not active["escalated"] and count >= active["start_count"] * rule.escalate_factor:
                active["escalated"] = True
                return self._event(key, state, rule, "escalated", index, bucket, mean, var, count)
            return None
        if start < state.cooldown_until:
            return None
        warm = known[2] >= rule.min_history_buckets
        absolute = rule.absolute_threshold is not None and count >= rule.absolute_threshold
        if not (warm or absolute):
            return None
        significant = (
            count >= rule.min_count
            and count >= rule.ratio * max(mean, 1.0)
            and self._z(count, mean, var) >= rule.z_threshold
            and poisson_tail(count, max(mean, 0.5)) <= rule.max_p_value
        )
        if not (significant or absolute):
            return None
        state.active = {"start_index": index, "start_count": count, "escalated": False, "quiet": 0}
        return self._event(key, state, rule, "started", index, bucket, mean, var, count)

    def _close(self, key: str, state: _KeyState, rule: SpikeRule, index: int) -> SpikeEvent | None:
        bucket = state.buckets.pop(index, None) or _Bucket()
        count = bucket.count(rule.count_by)
        # Buckets close in order, so the current baseline is already order-independent here.
        mean, var = self._baseline(state, rule, index, (state.mean, state.var, state.closed_count))
        event = None
        active = state.active
        if active is not None and index > active["start_index"]:
            quiet = count < rule.resolve_ratio * max(mean, 1.0)
            active["quiet"] = active["quiet"] + 1 if quiet else 0
            if active["quiet"] >= rule.resolve_buckets:
                event = self._event(key, state, rule, "resolved", index, bucket, mean, var, count)
                state.active = None
                state.cooldown_until = (index + 1) * rule.bucket_seconds + rule.cooldown_seconds
        if self.on_close is not None:
            self.on_close(key, index * rule.bucket_seconds, count, mean)
        if active is None or index != active.get("start_index"):
            # A spike's own buckets do not raise the baseline it is measured against.
            self._learn(state, rule, index, count)
        state.closed_count += 1
        state.closed_through = index
        state.history.append(count)
        del state.history[: -rule.recent_buckets]
        self._remember(state, rule)
        return event

    @staticmethod
    def _remember(state: _KeyState, rule: SpikeRule) -> None:
        state.past.append((state.mean, state.var, state.closed_count))
        keep = math.ceil(rule.allowed_lateness_seconds / rule.bucket_seconds) + 2
        if len(state.past) > keep:
            del state.past[:-keep]

    def _learn(self, state: _KeyState, rule: SpikeRule, index: int, count: int) -> None:
        if state.closed_count == 0:
            state.mean, state.var = float(count), 0.0
        else:
            alpha = rule.alpha
            diff = count - state.mean
            increment = alpha * diff
            state.mean += increment
            state.var = (1 - alpha) * (state.var + diff * increment)
        if rule.seasonal:
            slot = self._slot(rule, index)
            previous = state.seasonal_mean.get(slot)
            weight = 0.3
            state.seasonal_mean[slot] = (
                float(count) if previous is None else previous + weight * (count - previous)
            )
            hour = slot % HOURS_A_DAY
            previous = state.daily_mean.get(hour)
            state.daily_mean[hour] = (
                float(count) if previous is None else previous + weight * (count - previous)
            )

    def _skip_empty(self, key: str, state: _KeyState, rule: SpikeRule, through: int) -> int:
        """Close empty buckets through ``through`` (stopping at one with articles); how many."""
        skipped = 0
        for index in range(state.closed_through + 1, through + 1):
            if index in state.buckets:
                break
            # Equivalent to closing an empty bucket, without building an event or history.
            if self.on_close is not None:
                self.on_close(key, index * rule.bucket_seconds, 0, state.mean)
            self._learn(state, rule, index, 0)
            state.closed_count += 1
            state.closed_through = index
            skipped += 1
            self._remember(state, rule)
        # The history stays a run of consecutive buckets ending at ``closed_through``.
        if skipped >= rule.recent_buckets:
            state.history[:] = [0] * rule.recent_buckets
        else:
            state.history.extend([0] * skipped)
            del state.history[: -rule.recent_buckets]
        return skipped

    @staticmethod
    def _slot(rule: SpikeRule, index: int) -> int:
        hour = int(index * rule.bucket_seconds // 3600)
        return hour % HOURS_A_WEEK

    @staticmethod
    def _z(count: int, mean: float, var: float) -> float:
        return (count - mean) / math.sqrt(max(var, mean, 1.0))

    def _event(
        self,
        key: str,
        state: _KeyState,
        rule: SpikeRule,
        kind: str,
        index: int,
        bucket: _Bucket,
        mean: float,
        var: float,
        count: int,
    ) -> SpikeEvent:
        start = index * rule.bucket_seconds
        started_at = (state.active or {}).get("start_index", index) * rule.bucket_seconds
        spike_id = "spk_" + hashlib.sha256(f"{key}|{started_at}|{kind}".encode()).hexdigest()[:24]
        # The closed buckets just before this one (this one may still be open), then this one.
        previous = state.history[-(rule.recent_buckets - 1) :] if rule.recent_buckets > 1 else []
        first = state.closed_through - len(previous) + 1
        recent = [
            {"start": (first + i) * rule.bucket_seconds, "count": c} for i, c in enumerate(previous)
        ]
        recent.append({"start": start, "count": count})
        return SpikeEvent(
            spike_id=spike_id,
            topic=key,
            state=kind,
            window_start=start,
            window_end=start + rule.bucket_seconds,
            count=count,
            baseline=round(mean, 3),
            ratio=round(count / max(mean, 1.0), 3),
            score=round(self._z(count, mean, var), 3),
            top_stories=bucket.top_stories(rule.top_stories),
            top_terms=[term for term, _ in bucket.terms.most_common(rule.top_terms)],
            recent_counts=recent,
        )

    # --- introspection and persistence -----------------------------------------------------

    def tracked_keys(self) -> int:
        return len(self._keys)

    def tracked_buckets(self) -> int:
        return sum(len(s.buckets) for s in self._keys.values())

    def baseline(self, key: str) -> float:
        state = self._keys.get(key)
        return state.mean if state else 0.0

    def knows(self, key: str) -> bool:
        return key in self._keys

    def forget(self, key: str) -> None:
        """Drop ``key``'s state (another worker counts it now)."""
        self._keys.pop(key, None)

    def key_state(self, key: str) -> dict[str, Any]:
        return _state_to_dict(self._keys[key])

    def restore_key(self, key: str, raw: dict[str, Any]) -> None:
        state = self._keys[key] = _state_from_dict(raw)
        self._schedule(state, self.rule_for(key))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of all state, for restoring after a restart."""
        return {
            "watermark": self.watermark,
            "late_dropped": self.late_dropped,
            "keys": {key: _state_to_dict(state) for key, state in self._keys.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.watermark = float(data.get("watermark", 0.0))
        self.late_dropped = int(data.get("late_dropped", 0))
        self._keys = {key: _state_from_dict(raw) for key, raw in data.get("keys", {}).items()}
        self._next_close_at = math.inf
        for key, state in self._keys.items():
            self._schedule(state, self.rule_for(key))


def _state_to_dict(state: _KeyState) -> dict[str, Any]:
    return {
        "buckets": {
            str(i): {
                "articles": b.articles,
                "story_ids": sorted(b.story_ids),
                "sources": sorted(b.sources),
                "terms": dict(b.terms),
                "newest": [asdict(s) for s in b.newest],
            }
            for i, b in state.buckets.items()
        },
        "closed_through": state.closed_through,
        "history": list(state.history),
        "closed_count": state.closed_count,
        "past": [list(p) for p in state.past],
        "mean": state.mean,
        "var": state.var,
        "seasonal_mean": {str(k): v for k, v in state.seasonal_mean.items()},
        "daily_mean": {str(k): v for k, v in state.daily_mean.items()},
        "active": state.active,
        "cooldown_until": state.cooldown_until,
    }


def _bucket_from_dict(raw: dict[str, Any]) -> _Bucket:
    if "stories" in raw:  # written before story details were capped: {story_id: details}
        newest = [StoryRef(**details) for details in raw["stories"].values()]
        story_ids = set(raw["stories"])
    else:
        newest = [StoryRef(**details) for details in raw["newest"]]
        story_ids = set(raw["story_ids"])
    return _Bucket(
        articles=raw["articles"],
        story_ids=story_ids,
        sources=set(raw["sources"]),
        terms=Counter(raw["terms"]),
        newest=newest,
    )


def _state_from_dict(raw: dict[str, Any]) -> _KeyState:
    # Older snapshots kept the history as [{"start": epoch, "count": n}, ...].
    history = [h["count"] if isinstance(h, dict) else int(h) for h in raw["history"]]
    return _KeyState(
        buckets={int(i): _bucket_from_dict(b) for i, b in raw["buckets"].items()},
        closed_through=raw["closed_through"],
        history=history,
        closed_count=raw["closed_count"],
        past=[(p[0], p[1], p[2]) for p in raw.get("past", [])],
        mean=raw["mean"],
        var=raw["var"],
        seasonal_mean={int(k): v for k, v in raw["seasonal_mean"].items()},
        daily_mean={int(k): v for k, v in raw.get("daily_mean", {}).items()},
        active=raw["active"],
        cooldown_until=raw["cooldown_until"],
    )
