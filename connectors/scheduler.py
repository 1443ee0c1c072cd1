"""When each feed is due next: pure arithmetic, no I/O.

A feed's interval starts from its configured one (or the default) and adapts to how often the
feed was seen to change, within bounds; the feed's own ``ttl`` / ``sy:updatePeriod`` is honoured
as a floor up to a cap. Jitter, error backoff and Retry-After are applied on top.
"""

from __future__ import annotations

import hashlib

JITTER_FRACTION = 0.1  # +-10% of the interval, fixed per feed, so feeds do not fire together
MAX_ERROR_BACKOFF_SECONDS = 6 * 3600.0
PUBLISH_RETRY_SECONDS = 30.0  # a feed whose entries the broker did not take is fetched again
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
UNHEALTHY_AFTER_SECONDS = 24 * 3600.0  # failing for this long marks a feed unhealthy

# A feed's ttl / sy:updatePeriod may slow polling down, but never below one poll in this long:
# a news feed that claims to update daily still gets an hourly look.
MAX_FEED_HINT_SECONDS = 6 * 3600.0
# Adaptation stays within these factors of the configured interval ...
ADAPTIVE_MIN_FACTOR = 0.25
ADAPTIVE_MAX_FACTOR = 8.0
# ... and never polls more often than this unless the configured interval itself is shorter.
ADAPTIVE_MIN_SECONDS = 60.0
ADAPTIVE_MAX_SECONDS = 24 * 3600.0
CHANGE_GAP_SMOOTHING = 0.3  # weight of the newest gap between changes in the running estimate

_SY_PERIOD_SECONDS = {
    "hourly": 3600.0,
    "daily": 86400.0,
    "weekly": 7 * 86400.0,
    "monthly": 30 * 86400.0,
    "yearly": 365 * 86400.0,
}


def jitter_factor(feed_url: str) -> float:
    """A stable factor in [1 - JITTER_FRACTION, 1 + JITTER_FRACTION] derived from the URL."""
    digest = hashlib.sha256(feed_url.encode("utf-8")).digest()
    unit = int.from_bytes(digest[:4], "big") / 0xFFFFFFFF
    return 1.0 - JITTER_FRACTION + 2 * JITTER_FRACTION * unit


def feed_hint_seconds(
    ttl: str | None, update_period: str | None, update_frequency: str | None
) -> float | None:
    """How long the feed says it stays fresh: RSS ``ttl`` (minutes), else the syndication
    module's ``updatePeriod`` divided by ``updateFrequency``. None when absent or nonsense."""
    if ttl is not None:
        try:
            minutes = float(ttl.strip())
        except ValueError:
            minutes = 0.0
        if 0 < minutes < 1e7:
            return minutes * 60.0
    if update_period is not None:
        period = _SY_PERIOD_SECONDS.get(update_period.strip().lower())
        if period is None:
            return None
        try:
            frequency = float((update_frequency or "1").strip())
        except ValueError:
            frequency = 1.0
        if frequency <= 0 or frequency != frequency:
            frequency = 1.0
        return period / frequency
    return None


def next_change_gap(
    previous_gap_seconds: float | None, last_change_at: float | None, now: float
) -> float | None:
    """The running estimate of seconds between changes, after a change seen at ``now``."""
    if last_change_at is None or now <= last_change_at:
        return previous_gap_seconds
    gap = now - last_change_at
    if previous_gap_seconds is None:
        return gap
    return (1 - CHANGE_GAP_SMOOTHING) * previous_gap_seconds + CHANGE_GAP_SMOOTHING * gap


def adaptive_interval(
    *,
    base_seconds: float,
    change_gap_seconds: float | None,
    last_change_at: float | None,
    now: float,
) -> float:
    """Half the time the feed usually takes to change (so a change waits at most about half its
    period), stretched while the feed has been quiet longer than usual, within bounds of the
    configured interval. Without two observed changes there is nothing to adapt to: the base."""
    if change_gap_seconds is None:
        return base_seconds
    estimate = change_gap_seconds
    if last_change_at is not None:
        estimate = max(estimate, now - last_change_at)
    low = max(base_seconds * ADAPTIVE_MIN_FACTOR, min(base_seconds, ADAPTIVE_MIN_SECONDS))
    high = max(min(base_seconds * ADAPTIVE_MAX_FACTOR, ADAPTIVE_MAX_SECONDS), base_seconds)
    return min(max(estimate / 2, low), high)


def effective_interval(adaptive_seconds: float, hint_seconds: float | None) -> float:
    """The adaptive interval, raised to the feed's own freshness hint up to the hint cap."""
    if hint_seconds is None:
        return adaptive_seconds
    return max(adaptive_seconds, min(hint_seconds, MAX_FEED_HINT_SECONDS))


def next_poll_at(
    *,
    now: float,
    interval_seconds: float,
    feed_url: str,
    consecutive_errors: int = 0,
    retry_after_seconds: float | None = None,
) -> float:
    """The next poll time. Errors back off exponentially from the interval, capped; a server's
    Retry-After is honoured when it asks for longer (up to a day)."""
    delay = interval_seconds * jitter_factor(feed_url)
    if consecutive_errors > 0:
        backoff = interval_seconds * 2 ** min(consecutive_errors - 1, 30)
        delay = min(max(delay, backoff), max(MAX_ERROR_BACKOFF_SECONDS, interval_seconds))
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, MAX_RETRY_AFTER_SECONDS))
    return now + delay
