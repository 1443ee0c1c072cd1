"""Signed links in alerts: one-click unsubscribe (RFC 8058) and mute. A token is an HMAC of the
action, subscriber and argument under a key kept in the database, so links need no login and
cannot be forged for another subscriber."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

MUTE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Links:
    base_url: str  # the service's public HTTP address, e.g. http://alerts.example:9464
    key: bytes

    def token(self, action: str, subscriber: str, argument: str) -> str:
        message = f"{action}|{subscriber}|{argument}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()[:32]

    def check(self, action: str, subscriber: str, argument: str, token: str) -> bool:
        return hmac.compare_digest(self.token(action, subscriber, argument), token)

    def _url(self, path: str, action: str, subscriber: str, argument: str) -> str:
        query = urlencode(
            {"s": subscriber, "a": argument, "t": self.token(action, subscriber, argument)}
        )
        return f"{self.base_url.rstrip('/')}/{path}?{query}"

    def unsubscribe_url(self, subscriber: str, address: str) -> str:
        return self._url("unsubscribe", "unsubscribe", subscriber, address)

    def mute_url(self, subscriber: str, key: str) -> str:
        return self._url("mute", "mute", subscriber, key)
