"""Event-time spike detection per topic or entity, at several bucket widths (pure: no Faust).

Each key (a topic, or an entity such as ``entity:huawei``) is counted in buckets of every width
in ``widths`` at once (default an hour and a day), each width with a baseline of its own. What a
bucket counts is ``count_by``: articles, distinct stories (default, so forty syndicated copies of
one wire story count once) or distinct sources. An article published at exactly 00:00:00 UTC is
taken as carrying only a date: it counts at the widths of a day or more, when the key has one.

A bucket stays open for late articles until the watermark (the newest event time seen, less
``allowed_lateness_seconds``) passes its end; then it closes and its count joins the baseline of
its width. Articles for a bucket already closed are counted as late and change no decision.

Baseline, per width: an exponentially weighted mean and variance of closed buckets
(``ewma_alpha``, default ``2 / (baseline_buckets + 1)``: 24 hours, 24 days), plus optionally a
seasonal profile by hour of week. A spike's first bucket is not learnt, and while a spike runs
its buckets move the mean but not the variance (the next burst is not hidden by this one). A
bucket *qualifies* when its count ``c`` against the baseline mean ``m`` (variance ``v``) is
improbable and above a small floor:

    c >= min_count,  c >= ratio * max(m, 1),  (c - m) / sqrt(max(v, m, 1)) >= z_threshold,
    P(X >= c) <= max_p_value * width / day   for X ~ NegBin(m', max(v, m')) or Poisson(m'),
    m' = max(m, floor)

``max_p_value`` is a significance per day: an hour width, testing 24 buckets a day, holds each
to a 24th of it (not so for the deprecated single ``bucket_seconds``, where it is per bucket).
``floor`` is ``baseline_floor_per_day`` scaled to the width, so an empty history does not make
three stories improbable. The floor adapts: a quiet topic's three or four stories in a day are
improbable, a busy topic needs a real rise, and the negative binomial (default) takes a daily
rhythm's spread from the variance.

Lifecycle, one per key whatever the width: a bucket that qualifies at any width ``started`` a
spike (``width_seconds`` says at which), unless one is running or the key cools down;
``escalated`` once, when a bucket of the start width reaches ``escalate_factor`` x the count at
start, or one of another width does and qualifies; ``resolved`` after ``resolve_buckets``
consecutive closed buckets of the start width below ``resolve_ratio`` x baseline (hysteresis:
the resolve level is below the start level), then no new spike for ``cooldown_seconds``.
Cold start: a width with fewer than ``min_history_buckets`` closed buckets starts nothing unless
``c >= absolute_threshold`` (when set).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

log = logging.getLogger(__name__)

CountBy = Literal["articles", "stories", "sources"]
Tail = Literal["poisson", "negbin"]
HOURS_A_DAY = 24
HOURS_A_WEEK = 168
DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class SpikeRule:
    # Defaults are the ``medium`` sensitivity (newsalert/settings.py SENSITIVITY).
    widths: tuple[float, ...] = (3600.0, DAY_SECONDS)
    # Deprecated: one width only. When set it replaces ``widths`` (older configs).
    bucket_seconds: float | None = None
    count_by: CountBy = "stories"
    allowed_lateness_seconds: float = 7200.0
    baseline_buckets: int = 24
    ewma_alpha: float | None = None  # default 2 / (baseline_buckets + 1)
    seasonal: bool = False
    min_count: int = 3
    ratio: float = 3.0
    z_threshold: float = 2.0
    max_p_value: float = 0.03  # per day: a width of an hour holds each bucket to a 24th
    tail: Tail = "negbin"
    baseline_floor_per_day: float = 0.1
    min_history_buckets: int = 24
    absolute_threshold: int | None = None
    escalate_factor: float = 2.0
    resolve_ratio: float = 1.5
    resolve_buckets: int = 2
    cooldown_seconds: float = 6 * 3600.0
    top_stories: int = 5
    top_terms: int = 10
    recent_buckets: int = 24
    # Set per width by ``at_width``: the share of ``max_p_value`` one bucket is held to.
    p_value_scale: float = 1.0

    @property
    def alpha(self) -> float:
        return self.ewma_alpha or 2.0 / (self.baseline_buckets + 1)

    @property
    def bucket_widths(self) -> tuple[float, ...]:
        if self.bucket_seconds is not None:
            return (float(self.bucket_seconds),)
        return tuple(sorted({float(w) for w in self.widths}))

    def at_width(self, width: float) -> SpikeRule:
        """This rule for the buckets of one width (``bucket_seconds`` is then that width).

        ``max_p_value`` is a significance per day: a narrower width tests more buckets a day,
        and each is held to its share (an hour: a 24th), so an hour width is no noisier than a
        day width. The deprecated single ``bucket_seconds`` keeps its meaning of per bucket."""
        scale = 1.0 if self.bucket_seconds is not None else min(1.0, width / DAY_SECONDS)
        return replace(self, bucket_seconds=width, widths=(width,), p_value_scale=scale)


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
    width_seconds: float = 3600.0  # the bucket width this event was seen at


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
class _Lane:
    """One width of one key: its open buckets and its baseline."""

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


@dataclass(slots=True)
class _KeyState:
    lanes: dict[float, _Lane] = field(default_factory=dict)  # by width in seconds
    # The running spike: {width, start_index (at that width), start_count, escalated, quiet}.
    active: dict[str, Any] | None = None
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


def negbin_tail(count: int, mean: float, var: float) -> float:
    """P(X >= count) for a negative binomial of this mean and variance (Poisson when the
    variance is not above the mean): bursty topics' counts are overdispersed."""
    if count <= 0:
        return 1.0
    if var <= mean * 1.001:
        return poisson_tail(count, mean)
    size = mean * mean / (var - mean)  # r
    success = size / (size + mean)  # p
    log_term = size * math.log(success)  # log P(X = 0)
    below = 0.0
    for k in range(count):
        if k:
            log_term += math.log(size + k - 1) - math.log(k) + math.log(1 - success)
        below += math.exp(log_term)
    return max(0.0, 1.0 - below)


