import asyncio

import pytest
from prometheus_client import REGISTRY

from connectors.base import FeedEntry, FeedRequest, FetchResult
from connectors.identity import CONTENT_HASH_VERSION, article_id
from connectors.poller import FeedPoller
from connectors.state import FeedState
from newsalert.settings import Settings
from tests.conftest import eventually

NOW = 1_800_000_000.0
FEED_A = "https://a.example/feed"
FEED_B = "https://b.example/feed"


class ListPublisher:
    def __init__(self, fail_ids=()):
        self.articles = []
        self.fail_ids = set(fail_ids)

    async def publish(self, article):
        if article.article_id in self.fail_ids:
            raise ConnectionError("broker unavailable")
        self.articles.append(article)


class ScriptedSource:
    """Answers each feed URL with the next scripted result (or raises it)."""

    name = "scripted"

    def __init__(self, script):
        self.script = {url: list(results) for url, results in script.items()}
        self.requests: list[FeedRequest] = []

    async def poll(self, feed):
        self.requests.append(feed)
        result = self.script[feed.url].pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


def entry(n, body="body", **kwargs):
    return FeedEntry(
        title=f"Story {n}",
        link=f"https://a.example/story/{n}?utm_source=rss#top",
        guid=f"guid-{n}",
        body=body,
        published=NOW - 1000 + n,
        **kwargs,
    )


def fetched(url, *entries, etag='"v1"', title="Feed A"):
    return FetchResult("fetched", url, entries=tuple(entries), etag=etag, feed_title=title)


def make_poller(tmp_path, source, publisher, feeds=(FEED_A,)):
    state = FeedState(tmp_path / "newsalert.sqlite3")
    for url in feeds:
        state.add_feed(url)
    poller = FeedPoller(Settings(data_dir=tmp_path), state, publisher, fetcher=None, source=source)
    return poller, state


async def test_new_entries_become_raw_articles(tmp_path):
    publisher = ListPublisher()
    poller, _ = make_poller(
        tmp_path, ScriptedSource({FEED_A: [fetched(FEED_A, entry(2), entry(1))]}), publisher
    )
    assert await poller.poll_once(NOW) == 2
    first = publisher.articles[0]  # oldest first
    assert first.url == "https://a.example/story/1"
    assert first.article_id == article_id(url="https://a.example/story/1")
    assert (first.title, first.source, first.feed_url) == ("Story 1", "Feed A", FEED_A)
    assert (first.published, first.fetched_at, first.is_update) == (NOW - 999, NOW, False)


async def test_unchanged_entries_are_not_republished_even_after_restart(tmp_path):
    publisher = ListPublisher()
    script = {FEED_A: [fetched(FEED_A, entry(1)), fetched(FEED_A, entry(1), entry(2))]}
    poller, state = make_poller(tmp_path, ScriptedSource(script), publisher)
    assert await poller.poll_once(NOW) == 1
    state.close()
    restarted_state = FeedState(tmp_path / "newsalert.sqlite3")
    restarted = FeedPoller(
        Settings(data_dir=tmp_path),
        restarted_state,
        publisher,
        None,
        source=ScriptedSource({FEED_A: script[FEED_A][1:]}),
    )
    assert await restarted.poll_once(NOW + 10_000) == 1
    assert [a.title for a in publisher.articles] == ["Story 1", "Story 2"]


async def test_edited_entry_is_published_as_an_update(tmp_path):
    publisher = ListPublisher()
    script = {FEED_A: [fetched(FEED_A, entry(1)), fetched(FEED_A, entry(1, body="corrected"))]}
    poller, _ = make_poller(tmp_path, ScriptedSource(script), publisher)
    await poller.poll_once(NOW)
    assert await poller.poll_once(NOW + 10_000) == 1
    original, update = publisher.articles
    assert update.article_id == original.article_id
    assert (update.is_update, update.body) == (True, "corrected")


async def test_not_modified_publishes_nothing_and_sends_validators(tmp_path):
    publisher = ListPublisher()
    source = ScriptedSource(
        {FEED_A: [fetched(FEED_A, entry(1)), FetchResult("not_modified", FEED_A, etag='"v1"')]}
    )
    poller, state = make_poller(tmp_path, source, publisher)
    await poller.poll_once(NOW)
    assert await poller.poll_once(NOW + 10_000) == 0
    assert source.requests[1].etag == '"v1"'
    assert state.get_feed(FEED_A).last_success_at == NOW + 10_000


