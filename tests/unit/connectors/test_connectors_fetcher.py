import email.utils
import gzip
import zlib

import brotli
import pytest

from connectors.fetcher import FetchError, _Inflater
from newsalert.netguard import parse_retry_after

BOMB = b"\0" * (50 * 1024 * 1024)


@pytest.mark.parametrize(
    ("encoding", "compressed"),
    [
        ("gzip", gzip.compress(BOMB)),
        ("deflate", zlib.compress(BOMB)),
        ("br", brotli.compress(BOMB, quality=5)),
    ],
    ids=["gzip", "deflate", "br"],
)
def test_inflater_never_produces_more_than_one_step_at_a_time(encoding, compressed):
    inflater = _Inflater(encoding)
    pieces = inflater.feed(compressed)
    total = 0
    for piece in pieces:
        assert len(piece) <= 256 * 1024  # a bomb never inflates in one go
        total += len(piece)
    assert total == len(BOMB)


def test_raw_deflate_without_zlib_header_is_accepted():
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    data = packer.compress(b"<rss/>") + packer.flush()
    assert b"".join(_Inflater("deflate").feed(data)) == b"<rss/>"


def test_unknown_and_corrupt_encodings_are_clear_errors():
    with pytest.raises(FetchError, match="unsupported Content-Encoding 'zstd'"):
        _Inflater("zstd")
    with pytest.raises(FetchError, match="corrupt gzip body"):
        list(_Inflater("gzip").feed(b"not gzip at all"))


def test_retry_after_in_seconds_and_as_http_date():
    assert parse_retry_after("120") == 120.0
    when = email.utils.formatdate(1_800_000_600, usegmt=True)
    assert parse_retry_after(when, now=1_800_000_000) == 600.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
