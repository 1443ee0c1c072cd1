"""Delivery against real local servers: a webhook receiver and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import copy
import dataclasses

import pytest

from alerts.runtime import build_dispatcher
from newsalert.localservers import SmtpSink, WebhookReceiver
from newsalert.settings import load_settings
from tests.conftest import eventually, sample_spike

SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="

SPIKE = sample_spike()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """The state database: the SQLite file in DATA_DIR, or a local PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
async def receiver():
    server = WebhookReceiver(SECRET)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def smtp():
    server = SmtpSink()
    await server.start()
    yield server
    await server.stop()


def settings_for(tmp_path, receiver, smtp, allow="127.0.0.0/8", database_url=None, **extra):
    extra.setdefault("alert_group_wait_seconds", 0)
    return load_settings(
        None,
        data_dir=tmp_path,
        database_url=database_url,
        allow_private_networks=allow,
        subscriptions=[
            {
                "name": "desk",
                "topics": ["5g-security"],
                "webhook": {"url": receiver.url("/hook"), "secret": SECRET},
                "email": "risk@example.org",
            }
        ],
        smtp={"host": "127.0.0.1", "port": smtp.port},
        **extra,
    )


def webhook_row(dispatcher):
    (row,) = [r for r in dispatcher.store.messages() if r.channel == "webhook"]
    return row


def dispatcher_for(settings, clock):
    dispatcher = build_dispatcher(settings)
    dispatcher.clock = clock
    return dispatcher


async def test_signed_webhook_and_email_are_delivered_once(tmp_path, receiver, smtp, database_url):
    dispatcher = dispatcher_for(
        settings_for(tmp_path, receiver, smtp, database_url=database_url), Clock()
    )
    try:
        assert await dispatcher.accept(copy.deepcopy(SPIKE)) == 2
        assert await dispatcher.accept(copy.deepcopy(SPIKE)) == 0  # a re-read spike
        assert await dispatcher.deliver_due() == 2
        assert await dispatcher.deliver_due() == 0
    finally:
        await dispatcher.close()
    (hook,) = receiver.received
    assert hook.verified
    assert hook.payload["topic"] == "5g-security"
    assert hook.headers["webhook-id"] == hook.payload["message_id"]
    (message,) = smtp.messages
    assert message["To"] == "risk@example.org" and "5g-security" in message["Subject"]


async def test_failures_are_retried_on_schedule_with_the_same_webhook_id(
    tmp_path, receiver, smtp, database_url
):
    receiver.status = 500
    clock = Clock()
    settings = settings_for(
        tmp_path,
        receiver,
        smtp,
        database_url=database_url,
        delivery_retry_schedule_seconds=(5, 300),
    )
    dispatcher = dispatcher_for(settings, clock)
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await dispatcher.deliver_due()  # webhook fails, e-mail is delivered
        assert await dispatcher.deliver_due() == 0  # not due yet
        clock.now += 6
        assert await dispatcher.deliver_due() == 1
        receiver.status = 200
        clock.now += 400
        assert await dispatcher.deliver_due() == 1
        row = webhook_row(dispatcher)
        assert row.status == "delivered" and row.attempts == 3
    finally:
        await dispatcher.close()
    assert len({h.headers["webhook-id"] for h in receiver.received}) == 1
    assert len(receiver.received) == 3


async def test_exhausted_schedule_goes_to_dead_letters_and_can_be_replayed(
    tmp_path, receiver, smtp, database_url
):
    receiver.status = 503
    clock = Clock()
    settings = settings_for(
        tmp_path, receiver, smtp, database_url=database_url, delivery_retry_schedule_seconds=(5,)
    )
    dispatcher = dispatcher_for(settings, clock)
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await dispatcher.deliver_due()
        clock.now += 10
        await dispatcher.deliver_due()
        (dead,) = dispatcher.store.messages(status="dead")
        assert dead.channel == "webhook" and "503" in dead.last_error
        receiver.status = 200
        assert dispatcher.store.requeue(dead.message_id, now=clock.now)
        assert await dispatcher.deliver_due() == 1
        assert dispatcher.store.get(dead.message_id).status == "delivered"
    finally:
        await dispatcher.close()


