"""The service's subscriber-facing pages: one-click unsubscribe (RFC 8058) and mute links.

GET shows a confirmation page with a button (link scanners fetch GETs, so GET changes
nothing); POST does it. Both are idempotent and need the signed token from the alert.
"""

from __future__ import annotations

import html
import time

from aiohttp import web

from alerts.links import MUTE_SECONDS, Links
from alerts.store import DeliveryStore

PAGE = """<!doctype html><html><body style="font-family:sans-serif;max-width:40em">
<h1>newsalert</h1><p>{message}</p>{form}</body></html>"""


class SubscriberPages:
    def __init__(self, store: DeliveryStore, links: Links) -> None:
        self.store = store
        self.links = links

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/unsubscribe", self._unsubscribe)
        app.router.add_route("*", "/mute", self._mute)

    async def _params(self, request: web.Request, action: str) -> tuple[str, str]:
        subscriber, argument = request.query.get("s", ""), request.query.get("a", "")
        if not self.links.check(action, subscriber, argument, request.query.get("t", "")):
            raise web.HTTPForbidden(text="this link is not valid (wrong or altered token)")
        return subscriber, argument

    async def _unsubscribe(self, request: web.Request) -> web.Response:
        subscriber, address = await self._params(request, "unsubscribe")
        if request.method == "GET":
            return _page(f"Stop e-mail alerts of {subscriber!r} to {address}?", "Unsubscribe")
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        self.store.disable_endpoint(subscriber, "email", address, "unsubscribed by recipient")
        return _page(f"{address} will get no more alerts from {subscriber!r}.", None)

    async def _mute(self, request: web.Request) -> web.Response:
        subscriber, key = await self._params(request, "mute")
        hours = MUTE_SECONDS // 3600
        if request.method == "GET":
            return _page(f"Mute {key!r} for {subscriber!r} for {hours} hours?", "Mute")
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        now = time.time()
        if not self.store.silenced(subscriber, key, now):
            self.store.add_silence(subscriber, key, now + MUTE_SECONDS, "mute link", now=now)
        return _page(f"{key!r} is muted for {subscriber!r} for {hours} hours.", None)


def _page(message: str, button: str | None) -> web.Response:
    form = f'<form method="post"><button type="submit">{button}</button></form>' if button else ""
    return web.Response(
        text=PAGE.format(message=html.escape(message), form=form), content_type="text/html"
    )
