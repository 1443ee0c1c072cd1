"""The contract of a delivery channel: ``send(outgoing) -> DeliveryResult``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from alerts.routing import Notification

Outcome = Literal["delivered", "retry", "failed", "disabled"]


@dataclass(frozen=True)
class Outgoing:
    """One message ready to go: the notification, its versioned payload, and what the
    channel needs besides (signing secrets for webhooks, the unsubscribe link for e-mail)."""

    notification: Notification
    payload: dict[str, Any]
    secrets: tuple[str, ...] = ()
    unsubscribe_url: str | None = None


@dataclass(frozen=True)
class DeliveryResult:
    """``retry``: try again later (``retry_after_seconds`` if the receiver said when);
    ``failed``: permanent, do not retry; ``disabled``: the endpoint asked never to be called
    again (HTTP 410)."""

    outcome: Outcome
    detail: str = ""
    retry_after_seconds: float | None = None


class Channel(Protocol):
    name: str

    async def send(self, outgoing: Outgoing) -> DeliveryResult: ...

    async def aclose(self) -> None: ...