async def test_410_gone_stops_delivery_at_once(tmp_path, receiver, smtp):
    receiver.status = 410
    clock = Clock()
    dispatcher = dispatcher_for(settings_for(tmp_path, receiver, smtp), clock)
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await dispatcher.deliver_due()
        row = webhook_row(dispatcher)
        assert row.status == "dead" and "410" in row.last_error
        # The endpoint is disabled: the next spike goes by e-mail only, and the subscriber's
        # e-mail was told about the webhook (a notice).
        assert dispatcher.store.endpoint_disabled("desk", "webhook", receiver.url("/hook"))
        await dispatcher.accept(dict(copy.deepcopy(SPIKE), spike_id="next", top_stories=[]))
        clock.now += 4 * 3600 + 1  # past the repeat interval for a new spike of the topic
        await dispatcher.deliver_due()
    finally:
        await dispatcher.close()
    assert len(receiver.received) == 1
    subjects = sorted(m["Subject"] for m in smtp.messages)
    assert len(subjects) == 3 and any("webhook endpoint was disabled" in s for s in subjects)


async def test_webhook_to_a_private_address_is_refused_without_allow_list(tmp_path, receiver, smtp):
    dispatcher = dispatcher_for(settings_for(tmp_path, receiver, smtp, allow="false"), Clock())
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await dispatcher.deliver_due()
        row = webhook_row(dispatcher)
        assert row.status == "dead" and "loopback" in row.last_error
    finally:
        await dispatcher.close()
    assert receiver.received == []


async def test_accepted_notifications_survive_a_restart(tmp_path, receiver, smtp, database_url):
    settings = settings_for(tmp_path, receiver, smtp, database_url=database_url)
    first = dispatcher_for(settings, Clock())
    await first.accept(copy.deepcopy(SPIKE))
    await first.close()  # stopped before delivering anything
    second = dispatcher_for(settings, Clock())
    try:
        assert await second.deliver_due() == 2
    finally:
        await second.close()
    assert len(receiver.received) == 1 and len(smtp.messages) == 1


async def test_429_retry_after_is_honoured(tmp_path, receiver, smtp):
    receiver.status, receiver.retry_after = 429, "120"
    clock = Clock()
    dispatcher = dispatcher_for(settings_for(tmp_path, receiver, smtp), clock)
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await dispatcher.deliver_due()
        row = webhook_row(dispatcher)
        assert row.status == "pending" and row.next_attempt_at >= clock.now + 120
    finally:
        await dispatcher.close()


async def test_slow_endpoint_does_not_hold_up_the_email(tmp_path, receiver, smtp):
    receiver.delay_seconds = 3.0
    settings = settings_for(tmp_path, receiver, smtp, delivery_timeout_seconds=0.5)
    dispatcher = build_dispatcher(settings)
    dispatcher.policy = dataclasses.replace(dispatcher.policy, attempt_timeout_seconds=0.5)
    runner = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await eventually(lambda: smtp.messages, 5, "the e-mail while the webhook hangs")
        await eventually(
            lambda: any(r.attempts for r in dispatcher.store.messages() if r.channel == "webhook"),
            5,
            "the webhook attempt to time out",
        )
        row = webhook_row(dispatcher)
        assert row.status == "pending" and "within 0.5 s" in row.last_error
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await dispatcher.close()


