"""Feeds that grow on a schedule, for ``e2e-latency``: an aiohttp server on 127.0.0.1 in a
process of its own (its CPU is not the connector's or the benchmark's), serving ``/feed/N``.

An entry *appears* at its scheduled wall-clock time: a request from then on gets it, with no
timer in between (open loop: the schedule holds whatever the pollers do). A document carries
the feed's entries that appeared in the last ``window_seconds``, and at least its newest
``MIN_ENTRIES`` (a live feed shows its newest entries only), newest first, with an ETag naming them, so an unchanged feed gets 304. The
server notes when it first served each entry in a 200 body: the poll that saw it.
"""

from __future__ import annotations

import asyncio
import bisect
import multiprocessing
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

MIN_ENTRIES = 20  # however old: a quiet feed still shows its newest entries

HEAD = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
    b"<title>Bench Wire</title><link>http://127.0.0.1/</link><description>bench</description>"
)
TAIL = b"</channel></rss>"


def item_xml(entry: dict[str, Any], appear_at: float) -> bytes:
    """One RSS item; ``pubDate`` is the moment it appears (whole seconds, as RSS has them)."""
    published = format_datetime(datetime.fromtimestamp(appear_at, tz=UTC))
    return (
        f"<item><title>{escape(entry['title'])}</title><link>{escape(entry['url'])}</link>"
        f'<guid isPermaLink="false">{escape(entry["url"])}</guid>'
        f"<pubDate>{published}</pubDate><description>{escape(entry['body'])}</description>"
        "</item>"
    ).encode()


class _Feed:
    def __init__(self) -> None:
        self.appear_at: list[float] = []
        self.items: list[bytes] = []
        self.keys: list[str] = []
        self.served_through = -1  # the newest index served in a 200 body so far


def _serve(connection: Any, feeds: int, window_seconds: float) -> None:
    from aiohttp import web

    state = [_Feed() for _ in range(feeds)]
    first_served: dict[str, float] = {}
    counts = {"bodies": 0, "not_modified": 0}

    async def feed(request: web.Request) -> web.Response:
        now = time.time()
        one = state[int(request.match_info["n"])]
        last = bisect.bisect_right(one.appear_at, now) - 1
        first = bisect.bisect_right(one.appear_at, now - window_seconds)
        first = max(min(first, last + 1 - MIN_ENTRIES), 0)
        etag = f'"{first}-{last}"'
        if request.headers.get("If-None-Match") == etag:
            counts["not_modified"] += 1
            return web.Response(status=304, headers={"ETag": etag})
        counts["bodies"] += 1
        for index in range(max(one.served_through + 1, first), last + 1):
            first_served[one.keys[index]] = now
        one.served_through = max(one.served_through, last)
        body = HEAD + b"".join(reversed(one.items[first : last + 1])) + TAIL
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/rss+xml"}
        )

    async def commands() -> None:
        """From the benchmark: ``("add", [(feed, key, appear_at, item), ...])`` (in order of
        appearance), ``("served", keys)`` -> first-served times of those keys, ``("counts",)``."""
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, connection.recv)
            if command[0] == "add":
                for number, key, appear_at, item in command[1]:
                    one = state[number]
                    one.appear_at.append(appear_at)
                    one.keys.append(key)
                    one.items.append(item)
                connection.send(len(command[1]))
            elif command[0] == "served":
                connection.send({k: first_served[k] for k in command[1] if k in first_served})
            elif command[0] == "counts":
                connection.send(dict(counts))

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/feed/{n}", feed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        connection.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await commands()

    asyncio.run(main())


class GrowingFeeds:
    """The parent's handle on the server process: schedule entries, read when they were served."""

    def __init__(self, feeds: int, window_seconds: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self.feeds = feeds
        self.process = context.Process(
            target=_serve, args=(child, feeds, window_seconds), daemon=True
        )
        self.process.start()
        if not self._connection.poll(30):
            raise RuntimeError("the feed server did not start within 30 s")
        self.port = self._connection.recv()

    def url(self, number: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{number}"

    def _ask(self, *command: Any) -> Any:
        self._connection.send(command)
        return self._connection.recv()

    def add(self, entries: list[tuple[int, str, float, bytes]]) -> None:
        """``(feed, key, appear_at, item)`` each, in order of ``appear_at``."""
        self._ask("add", entries)

    def first_served(self, keys: list[str]) -> dict[str, float]:
        return self._ask("served", keys)

    def counts(self) -> dict[str, int]:
        return self._ask("counts")

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)
