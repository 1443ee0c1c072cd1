"""Webhook channel: a Standard Webhooks-signed POST of the versioned JSON payload.

Only 2xx counts as delivered; redirects are not followed; 410 disables the endpoint; 429 and
503 honour ``Retry-After``. The URL passes the same SSRF guard as feed URLs, and the connection
goes to the address that was checked.
"""

from __future__ import annotations

import time

import httpx

from alerts.channels.base import DeliveryResult, Outgoing
from alerts.payload import webhook_body
from alerts.signing import InvalidSecret, signature_header
from newsalert import netguard
from newsalert.netguard import GuardedTransport, parse_retry_after
from newsalert.settings import Settings


class WebhookChannel:
    name = "webhook"

    def __init__(
        self, settings: Settings, *, resolver: netguard.Resolver = netguard.system_resolver
    ) -> None:
        self.policy = netguard.NetworkPolicy.from_setting(settings.allow_private_networks)
        self._resolver = resolver
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(httpx.Limits(max_connections=50)),
            timeout=httpx.Timeout(settings.delivery_timeout_seconds),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": settings.user_agent, "Content-Type": "application/json"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, outgoing: Outgoing) -> DeliveryResult:
        notification, secrets = outgoing.notification, list(outgoing.secrets)
        body = webhook_body(outgoing.payload)
        timestamp = int(time.time())
        headers = {"webhook-id": notification.message_id, "webhook-timestamp": str(timestamp)}
        if secrets:
            try:
                headers["webhook-signature"] = signature_header(
                    secrets, notification.message_id, timestamp, body
                )
            except InvalidSecret as exc:
                return DeliveryResult("failed", f"subscriber's webhook secret: {exc}")
        try:
            target = await netguard.check_url(notification.target, self.policy, self._resolver)
        except netguard.SsrfRefused as exc:
            return DeliveryResult("failed", f"webhook URL refused: {exc}")
        try:
            with netguard.pinned([target]):
                response = await self._client.post(target.url, content=body, headers=headers)
        except (httpx.HTTPError, OSError, netguard.SsrfRefused) as exc:
            return DeliveryResult("retry", f"{type(exc).__name__}: {exc}".rstrip(": "))
        return classify_response(response.status_code, response.headers.get("Retry-After"))


def classify_response(status: int, retry_after: str | None) -> DeliveryResult:
    if 200 <= status < 300:
        return DeliveryResult("delivered", f"HTTP {status}")
    if status == 410:
        return DeliveryResult("disabled", "HTTP 410 Gone: the endpoint asked to be disabled")
    if 300 <= status < 400:
        return DeliveryResult("retry", f"HTTP {status}: redirects are not followed")
    if status in (429, 503):
        return DeliveryResult("retry", f"HTTP {status}", parse_retry_after(retry_after))
    return DeliveryResult("retry", f"HTTP {status}")