async def test_smtp_4xx_is_retried_and_5xx_suppresses_the_address(tmp_path, receiver, smtp):
    clock = Clock()
    settings = settings_for(tmp_path, receiver, smtp, email_suppress_after_hard_failures=2)
    dispatcher = dispatcher_for(settings, clock)
    try:
        smtp.reply = "451 4.3.0 try again later"
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await dispatcher.deliver_due()
        (mail,) = [r for r in dispatcher.store.messages() if r.channel == "email"]
        assert mail.status == "pending" and "451" in mail.last_error
        smtp.reply = "550 5.1.1 no such user"
        clock.now += 10
        await dispatcher.deliver_due()
        assert dispatcher.store.get(mail.message_id).status == "failed" or (
            dispatcher.store.get(mail.message_id).status == "dead"
        )
        second = dict(copy.deepcopy(SPIKE), spike_id="second")
        second["top_stories"] = [dict(SPIKE["top_stories"][0], story_id="s2")]
        await dispatcher.accept(second)
        await dispatcher.deliver_due()
        reason = dispatcher.store.endpoint_disabled("desk", "email", "risk@example.org")
        assert reason and "suppressed after 2 hard failures" in reason
        third = dict(copy.deepcopy(SPIKE), spike_id="third")
        third["top_stories"] = [dict(SPIKE["top_stories"][0], story_id="s3")]
        await dispatcher.accept(third)
        assert [r.channel for r in dispatcher.store.messages() if r.spike_id == "third"] == [
            "webhook"
        ]
    finally:
        await dispatcher.close()
    assert smtp.refused == 3 and smtp.messages == []


async def test_restart_mid_retry_resends_with_the_same_id(tmp_path, receiver, smtp, database_url):
    receiver.status = 500
    clock = Clock()
    settings = settings_for(tmp_path, receiver, smtp, database_url=database_url)
    first = dispatcher_for(settings, clock)
    await first.accept(copy.deepcopy(SPIKE))
    await first.deliver_due()
    await first.close()  # "killed" while the webhook waits for its retry
    receiver.status = 200
    clock.now += 10
    second = dispatcher_for(settings, clock)
    try:
        assert await second.deliver_due() == 1
        await second.accept(copy.deepcopy(SPIKE))  # the spike re-read after the restart
        assert await second.deliver_due() == 0
    finally:
        await second.close()
    ids = [h.headers["webhook-id"] for h in receiver.received]
    assert len(ids) == 2 and len(set(ids)) == 1 and receiver.received[-1].verified


async def test_digest_collects_spikes_into_one_message(tmp_path, receiver, smtp):
    clock = Clock()
    settings = load_settings(
        None,
        data_dir=tmp_path,
        allow_private_networks="127.0.0.0/8",
        subscriptions=[
            {
                "name": "daily",
                "topics": ["5g-security", "sanctions"],
                "email": "d@example.org",
                "mode": "hourly",
            }
        ],
        smtp={"host": "127.0.0.1", "port": smtp.port},
    )
    dispatcher = dispatcher_for(settings, clock)
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        other = dict(copy.deepcopy(SPIKE), topic="sanctions", spike_id="sanctions:1")
        other["top_stories"] = [dict(SPIKE["top_stories"][0], story_id="s7")]
        await dispatcher.accept(other)
        assert await dispatcher.deliver_due() == 0  # held until the hour
        clock.now += 3600
        assert await dispatcher.deliver_due() == 1
    finally:
        await dispatcher.close()
    (message,) = smtp.messages
    assert "digest: 2 spikes" in message["Subject"]


async def test_silence_mutes_a_topic_until_it_expires(tmp_path, receiver, smtp):
    clock = Clock()
    dispatcher = dispatcher_for(settings_for(tmp_path, receiver, smtp), clock)
    try:
        dispatcher.store.add_silence("desk", "5g-security", clock.now + 3600, now=clock.now)
        assert await dispatcher.accept(copy.deepcopy(SPIKE)) == 0
        clock.now += 3601
        later = dict(copy.deepcopy(SPIKE), spike_id="later")
        assert await dispatcher.accept(later) == 2
    finally:
        await dispatcher.close()


