"""E-mail channel: one multipart message (plain text + HTML) per notification, over SMTP with
STARTTLS or implicit TLS and optional auth. Headers are built by ``EmailMessage`` (titles can
never inject headers); 4xx replies are retried, 5xx are permanent failures.

A few SMTP sessions stay open and carry one message after another (a refused message is
followed by RSET, as aiosmtplib does); a session idle for ``idle_seconds`` is closed with QUIT.
"""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib

from alerts.channels.base import DeliveryResult, Outgoing
from alerts.payload import email_content
from newsalert.settings import SmtpConfig


def build_message(outgoing: Outgoing, sender: str) -> EmailMessage:
    notification = outgoing.notification
    subject, plain, html = email_content(outgoing.payload)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = notification.target
    message["Message-ID"] = make_msgid(idstring=notification.message_id.removeprefix("msg_"))
    message["X-Newsalert-Message-Id"] = notification.message_id
    if outgoing.unsubscribe_url:
        # RFC 8058 one-click unsubscribe: mail clients POST to the link.
        message["List-Unsubscribe"] = f"<{outgoing.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return message


# Sessions open to the SMTP server at most: the dispatcher runs up to delivery_max_in_flight
# deliveries, but one server gains little from more parallel sessions than this, and a small
# number keeps within the per-client connection limits of common MTAs.
MAX_SESSIONS = 4
IDLE_SECONDS = 30.0


class _Session(aiosmtplib.SMTP):
    """One pooled SMTP connection, with what the pool must know of its last transaction."""

    idle_since = 0.0
    # Once DATA was sent, a lost connection may have delivered the message: no quick resend.
    reached_data = False
    # After a refusal aiosmtplib sends RSET but ignores its failure; reuse only if it worked.
    envelope_reset = False

    async def data(self, *args: Any, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        self.reached_data = True
        return await super().data(*args, **kwargs)

    async def rset(self, *args: Any, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        response = await super().rset(*args, **kwargs)
        self.envelope_reset = True
        return response


class _ClosedWhileIdle(Exception):
    """A reused session was gone before the message reached DATA: nothing was delivered."""


class EmailChannel:
    name = "email"

    def __init__(
        self,
        smtp: SmtpConfig,
        *,
        max_sessions: int = MAX_SESSIONS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.smtp = smtp
        self.idle_seconds = idle_seconds
        self._sessions = asyncio.Semaphore(max_sessions)
        self._idle: list[_Session] = []  # oldest first; the newest is reused first
        self._reaper: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(session) for session in idle))

    async def send(self, outgoing: Outgoing) -> DeliveryResult:
        message = build_message(outgoing, self.smtp.sender)
        try:
            async with self._sessions:
                await self._send(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            return _by_code(min(codes) if codes else 500, detail)
        except aiosmtplib.SMTPResponseException as exc:
            return _by_code(exc.code, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return DeliveryResult("retry", f"SMTP {type(exc).__name__}: {exc}")
        return DeliveryResult("delivered", "250 accepted")

    async def _send(self, message: EmailMessage) -> None:
        session = self._take_idle()
        if session is not None:
            try:
                return await self._transact(session, message, reused=True)
            except _ClosedWhileIdle:
                pass  # the server closed it (idle timeout, restart): once more on a new one
        await self._transact(await self._connect(), message, reused=False)

    async def _transact(self, session: _Session, message: EmailMessage, *, reused: bool) -> None:
        """Send on ``session``; back to the pool afterwards only if its state is known clean."""
        session.reached_data = session.envelope_reset = False
        clean = False
        try:
            await session.send_message(message)
            clean = True
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
            clean = session.envelope_reset
            if reused and _closing(exc) and not session.reached_data:
                raise _ClosedWhileIdle from exc
            raise
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if reused and not session.reached_data:
                raise _ClosedWhileIdle from exc
            raise
        finally:  # also on cancellation (the dispatcher's attempt timeout): state unknown
            if clean and session.is_connected:
                self._put_idle(session)
            else:
                session.close()

    async def _connect(self) -> _Session:
        smtp = self.smtp
        session = _Session(
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            timeout=smtp.timeout_seconds,
            cert_bundle=str(smtp.ca_file) if smtp.ca_file else None,
        )
        try:
            await session.connect()
        except BaseException:
            session.close()
            raise
        return session

    def _take_idle(self) -> _Session | None:
        while self._idle:
            session = self._idle.pop()
            if session.is_connected and time.monotonic() - session.idle_since < self.idle_seconds:
                return session
            session.close()
        return None

    def _put_idle(self, session: _Session) -> None:
        session.idle_since = time.monotonic()
        self._idle.append(session)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._close_idle(), name="smtp idle sessions")

    async def _close_idle(self) -> None:
        """QUIT sessions idle for ``idle_seconds``, so a quiet service holds no connection."""
        while self._idle:
            oldest = self._idle[0]
            wait_seconds = oldest.idle_since + self.idle_seconds - time.monotonic()
            if wait_seconds > 0:
                await asyncio.sleep(wait_seconds)
                continue
            self._idle.remove(oldest)
            await _quit(oldest)


def _closing(exc: Exception) -> bool:
    """421: the server is closing the session (idle timeout, shutting down)."""
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421


async def _quit(session: _Session) -> None:
    try:
        await session.quit()
    except (aiosmtplib.SMTPException, OSError):
        pass  # it is being closed anyway; the server may have gone first
    finally:
        session.close()


def _by_code(code: int, detail: str) -> DeliveryResult:
    if 400 <= code < 500:
        return DeliveryResult("retry", f"SMTP {detail}")
    return DeliveryResult("failed", f"SMTP {detail}")
