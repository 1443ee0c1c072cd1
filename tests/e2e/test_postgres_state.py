"""`newsalert run` with its state in PostgreSQL (NEWSALERT_DATABASE_URL), as a user runs it:
feeds, subscriptions and deliveries live in the database, not in DATA_DIR, and survive a
restart of the service."""

from __future__ import annotations

import time

import psycopg
import pytest

from newsalert.demo import dated
from newsalert.localservers import load_demo_articles
from tests.conftest import eventually
from tests.e2e.test_pipeline import start_service, write_config

pytestmark = pytest.mark.e2e


async def test_state_in_postgresql_alerts_once_and_survives_a_restart(
    tmp_path, servers, postgres_url, service_broker
):
    feeds, receiver, smtp = servers
    burst = dated(load_demo_articles("huawei-5g"), time.time())
    feeds.set_feed("/sport.xml", "Sport Wire", [])
    feeds.set_feed("/tech.xml", "Telecom Wire", burst)
    config = write_config(tmp_path, feeds, receiver, smtp)
    data_dir = tmp_path / "data"

    state = {"NEWSALERT_DATABASE_URL": postgres_url, **service_broker}
    service = await start_service(config, data_dir, **state)
    try:
        assert service.find(f"state is kept in {postgres_url}"), "\n".join(service.lines)
        await eventually(lambda: receiver.received and smtp.messages, 40, "webhook and e-mail")
        polls = feeds.requests.count("/tech.xml")
        await eventually(lambda: feeds.requests.count("/tech.xml") >= polls + 3, 20, "more polls")
        (hook,) = receiver.received
        assert hook.verified and hook.payload["topic"] == "5g-security"
        assert len(smtp.messages) == 1
    finally:
        code = await service.stop()
    assert code == 0, "\n".join(service.lines)

    with psycopg.connect(postgres_url) as db:
        feeds_rows = db.execute("SELECT url, last_success_at FROM feeds ORDER BY url").fetchall()
        assert {url for url, _ in feeds_rows} == {feeds.url("/sport.xml"), feeds.url("/tech.xml")}
        assert all(success is not None for _, success in feeds_rows)
        entries = db.execute("SELECT COUNT(*) FROM feed_entries").fetchone()[0]
        assert entries == len(burst)
        outbox = db.execute("SELECT channel, status, message_id FROM outbox").fetchall()
        assert sorted((c, s) for c, s, _ in outbox) == [
            ("email", "delivered"),
            ("webhook", "delivered"),
        ]
        webhook_id = next(m for c, _, m in outbox if c == "webhook")
        assert hook.headers["webhook-id"] == webhook_id

    # Restarted (the embedded broker's topics are gone, Kafka's are not): the feeds' entries
    # are known, so nothing is published again, and the delivered alert is not sent again.
    again = await start_service(config, data_dir, **state)
    try:
        polls = feeds.requests.count("/tech.xml")
        await eventually(lambda: feeds.requests.count("/tech.xml") >= polls + 3, 20, "re-polls")
        metrics = await again.metrics()
        assert metrics.get("newsalert_articles_published_total", 0) == 0
        assert len(receiver.received) == 1 and len(smtp.messages) == 1
    finally:
        assert await again.stop() == 0, "\n".join(again.lines)

    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2
    assert not (data_dir / "newsalert.sqlite3").exists()