async def test_an_endpoint_failing_for_days_is_disabled_and_the_subscriber_told(
    tmp_path, receiver, smtp
):
    receiver.status = 500
    clock = Clock()
    settings = settings_for(
        tmp_path, receiver, smtp, delivery_retry_schedule_seconds=(5, 3 * 86400, 3 * 86400)
    )
    dispatcher = dispatcher_for(settings, clock)
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await dispatcher.deliver_due()  # webhook fails, e-mail delivered
        clock.now += 3 * 86400 + 1  # failing for three days: still enabled
        await dispatcher.deliver_due()
        assert dispatcher.store.endpoint_disabled("desk", "webhook", receiver.url("/hook")) is None
        clock.now += 4 * 86400  # seven days (past the jittered retry): over the 5-day limit
        await dispatcher.deliver_due()
        reason = dispatcher.store.endpoint_disabled("desk", "webhook", receiver.url("/hook"))
        assert reason and "failing for" in reason
        await dispatcher.deliver_due()  # the notice to the subscriber's e-mail
    finally:
        await dispatcher.close()
    assert any("webhook endpoint was disabled" in m["Subject"] for m in smtp.messages)


async def test_deliveries_in_flight_are_capped_across_endpoints(tmp_path, receiver, smtp):
    subscribers = [
        {"name": f"s{i}", "topics": ["5g-security"], "webhook": {"url": receiver.url(f"/h{i}")}}
        for i in range(12)
    ]
    settings = load_settings(
        None,
        data_dir=tmp_path,
        allow_private_networks="127.0.0.0/8",
        alert_group_wait_seconds=0,
        delivery_max_in_flight=3,
        subscriptions=subscribers,
    )
    receiver.delay_seconds = 0.05
    dispatcher = dispatcher_for(settings, Clock())
    seen: list[int] = []
    original = dispatcher._attempt

    async def counting(channel, outgoing):
        seen.append(len(dispatcher._in_flight))
        return await original(channel, outgoing)

    dispatcher._attempt = counting
    try:
        assert await dispatcher.accept(sample_spike()) == 12
        assert await dispatcher.deliver_due() == 12
    finally:
        await dispatcher.close()
    assert len(receiver.received) == 12 and max(seen) == 3


async def test_a_subscriber_added_by_the_cli_is_seen_by_a_running_dispatcher(
    tmp_path, receiver, smtp, database_url
):
    from alerts.store import DeliveryStore
    from newsalert.settings import SubscriptionConfig

    settings = settings_for(tmp_path, receiver, smtp, database_url=database_url)
    dispatcher = dispatcher_for(settings, Clock())
    cli_store = DeliveryStore(settings.state_database)
    try:
        assert [s.name for s in dispatcher.subscribers()] == ["desk"]  # now cached
        cli_store.add_subscriber(
            SubscriptionConfig(name="late", topics=["5g-security"], email="l@example.org")
        )
        assert [s.name for s in dispatcher.subscribers()] == ["desk", "late"]
        assert await dispatcher.accept(sample_spike()) == 3
        cli_store.remove_subscriber("late")
        assert [s.name for s in dispatcher.subscribers()] == ["desk"]
    finally:
        cli_store.close()
        await dispatcher.close()


async def test_two_dispatchers_sharing_a_database_send_each_message_once(
    tmp_path, receiver, smtp, database_url
):
    subscribers = [
        {
            "name": f"s{i}",
            "topics": ["5g-security"],
            "webhook": {"url": receiver.url(f"/h{i}"), "secret": SECRET},
        }
        for i in range(30)
    ]
    settings = load_settings(
        None,
        data_dir=tmp_path,
        database_url=database_url,
        allow_private_networks="127.0.0.0/8",
        alert_group_wait_seconds=0,
        subscriptions=subscribers,
    )
    receiver.delay_seconds = 0.02
    # Two service processes: both read the spike (the same deterministic ids), both deliver.
    one, two = build_dispatcher(settings), build_dispatcher(settings)
    try:
        await one.accept(sample_spike())
        await two.accept(sample_spike())
        tried = await asyncio.gather(one.deliver_due(), two.deliver_due())
    finally:
        await one.close()
        await two.close()
    assert sum(tried) == 30 and all(tried), tried  # shared out, not each doing all
    assert len(receiver.received) == len({h.headers["webhook-id"] for h in receiver.received}) == 30
    assert all(h.verified for h in receiver.received)


