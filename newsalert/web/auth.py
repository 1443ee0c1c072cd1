"""Who may use the pages and the API: the holder of NEWSALERT_API_TOKEN. The API takes it as
``Authorization: Bearer``; the pages take it once in a login form and then carry a signed
session cookie (HttpOnly, SameSite=Strict), and every form they post carries a CSRF token bound
to that session. Keys derive from the token: a new token ends every session."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

SESSION_COOKIE = "newsalert_session"
SESSION_SECONDS = 12 * 3600.0


class Guard:
    def __init__(self, token: str, clock: Callable[[], float] = time.time) -> None:
        self._token = token.encode()
        self._key = hmac.new(self._token, b"newsalert pages session", hashlib.sha256).digest()
        self._clock = clock

    def token_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self._token)

    def bearer_ok(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value.strip())

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        """A cookie value: a random session id, when it was issued, and their MAC."""
        session = f"{secrets.token_urlsafe(24)}.{int(self._clock())}"
        return f"{session}.{self._mac('session', session)}"

    def session_of(self, cookie: str | None) -> str | None:
        """The session id of a valid, unexpired cookie, else None."""
        if not cookie or cookie.count(".") != 2:
            return None
        session, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac("session", session)):
            return None
        issued = session.rpartition(".")[2]
        if not issued.isdigit() or self._clock() - int(issued) > SESSION_SECONDS:
            return None
        return session

    def csrf_token(self, session: str) -> str:
        return self._mac("csrf", session)

    def csrf_ok(self, session: str, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf_token(session))
