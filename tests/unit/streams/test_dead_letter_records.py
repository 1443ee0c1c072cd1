"""What a dead letter carries, and the one check a payload read from a topic goes through."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from streams.records import DeadLetter, RawArticle, UndecodableRecord, decode


def message(key: bytes | None, value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(
        topic="newsalert.articles.raw", partition=2, offset=41, key=key, value=value
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "no value (a tombstone)"),
        (b"not json", "not JSON: invalid literal"),
        (b"\xff\x00\x81", "not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'{"title": "t"}', "not a RawArticle: no article_id, body, published"),
    ],
)
def test_a_payload_that_is_not_the_record_says_why(payload, reason):
    with pytest.raises(UndecodableRecord) as raised:
        decode(RawArticle, payload)
    assert str(raised.value).startswith(reason)


def test_a_payload_with_the_required_fields_decodes():
    value = {"article_id": "a1", "title": "t", "body": "b", "published": 1.0}
    raw = decode(RawArticle, json.dumps(value).encode())
    assert (raw.article_id, raw.url, raw.published) == ("a1", None, 1.0)


def test_a_dead_letter_keeps_source_error_and_utf8_bytes_as_text():
    error = ZeroDivisionError("division by zero\nin the classifier")
    letter = DeadLetter.of("process-articles", message(b"a1", b'{"x": 1}'), error, 1_800_000_000.0)
    again = DeadLetter.loads(letter.dumps())
    assert again.stage == "process-articles"
    assert (again.topic, again.partition, again.offset) == ("newsalert.articles.raw", 2, 41)
    assert (again.key, again.key_encoding) == ("a1", "utf-8")
    assert (again.value, again.value_encoding) == ('{"x": 1}', "utf-8")
    assert again.error == "ZeroDivisionError: division by zero in the classifier"
    assert again.failed_at == 1_800_000_000.0
    assert again.original_key() == b"a1" and again.original_value() == b'{"x": 1}'


def test_a_dead_letter_keeps_bytes_that_are_not_utf8_as_base64():
    letter = DeadLetter.of("alert", message(None, b"\xff\xfe\x00"), KeyError("k"), 0.0)
    again = DeadLetter.loads(letter.dumps())
    assert (again.key, again.value_encoding, again.value) == (None, "base64", "//4A")
    assert again.original_key() is None and again.original_value() == b"\xff\xfe\x00"
    assert again.error == "KeyError: 'k'"
