"""E-mail channel: one multipart message (plain text + HTML) per notification, over SMTP with
STARTTLS or implicit TLS and optional auth. Headers are built by ``EmailMessage`` (titles can
never inject headers); 4xx replies are retried, 5xx are permanent failures.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from alerts.channels.base import DeliveryResult, Outgoing
from alerts.payload import email_content
from streams.settings import SmtpConfig


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


class EmailChannel:
    name = "email"

    def __init__(self, smtp: SmtpConfig) -> None:
        self.smtp = smtp

    async def aclose(self) -> None:
        return None

    async def send(self, outgoing: Outgoing) -> DeliveryResult:
        message = build_message(outgoing, self.smtp.sender)
        smtp = self.smtp
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                use_tls=smtp.security == "tls",
                start_tls=True if smtp.security == "starttls" else False,
                timeout=smtp.timeout_seconds,
                cert_bundle=str(smtp.ca_file) if smtp.ca_file else None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            return _by_code(min(codes) if codes else 500, detail)
        except aiosmtplib.SMTPResponseException as exc:
            return _by_code(exc.code, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return DeliveryResult("retry", f"SMTP {type(exc).__name__}: {exc}")
        return DeliveryResult("delivered", "250 accepted")


def _by_code(code: int, detail: str) -> DeliveryResult:
    if 400 <= code < 500:
        return DeliveryResult("retry", f"SMTP {detail}")
    return DeliveryResult("failed", f"SMTP {detail}")
