"""The checked fastfeedparser path (connectors.fastparse), kept for the parity harness.

It is not the default parser: bench/results/feeds_parity.json lists where it still differs.
These tests pin its safety: hostile documents never reach lxml with entities or a DTD.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import fastparse
from connectors.rss import parse_feed

HOSTILE = Path(__file__).parents[2] / "data" / "feeds" / "edge" / "newsalert"


def test_the_default_parser_is_feedparser():
    data = (
        b'<rss version="2.0"><channel><title>T</title><item><title>A</title></item></channel></rss>'
    )
    assert parse_feed(data).parser == "feedparser"


def test_a_plain_utf8_feed_takes_the_fast_path_and_matches_feedparser():
    data = (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        b"<language>en</language><ttl>30</ttl><item><title>A story</title>"
        b"<link>https://example.org/a</link><guid>https://example.org/a</guid>"
        b"<pubDate>Tue, 01 Dec 2026 08:00:00 GMT</pubDate><description>Body</description>"
        b"</item></channel></rss>"
    )
    fast = parse_feed(data, fetched_at=1.9e9, parser="auto")
    slow = parse_feed(data, fetched_at=1.9e9)
    assert fast.parser == "fastfeedparser"
    assert (fast.entries, fast.title, fast.language, fast.format) == (
        slow.entries,
        slow.title,
        slow.language,
        slow.format,
    )
    assert fast.refresh_hint_seconds == slow.refresh_hint_seconds


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x">]><rss version="2.0"/>',
        b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"/>',
        b'<rss version="2.0"><channel><item><title>Caf&eacute;</title></item></channel></rss>',
        "<rss version='2.0'><channel><title>CafÃ©</title></channel></rss>".encode(),
    ],
)
def test_risky_shapes_are_refused_before_fastfeedparser(document):
    assert fastparse.refusal(document) is not None


def test_broken_xml_falls_back_to_feedparser():
    data = b'<rss version="2.0"><channel><item><title>A & B</title></item></channel></rss>'
    assert parse_feed(data, parser="auto").parser == "feedparser"


@pytest.mark.parametrize(
    "name", ["billion-laughs.xml", "quadratic-blowup.xml", "xxe-file.xml", "xxe-http.xml"]
)
def test_hostile_files_never_take_the_fast_path(name):
    path = HOSTILE / name
    if not path.is_file():
        pytest.skip(f"{name} not in the local corpus")
    parsed = parse_feed(path.read_bytes(), parser="auto")
    assert parsed.parser != "fastfeedparser"
    assert "root:" not in "".join(e.body + e.title for e in parsed.entries)
