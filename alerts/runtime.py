"""Builds the alert dispatcher of a running service from its settings."""

from __future__ import annotations

from alerts.channels.email import EmailChannel
from alerts.channels.webhook import WebhookChannel
from alerts.dispatcher import Dispatcher
from alerts.routing import Subscriber
from alerts.store import DeliveryStore
from streams.settings import Settings


def build_dispatcher(settings: Settings) -> Dispatcher:
    subscribers = [Subscriber.from_config(s) for s in settings.subscriptions]
    secrets = {s.name: [s.webhook_secret] for s in subscribers if s.webhook_secret}
    channels = {
        "webhook": WebhookChannel(settings, secrets),
        "email": EmailChannel(settings.smtp),
    }
    return Dispatcher(
        DeliveryStore(settings.database_path),
        channels,
        subscribers,
        settings.delivery_retry_schedule_seconds,
    )
