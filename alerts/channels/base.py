"""The contract of a delivery channel: ``send(notification) -> DeliveryResult``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from alerts.routing import Notification

Outcome = Literal["delivered", "retry", "failed", "disabled"]


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

    async def send(self, notification: Notification, *, test: bool = False) -> DeliveryResult: ...

    async def aclose(self) -> None: ...
