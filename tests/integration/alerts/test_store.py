"""The alerts store (subscribers, outbox, endpoints, silences) against both real backends:
a SQLite file and a local PostgreSQL database. Two stores on one database stand for two
processes (the service and the CLI, or two services)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from alerts.routing import Notification
from alerts.store import DeliveryStore
from newsalert.settings import SubscriptionConfig
from tests.conftest import sample_spike

NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """Where the state database is: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "newsalert.sqlite3"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def open_store(target):
    opened: list[DeliveryStore] = []

    def open_() -> DeliveryStore:
        opened.append(DeliveryStore(target))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store):
    return open_store()


def subscriber(name: str, **extra) -> SubscriptionConfig:
    return SubscriptionConfig(
        name=name, topics=["5g-security"], email=f"{name}@example.org", **extra
    )


def notification(n: int, spike: dict | None = None) -> Notification:
    spike = spike or sample_spike()
    stories = tuple(s["story_id"] for s in spike["top_stories"])
    target = f"http://127.0.0.1/h{n}"
    return Notification(f"m{n}", f"s{n}", "webhook", target, spike, new_story_ids=stories)


def enqueue(store: DeliveryStore, count: int, due_at: float = NOW) -> None:
    spike = sample_spike()
    store.enqueue([(notification(i, spike), due_at, "pending") for i in range(count)], now=NOW)


def test_a_subscriber_written_by_another_process_is_seen_by_a_cached_reader(open_store):
    service, cli = open_store(), open_store()
    service.sync_config([subscriber("desk")])
    assert [s.config.name for s in service.subscribers()] == ["desk"]  # now cached
    assert service.subscribers() is service.subscribers()  # parsed once while unchanged
    cli.add_subscriber(subscriber("late"))
    assert [(s.config.name, s.origin) for s in service.subscribers()] == [
        ("desk", "config"),
        ("late", "cli"),
    ]
    cli.remove_subscriber("late")
    assert [s.config.name for s in service.subscribers()] == ["desk"]


def test_config_subscribers_are_replaced_by_the_file_only(store):
    store.sync_config([subscriber("desk")])
    store.add_subscriber(subscriber("mine"))
    with pytest.raises(ValueError, match="config file"):
        store.add_subscriber(subscriber("desk", mode="hourly"))
    with pytest.raises(ValueError, match="config file"):
        store.remove_subscriber("desk")
    assert store.subscriber("desk").mode == "instant"
    store.sync_config([])  # the file no longer names desk: gone; the CLI's stays
    assert [s.config.name for s in store.subscribers()] == ["mine"]
    assert store.remove_subscriber("mine") and not store.remove_subscriber("mine")


def test_a_webhook_secret_survives_the_round_trip(store):
    secret = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="
    store.add_subscriber(
        SubscriptionConfig(
            name="hook", topics=["x"], webhook={"url": "https://example.org/h", "secret": secret}
        )
    )
    assert store.subscriber("hook").webhook.secrets() == [secret]


def test_the_link_key_is_one_for_every_process(open_store):
    first, second = open_store(), open_store()
    key = first.link_key()
    assert len(key) == 32 and second.link_key() == key == first.link_key()


def test_a_re_read_spike_adds_nothing_and_its_stories_are_announced(store):
    enqueue(store, 3)
    enqueue(store, 3)
    assert store.pending_count() == 3
    assert store.already_announced("s0", sample_spike()["top_stories"][0]["story_id"])
    assert not store.already_announced("s0", "another-story")


def test_a_newer_state_supersedes_an_untried_notification(store):
    spike = sample_spike()
    store.enqueue([(notification(1, spike), NOW + 30, "pending")], now=NOW)
    escalated = dict(spike, state="escalated")
    newer = Notification("m1-escalated", "s1", "webhook", "http://127.0.0.1/h1", escalated)
    assert store.enqueue([(newer, NOW + 60, "pending")], now=NOW + 5) == 1
    assert store.get("m1").status == "superseded"
    (pending,) = store.messages(status="pending")
    assert pending.message_id == "m1-escalated" and pending.next_attempt_at == NOW + 30


def test_attempts_move_a_message_and_keep_endpoint_health(store):
    enqueue(store, 1)
    (row,) = store.due(NOW)
    store.record_attempt(row, "retry", "HTTP 500", status="pending", next_attempt_at=NOW + 5)
    again = store.get("m0")
    assert (again.attempts, again.last_error, again.next_attempt_at) == (1, "HTTP 500", NOW + 5)
    assert store.endpoint("s0", "webhook", row.target).failing_since is not None
    assert store.due(NOW) == [] and store.next_due_at() == NOW + 5
    store.record_attempt(again, "delivered", "HTTP 200", status="delivered", now=NOW + 6)
    done = store.get("m0")
    assert (done.status, done.attempts, done.delivered_at) == ("delivered", 2, NOW + 6)
    health = store.endpoint("s0", "webhook", row.target)
    assert health.failing_since is None and health.last_success_at == NOW + 6
    assert store.group(row.group_key) == (NOW + 6, NOW + 6)  # a "started" spike
    store.record_attempt(done, "delivered", "HTTP 200", status="delivered", now=NOW + 9)
    assert store.group(row.group_key) == (NOW + 9, NOW + 9)


