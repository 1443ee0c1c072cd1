"""The local servers every end-to-end test points the service at."""

from __future__ import annotations

import pytest

from newsalert.demo import DEMO_SECRET
from newsalert.localservers import FeedServer, SmtpSink, WebhookReceiver


@pytest.fixture
async def servers():
    """A feed server, a webhook receiver checking signatures and an SMTP sink, all local."""
    feeds, receiver, smtp = FeedServer(), WebhookReceiver(DEMO_SECRET), SmtpSink()
    for server in (feeds, receiver, smtp):
        await server.start()
    yield feeds, receiver, smtp
    for server in (feeds, receiver, smtp):
        await server.stop()
