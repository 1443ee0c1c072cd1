"""The local servers every end-to-end test points the service at, and the broker: its own
embedded one, or the session's Apache Kafka."""

from __future__ import annotations

import pytest

from newsalert.demo import DEMO_SECRET
from newsalert.localservers import FeedServer, SmtpSink, WebhookReceiver
from tests.conftest import KAFKA_SETTINGS, new_app_id


@pytest.fixture
def service_broker(broker_kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """NEWSALERT_* variables choosing the service's broker: none for the embedded broker
    `newsalert run` starts itself; the session's Kafka and an app id of this test's own."""
    if broker_kind == "embedded":
        return {}
    kafka = request.getfixturevalue("kafka_cluster")
    settings = {"broker": kafka.url, "app_id": new_app_id(), **KAFKA_SETTINGS}
    return {f"NEWSALERT_{name.upper()}": str(value) for name, value in settings.items()}


@pytest.fixture
async def servers():
    """A feed server, a webhook receiver checking signatures and an SMTP sink, all local."""
    feeds, receiver, smtp = FeedServer(), WebhookReceiver(DEMO_SECRET), SmtpSink()
    for server in (feeds, receiver, smtp):
        await server.start()
    yield feeds, receiver, smtp
    for server in (feeds, receiver, smtp):
        await server.stop()
