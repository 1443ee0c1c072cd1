"""`newsalert demo`: the whole pipeline offline, on the embedded broker, ending in a real alert.

A local feed server first serves sport news, then a burst of real articles about Huawei and 5G
network security; the service polls both feeds, classifies, detects the 5g-security spike and
delivers it to a local webhook receiver and a local SMTP server, whose catch is printed.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from newsalert.localservers import FeedServer, SmtpSink, WebhookReceiver, load_demo_articles
from newsalert.service import Service, say
from newsalert.settings import load_settings

DEMO_SECRET = "whsec_" + "ZGVtby1zZWNyZXQtZm9yLW5ld3NhbGVydC1vbmx5"  # base64 of a demo key


async def wait_for(condition: Callable[[], bool], timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_seconds:.0f} s")
        await asyncio.sleep(0.05)


def dated(rows: list[dict], now: float) -> list[dict]:
    return [dict(row, published=now - 60 * i) for i, row in enumerate(rows)]


def demo_settings(data_dir: Path, feeds: list[dict], webhook_url: str, smtp_port: int):
    return load_settings(
        None,
        data_dir=data_dir,
        metrics_port=0,
        log_level="WARNING",
        poll_interval_seconds=1.0,
        allow_private_networks="127.0.0.0/8",
        feeds=feeds,
        subscriptions=[
            {
                "name": "telecom-risk-desk",
                "topics": ["5g-security"],
                "webhook": {"url": webhook_url, "secret": DEMO_SECRET},
                "email": "analyst@example.org",
            }
        ],
        smtp={"host": "127.0.0.1", "port": smtp_port},
        # A brand-new topic has no baseline: an absolute threshold lets its first burst alert.
        spike={"bucket_seconds": 3600, "min_count": 5, "absolute_threshold": 5},
    )


async def run_demo(timeout_seconds: float = 50.0) -> int:
    started = time.monotonic()
    feeds, receiver, smtp = FeedServer(), WebhookReceiver(DEMO_SECRET), SmtpSink()
    for server in (feeds, receiver, smtp):
        await server.start()
    now = time.time()
    sport_url = feeds.set_feed(
        "/sport.xml", "Demo Sport Wire", dated(load_demo_articles("sport"), now)
    )
    tech_url = feeds.set_feed("/tech.xml", "Demo Telecom Wire", [])
    with tempfile.TemporaryDirectory(prefix="newsalert-demo-") as tmp:
        settings = demo_settings(
            Path(tmp),
            [{"url": sport_url, "name": "sport"}, {"url": tech_url, "name": "telecom"}],
            receiver.url("/hooks/newsalert"),
            smtp.port,
        )
        service = Service(settings)
        try:
            say("demo: starting the service on the embedded broker")
            await service.start()
            remaining = lambda: timeout_seconds - (time.monotonic() - started)  # noqa: E731
            await wait_for(
                lambda: feeds.requests.count("/sport.xml") >= 1, remaining(), "first poll"
            )
            burst = dated(load_demo_articles("huawei-5g"), time.time())
            feeds.set_feed("/tech.xml", "Demo Telecom Wire", burst)
            say(f"demo: the telecom feed now carries {len(burst)} articles on Huawei and 5G")
            await wait_for(lambda: receiver.received and smtp.messages, remaining(), "the alert")
        finally:
            await service.stop()
            for server in (feeds, receiver, smtp):
                await server.stop()
    show_alert(receiver, smtp)
    say(f"demo: done in {time.monotonic() - started:.1f} s")
    return 0


def show_alert(receiver: WebhookReceiver, smtp: SmtpSink) -> None:
    hook = receiver.received[0]
    print("\n=== webhook POST received by the subscriber ===")
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        print(f"{name}: {hook.headers.get(name)}")
    print(f"signature verified: {hook.verified}")
    print(json.dumps(hook.payload, indent=2, ensure_ascii=False))
    message = smtp.messages[0]
    print("\n=== e-mail received by the subscriber ===")
    for name in ("From", "To", "Subject", "List-Unsubscribe"):
        if message[name]:
            print(f"{name}: {message[name]}")
    body = message.get_body(preferencelist=("plain",))
    print()
    print(textwrap.indent(body.get_content() if body else "(no plain-text part)", "  "))