def tail_probability(rule: SpikeRule, count: int, mean: float, var: float) -> float:
    """How improbable ``count`` is under the baseline of ``rule``'s width."""
    floor = rule.baseline_floor_per_day * (rule.bucket_seconds or DAY_SECONDS) / DAY_SECONDS
    expected = max(mean, floor, 1e-9)
    if rule.tail == "negbin":
        return negbin_tail(count, expected, max(var, expected))
    return poisson_tail(count, expected)


def _date_only(published: float) -> bool:
    return published % DAY_SECONDS == 0


class SpikeDetector:
    """Counts per key, width and bucket, keeps baselines, emits spike lifecycle events."""

    def __init__(self, rule: SpikeRule, rules: dict[str, SpikeRule] | None = None) -> None:
        self.rule = rule
        self.rules = rules or {}
        self._lane_rules: dict[str, dict[float, SpikeRule]] = {}
        self._keys: dict[str, _KeyState] = {}
        self._next_close_at = math.inf
        self.watermark = 0.0
        self.late_dropped = 0
        # Optional observer of closed buckets: (key, width, bucket start, count, baseline before).
        self.on_close: Callable[[str, float, float, int, float], None] | None = None

    def rule_for(self, key: str) -> SpikeRule:
        return self.rules.get(key, self.rule)

    def lane_rules(self, key: str) -> dict[float, SpikeRule]:
        """The key's rule at each of its widths, narrowest first."""
        found = self._lane_rules.get(key)
        if found is None:
            rule = self.rule_for(key)
            found = self._lane_rules[key] = {w: rule.at_width(w) for w in rule.bucket_widths}
        return found

    # --- input ---------------------------------------------------------------------------

    def observe(self, key: str, story: StoryRef, terms: list[str]) -> list[SpikeEvent]:
        """Count ``story`` under ``key`` at each width; return the events caused, oldest first.

        The article's time first moves the watermark, which may close buckets of any key
        (and so resolve spikes); then the article's own buckets are checked.
        """
        rules = self.lane_rules(key)
        events = self.advance(story.published)
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
        widest = max(rules)
        date_only = widest >= DAY_SECONDS and _date_only(story.published)
        late = False
        for width, rule in rules.items():
            lane = state.lanes.get(width)
            if lane is None:
                # A new lane's buckets are open from where the watermark allows, as for any
                # key, so an article too late for the others is too late for it as well.
                open_from = int((self.watermark - rule.allowed_lateness_seconds) // width)
                lane = state.lanes[width] = _Lane(closed_through=open_from - 1)
                self._schedule(lane, rule)
            if date_only and width < DAY_SECONDS:
                continue  # a date says nothing about the hour
            index = int(story.published // width)
            if index <= lane.closed_through:
                late = True
                continue
            bucket = lane.buckets.get(index)
            if bucket is None:
                bucket = lane.buckets[index] = _Bucket()
            bucket.add(story, terms, rule.top_stories)
            event = self._check(key, state, lane, rule, index, bucket)
            if event is not None:
                events.append(event)
        if late:
            self.late_dropped += 1
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
            for width, rule in self.lane_rules(key).items():
                lane = state.lanes.get(width)
                if lane is None:
                    continue
                # A bucket closes once the watermark is past its end plus the allowed lateness.
                last = int((self.watermark - rule.allowed_lateness_seconds) // width) - 1
                events.extend(self._close_through(key, state, lane, rule, last))
        return events

    def flush(self) -> list[SpikeEvent]:
        """Close every open bucket up to the watermark's own: the input has ended (backtest).

        Spikes still running at the end stay active; no empty future buckets are invented to
        resolve them.
        """
        self._next_close_at = math.inf
        events: list[SpikeEvent] = []
        for key, state in self._keys.items():
            for width, rule in self.lane_rules(key).items():
                lane = state.lanes.get(width)
                if lane is None:
                    continue
                last = max([int(self.watermark // width), *lane.buckets])
                events.extend(self._close_through(key, state, lane, rule, last))
        return events

    def _close_through(
        self, key: str, state: _KeyState, lane: _Lane, rule: SpikeRule, last: int
    ) -> list[SpikeEvent]:
        events = []
        while lane.closed_through < last:
            # Long silences: learn the empty buckets in bulk, keep a few to close one by one
            # (not while a spike is active: it must resolve in the right bucket).
            if state.active is None and last - lane.closed_through > rule.baseline_buckets * 4:
                if self._skip_empty(key, lane, rule, last - rule.baseline_buckets * 4):
                    continue
            event = self._close(key, state, lane, rule, lane.closed_through + 1)
            if event is not None:
                events.append(event)
        self._schedule(lane, rule)
        return events

    def _schedule(self, lane: _Lane, rule: SpikeRule) -> None:
        width = rule.bucket_seconds or DAY_SECONDS
        closes_at = (lane.closed_through + 2) * width + rule.allowed_lateness_seconds
        self._next_close_at = min(self._next_close_at, closes_at)

    # --- decisions -----------------------------------------------------------------------

    def _baseline(
        self, lane: _Lane, rule: SpikeRule, index: int, known: tuple[float, float, int]
    ) -> tuple[float, float]:
        mean, var, closed_count = known
        if rule.seasonal and closed_count >= HOURS_A_WEEK:
            slot_mean = lane.seasonal_mean.get(self._slot(rule, index), mean)
            return slot_mean, max(var, slot_mean)
        if rule.seasonal and closed_count >= HOURS_A_DAY:
            # Until a whole week is known, the hour of the day already carries most of the
            # rhythm of news (a day of history instead of a week).
            slot_mean = lane.daily_mean.get(self._slot(rule, index) % HOURS_A_DAY, mean)
            return slot_mean, max(var, slot_mean)
        return mean, var

    @staticmethod
    def _settled(lane: _Lane, rule: SpikeRule, index: int) -> tuple[float, float, int]:
        """The baseline as it was once bucket ``index - 1 - lateness in buckets`` closed.

        That bucket is always closed by the time any article of bucket ``index`` is seen, so
        a decision about an open bucket does not depend on how far the watermark happens to
        be, i.e. on the order articles arrived in (within the allowed lateness).
        """
        width = rule.bucket_seconds or DAY_SECONDS
        lateness_buckets = math.ceil(rule.allowed_lateness_seconds / width)
        offset = lane.closed_through - (index - 1 - lateness_buckets)
        if 0 <= offset < len(lane.past):
            return lane.past[-1 - offset]
        if offset >= lane.closed_count:
            return 0.0, 0.0, 0  # before this lane's first closed bucket: nothing known
        return lane.mean, lane.var, lane.closed_count

    def qualifies(self, rule: SpikeRule, count: int, mean: float, var: float, closed: int) -> bool:
        """Whether ``count`` in one bucket is a burst against its width's baseline."""
        if rule.absolute_threshold is not None and count >= rule.absolute_threshold:
            return True
        if closed < rule.min_history_buckets:
            return False
        return (
            count >= rule.min_count
            and count >= rule.ratio * max(mean, 1.0)
            and self._z(count, mean, var) >= rule.z_threshold
            and tail_probability(rule, count, mean, var) <= rule.max_p_value * rule.p_value_scale
        )

    def _check(
        self, key: str, state: _KeyState, lane: _Lane, rule: SpikeRule, index: int, bucket: _Bucket
    ) -> SpikeEvent | None:
        count = bucket.count(rule.count_by)
        width = rule.bucket_seconds or DAY_SECONDS
        known = self._settled(lane, rule, index)
        mean, var = self._baseline(lane, rule, index, known)
        active = state.active
        if active is not None:
            if active["escalated"] or count < active["start_count"] * rule.escalate_factor:
                return None
            same_width = active["width"] == width
            if same_width or self.qualifies(rule, count, mean, var, known[2]):
                active["escalated"] = True
                return self._event(key, state, lane, rule, "escalated", index, bucket, mean, var)
            return None
        if index * width < state.cooldown_until:
            return None
        if not self.qualifies(rule, count, mean, var, known[2]):
            return None
        state.active = {
            "width": width,
            "start_index": index,
            "start_count": count,
            "escalated": False,
            "quiet": 0,
        }
        return self._event(key, state, lane, rule, "started", index, bucket, mean, var)

    def _close(
        self, key: str, state: _KeyState, lane: _Lane, rule: SpikeRule, index: int
    ) -> SpikeEvent | None:
        bucket = lane.buckets.pop(index, None) or _Bucket()
        count = bucket.count(rule.count_by)
        width = rule.bucket_seconds or DAY_SECONDS
        # Buckets close in order, so the current baseline is already order-independent here.
        mean, var = self._baseline(lane, rule, index, (lane.mean, lane.var, lane.closed_count))
        event = None
        active = state.active
        own = active is not None and active["width"] == width
        if own and index > active["start_index"]:  # type: ignore[index]
            quiet = count < rule.resolve_ratio * max(mean, 1.0)
            active["quiet"] = active["quiet"] + 1 if quiet else 0  # type: ignore[index]
            if active["quiet"] >= rule.resolve_buckets:  # type: ignore[index]
                event = self._event(key, state, lane, rule, "resolved", index, bucket, mean, var)
                state.active = None
                state.cooldown_until = (index + 1) * width + rule.cooldown_seconds
        if self.on_close is not None:
            self.on_close(key, width, index * width, count, mean)
        if not own or index != active.get("start_index"):  # type: ignore[union-attr]
            # A spike's own first bucket does not raise the baseline it is measured against,
            # and while a spike runs its buckets move the mean (a lasting rise becomes the new
            # level) but not the variance (the next burst is not hidden by this one).
            self._learn(lane, rule, index, count, spread=active is None)
        lane.closed_count += 1
        lane.closed_through = index
        lane.history.append(count)
        del lane.history[: -rule.recent_buckets]
        self._remember(lane, rule)
        return event

    @staticmethod
    def _remember(lane: _Lane, rule: SpikeRule) -> None:
        lane.past.append((lane.mean, lane.var, lane.closed_count))
        width = rule.bucket_seconds or DAY_SECONDS
        keep = math.ceil(rule.allowed_lateness_seconds / width) + 2
        if len(lane.past) > keep:
            del lane.past[:-keep]

    def _learn(
        self, lane: _Lane, rule: SpikeRule, index: int, count: int, spread: bool = True
    ) -> None:
        if lane.closed_count == 0:
            lane.mean, lane.var = float(count), 0.0
        else:
            alpha = rule.alpha
            diff = count - lane.mean
            increment = alpha * diff
            lane.mean += increment
            if spread:
                lane.var = (1 - alpha) * (lane.var + diff * increment)
        if rule.seasonal:
            slot = self._slot(rule, index)
            previous = lane.seasonal_mean.get(slot)
            weight = 0.3
            lane.seasonal_mean[slot] = (
                float(count) if previous is None else previous + weight * (count - previous)
            )
            hour = slot % HOURS_A_DAY
            previous = lane.daily_mean.get(hour)
            lane.daily_mean[hour] = (
                float(count) if previous is None else previous + weight * (count - previous)
            )

    def _skip_empty(self, key: str, lane: _Lane, rule: SpikeRule, through: int) -> int:
        """Close empty buckets through ``through`` (stopping at one with articles); how many."""
        skipped = 0
        width = rule.bucket_seconds or DAY_SECONDS
        for index in range(lane.closed_through + 1, through + 1):
            if index in lane.buckets:
                break
            # Equivalent to closing an empty bucket, without building an event or history.
            if self.on_close is not None:
                self.on_close(key, width, index * width, 0, lane.mean)
            self._learn(lane, rule, index, 0)
            lane.closed_count += 1
            lane.closed_through = index
            skipped += 1
            self._remember(lane, rule)
        # The history stays a run of consecutive buckets ending at ``closed_through``.
        if skipped >= rule.recent_buckets:
            lane.history[:] = [0] * rule.recent_buckets
        else:
            lane.history.extend([0] * skipped)
            del lane.history[: -rule.recent_buckets]
        return skipped

    @staticmethod
    def _slot(rule: SpikeRule, index: int) -> int:
        hour = int(index * (rule.bucket_seconds or DAY_SECONDS) // 3600)
        return hour % HOURS_A_WEEK

    @staticmethod
    def _z(count: int, mean: float, var: float) -> float:
        return (count - mean) / math.sqrt(max(var, mean, 1.0))

    def _event(
        self,
        key: str,
        state: _KeyState,
        lane: _Lane,
        rule: SpikeRule,
        kind: str,
        index: int,
        bucket: _Bucket,
        mean: float,
        var: float,
    ) -> SpikeEvent:
        count = bucket.count(rule.count_by)
        width = rule.bucket_seconds or DAY_SECONDS
        start = index * width
        active = state.active or {"width": width, "start_index": index}
        started_at = active["start_index"] * active["width"]
        spike_id = "spk_" + hashlib.sha256(f"{key}|{started_at}|{kind}".encode()).hexdigest()[:24]
        # The closed buckets just before this one (this one may still be open), then this one.
        previous = lane.history[-(rule.recent_buckets - 1) :] if rule.recent_buckets > 1 else []
        first = lane.closed_through - len(previous) + 1
        recent = [{"start": (first + i) * width, "count": c} for i, c in enumerate(previous)]
        recent.append({"start": start, "count": count})
        return SpikeEvent(
            spike_id=spike_id,
            topic=key,
            state=kind,
            window_start=start,
            window_end=start + width,
            count=count,
            baseline=round(mean, 3),
            ratio=round(count / max(mean, 1.0), 3),
            score=round(self._z(count, mean, var), 3),
            top_stories=bucket.top_stories(rule.top_stories),
            top_terms=[term for term, _ in bucket.terms.most_common(rule.top_terms)],
            recent_counts=recent,
            width_seconds=width,
        )

    # --- introspection and persistence -----------------------------------------------------

    def tracked_keys(self) -> int:
        return len(self._keys)

    def tracked_buckets(self) -> int:
        return sum(len(lane.buckets) for s in self._keys.values() for lane in s.lanes.values())

    def baseline(self, key: str, width: float | None = None) -> float:
        """The key's baseline mean at ``width`` (default: its narrowest width)."""
        state = self._keys.get(key)
        if state is None or not state.lanes:
            return 0.0
        lane = state.lanes.get(width if width is not None else min(self.lane_rules(key)))
        return lane.mean if lane else 0.0

    def knows(self, key: str) -> bool:
        return key in self._keys

    def forget(self, key: str) -> None:
        """Drop ``key``'s state (another worker counts it now)."""
        self._keys.pop(key, None)

    def key_state(self, key: str) -> dict[str, Any]:
        return _state_to_dict(self._keys[key])

    def restore_key(self, key: str, raw: dict[str, Any]) -> None:
        state = self._keys[key] = self._state_from_dict(key, raw)
        for width, rule in self.lane_rules(key).items():
            if width in state.lanes:
                self._schedule(state.lanes[width], rule)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of all state, for restoring after a restart."""
        return {
            "version": 2,
            "watermark": self.watermark,
            "late_dropped": self.late_dropped,
            "keys": {key: _state_to_dict(state) for key, state in self._keys.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.watermark = float(data.get("watermark", 0.0))
        self.late_dropped = int(data.get("late_dropped", 0))
        self._keys = {
            key: self._state_from_dict(key, raw) for key, raw in data.get("keys", {}).items()
        }
        self._next_close_at = math.inf
        for key, state in self._keys.items():
            for width, rule in self.lane_rules(key).items():
                if width in state.lanes:
                    self._schedule(state.lanes[width], rule)

    def _state_from_dict(self, key: str, raw: dict[str, Any]) -> _KeyState:
        widths = self.lane_rules(key)
        if "lanes" in raw:
            lanes = {float(w): _lane_from_dict(r) for w, r in raw["lanes"].items()}
            # A width no longer configured is dropped; a new one starts empty (at first use).
            lanes = {w: lane for w, lane in lanes.items() if w in widths}
            active = raw["active"]
            if active is not None and active.get("width") not in lanes:
                active = None  # its width is gone: nothing could resolve it
            return _KeyState(lanes=lanes, active=active, cooldown_until=raw["cooldown_until"])
        # Written before widths: one lane, of the width that matches its bucket indexes.
        lane = _lane_from_dict(raw)
        width = self._old_width(lane, widths)
        active = raw["active"]
        if active is not None:
            active = {"width": width, **active}
        log.warning(
            "spike state of %s is from before several widths: restored as its %g s buckets "
            "(the other widths start with an empty baseline)",
            key,
            width,
        )
        return _KeyState(lanes={width: lane}, active=active, cooldown_until=raw["cooldown_until"])

    def _old_width(self, lane: _Lane, widths: dict[float, SpikeRule]) -> float:
        """Which configured width a single-width state's bucket indexes were counted at."""
        reference = self.watermark
        stories = [s for b in lane.buckets.values() for s in b.newest]
        if stories:
            reference = max(s.published for s in stories)
        if reference <= 0:
            return min(widths)
        return min(widths, key=lambda w: abs(lane.closed_through * w - reference))


def _lane_to_dict(lane: _Lane) -> dict[str, Any]:
    return {
        "buckets": {
            str(i): {
                "articles": b.articles,
                "story_ids": sorted(b.story_ids),
                "sources": sorted(b.sources),
                "terms": dict(b.terms),
                "newest": [asdict(s) for s in b.newest],
            }
            for i, b in lane.buckets.items()
        },
        "closed_through": lane.closed_through,
        "history": list(lane.history),
        "closed_count": lane.closed_count,
        "past": [list(p) for p in lane.past],
        "mean": lane.mean,
        "var": lane.var,
        "seasonal_mean": {str(k): v for k, v in lane.seasonal_mean.items()},
        "daily_mean": {str(k): v for k, v in lane.daily_mean.items()},
    }


def _state_to_dict(state: _KeyState) -> dict[str, Any]:
    return {
        "lanes": {f"{w:g}": _lane_to_dict(lane) for w, lane in state.lanes.items()},
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


def _lane_from_dict(raw: dict[str, Any]) -> _Lane:
    # Older snapshots kept the history as [{"start": epoch, "count": n}, ...].
    history = [h["count"] if isinstance(h, dict) else int(h) for h in raw["history"]]
    return _Lane(
        buckets={int(i): _bucket_from_dict(b) for i, b in raw["buckets"].items()},
        closed_through=raw["closed_through"],
        history=history,
        closed_count=raw["closed_count"],
        past=[(p[0], p[1], p[2]) for p in raw.get("past", [])],
        mean=raw["mean"],
        var=raw["var"],
        seasonal_mean={int(k): v for k, v in raw["seasonal_mean"].items()},
        daily_mean={int(k): v for k, v in raw.get("daily_mean", {}).items()},
    )