def test_a_dead_letter_is_requeued_once(store):
    enqueue(store, 1)
    (row,) = store.due(NOW)
    store.record_attempt(row, "failed", "HTTP 400", status="dead", now=NOW)
    assert [r.message_id for r in store.messages(status="dead")] == ["m0"]
    assert store.requeue("m0", now=NOW + 1) and not store.requeue("m0", now=NOW + 1)
    assert [r.attempts for r in store.due(NOW + 1)] == [0]


def test_endpoints_are_disabled_once_and_re_enabled(store):
    assert store.disable_endpoint("s", "email", "a@example.org", "unsubscribed", now=NOW)
    assert not store.disable_endpoint("s", "email", "a@example.org", "again", now=NOW)
    assert store.endpoint_disabled("s", "email", "a@example.org") == "unsubscribed"
    store.enable_endpoint("s", "email", "a@example.org")
    assert store.endpoint_disabled("s", "email", "a@example.org") is None
    assert [e.target for e in store.endpoints()] == ["a@example.org"]


def test_silences_mute_until_they_expire_and_ids_are_not_reused(store):
    first = store.add_silence("desk", "5g-security", NOW + 60, "maintenance", now=NOW)
    assert store.silenced("desk", "5g-security", NOW + 59)
    assert not store.silenced("desk", "5g-security", NOW + 60)
    assert store.remove_silence(first) and not store.remove_silence(first)
    second = store.add_silence("desk", "entity:Huawei", NOW + 60, now=NOW)
    assert second > first
    assert [(s.id, s.key) for s in store.silences(now=NOW)] == [(second, "entity:Huawei")]
    assert store.silences(now=NOW + 61) == []


def test_a_newer_state_in_the_same_batch_supersedes_the_older(store):
    spike = sample_spike()
    escalated = dict(spike, state="escalated")
    newer = Notification("m1-escalated", "s1", "webhook", "http://127.0.0.1/h1", escalated)
    batch = [(notification(1, spike), NOW + 30, "pending"), (newer, NOW + 60, "pending")]
    assert store.enqueue(batch, now=NOW) == 2
    assert store.get("m1").status == "superseded"
    assert [(p.message_id, p.next_attempt_at) for p in store.messages(status="pending")] == [
        ("m1-escalated", NOW + 30)
    ]
    assert store.enqueue(batch, now=NOW + 1) == 0, "a re-read batch adds nothing"
    assert store.get("m1").status == "superseded"


def test_digest_items_become_one_message(store):
    spike = sample_spike()
    items = [
        (Notification(f"d{i}", "daily", "email", "d@example.org", dict(spike, spike_id=f"x{i}")),)
        for i in range(2)
    ]
    store.enqueue([(n, NOW + 3600, "digest") for (n,) in items], now=NOW)
    assert store.due_digests(NOW) == {}
    (held,) = store.due_digests(NOW + 3600).values()
    digest = Notification("digest-1", "daily", "email", "d@example.org", {"topic": "digest"})
    assert store.replace_with_digest(held, digest, now=NOW + 3600)
    assert {r.status for r in store.messages() if r.message_id != "digest-1"} == {"digested"}
    assert store.get("digest-1").status == "pending"


def test_a_digest_built_twice_never_marks_an_item_it_does_not_contain(open_store):
    one, two = open_store(), open_store()
    spike = sample_spike()

    def held(i: int) -> tuple[Notification, float, str]:
        item = Notification(
            f"d{i}", "daily", "email", "d@example.org", dict(spike, spike_id=f"{i}")
        )
        return item, NOW + 3600, "digest"

    one.enqueue([held(0), held(1)], now=NOW)
    (seen_by_one,) = one.due_digests(NOW + 3600).values()
    two.enqueue([held(2)], now=NOW + 1)  # arrives before the first digest is written
    (seen_by_two,) = two.due_digests(NOW + 3600).values()
    digest = Notification("digest-1", "daily", "email", "d@example.org", {"topic": "digest"})
    assert one.replace_with_digest(seen_by_one, digest, now=NOW + 3600)
    assert not two.replace_with_digest(seen_by_two, digest, now=NOW + 3600)
    assert one.get("d2").status == "digest", "still held for the next digest, not lost"
    assert [r.message_id for (r,) in [v for v in two.due_digests(NOW + 3600).values()]] == ["d2"]


def test_state_survives_reopening(target, open_store):
    first = open_store()
    enqueue(first, 2)
    first.add_subscriber(subscriber("late"))
    first.close()
    again = open_store()
    assert again.pending_count() == 2 and again.subscriber("late") is not None
    enqueue(again, 2)  # the same spike read again after the restart
    assert again.pending_count() == 2


