"""When each feed is due next: pure arithmetic, no I/O."""

from __future__ import annotations

import hashlib

JITTER_FRACTION = 0.1  # +-10% of the interval, fixed per feed, so feeds do not fire together
MAX_ERROR_BACKOFF_SECONDS = 6 * 3600.0
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
UNHEALTHY_AFTER_SECONDS = 24 * 3600.0  # failing for this long marks a feed unhealthy


def jitter_factor(feed_url: str) -> float:
    """A stable factor in [1 - JITTER_FRACTION, 1 + JITTER_FRACTION] derived from the URL."""
    digest = hashlib.sha256(feed_url.encode("utf-8")).digest()
    unit = int.from_bytes(digest[:4], "big") / 0xFFFFFFFF
    return 1.0 - JITTER_FRACTION + 2 * JITTER_FRACTION * unit


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
