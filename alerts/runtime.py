"""Builds the alert dispatcher of a running service from its settings."""

from __future__ import annotations

from alerts import metrics
from alerts.channels.email import EmailChannel
from alerts.channels.webhook import WebhookChannel
from alerts.dispatcher import Dispatcher, Policy
from alerts.links import Links
from alerts.routing import Timing
from alerts.store import DeliveryStore
from newsalert.settings import Settings


def policy_from(settings: Settings) -> Policy:
    return Policy(
        retry_schedule_seconds=settings.delivery_retry_schedule_seconds,
        timing=Timing(
            group_wait_seconds=settings.alert_group_wait_seconds,
            group_interval_seconds=settings.alert_group_interval_seconds,
            repeat_interval_seconds=settings.alert_repeat_interval_seconds,
        ),
        concurrency_per_endpoint=settings.delivery_concurrency_per_endpoint,
        max_in_flight=settings.delivery_max_in_flight,
        attempt_timeout_seconds=settings.delivery_timeout_seconds + 5,
        disable_after_seconds=settings.endpoint_disable_after_seconds,
        suppress_after_hard_failures=settings.email_suppress_after_hard_failures,
    )


def build_dispatcher(
    settings: Settings, public_url: str | None = None, *, sync_config: bool = True
) -> Dispatcher:
    """The dispatcher, with config-file subscribers synced into the database (CLI-added ones
    are kept) unless ``sync_config`` is false (a CLI command run without ``--config`` must not
    drop the file's subscribers). ``public_url`` is where unsubscribe and mute links point."""
    metrics.initialise()
    store = DeliveryStore(settings.state_database)
    if sync_config:
        store.sync_config(settings.subscriptions)
    channels = {"webhook": WebhookChannel(settings), "email": EmailChannel(settings.smtp)}
    base = settings.public_url or public_url
    links = Links(base, store.link_key()) if base else None
    return Dispatcher(store, channels, policy_from(settings), links)
