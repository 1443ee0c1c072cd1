"""Records that cross a process boundary (Kafka topics). Each carries a ``version``.

Timestamps are UTC epoch seconds (floats) so that event-time arithmetic is plain numbers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Any, TypeVar

import faust
import orjson

RAW_ARTICLE_VERSION = 1
ARTICLE_VERSION = 1
SPIKE_VERSION = 1
DEAD_LETTER_VERSION = 1
PREPARED_VERSION = 1

R = TypeVar("R", bound=faust.Record)


class RawArticle(faust.Record, serializer="json", include_metadata=False):
    """An entry as a connector saw it: keyed by ``article_id`` on the raw topic."""

    article_id: str
    url: str | None
    title: str
    body: str  # HTML or text as the feed carried it
    source: str | None
    feed_url: str | None
    published: float  # event time, UTC epoch seconds
    published_is_fetch_time: bool = False
    fetched_at: float = 0.0
    is_update: bool = False
    language: str | None = None
    version: int = RAW_ARTICLE_VERSION


def encode_prepared(articles: list[dict[str, Any]], max_bytes: int = 512 * 1024) -> Iterator[bytes]:
    """Prepared articles (``ArticleProcessor.prepare``: the article cleaned and classified,
    its duplicate digest and story sketch) as messages of the prepared topic: one JSON object
    ``{"version": 1, "articles": [...]}`` per message, each under ``max_bytes`` unless one
    article alone is larger. A batch crosses in a few messages, not one per article: the
    story stage reads them all from one partition."""
    head, tail = b'{"version":%d,"articles":[' % PREPARED_VERSION, b"]}"
    empty = len(head) + len(tail)
    parts: list[bytes] = []
    size = empty
    for article in articles:
        part = orjson.dumps(article)
        if parts and size + 1 + len(part) > max_bytes:
            yield head + b",".join(parts) + tail
            parts, size = [], empty
        size += len(part) + (1 if parts else 0)
        parts.append(part)
    if parts:
        yield head + b",".join(parts) + tail


def decode_prepared(data: bytes) -> list[dict[str, Any]]:
    """The articles of one prepared-topic message; ValueError for one this code cannot read."""
    decoded = orjson.loads(data)
    if not isinstance(decoded, dict) or decoded.get("version") != PREPARED_VERSION:
        raise ValueError(f"not a prepared-articles message of version {PREPARED_VERSION}")
    articles = decoded["articles"]
    if not isinstance(articles, list):
        raise ValueError("prepared-articles message without a list of articles")
    return articles


class Article(faust.Record, serializer="json", include_metadata=False):
    """A cleaned, de-duplicated, classified article.

    ``topics`` maps topic name to ``{"score": float, "terms": [{"term", "field", "start", "end"}]}``
    so that every label can say why it was given.
    """

    article_id: str
    url: str | None
    title: str
    text: str
    source: str | None
    published: float
    story_id: str
    topics: dict[str, Any]
    language: str | None = None
    is_update: bool = False
    # When a connector fetched it (0: not known), for the end-to-end latency metrics. Added
    # without a new version: optional, and readers of either keep fields they do not know.
    fetched_at: float = 0.0
    version: int = ARTICLE_VERSION


class TopicHit(faust.Record, serializer="json", include_metadata=False):
    """One article counted under one key (a topic, or ``entity:<name>``); keyed by ``key`` so
    that each key's counts and baseline live in one partition."""

    key: str
    article_id: str
    story_id: str
    title: str
    url: str | None
    source: str | None
    published: float
    terms: list[str]
    fetched_at: float = 0.0  # as on Article
    version: int = 1