async def test_failed_publish_is_retried_and_keeps_the_old_etag(tmp_path):
    failing = ListPublisher(fail_ids={article_id(url="https://a.example/story/2")})
    script = {
        FEED_A: [
            fetched(FEED_A, entry(1), entry(2), etag='"v2"'),
            fetched(FEED_A, entry(1), entry(2)),
        ]
    }
    poller, state = make_poller(tmp_path, ScriptedSource(script), failing)
    assert await poller.poll_once(NOW) == 1
    feed = state.get_feed(FEED_A)
    assert feed.etag is None, "a new ETag would turn the retry into a 304 and lose story 2"
    assert "publishing failed: ConnectionError" in feed.last_error
    failing.fail_ids.clear()
    assert await poller.poll_once(NOW + 10_000) == 1
    assert [a.title for a in failing.articles] == ["Story 1", "Story 2"]


async def test_one_broken_feed_does_not_stop_the_others(tmp_path):
    publisher = ListPublisher()
    source = ScriptedSource(
        {FEED_A: [RuntimeError("parser bug")], FEED_B: [fetched(FEED_B, entry(1))]}
    )
    poller, state = make_poller(tmp_path, source, publisher, feeds=(FEED_A, FEED_B))
    assert await poller.poll_once(NOW) == 1
    broken = state.get_feed(FEED_A)
    assert broken.last_error == f"feed {FEED_A}: RuntimeError: parser bug"
    assert broken.consecutive_errors == 1 and broken.next_poll_at > NOW
    assert state.get_feed(FEED_B).last_success_at == NOW


async def test_an_entry_carried_by_two_feeds_is_published_once_and_never_flip_flops(tmp_path):
    publisher = ListPublisher()
    script = {
        FEED_A: [fetched(FEED_A, entry(1, body="a")), fetched(FEED_A, entry(1, body="a"))],
        FEED_B: [fetched(FEED_B, entry(1, body="b")), fetched(FEED_B, entry(1, body="b"))],
    }
    poller, _ = make_poller(tmp_path, ScriptedSource(script), publisher, feeds=(FEED_A, FEED_B))
    await poller.poll_once(NOW)
    await poller.poll_once(NOW + 10_000)
    assert len(publisher.articles) == 1


async def test_non_http_links_are_not_published_as_urls(tmp_path):
    publisher = ListPublisher()
    bad = FeedEntry("t", "javascript:alert(1)", "g", "b", NOW)
    poller, _ = make_poller(tmp_path, ScriptedSource({FEED_A: [fetched(FEED_A, bad)]}), publisher)
    await poller.poll_once(NOW)
    assert publisher.articles[0].url is None
    assert publisher.articles[0].article_id == article_id(guid="g")


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_outcomes_articles_and_errors_without_url_labels(tmp_path):
    before = {
        "fetched": sample("newsalert_feed_fetches_total", outcome="fetched"),
        "error": sample("newsalert_feed_fetches_total", outcome="error"),
        "internal": sample("newsalert_feed_fetch_errors_total", kind="internal"),
        "found": sample("newsalert_articles_fetched_total"),
        "new": sample("newsalert_articles_published_total", kind="new"),
        "update": sample("newsalert_articles_published_total", kind="update"),
        "polls": sample("newsalert_feed_fetch_duration_seconds_count"),
    }
    source = ScriptedSource(
        {
            FEED_A: [fetched(FEED_A, entry(1), entry(2)), fetched(FEED_A, entry(1, body="edit"))],
            FEED_B: [RuntimeError("boom"), RuntimeError("boom")],
        }
    )
    poller, _ = make_poller(tmp_path, source, ListPublisher(), feeds=(FEED_A, FEED_B))
    await poller.poll_once(NOW)
    await poller.poll_once(NOW + 100_000)
    assert sample("newsalert_feed_fetches_total", outcome="fetched") - before["fetched"] == 2
    assert sample("newsalert_feed_fetches_total", outcome="error") - before["error"] == 2
    assert sample("newsalert_feed_fetch_errors_total", kind="internal") - before["internal"] == 2
    assert sample("newsalert_articles_fetched_total") - before["found"] == 3
    assert sample("newsalert_articles_published_total", kind="new") - before["new"] == 2
    assert sample("newsalert_articles_published_total", kind="update") - before["update"] == 1
    assert sample("newsalert_feed_fetch_duration_seconds_count") - before["polls"] == 4


