"""Standard Webhooks signatures (https://www.standardwebhooks.com/): HMAC-SHA256 over
``{webhook-id}.{webhook-timestamp}.{body}`` with a ``whsec_``-prefixed base64 secret, sent as
``v1,<base64>``; several space-separated signatures allow key rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 5 * 60


class InvalidSecret(ValueError):
    """A webhook secret that is not ``whsec_`` followed by base64."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("webhook secret must start with 'whsec_'")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise InvalidSecret(f"webhook secret is not valid base64 after 'whsec_': {exc}") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,`` signature per active secret (old and new during a rotation)."""
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets_)


def verify_signature(
    secret: str,
    message_id: str,
    timestamp: str | int,
    body: bytes,
    header: str,
    *,
    tolerance_seconds: float | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True if any ``v1`` signature in ``header`` matches and the timestamp is fresh."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    if tolerance_seconds is not None and abs(now - ts) > tolerance_seconds:
        return False
    try:
        expected = sign(secret, message_id, ts, body).removeprefix("v1,")
    except InvalidSecret:
        return False
    for candidate in header.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False
