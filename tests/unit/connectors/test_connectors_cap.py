"""The per-feed cap keeps the newest entries by date, whatever the document order, on every
parse path; entries without a date rank as fetched now, in document order."""

import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from connectors.base import FeedRequest
from connectors.feeddates import newest
from connectors.files import FileSource
from connectors.rss import parse_feed

FETCHED_AT = 1_800_000_000.0
DAY = 86400.0


def shuffled_days(count: int, seed: int = 3) -> list[int]:
    days = list(range(1, count + 1))  # day n is n days before the fetch: 1 is the newest
    random.Random(seed).shuffle(days)
    return days


def rss_item(title: str, days_ago: int | None) -> str:
    date = ""
    if days_ago is not None:
        when = datetime.fromtimestamp(FETCHED_AT - days_ago * DAY, UTC)
        date = f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>"
    return f"<item><title>{title}</title><guid>{title}</guid>{date}</item>"


def rss(items: list[str]) -> bytes:
    return f'<rss version="2.0"><channel><title>T</title>{"".join(items)}</channel></rss>'.encode()


@pytest.mark.parametrize("parser", ["lxml", "feedparser"])
@pytest.mark.parametrize("count", [8, 50])  # 50 is over twice the cap: the walk prunes on the way
def test_the_newest_entries_are_kept_in_document_order(parser, count):
    days = shuffled_days(count)
    parsed = parse_feed(
        rss([rss_item(f"day {d}", d) for d in days]),
        fetched_at=FETCHED_AT,
        max_entries=5,
        parser=parser,
    )
    assert parsed.parser == parser
    assert [e.title for e in parsed.entries] == [f"day {d}" for d in days if d <= 5]
    assert parsed.entries_dropped == count - 5
    assert parsed.warnings == (f"{count - 5} entries beyond the cap of 5 dropped",)


def test_the_newest_json_feed_items_are_kept():
    days = shuffled_days(8)
    items = [
        {
            "id": str(d),
            "title": f"day {d}",
            "date_published": datetime.fromtimestamp(FETCHED_AT - d * DAY, UTC).isoformat(),
        }
        for d in days
    ]
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": items}
    parsed = parse_feed(json.dumps(doc).encode(), fetched_at=FETCHED_AT, max_entries=5)
    assert [e.title for e in parsed.entries] == [f"day {d}" for d in days if d <= 5]
    assert parsed.entries_dropped == 3


def test_undated_entries_rank_as_fetched_now_in_document_order():
    items = [
        rss_item("day 3", 3),
        rss_item("undated a", None),
        rss_item("day 1", 1),
        rss_item("undated b", None),
        rss_item("undated c", None),
        rss_item("day 2", 2),
    ]
    parsed = parse_feed(rss(items), fetched_at=FETCHED_AT, max_entries=4)
    assert [e.title for e in parsed.entries] == ["undated a", "day 1", "undated b", "undated c"]
    assert [e.published_is_fetch_time for e in parsed.entries] == [True, False, True, True]


def test_newest_breaks_ties_by_document_order():
    assert newest([5.0, 9.0, 5.0, 1.0, 9.0, 5.0], 4) == [0, 1, 2, 4]
    assert newest([1.0, 2.0], 5) == [0, 1]


async def test_a_json_lines_file_keeps_its_newest_articles(tmp_path):
    days = shuffled_days(8)
    path = tmp_path / "articles.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": str(d),
                    "title": f"day {d}",
                    "published": datetime.fromtimestamp(FETCHED_AT - d * DAY, UTC).isoformat(),
                }
            )
            + "\n"
            for d in days
        )
    )
    result = await FileSource(max_entries=5, clock=lambda: FETCHED_AT).poll(
        FeedRequest(path.as_uri())
    )
    assert [e.title for e in result.entries] == [f"day {d}" for d in days if d <= 5]
    assert result.entries_dropped == 3