async def test_a_database_outage_delays_a_spike_but_loses_nothing(
    tmp_path, receiver, smtp, postgres_url, postgres_outage, caplog
):
    settings = settings_for(tmp_path, receiver, smtp, database_url=postgres_url)
    dispatcher = dispatcher_for(settings, Clock())
    with postgres_outage(postgres_url):
        accepting = asyncio.create_task(dispatcher.accept(copy.deepcopy(SPIKE)))
        await eventually(
            lambda: "state database unavailable" in caplog.text, what="the outage logged"
        )
        assert not accepting.done(), "waits for the database instead of failing the stream"
    try:
        assert await asyncio.wait_for(accepting, 30) == 2
        assert await dispatcher.deliver_due() == 2
    finally:
        await dispatcher.close()
    assert len(receiver.received) == 1 and len(smtp.messages) == 1


# -- e-mail: pooled SMTP sessions ------------------------------------------------------------


def email_to(n: int):
    from alerts.channels.base import Outgoing
    from alerts.payload import webhook_payload
    from alerts.routing import Notification

    note = Notification(f"msg_{n:04d}", "desk", "email", f"reader{n}@example.org", SPIKE)
    return Outgoing(note, webhook_payload(note.message_id, note.subscriber, note.spike))


def email_channel(smtp, **options):
    from alerts.channels.email import EmailChannel
    from newsalert.settings import SmtpConfig

    return EmailChannel(SmtpConfig(host="127.0.0.1", port=smtp.port), **options)


def received_ids(smtp):
    return sorted(m["X-Newsalert-Message-Id"] for m in smtp.messages)


async def test_a_burst_of_emails_shares_a_few_smtp_connections(smtp):
    from alerts.channels.email import MAX_SESSIONS

    channel = email_channel(smtp)
    before = smtp.connections_opened  # aiosmtpd's controller connects once to check it is up
    try:
        results = await asyncio.gather(*(channel.send(email_to(n)) for n in range(40)))
    finally:
        await channel.aclose()
    assert {r.outcome for r in results} == {"delivered"}
    assert received_ids(smtp) == [f"msg_{n:04d}" for n in range(40)]
    assert 1 <= smtp.connections_opened - before <= MAX_SESSIONS


async def test_an_email_after_the_server_dropped_the_idle_connection_arrives_once(smtp):
    channel = email_channel(smtp)
    try:
        assert (await channel.send(email_to(1))).outcome == "delivered"
        assert smtp.open_connections == 1
        smtp.drop_connections()
        await eventually(lambda: smtp.open_connections == 0, 5, "the server to drop it")
        assert (await channel.send(email_to(2))).outcome == "delivered"
    finally:
        await channel.aclose()
    assert received_ids(smtp) == ["msg_0001", "msg_0002"]


@pytest.mark.parametrize(
    "hang_up_reply", ["421 4.4.2 idle too long, closing connection", ""], ids=["421", "reset"]
)
async def test_a_reused_connection_closed_at_mail_is_retried_once_on_a_new_one(smtp, hang_up_reply):
    channel = email_channel(smtp)
    try:
        assert (await channel.send(email_to(1))).outcome == "delivered"
        before = smtp.connections_opened
        smtp.hang_up_reply, smtp.hang_ups = hang_up_reply, 1
        result = await channel.send(email_to(2))
    finally:
        await channel.aclose()
    assert result.outcome == "delivered", result.detail
    assert received_ids(smtp) == ["msg_0001", "msg_0002"]
    assert smtp.hang_ups == 0 and smtp.connections_opened - before == 1