class Spike(faust.Record, serializer="json", include_metadata=False):
    """A spike event: everything an alert needs to explain itself."""

    spike_id: str
    topic: str
    state: str  # started | escalated | resolved
    window_start: float
    window_end: float
    count: int
    baseline: float
    ratio: float
    score: float
    detected_at: float
    top_stories: list[dict[str, Any]]  # {article_id, title, url, source, published}
    top_terms: list[str]
    recent_counts: list[dict[str, Any]]  # {"start": epoch, "count": int}, oldest first
    version: int = SPIKE_VERSION
    # The bucket width it was seen at; None in events from before several widths.
    width_seconds: float | None = None


class DeadLetter(faust.Record, serializer="json", include_metadata=False):
    """A record an agent could never process, with its error, on the dead-letter topic.

    ``key`` and ``value`` are the original bytes: as text when they are UTF-8
    (``*_encoding`` ``"utf-8"``), else base64 (``"base64"``); None when the record had none.
    """

    stage: str  # the agent: process-articles, assign-stories, detect-spikes, alert
    topic: str  # where the record was read
    partition: int
    offset: int
    key: str | None
    key_encoding: str
    value: str | None
    value_encoding: str
    error: str  # "Type: message", on one line
    failed_at: float  # UTC epoch seconds
    version: int = DEAD_LETTER_VERSION

    @classmethod
    def of(cls, stage: str, message: Any, error: BaseException, now: float) -> DeadLetter:
        """The dead letter of ``message`` (a Kafka message: topic, partition, offset, key and
        value bytes) that ``stage`` failed on with ``error``."""
        key, key_encoding = as_text(message.key)
        value, value_encoding = as_text(message.value)
        return cls(
            stage=stage,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=key,
            key_encoding=key_encoding,
            value=value,
            value_encoding=value_encoding,
            error=error_line(error),
            failed_at=now,
        )

    def original_key(self) -> bytes | None:
        return as_bytes(self.key, self.key_encoding)

    def original_value(self) -> bytes | None:
        return as_bytes(self.value, self.value_encoding)


class UndecodableRecord(ValueError):
    """A payload that is not the record its topic carries: it can never be processed."""


def decode(record_type: type[R], value: bytes | None) -> R:
    """The record in ``value`` (JSON), or UndecodableRecord saying why not. Agents read their
    topics as bytes and decode here, so that a bad payload reaches them (and the dead-letter
    topic) instead of stopping the stream inside Faust's decoder."""
    return record_type.from_data(decode_fields(record_type, value))


def decode_fields(record_type: type[faust.Record], value: bytes | None) -> dict[str, Any]:
    """``decode`` without building the record: its fields as a dict, defaults filled in. For
    the per-article path, where a Faust record costs more than the JSON it is read from."""
    if value is None:
        raise UndecodableRecord("no value (a tombstone)")
    try:
        data = orjson.loads(value)
    except ValueError as exc:  # orjson.JSONDecodeError, also for bytes that are not UTF-8
        raise UndecodableRecord(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UndecodableRecord(f"a JSON {type(data).__name__}, not an object")
    options = record_type._options
    missing = [name for name in options.fields if name not in data and name not in options.defaults]
    if missing:
        raise UndecodableRecord(f"not a {record_type.__name__}: no {', '.join(missing)}")
    return {**options.defaults, **data}


def encode_fields(record_type: type[faust.Record], fields: dict[str, Any]) -> bytes:
    """The JSON a ``record_type`` of ``fields`` is sent as (version included), without building
    the record: the per-article path sends plain dicts (``decode_fields`` reads them back)."""
    return orjson.dumps({**fields, "version": record_type._options.defaults["version"]})


def error_line(error: BaseException) -> str:
    """``Type: message`` on one line."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def as_text(data: bytes | None) -> tuple[str | None, str]:
    """Bytes as (text, encoding): the text itself when it is UTF-8, else base64."""
    if data is None:
        return None, "utf-8"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def as_bytes(text: str | None, encoding: str) -> bytes | None:
    """The bytes :func:`as_text` was given."""
    if text is None:
        return None
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise UndecodableRecord(f"not base64: {exc}") from None
    return text.encode("utf-8")
