"""Prometheus metrics of the connectors. Labels have bounded values only: never a feed URL."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FEED_FETCHES = Counter(
    "newsalert_feed_fetches_total", "Feed polls by outcome.", ["outcome"]
)  # fetched | not_modified | error
FEED_FETCH_ERRORS = Counter(
    "newsalert_feed_fetch_errors_total", "Failed feed polls by kind of failure.", ["kind"]
)
ARTICLES_FETCHED = Counter(
    "newsalert_articles_fetched_total", "Entries found in fetched feeds, before de-duplication."
)
ARTICLES_PUBLISHED = Counter(
    "newsalert_articles_published_total", "Entries published to the raw topic.", ["kind"]
)  # new | update
FEED_ENTRIES_DROPPED = Counter(
    "newsalert_feed_entries_dropped_total",
    "Entries of fetched feed documents left out, by reason.",
    ["reason"],
)  # cap (the oldest beyond max_entries_per_feed)
FEED_FETCH_DURATION = Histogram(
    "newsalert_feed_fetch_duration_seconds",
    "Time to poll one feed: fetch and parse.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)
FEED_FETCHED_BYTES = Counter(
    "newsalert_feed_fetched_bytes_total", "Body bytes received from feeds, as transferred."
)
FULL_TEXT_FETCHES = Counter(
    "newsalert_full_text_fetches_total",
    "Article pages fetched for full text, by outcome.",
    ["outcome"],
)  # extracted | no_gain | fetch_error | unavailable
FEED_PARSES = Counter(
    "newsalert_feed_parses_total",
    "Fetched feed documents parsed, by the parser that read them.",
    ["parser"],
)  # lxml | feedparser (what lxml refused) | json | none (not a feed at all)
FEED_PARSE_DURATION = Histogram(
    "newsalert_feed_parse_duration_seconds",
    "CPU-bound time to parse one fetched feed document.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
FEEDS = Gauge(
    "newsalert_feeds",
    "Feeds by health: ok (last poll succeeded), failing (failing for less than a day), "
    "unhealthy (failing for a day or more); every connectors process shows the whole feed list",
    ["state"],
)


FETCH_OUTCOMES = ("fetched", "not_modified", "error")
# FetchResult.error_kind: the fetcher's FetchError kinds, then the poller's and file sources'.
FETCH_ERROR_KINDS = (
    "connect",
    "encoding",
    "http",
    "http_status",
    "redirect",
    "redirect_loop",
    "too_many_redirects",
    "ssrf",
    "timeout",
    "too_large",
    "file",
    "parse",
    "publish",
    "internal",
)


def initialise() -> None:
    """Every label value known in advance gets its series at 0 from the start: a dashboard
    query or a rule finds it before the first event, and increase() sees the first one."""
    for outcome in FETCH_OUTCOMES:
        FEED_FETCHES.labels(outcome)
    for kind in FETCH_ERROR_KINDS:
        FEED_FETCH_ERRORS.labels(kind)
    for kind in ("new", "update"):
        ARTICLES_PUBLISHED.labels(kind)
    FEED_ENTRIES_DROPPED.labels("cap")