async def test_a_new_connection_closed_at_mail_is_reported_for_retry_not_resent(smtp):
    channel = email_channel(smtp)
    try:
        assert (await channel.send(email_to(1))).outcome == "delivered"
        before = smtp.connections_opened
        smtp.hang_ups = 3  # the reused session, then the new one: the third is never asked
        result = await channel.send(email_to(2))
    finally:
        await channel.aclose()
    assert result.outcome == "retry" and "421" in result.detail
    assert smtp.hang_ups == 1 and smtp.connections_opened - before == 1
    assert received_ids(smtp) == ["msg_0001"]


async def test_a_refused_email_leaves_its_session_usable_for_the_next(smtp):
    channel = email_channel(smtp)
    before = smtp.connections_opened
    try:
        smtp.reply = "550 5.1.1 no such user"
        refused = await channel.send(email_to(1))
        smtp.reply = "451 4.3.0 try again later"
        deferred = await channel.send(email_to(2))
        smtp.reply = "250 Message accepted for delivery"
        accepted = await channel.send(email_to(3))
    finally:
        await channel.aclose()
    assert (refused.outcome, deferred.outcome, accepted.outcome) == ("failed", "retry", "delivered")
    assert received_ids(smtp) == ["msg_0003"]
    assert smtp.connections_opened - before == 1  # RSET after each refusal, same session


async def test_an_idle_smtp_session_is_closed(smtp):
    channel = email_channel(smtp, idle_seconds=0.2)
    try:
        assert (await channel.send(email_to(1))).outcome == "delivered"
        assert smtp.open_connections == 1
        await eventually(lambda: smtp.open_connections == 0, 5, "the idle session to close")
        assert (await channel.send(email_to(2))).outcome == "delivered"
    finally:
        await channel.aclose()
    assert received_ids(smtp) == ["msg_0001", "msg_0002"]


async def test_closing_the_dispatcher_closes_its_smtp_sessions(tmp_path, receiver, smtp):
    dispatcher = dispatcher_for(settings_for(tmp_path, receiver, smtp), Clock())
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        await dispatcher.deliver_due()
        assert len(smtp.messages) == 1 and smtp.open_connections == 1
    finally:
        await dispatcher.close()
    await eventually(lambda: smtp.open_connections == 0, 5, "the session to close")


async def test_a_reused_connection_closing_after_data_is_not_resent_at_once(smtp):
    channel = email_channel(smtp)
    try:
        assert (await channel.send(email_to(1))).outcome == "delivered"
        smtp.reply = "421 4.3.2 shutting down"  # the answer to the message itself
        result = await channel.send(email_to(2))
    finally:
        await channel.aclose()
    assert result.outcome == "retry" and "421" in result.detail
    assert smtp.refused == 1 and received_ids(smtp) == ["msg_0001"]


async def test_outbox_gauge_follows_every_delivery_retry_and_dead_letter(tmp_path, receiver, smtp):
    from prometheus_client import REGISTRY

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("newsalert_outbox_pending")

    receiver.status = 500
    clock = Clock()
    settings = settings_for(tmp_path, receiver, smtp, delivery_retry_schedule_seconds=(5,))
    dispatcher = dispatcher_for(settings, clock)
    try:
        await dispatcher.accept(copy.deepcopy(SPIKE))
        assert gauge() == 2  # webhook and e-mail
        await dispatcher.deliver_due()  # e-mail delivered, webhook waits for its retry
        assert gauge() == 1
        clock.now += 10
        await dispatcher.deliver_due()  # the retry fails too: a dead letter
        assert gauge() == 0
        (dead,) = dispatcher.store.messages(status="dead")
        receiver.status = 200
        dispatcher.store.requeue(dead.message_id, now=clock.now)
        await dispatcher.deliver_due()
        assert gauge() == 0
    finally:
        await dispatcher.close()
