"""The alert agent waits for an unavailable state database: a spike that arrives during an
outage is accepted after it, never sent to the dead letters (the app on the embedded broker,
the outbox in a local PostgreSQL)."""

from __future__ import annotations

import json

from alerts import agent as alert_agent
from alerts.runtime import build_dispatcher
from newsalert.settings import load_settings
from streams.app import create_app
from streams.topics import TopicNames, ensure_topics
from tests.conftest import eventually, sample_spike
from tests.integration.core.test_dead_letters import TopicReader, dead_letters_counted


async def test_a_spike_during_a_database_outage_waits_and_is_not_a_dead_letter(
    tmp_path, embedded_broker, postgres_url, postgres_outage, caplog
):
    from aiokafka import AIOKafkaProducer

    settings = load_settings(
        None,
        data_dir=tmp_path,
        app_id="alert-outage",
        database_url=postgres_url,
        subscriptions=[
            {"name": "desk", "topics": ["5g-security"], "email": "desk@example.org"},
        ],
    )
    await ensure_topics(embedded_broker.bootstrap_servers, settings.app_id, settings.partitions)
    dispatcher = build_dispatcher(settings)
    app = create_app(settings, embedded_broker.url)
    alert_agent.register(app, app.spikes_topic, dispatcher)
    names = TopicNames(settings.app_id)
    before = dead_letters_counted("alert")
    producer = AIOKafkaProducer(bootstrap_servers=embedded_broker.bootstrap_servers)
    await app.start()
    await producer.start()
    try:
        async with TopicReader(embedded_broker.bootstrap_servers, names.deadletters) as topics:
            with postgres_outage(postgres_url):
                await producer.send_and_wait(names.spikes, json.dumps(sample_spike()).encode())
                await eventually(
                    lambda: "state database unavailable" in caplog.text, what="the outage logged"
                )
            await eventually(lambda: dispatcher.store.messages(), what="the spike in the outbox")
            assert topics.dead_letters() == []
        assert dead_letters_counted("alert") == before
    finally:
        await producer.stop()
        await app.stop()
        await dispatcher.close()
