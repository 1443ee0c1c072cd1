import csv
import json
import time
from pathlib import Path

import pytest

from connectors.rss import MAX_ENTRIES_PER_FEED, parse_feed, parse_file

FEEDS = Path(__file__).resolve().parents[4] / "shared" / "data" / "feeds"
if not FEEDS.is_dir():
    FEEDS = Path("/work/shared/data/feeds")
INDEX = list(csv.DictReader((FEEDS / "INDEX.csv").open(encoding="utf-8")))
HOSTILE = [row["path"] for row in INDEX if row["kind"] == "hostile"]
FETCHED_AT = 1_800_000_000.0  # 2027: after every dated entry used here

pytestmark = pytest.mark.skipif(not FEEDS.is_dir(), reason="shared feed corpus not present")


def parse(path: str, **kwargs):
    return parse_feed((FEEDS / path).read_bytes(), fetched_at=FETCHED_AT, **kwargs)


def test_rss2():
    feed = parse("edge/feed-rs/rss_2.0_spec_1.xml")
    assert (feed.format, feed.title, feed.error) == ("rss20", "Scripting News", None)
    first = feed.entries[0]
    assert first.link == "http://scriptingnews.userland.com/backissues/2002/09/29#When:12:59:01PM"
    assert "Who" in first.body and first.published == 1033329541.0  # Sun, 29 Sep 2002 19:59:01 GMT
    assert not first.published_is_fetch_time


def test_rss091_without_dates_gets_fetch_time_and_says_so():
    feed = parse("edge/feed-rs/rss_0.91_spec_1.xml")
    assert feed.format == "rss091u" and len(feed.entries) == 2
    assert all(e.published == FETCHED_AT and e.published_is_fetch_time for e in feed.entries)


def test_rss1_rdf():
    feed = parse("edge/feed-rs/rss_1.0_spec_1.xml")
    assert feed.format == "rss10"
    assert [e.title for e in feed.entries] == [
        "Processing Inclusions with XSLT",
        "Putting RDF to Work",
    ]


def test_atom():
    feed = parse("edge/feed-rs/atom_spec_1.xml")
    assert feed.format == "atom10" and feed.title == "Example Feed"
    (entry,) = feed.entries
    assert entry.title == "Atom-Powered Robots Run Amok"
    assert entry.guid == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    assert entry.published == 1071340202.0  # 2003-12-13T18:30:02Z


def test_json_feed_1_0_and_1_1():
    old = parse("edge/feed-rs/jsonfeed_spec_1.json")
    assert old.format == "json1" and old.entries[0].title == "Announcing JSON Feed"
    new = parse("edge/fastfeedparser/json_feed_sample.json")
    assert new.format == "json11" and len(new.entries) == 2
    assert new.entries[0].published == 1705320000.0  # 2024-01-15T12:00:00Z
    assert new.entries[1].body == "This is plain text content for the second item."


def test_json_feed_with_offset_dates_is_converted_to_utc():
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [{"id": "1", "title": "t", "date_published": "2024-01-15T14:00:00+02:00"}],
    }
    feed = parse_feed(json.dumps(doc).encode(), fetched_at=FETCHED_AT)
    assert feed.entries[0].published == 1705320000.0


def test_relative_links_are_resolved_against_the_feed_url():
    data = b"""<rss version="2.0"><channel><title>t</title>
      <item><title>x</title><link>/post/1</link></item></channel></rss>"""
    feed = parse_feed(data, url="https://news.example/feed.xml", fetched_at=FETCHED_AT)
    assert feed.entries[0].link == "https://news.example/post/1"


def test_dates_far_in_the_future_are_replaced_by_fetch_time():
    data = b"""<rss version="2.0"><channel><title>t</title>
      <item><title>x</title><pubDate>Sat, 01 Jan 2150 00:00:00 GMT</pubDate></item></channel></rss>"""
    (entry,) = parse_feed(data, fetched_at=FETCHED_AT).entries
    assert entry.published == FETCHED_AT and entry.published_is_fetch_time


def test_truncated_document_without_entries_is_a_clear_error():
    feed = parse("edge/feed-rs/rss_2.0_invalid_1.xml")
    assert feed.entries == () and feed.error.startswith("not a valid feed: ")


def test_lenient_parse_keeps_entries_and_warns():
    feed = parse("edge/newsalert/mismatched-tags.xml")
    assert feed.error is None and len(feed.entries) == 3
    assert any("parsed leniently" in w for w in feed.warnings)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("edge/newsalert/empty.xml", "empty document"),
        ("edge/newsalert/whitespace-only.xml", "empty document"),
        ("edge/newsalert/html-interstitial.html", "not a valid feed"),
        ("edge/newsalert/jsonfeed-invalid-syntax.json", "not valid JSON"),
        ("edge/netnewswire/ScriptingNews.json", "not a JSON Feed"),
    ],
)
def test_non_feeds_get_a_clear_error(path, error):
    feed = parse(path)
    assert feed.entries == () and feed.error.startswith(error)


def test_entries_are_capped_per_feed():
    feed = parse("edge/newsalert/many-items.xml")
    assert len(feed.entries) == MAX_ENTRIES_PER_FEED
    assert any("2500 entries beyond the cap" in w for w in feed.warnings)
    assert len(parse("edge/newsalert/many-items.xml", max_entries=10).entries) == 10


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_documents_parse_quickly_without_network_or_expansion(path, no_network):
    started = time.perf_counter()
    feed = parse(path)
    assert time.perf_counter() - started < 2.0
    assert no_network == []
    assert feed.error is not None or feed.entries
    for entry in feed.entries:
        assert len(entry.title) < 10_000, "an entity was expanded"
        assert "root:" not in entry.title + entry.body, "a local file was read"


def test_billion_laughs_is_not_expanded():
    feed = parse("edge/newsalert/billion-laughs.xml")
    assert all("lollollol" not in e.title for e in feed.entries)


def test_quadratic_blowup_is_not_expanded():
    feed = parse("edge/newsalert/quadratic-blowup.xml")
    assert all(len(e.title) + len(e.body) < 100_000 for e in feed.entries)


def test_json_feed_with_huge_number_and_infinite_float_still_parses():
    feed = parse("edge/newsalert/jsonfeed-huge-number.json")
    assert feed.error is None and feed.entries


def test_json_feed_nested_too_deeply_is_a_clear_error():
    assert parse("edge/newsalert/jsonfeed-deep-nesting.json").error == (
        "not a valid JSON Feed: nested too deeply"
    )


def test_every_edge_case_file_yields_entries_or_a_clear_error():
    for row in INDEX:
        if not row["path"].startswith("edge/"):
            continue
        feed = parse_file(FEEDS / row["path"])
        assert feed.error or feed.entries or feed.format, row["path"]
