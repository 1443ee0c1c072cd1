import json
import os

from connectors.base import FeedRequest
from connectors.files import FileSource, backfill, jsonl_entry
from connectors.identity import article_id
from connectors.state import FeedState
from newsalert.settings import Settings

NOW = 1_800_000_000.0
RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Saved</title>
<item><title>One</title><link>https://saved.example/1</link></item>
<item><title>Two</title><link>https://saved.example/2</link></item></channel></rss>"""


class ListPublisher:
    def __init__(self):
        self.articles = []

    async def publish(self, article):
        self.articles.append(article)


def article(n, **fields):
    record = {
        "id": f"reuters-{n}",
        "title": f"Headline {n}",
        "text": "",
        "url": None,
        "source": "Reuters",
        "published": "2020-07-18",
        "dataset": "reuters",
    }
    record.update(fields)
    return json.dumps(record)


def write_lines(path, *lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_jsonl_fields_map_to_an_entry():
    entry = jsonl_entry(
        {
            "id": "cnbc-1",
            "title": " T ",
            "text": "body",
            "url": "https://cnbc.example/a",
            "source": "CNBC",
            "published": "2020-07-17T23:51:00Z",
        },
        NOW,
    )
    assert (entry.guid, entry.title, entry.body, entry.link, entry.source) == (
        "cnbc-1",
        "T",
        "body",
        "https://cnbc.example/a",
        "CNBC",
    )
    assert entry.published == 1595029860.0 and not entry.published_is_fetch_time


def test_jsonl_dates_only_are_midnight_utc_and_missing_dates_are_the_fetch_time():
    assert jsonl_entry({"id": "x", "published": "2020-07-18"}, NOW).published == 1595030400.0
    undated = jsonl_entry({"id": "x", "published": None}, NOW)
    assert (undated.published, undated.published_is_fetch_time) == (NOW, True)
    assert jsonl_entry({"text": "only a body"}, NOW) is None


async def test_file_source_reads_jsonl_and_reports_bad_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    write_lines(path, article(0), "{not json", article(1), "[]")
    result = await FileSource(clock=lambda: NOW).poll(FeedRequest(path.as_uri()))
    assert result.outcome == "fetched" and result.format == "jsonl"
    assert [e.guid for e in result.entries] == ["reuters-0", "reuters-1"]
    assert result.warnings == (
        "2 lines skipped (first: line 2: not valid JSON: "
        + result.warnings[0].split("not valid JSON: ")[1],
    )


async def test_file_source_unchanged_file_is_not_modified(tmp_path):
    path = tmp_path / "saved.xml"
    path.write_bytes(RSS)
    source = FileSource(clock=lambda: NOW)
    first = await source.poll(FeedRequest(path.as_uri()))
    assert first.outcome == "fetched" and first.feed_title == "Saved"
    again = await source.poll(FeedRequest(path.as_uri(), etag=first.etag))
    assert again.outcome == "not_modified"
    path.write_bytes(RSS.replace(b"One", b"Uno"))
    os.utime(path, ns=(10**18, 10**18))
    assert (await source.poll(FeedRequest(path.as_uri(), etag=first.etag))).outcome == "fetched"


async def test_file_source_errors_name_the_file(tmp_path):
    missing = (tmp_path / "nope.jsonl").as_uri()
    result = await FileSource().poll(FeedRequest(missing))
    assert (result.outcome, result.error_kind) == ("error", "file")
    assert result.error.startswith(f"feed {missing}: ")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = await FileSource().poll(FeedRequest(empty.as_uri()))
    assert result.error == f"feed {empty.as_uri()}: no articles"


async def collect(paths, state, publisher, **kwargs):
    settings = Settings(data_dir=state.path.parent)
    reports = backfill(paths, settings, state, publisher, clock=lambda: NOW, **kwargs)
    return [report async for report in reports]


async def test_backfill_publishes_in_batches_once_and_edits_as_updates(tmp_path):
    lines = tmp_path / "reuters.jsonl"
    write_lines(lines, *(article(n) for n in range(5)))
    saved = tmp_path / "saved.xml"
    saved.write_bytes(RSS)
    state = FeedState(tmp_path / "db.sqlite3")
    publisher = ListPublisher()
    reports = await collect([lines, saved], state, publisher, batch=2)
    assert [(r.entries, r.published, r.error) for r in reports] == [(5, 5, None), (2, 2, None)]
    first = publisher.articles[0]
    assert first.article_id == article_id(guid="reuters-0")
    assert (first.source, first.url, first.published) == ("Reuters", None, 1595030400.0)
    assert publisher.articles[5].source == "Saved"

    write_lines(lines, *(article(n) for n in range(4)), article(4, title="Headline 4, corrected"))
    reports = await collect([lines, saved], state, publisher)
    assert [r.published for r in reports] == [1, 0], "only the edited article goes out again"
    assert publisher.articles[-1].is_update and publisher.articles[-1].title.endswith("corrected")


async def test_backfill_reports_a_broken_file_and_goes_on(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<rss><channel><item><title>x</ti")
    good = tmp_path / "good.jsonl"
    write_lines(good, article(1))
    reports = await collect([broken, good], FeedState(tmp_path / "db.sqlite3"), ListPublisher())
    assert reports[0].error is not None and reports[0].line().startswith(f"{broken}: error: ")
    assert (reports[1].published, reports[1].error) == (1, None)


class FlakyPublisher(ListPublisher):
    def __init__(self, refuse):
        super().__init__()
        self.refuse = set(refuse)

    async def publish(self, article):
        if article.title in self.refuse:
            raise ConnectionError("broker unavailable")
        await super().publish(article)


async def test_backfill_reports_articles_the_broker_refused_and_retries_them(tmp_path):
    lines = tmp_path / "a.jsonl"
    write_lines(lines, article(1), article(2))
    state = FeedState(tmp_path / "db.sqlite3")
    flaky = FlakyPublisher(refuse={"Headline 2"})
    (report,) = await collect([lines], state, flaky)
    assert (report.published, report.error) == (
        1,
        "1 articles not published (ConnectionError: broker unavailable); run again to retry them",
    )
    flaky.refuse.clear()
    (report,) = await collect([lines], state, flaky)
    assert (report.published, report.error) == (1, None)
    assert [a.title for a in flaky.articles] == ["Headline 1", "Headline 2"]