class CountingSource:
    """Every feed answers with one fresh entry; counts requests per URL across pollers."""

    name = "counting"

    def __init__(self):
        self.requests: dict[str, int] = {}

    async def poll(self, feed):
        self.requests[feed.url] = self.requests.get(feed.url, 0) + 1
        await asyncio.sleep(0)  # let the other poller run in between
        n = self.requests[feed.url]
        return fetched(feed.url, FeedEntry(f"{feed.url} {n}", None, f"{feed.url}#{n}", "b", NOW))


async def test_two_pollers_sharing_one_database_never_poll_a_feed_twice(tmp_path):
    path = tmp_path / "newsalert.sqlite3"
    feeds = [f"https://f{i}.example/feed" for i in range(40)]
    setup = FeedState(path)
    for url in feeds:
        setup.add_feed(url, interval_seconds=600)
    source = CountingSource()
    settings = Settings(data_dir=tmp_path)
    pollers = [
        FeedPoller(settings, FeedState(path), ListPublisher(), None, source=source)
        for _ in range(2)
    ]
    for round_at in (NOW, NOW + 60, NOW + 120):  # within one interval
        await asyncio.gather(*(p.poll_once(round_at) for p in pollers))
    assert source.requests == {url: 1 for url in feeds}
    await asyncio.gather(*(p.poll_once(NOW + 700) for p in pollers))
    assert source.requests == {url: 2 for url in feeds}, "due again after the interval"


async def test_a_hash_stored_by_an_older_version_is_replaced_without_publishing(tmp_path):
    publisher = ListPublisher()
    script = {
        FEED_A: [
            fetched(FEED_A, entry(1, body="<p>same</p>")),
            fetched(FEED_A, entry(1, body="<p>same</p>")),
            fetched(FEED_A, entry(1, body="<p>edited</p>")),
        ]
    }
    poller, state = make_poller(tmp_path, ScriptedSource(script), publisher)
    aid = article_id(url="https://a.example/story/1")
    state.mark_published(aid, FEED_A, "0123456789abcdef0123456789abcdef", NOW - 86400)
    assert await poller.poll_once(NOW) == 0, "an old-style hash means unknown, not changed"
    assert publisher.articles == []
    stored = state.published_entries([aid])[aid].content_hash
    assert stored.startswith(CONTENT_HASH_VERSION)
    assert await poller.poll_once(NOW + 10_000) == 0  # unchanged against the new hash
    assert await poller.poll_once(NOW + 20_000) == 1  # a real edit is still an update
    assert [(a.body, a.is_update) for a in publisher.articles] == [("<p>edited</p>", True)]


class GatedPublisher:
    """Holds every publish until ``open`` is set (a broker that is away), then lets them end
    one loop step apart per feed: ``lag_steps[feed_url]`` extra steps."""

    def __init__(self, lag_steps):
        self.open = asyncio.Event()
        self.lag_steps = lag_steps

    async def publish(self, article):
        await self.open.wait()
        for _ in range(self.lag_steps.get(article.feed_url, 0)):
            await asyncio.sleep(0)


@pytest.mark.parametrize("lag_steps", range(8))
async def test_a_feed_due_again_when_its_slow_poll_ends_is_polled_again(tmp_path, lag_steps):
    """A poll that outlasts its feed's interval (publishes waiting for a broker that restarts)
    records a next poll that is already due. run() must poll the feed again, whatever the
    order in which the polls end: it once claimed such a feed while the finished poll was
    still listed as in flight, skipped it and kept the lease, and the feed went unpolled for
    the whole lease (two minutes), its new entries with it."""
    feeds = [f"https://f{n}.example/feed" for n in range(2)]
    state = FeedState(tmp_path / "newsalert.sqlite3")
    for url in feeds:
        state.add_feed(url, interval_seconds=1)
    clock = [NOW]
    source = CountingSource()
    publisher = GatedPublisher({feeds[1]: lag_steps})
    settings = Settings(data_dir=tmp_path)
    poller = FeedPoller(settings, state, publisher, None, source=source, clock=lambda: clock[0])
    run = asyncio.create_task(poller.run())
    try:
        await eventually(lambda: source.requests == {url: 1 for url in feeds}, 5, "first polls")
        clock[0] += 10  # the broker stays away longer than the interval
        publisher.open.set()
        await eventually(
            lambda: all(source.requests[url] >= 2 for url in feeds),
            5,
            f"both feeds polled again (the second one's publish ending {lag_steps} steps later)",
        )
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        state.close()
