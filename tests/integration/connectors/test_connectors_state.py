"""FeedState, the feed list and its leases, on both state databases: a SQLite file and a
local PostgreSQL server (each test runs once per backend unless it names one)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from connectors import scheduler
from connectors.base import FetchResult
from connectors.state import FeedState
from newsalert.database import open_database
from newsalert.settings import FeedConfig

NOW = 1_800_000_000.0
URL = "https://news.example/feed.xml"
ROOT = Path(__file__).resolve().parents[3]
# The feeds table of the first release, before leases and adaptive scheduling (SQLite words).
FIRST_RELEASE_FEEDS = (
    "CREATE TABLE feeds (url TEXT PRIMARY KEY, fetch_url TEXT NOT NULL, name TEXT,"
    " tags TEXT NOT NULL DEFAULT '[]', interval_seconds REAL,"
    " origin TEXT NOT NULL DEFAULT 'cli', added_at REAL NOT NULL, title TEXT, etag TEXT,"
    " last_modified TEXT, next_poll_at REAL NOT NULL DEFAULT 0, last_fetch_at REAL,"
    " last_success_at REAL, last_error TEXT, last_error_at REAL, failing_since REAL,"
    " consecutive_errors INTEGER NOT NULL DEFAULT 0, items_seen INTEGER NOT NULL DEFAULT 0);"
)


@pytest.fixture
def open_state(state_target):
    """Opens FeedState on this test's database, once per call (a connection each, like a
    process each); all are closed after the test."""
    opened: list[FeedState] = []

    def open_() -> FeedState:
        opened.append(FeedState(state_target))
        return opened[-1]

    yield open_
    for state in opened:
        state.close()


def test_sync_config_adds_keeps_state_and_drops_removed_config_feeds(open_state):
    state = open_state()
    state.sync_config([FeedConfig(url=URL, name="News", tags=("a",)), FeedConfig(url=URL + "2")])
    state.add_feed("https://cli.example/rss")
    state.record_fetch(
        URL, FetchResult("fetched", URL, etag='"v1"'), now=NOW, default_interval_seconds=300
    )
    state.sync_config([FeedConfig(url=URL, name="Renamed", interval_seconds=60)])
    feeds = {feed.url: feed for feed in state.list_feeds()}
    assert set(feeds) == {URL, "https://cli.example/rss"}
    assert feeds[URL].name == "Renamed" and feeds[URL].interval_seconds == 60
    assert feeds[URL].etag == '"v1"', "config sync must keep fetch state"


def test_remove_feed(open_state):
    state = open_state()
    state.add_feed(URL, name="n", tags=["x", "y"])
    assert state.get_feed(URL).tags == ("x", "y")
    assert state.remove_feed(URL) is True
    assert state.remove_feed(URL) is False
    assert state.list_feeds() == []


def test_new_feeds_are_due_at_once_and_not_again_until_their_interval(open_state):
    state = open_state()
    state.add_feed(URL, interval_seconds=600)
    assert [f.url for f in state.due_feeds(NOW)] == [URL]
    feed = state.record_fetch(
        URL, FetchResult("not_modified", URL), now=NOW, default_interval_seconds=300
    )
    assert 540 <= feed.next_poll_at - NOW <= 660  # the feed's own interval, with jitter
    assert state.due_feeds(NOW + 500) == []
    assert [f.url for f in state.due_feeds(NOW + 700)] == [URL]


def test_errors_back_off_exponentially_and_success_resets(open_state):
    state = open_state()
    state.add_feed(URL, interval_seconds=100)
    error = FetchResult("error", URL, error=f"feed {URL}: HTTP 500", error_kind="http_status")
    delays = []
    for _ in range(4):
        feed = state.record_fetch(URL, error, now=NOW, default_interval_seconds=300)
        delays.append(feed.next_poll_at - NOW)
    assert 90 <= delays[0] <= 110  # first error: the normal (jittered) interval
    assert delays[1:] == [200.0, 400.0, 800.0]
    assert feed.consecutive_errors == 4 and feed.last_error == f"feed {URL}: HTTP 500"
    assert feed.failing_since == NOW and not feed.healthy(NOW + 86400)
    ok = state.record_fetch(URL, FetchResult("fetched", URL), now=NOW, default_interval_seconds=300)
    assert ok.consecutive_errors == 0 and ok.failing_since is None and ok.healthy(NOW)
    assert ok.last_error == f"feed {URL}: HTTP 500", "the last error stays visible for `feeds list`"


def test_a_broker_that_refuses_entries_does_not_back_the_feed_off(open_state):
    """Publishing failed: the feed answered, so its error count stays and it is fetched again
    within PUBLISH_RETRY_SECONDS however often the broker refused (an outage of minutes must
    not push every feed hours out)."""
    state = open_state()
    state.add_feed(URL, interval_seconds=3600)
    refused = FetchResult(
        "error",
        URL,
        error=f"feed {URL}: publishing failed: KafkaTimeoutError",
        error_kind="publish",
    )
    for step in range(6):
        feed = state.record_fetch(URL, refused, now=NOW + step, default_interval_seconds=300)
        assert feed.next_poll_at - (NOW + step) <= scheduler.PUBLISH_RETRY_SECONDS * (
            1 + scheduler.JITTER_FRACTION
        )
    assert feed.consecutive_errors == 0 and feed.failing_since is None
    assert feed.last_error == refused.error, "the broker's refusal shows in `feeds list`"


def test_error_backoff_is_capped():
    due = scheduler.next_poll_at(now=0, interval_seconds=300, feed_url=URL, consecutive_errors=40)
    assert due == scheduler.MAX_ERROR_BACKOFF_SECONDS


def test_retry_after_is_honoured(open_state):
    state = open_state()
    state.add_feed(URL, interval_seconds=60)
    limited = FetchResult(
        "error", URL, error="429", error_kind="http_status", retry_after_seconds=3600
    )
    feed = state.record_fetch(URL, limited, now=NOW, default_interval_seconds=300)
    assert feed.next_poll_at == NOW + 3600


def test_jitter_is_stable_per_feed_and_bounded():
    factors = {scheduler.jitter_factor(f"https://f{i}.example/") for i in range(50)}
    assert len(factors) > 40
    assert all(0.9 <= f <= 1.1 for f in factors)
    assert scheduler.jitter_factor(URL) == scheduler.jitter_factor(URL)


def test_permanent_redirect_moves_the_fetch_url_but_not_the_identity(open_state):
    state = open_state()
    state.add_feed(URL)
    moved = FetchResult("fetched", URL, permanent_url="https://new.example/feed")
    feed = state.record_fetch(URL, moved, now=NOW, default_interval_seconds=300)
    assert (feed.url, feed.fetch_url) == (URL, "https://new.example/feed")


def test_published_entries_survive_a_restart(open_state):
    first = open_state()
    first.mark_published("a1", URL, "hash1", NOW)
    first.close()
    second = open_state()
    known = second.published_entries(["a1", "a2"])
    assert set(known) == {"a1"}
    assert (known["a1"].feed_url, known["a1"].content_hash) == (URL, "hash1")
    second.mark_published("a1", URL, "hash2", NOW + 1)
    assert second.published_entries(["a1"])["a1"].content_hash == "hash2"


def test_published_entries_handles_more_ids_than_sqlite_parameters(open_state):
    state = open_state()
    for i in range(0, 1200, 7):
        state.mark_published(f"a{i}", URL, "h", NOW)
    assert len(state.published_entries(f"a{i}" for i in range(1200))) == len(range(0, 1200, 7))


def test_a_claimed_feed_is_not_claimed_again_until_its_lease_ends(open_state):
    state = open_state()
    state.add_feed(URL)
    assert [f.url for f in state.claim_due_feeds(NOW, "p1", 60)] == [URL]
    assert state.claim_due_feeds(NOW + 10, "p2", 60) == []
    assert [f.lease_owner for f in state.claim_due_feeds(NOW + 61, "p2", 60)] == ["p2"]


def test_recording_the_outcome_ends_the_lease_and_schedules_ahead(open_state):
    state = open_state()
    state.add_feed(URL, interval_seconds=600)
    state.claim_due_feeds(NOW, "p1", 60)
    feed = state.record_fetch(URL, FetchResult("fetched", URL), now=NOW, default_interval_seconds=1)
    assert (feed.lease_owner, feed.lease_until) == (None, None)
    assert state.claim_due_feeds(NOW + 100, "p2", 60) == [], "not due again within its interval"


def test_released_leases_are_free_at_once(open_state):
    state = open_state()
    state.add_feed(URL)
    state.add_feed(URL + "2")
    state.claim_due_feeds(NOW, "p1", 600)
    state.release_leases("p2")
    assert state.claim_due_feeds(NOW, "p2", 600) == [], "only the owner's release counts"
    state.release_leases("p1", [URL])
    assert [f.url for f in state.claim_due_feeds(NOW, "p2", 600)] == [URL]


def test_concurrent_claimers_on_one_database_never_share_a_feed(open_state, state_target):
    setup = open_state()
    urls = [f"https://f{i}.example/feed" for i in range(300)]
    setup.sync_config(FeedConfig(url=url) for url in urls)
    claims: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def claimer(owner: str) -> None:
        state = FeedState(state_target)  # a connection each, as each process has
        try:
            got = claims.setdefault(owner, [])
            start.wait()
            while batch := state.claim_due_feeds(NOW, owner, 600, limit=3):
                got.extend(f.url for f in batch)
        finally:
            state.close()

    threads = [threading.Thread(target=claimer, args=(f"p{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [url for got in claims.values() for url in got]
    assert len(everything) == len(set(everything)), "a feed was claimed twice"
    assert sorted(everything) == sorted(urls), "every due feed was claimed"
    assert sum(1 for got in claims.values() if got) >= 2, "the work was shared"
    owners = {feed.url: feed.lease_owner for feed in setup.list_feeds()}
    assert owners == {url: owner for owner, got in claims.items() for url in got}


def test_a_claimer_skips_feeds_another_claimer_holds_instead_of_waiting(postgres_url):
    import psycopg

    state = FeedState(postgres_url)
    state.add_feed(URL, now=NOW - 2)
    state.add_feed(URL + "2", now=NOW - 1)
    with psycopg.connect(postgres_url) as other:  # a claimer in the middle of its transaction
        other.execute("SELECT url FROM feeds WHERE url = %s FOR UPDATE", (URL,))
        claimed: list[list[str]] = []
        claim = threading.Thread(
            target=lambda: claimed.append([f.url for f in state.claim_due_feeds(NOW, "p2", 60)])
        )
        claim.start()
        claim.join(timeout=10)
        assert not claim.is_alive(), "the claim waited for the other claimer's lock"
        other.rollback()
    assert claimed == [[URL + "2"]]
    assert [f.url for f in state.claim_due_feeds(NOW, "p1", 60)] == [URL], "free once unlocked"
    state.close()


DIE_HOLDING_A_LEASE = """
import os, sys
from connectors.state import FeedState

