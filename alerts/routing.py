"""Spike event -> the notifications it causes (pure: no I/O).

A subscriber hears about a spike if it follows the spike's topic (or ``entity:NAME``), asked for
that state (``started`` by default; ``escalated``/``resolved`` only if listed in ``notify_on``),
and the spike has at least one story this subscriber was not already told about.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.settings import SubscriptionConfig


@dataclass(frozen=True)
class Subscriber:
    name: str
    topics: tuple[str, ...]
    webhook_url: str | None = None
    webhook_secret: str | None = None
    email: str | None = None
    active: bool = True
    notify_on: tuple[str, ...] = ("started",)

    @classmethod
    def from_config(cls, config: SubscriptionConfig) -> Subscriber:
        webhook = config.webhook
        return cls(
            name=config.name,
            topics=tuple(config.topics),
            webhook_url=webhook.url if webhook else None,
            webhook_secret=(
                webhook.secret.get_secret_value() if webhook and webhook.secret else None
            ),
            email=config.email,
            active=config.active,
            notify_on=tuple(config.notify_on),
        )

    def channels(self) -> list[tuple[str, str]]:
        """(channel, target) pairs."""
        pairs = []
        if self.webhook_url:
            pairs.append(("webhook", self.webhook_url))
        if self.email:
            pairs.append(("email", self.email))
        return pairs


@dataclass(frozen=True)
class Notification:
    message_id: str  # stable across retries: the webhook-id and idempotency key
    subscriber: str
    channel: str
    target: str
    spike: dict[str, Any]
    new_story_ids: tuple[str, ...] = field(default=())


def message_id(spike_id: str, state: str, subscriber: str, channel: str) -> str:
    digest = hashlib.sha256(f"{spike_id}|{state}|{subscriber}|{channel}".encode()).hexdigest()
    return "msg_" + digest[:26]


def route(
    spike: dict[str, Any],
    subscribers: Iterable[Subscriber],
    already_announced: Callable[[str, str], bool] = lambda subscriber, story_id: False,
) -> list[Notification]:
    topic, state = spike["topic"], spike["state"]
    notifications: list[Notification] = []
    for subscriber in subscribers:
        if not subscriber.active or topic not in subscriber.topics:
            continue
        if state not in subscriber.notify_on:
            continue
        story_ids = [s.get("story_id") or s.get("article_id") for s in spike["top_stories"]]
        new_ids = tuple(s for s in story_ids if s and not already_announced(subscriber.name, s))
        if state == "started" and story_ids and not new_ids:
            continue  # every story in this spike was already announced to this subscriber
        for channel, target in subscriber.channels():
            notifications.append(
                Notification(
                    message_id=message_id(spike["spike_id"], state, subscriber.name, channel),
                    subscriber=subscriber.name,
                    channel=channel,
                    target=target,
                    spike=spike,
                    new_story_ids=new_ids,
                )
            )
    return notifications