def test_a_claimed_message_is_not_handed_to_another_dispatcher(open_store):
    one, two = open_store(), open_store()
    enqueue(one, 3)
    claimed = one.claim_due(NOW, limit=2, lease_seconds=60)
    assert len(claimed) == 2
    rest = two.claim_due(NOW, lease_seconds=600)
    assert [r.message_id for r in rest] == sorted(
        {"m0", "m1", "m2"} - {r.message_id for r in claimed}
    )
    assert two.claim_due(NOW) == [] and two.due(NOW) == []
    # Being delivered: nothing to wake up for before the claim ends.
    assert two.next_due_at() == NOW + 60
    # A recorded attempt ends the claim; a lease that ran out (a dead process) does too.
    one.record_attempt(claimed[0], "retry", "HTTP 500", status="pending", next_attempt_at=NOW)
    assert [r.message_id for r in two.claim_due(NOW)] == [claimed[0].message_id]
    assert [r.message_id for r in two.claim_due(NOW + 61)] == [claimed[1].message_id]


def test_closing_a_store_gives_back_its_claims(open_store):
    one, two = open_store(), open_store()
    enqueue(one, 2)
    assert len(one.claim_due(NOW, lease_seconds=3600)) == 2
    one.close()  # stopped mid-delivery
    assert len(two.claim_due(NOW)) == 2


def test_dispatchers_claiming_at_once_share_out_every_message_exactly_once(target, open_store):
    enqueue(open_store(), 200)
    claimed: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(len(claimed))

    def claim(i: int) -> None:
        store = DeliveryStore(target)  # a connection of its own, as another process has
        try:
            start.wait()
            while rows := store.claim_due(NOW, limit=7, lease_seconds=600):
                claimed[i].extend(r.message_id for r in rows)
                for row in rows:  # "sent"
                    store.record_attempt(row, "delivered", "HTTP 200", status="delivered")
        finally:
            store.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(claimed))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [mid for ids in claimed for mid in ids]
    assert len(every) == len(set(every)) == 200


def test_an_older_sqlite_file_gets_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE outbox (message_id TEXT PRIMARY KEY, subscriber TEXT NOT NULL, "
            "channel TEXT NOT NULL, target TEXT NOT NULL, topic TEXT NOT NULL, state TEXT NOT "
            "NULL, spike_id TEXT NOT NULL, group_key TEXT NOT NULL, kind TEXT NOT NULL DEFAULT "
            "'spike', spike TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts "
            "INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, last_error TEXT, "
            "created_at REAL NOT NULL, updated_at REAL NOT NULL, delivered_at REAL)"
        )
    store = DeliveryStore(path)
    try:
        enqueue(store, 1)
        assert [r.message_id for r in store.claim_due(NOW)] == ["m0"]
    finally:
        store.close()


def test_the_routing_snapshot_answers_as_the_store_does(store):
    spike = sample_spike()
    story = spike["top_stories"][0]["story_id"]
    subs = [
        SubscriptionConfig(
            name=f"s{i}", topics=["5g-security"], webhook={"url": f"http://127.0.0.1/h{i}"}
        )
        for i in range(4)
    ]
    store.enqueue([(notification(0, spike), NOW, "pending")], now=NOW)  # s0 saw the story
    store.add_silence("s1", "5g-security", NOW + 60, now=NOW)
    store.disable_endpoint("s2", "webhook", "http://127.0.0.1/h2", "410 Gone", now=NOW)
    store.record_attempt(store.get("m0"), "delivered", None, status="delivered", now=NOW)
    snapshot = store.routing_state(spike, subs, NOW + 1)
    for sub in subs:
        key = f"{sub.name}|5g-security|webhook"
        assert snapshot.already_announced(sub.name, story) == store.already_announced(
            sub.name, story
        )
        assert snapshot.silenced(sub.name, "5g-security", NOW + 1) == store.silenced(
            sub.name, "5g-security", NOW + 1
        )
        target = f"http://127.0.0.1/h{sub.name[1:]}"
        assert snapshot.endpoint_disabled(sub.name, "webhook", target) == (
            store.endpoint_disabled(sub.name, "webhook", target)
        )
        assert snapshot.group(key) == store.group(key)
    assert snapshot.already_announced("s0", story) and snapshot.silenced(
        "s1", "5g-security", NOW + 1
    )
    assert snapshot.endpoint_disabled("s2", "webhook", "http://127.0.0.1/h2") == "410 Gone"
    assert snapshot.group("s0|5g-security|webhook")[0] == NOW


def test_pending_counts_say_how_many_wait_for_a_retry(store):
    enqueue(store, 3)
    (first, *_) = store.due(NOW)
    store.record_attempt(
        first, "retry", "HTTP 503", status="pending", next_attempt_at=NOW + 60, now=NOW
    )
    assert store.pending_counts() == (3, 1)