state = FeedState(sys.argv[1])
claimed = state.claim_due_feeds(float(sys.argv[2]), "dead-process", float(sys.argv[3]))
print(" ".join(feed.url for feed in claimed), flush=True)
os._exit(9)  # no release, no close: killed in the middle of polling
"""


def test_a_lease_held_by_a_dead_process_expires(open_state, state_target):
    state = open_state()
    state.add_feed(URL)
    died = subprocess.run(
        [sys.executable, "-c", DIE_HOLDING_A_LEASE, str(state_target), str(NOW), "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (died.returncode, died.stdout.split()) == (9, [URL]), died.stderr
    assert state.get_feed(URL).lease_owner == "dead-process"
    assert state.claim_due_feeds(NOW + 59, "alive", 60) == [], "the lease still holds"
    assert [f.lease_owner for f in state.claim_due_feeds(NOW + 61, "alive", 60)] == ["alive"]


def test_feeds_fetch_state_and_leases_survive_a_restart(open_state):
    first = open_state()
    first.sync_config([FeedConfig(url=URL, name="News", tags=("a", "b"), interval_seconds=600)])
    first.add_feed(URL + "2", full_text=True, now=NOW)
    fetched = FetchResult(
        "fetched", URL, etag='"v1"', last_modified="Mon, 15 Jan 2024 12:00:00 GMT", feed_title="T"
    )
    first.record_fetch(
        URL, fetched, now=NOW, default_interval_seconds=300, items_seen=2, changed=True
    )
    first.claim_due_feeds(NOW, "p1", 600)
    before = first.list_feeds()
    first.close()
    after = open_state().list_feeds()
    assert after == before
    assert (after[0].etag, after[0].items_seen, after[0].tags) == ('"v1"', 2, ("a", "b"))
    assert (after[1].lease_owner, after[1].full_text) == ("p1", True)


def test_entries_dropped_over_the_cap_add_up_across_polls(open_state):
    """The count the /feeds page shows: every poll's entries over the cap, also after a 304
    (which drops nothing and keeps the count)."""
    state = open_state()
    state.add_feed(URL, now=NOW)
    capped = FetchResult("fetched", URL, entries_dropped=7)
    state.record_fetch(URL, capped, now=NOW, default_interval_seconds=300, entries_dropped=7)
    state.record_fetch(
        URL, FetchResult("not_modified", URL), now=NOW + 300, default_interval_seconds=300
    )
    feed = state.record_fetch(
        URL, capped, now=NOW + 600, default_interval_seconds=300, entries_dropped=3
    )
    assert feed is not None and feed.entries_dropped == 10
    assert open_state().get_feed(URL).entries_dropped == 10


def test_an_old_database_gains_the_new_columns(state_target, open_state):
    old = open_database(state_target)
    old.create_schema(FIRST_RELEASE_FEEDS)
    old.execute("INSERT INTO feeds (url, fetch_url, added_at) VALUES (?, ?, 1)", (URL, URL))
    old.close()
    state = open_state()
    assert [f.url for f in state.claim_due_feeds(NOW, "p1", 60)] == [URL]
    assert state.get_feed(URL).full_text is False


def test_processes_opening_an_old_database_at_once_all_succeed(state_target):
    old = open_database(state_target)
    old.create_schema(FIRST_RELEASE_FEEDS)
    old.close()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def opener() -> None:
        start.wait()
        try:
            FeedState(state_target).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_feeds_are_counted_by_health_as_feed_rows_judge_it(open_state):
    state = open_state()
    error = FetchResult("error", URL, error=f"feed {URL}: HTTP 500", error_kind="http_status")
    for n, failed_at in enumerate([None, NOW - 3600, NOW - 3600, NOW - 2 * 86400]):
        url = f"https://news.example/{n}.xml"
        state.add_feed(url)
        if failed_at is not None:
            state.record_fetch(url, error, now=failed_at, default_interval_seconds=300)
    assert state.health_counts(NOW) == {"ok": 1, "failing": 2, "unhealthy": 1}
    rows = state.list_feeds()
    assert sum(not row.healthy(NOW) for row in rows) == 1
