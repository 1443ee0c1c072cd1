"""parse_feed on odd byte-level wrappings: gzip without Content-Encoding, UTF-16 without BOM."""

import gzip

from connectors import rss
from connectors.rss import parse_feed

RSS = """<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>Zürich</title>
<item><title>Grüezi</title><link>https://z.example/1</link></item></channel></rss>"""


def test_gzip_bytes_without_content_encoding_are_inflated():
    feed = parse_feed(gzip.compress(RSS.replace("utf-16", "utf-8").encode()))
    assert (feed.error, [e.title for e in feed.entries]) == (None, ["Grüezi"])


def test_a_gzip_bomb_stops_at_the_limit(monkeypatch):
    monkeypatch.setattr(rss, "MAX_DOCUMENT_BYTES", 1024 * 1024)
    bomb = gzip.compress(b"<rss>" + b" " * (50 * 1024 * 1024), compresslevel=9)
    feed = parse_feed(bomb)
    assert feed.error == "gzip-compressed document exceeds 1048576 bytes after decompression"


def test_truncated_and_corrupt_gzip_are_clear_errors():
    data = gzip.compress(RSS.encode())
    assert parse_feed(data[: len(data) // 2]).error == "gzip-compressed and truncated"
    corrupt = data[:10] + bytes(b ^ 0xFF for b in data[10:])
    assert parse_feed(corrupt).error.startswith("gzip-compressed and corrupt: ")


def test_utf16_without_bom_is_detected_in_both_byte_orders():
    for encoding in ("utf-16-le", "utf-16-be"):
        feed = parse_feed(RSS.encode(encoding))
        assert (feed.error, feed.title) == (None, "Zürich"), encoding
        assert feed.entries[0].title == "Grüezi"
