from connectors import scheduler
from connectors.base import FetchResult
from connectors.rss import parse_feed
from connectors.state import FeedState

NOW = 1_800_000_000.0
URL = "https://news.example/feed.xml"


def test_ttl_is_minutes():
    assert scheduler.feed_hint_seconds("60", None, None) == 3600.0


def test_sy_update_period_is_divided_by_frequency():
    assert scheduler.feed_hint_seconds(None, "hourly", "2") == 1800.0
    assert scheduler.feed_hint_seconds(None, "daily", None) == 86400.0


def test_nonsense_hints_are_ignored():
    assert scheduler.feed_hint_seconds("soon", None, None) is None
    assert scheduler.feed_hint_seconds("-5", None, None) is None
    assert scheduler.feed_hint_seconds(None, "fortnightly", "1") is None
    assert scheduler.feed_hint_seconds(None, "hourly", "0") == 3600.0


def test_parse_feed_reads_ttl_and_sy_hints():
    rss = b"""<?xml version="1.0"?><rss version="2.0"
        xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel><title>t</title>
        <sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>
        <item><title>a</title></item></channel></rss>"""
    assert parse_feed(rss).refresh_hint_seconds == 900.0
    with_ttl = rss.replace(b"<title>t</title>", b"<title>t</title><ttl>30</ttl>")
    assert parse_feed(with_ttl).refresh_hint_seconds == 1800.0, "ttl wins over sy"


def test_feed_hint_raises_the_interval_only_up_to_the_cap():
    assert scheduler.effective_interval(300, 1800) == 1800
    assert scheduler.effective_interval(300, 60) == 300, "a short ttl never speeds polling up"
    assert scheduler.effective_interval(300, 7 * 86400) == scheduler.MAX_FEED_HINT_SECONDS


def test_no_change_history_means_the_configured_interval():
    assert (
        scheduler.adaptive_interval(
            base_seconds=300, change_gap_seconds=None, last_change_at=None, now=NOW
        )
        == 300
    )


def test_a_feed_that_changes_often_is_polled_more_often_within_bounds():
    often = scheduler.adaptive_interval(
        base_seconds=600, change_gap_seconds=400, last_change_at=NOW, now=NOW
    )
    assert often == 200  # half the usual gap between changes
    constant = scheduler.adaptive_interval(
        base_seconds=600, change_gap_seconds=10, last_change_at=NOW, now=NOW
    )
    assert constant == 600 * scheduler.ADAPTIVE_MIN_FACTOR


def test_a_quiet_feed_is_polled_less_often_within_bounds():
    quiet = scheduler.adaptive_interval(
        base_seconds=300, change_gap_seconds=600, last_change_at=NOW - 2000, now=NOW
    )
    assert quiet == 1000, "quiet for longer than usual: half the quiet time"
    dead = scheduler.adaptive_interval(
        base_seconds=300, change_gap_seconds=600, last_change_at=NOW - 10**7, now=NOW
    )
    assert dead == 300 * scheduler.ADAPTIVE_MAX_FACTOR


def test_adaptation_never_goes_under_a_minute_unless_configured_so():
    assert (
        scheduler.adaptive_interval(
            base_seconds=120, change_gap_seconds=1, last_change_at=NOW, now=NOW
        )
        == 60
    )
    assert (
        scheduler.adaptive_interval(
            base_seconds=10, change_gap_seconds=1, last_change_at=NOW, now=NOW
        )
        == 10
    ), "an interval configured under a minute is not shortened further"


def test_change_gap_is_a_smoothed_average():
    assert scheduler.next_change_gap(None, None, NOW) is None
    assert scheduler.next_change_gap(None, NOW - 100, NOW) == 100
    assert scheduler.next_change_gap(100, NOW - 200, NOW) == 130


def changed(state, now, changed_flag):
    result = FetchResult("fetched" if changed_flag else "not_modified", URL)
    return state.record_fetch(
        URL, result, now=now, default_interval_seconds=300, changed=changed_flag
    )


def test_state_learns_a_frequently_changing_feed_and_slows_a_quiet_one(tmp_path):
    state = FeedState(tmp_path / "db.sqlite3")
    state.add_feed(URL, interval_seconds=600)
    now = NOW
    feed = changed(state, now, True)
    for _ in range(6):  # changes at every poll
        now = feed.next_poll_at
        feed = changed(state, now, True)
    fast = feed.next_poll_at - now
    assert fast <= 600 * scheduler.ADAPTIVE_MIN_FACTOR * 1.1
    for _ in range(12):  # then nothing for a long time
        now = feed.next_poll_at
        feed = changed(state, now, False)
    assert feed.next_poll_at - now > 600 * 1.1, "quiet feeds drift past the configured interval"
    assert feed.next_poll_at - now <= 600 * scheduler.ADAPTIVE_MAX_FACTOR * 1.1


def test_state_honours_the_feed_ttl_until_a_feed_without_one_answers(tmp_path):
    state = FeedState(tmp_path / "db.sqlite3")
    state.add_feed(URL, interval_seconds=300)
    result = FetchResult("fetched", URL, refresh_hint_seconds=3600)
    feed = state.record_fetch(URL, result, now=NOW, default_interval_seconds=300)
    assert 3240 <= feed.next_poll_at - NOW <= 3960
    feed = changed(state, NOW + 4000, False)  # a 304 carries no ttl: the stored one holds
    assert 3240 <= feed.next_poll_at - NOW - 4000 <= 3960


def test_errors_back_off_from_the_interval_in_use(tmp_path):
    state = FeedState(tmp_path / "db.sqlite3")
    state.add_feed(URL, interval_seconds=300)
    ok = FetchResult("fetched", URL, refresh_hint_seconds=1200)
    state.record_fetch(URL, ok, now=NOW, default_interval_seconds=300)
    error = FetchResult("error", URL, error="HTTP 500", error_kind="http_status")
    state.record_fetch(URL, error, now=NOW, default_interval_seconds=300)
    feed = state.record_fetch(URL, error, now=NOW, default_interval_seconds=300)
    assert feed.next_poll_at - NOW == 2400.0


def test_retry_after_on_503_is_honoured_and_capped(tmp_path):
    state = FeedState(tmp_path / "db.sqlite3")
    state.add_feed(URL, interval_seconds=60)
    busy = FetchResult("error", URL, error="503", error_kind="http_status", retry_after_seconds=1e9)
    feed = state.record_fetch(URL, busy, now=NOW, default_interval_seconds=300)
    assert feed.next_poll_at == NOW + scheduler.MAX_RETRY_AFTER_SECONDS


def test_a_feed_failing_for_days_is_unhealthy_but_still_scheduled(tmp_path):
    state = FeedState(tmp_path / "db.sqlite3")
    state.add_feed(URL, interval_seconds=60)
    error = FetchResult("error", URL, error="HTTP 500", error_kind="http_status")
    for day in range(3):
        feed = state.record_fetch(URL, error, now=NOW + day * 86400, default_interval_seconds=300)
    assert not feed.healthy(NOW + 2 * 86400)
    assert [f.url for f in state.due_feeds(feed.next_poll_at)] == [URL]
