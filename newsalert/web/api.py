"""The JSON API under /api/v1/: the same things the pages show, through the same functions
(newsalert/web/ops.py). Every request needs ``Authorization: Bearer <NEWSALERT_API_TOKEN>``;
bodies are JSON objects of at most ``api_max_body_bytes``. Errors are ``{"error": reason}``:
400 malformed, 401 no or wrong token, 404 unknown, 409 refused by the current state, 413 too
large, 422 invalid (a query's syntax, a refused webhook URL)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from newsalert.web.auth import Guard
from newsalert.web.ops import Conflict, Console, Invalid, NotFound

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[Any]]


def error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The request body, or 413 when it is longer than ``max_bytes`` (read no further)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=request.content_length)
    body = await request.content.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=len(body))
    return body


async def json_object(request: web.Request, max_bytes: int) -> dict[str, Any]:
    body = await read_body(request, max_bytes)
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise BadInput(f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadInput(f"body must be a JSON object, not {type(value).__name__}")
    return value


class BadInput(ValueError):
    """Malformed request (HTTP 400)."""


def field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BadInput(f"{name}: must be a {kind.__name__}")
    return value


class Api:
    def __init__(self, console: Console, guard: Guard | None, max_body_bytes: int) -> None:
        self.console = console
        self.guard = guard
        self.max_body_bytes = max_body_bytes

    def table(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) of every API route; the OpenAPI file lists each."""
        return [
            ("GET", "/openapi.json", self.openapi),
            ("GET", "/topics", self.topics),
            ("GET", "/topics/{name}", self.topic),
            ("GET", "/spikes", self.spikes),
            ("GET", "/spikes/{spike_id}", self.spike),
            ("GET", "/feeds", self.feeds),
            ("GET", "/deliveries", self.deliveries),
            ("POST", "/deliveries/{message_id}/replay", self.replay),
            ("GET", "/subscribers", self.subscribers),
            ("POST", "/subscribers", self.create_subscriber),
            ("GET", "/subscribers/{name}", self.subscriber),
            ("PATCH", "/subscribers/{name}", self.update_subscriber),
            ("DELETE", "/subscribers/{name}", self.delete_subscriber),
            ("POST", "/subscribers/{name}/test", self.test_subscriber),
            ("GET", "/silences", self.silences),
            ("POST", "/silences", self.add_silence),
            ("DELETE", "/silences/{silence_id}", self.remove_silence),
            ("POST", "/match", self.match),
        ]

    def routes(self, app: web.Application) -> None:
        for method, path, handler in self.table():
            app.router.add_route(method, PREFIX + path, self._guarded(handler))

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.guard is None:
                return error(503, "the API is off: set NEWSALERT_API_TOKEN to turn it on")
            if not self.guard.bearer_ok(request.headers.get("Authorization")):
                response = error(401, "needs Authorization: Bearer <NEWSALERT_API_TOKEN>")
                response.headers["WWW-Authenticate"] = 'Bearer realm="newsalert"'
                return response
            try:
                result = await handler(request)
            except BadInput as exc:
                return error(400, str(exc))
            except NotFound as exc:
                return error(404, str(exc))
            except Conflict as exc:
                return error(409, str(exc))
            except Invalid as exc:
                return error(422, str(exc))
            except web.HTTPRequestEntityTooLarge:
                return error(413, f"body larger than {self.max_body_bytes} bytes")
            if isinstance(result, web.StreamResponse):
                return result
            status = 201 if request.method == "POST" and isinstance(result, dict) else 200
            if result is None:
                return web.Response(status=204)
            return web.json_response(result, status=status)

        return guarded

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await json_object(request, self.max_body_bytes)

    async def openapi(self, request: web.Request) -> web.Response:
        text = resources.files("newsalert.web").joinpath("openapi.json").read_text("utf-8")
        return web.Response(text=text, content_type="application/json")

    async def topics(self, request: web.Request) -> list[dict[str, Any]]:
        return self.console.topics()

    async def topic(self, request: web.Request) -> dict[str, Any]:
        return self.console.topic(request.match_info["name"])

    async def spikes(self, request: web.Request) -> list[dict[str, Any]]:
        return self.console.spikes(topic=request.query.get("topic"))

    async def spike(self, request: web.Request) -> dict[str, Any]:
        return self.console.spike(request.match_info["spike_id"])

    async def feeds(self, request: web.Request) -> list[dict[str, Any]]:
        return self.console.feeds(sort=request.query.get("sort", "health"))

    async def deliveries(self, request: web.Request) -> list[dict[str, Any]]:
        limit = request.query.get("limit", "100")
        if not limit.isdigit():
            raise BadInput("limit: must be a whole number")
        return self.console.delivery_list(request.query.get("status"), int(limit))

    async def replay(self, request: web.Request) -> web.Response:
        return web.json_response(self.console.replay(request.match_info["message_id"]))

    async def subscribers(self, request: web.Request) -> list[dict[str, Any]]:
        return self.console.subscribers()

    async def create_subscriber(self, request: web.Request) -> dict[str, Any]:
        return await self.console.create_subscriber(await self._body(request))

    async def subscriber(self, request: web.Request) -> dict[str, Any]:
        return self.console.subscriber(request.match_info["name"])

    async def update_subscriber(self, request: web.Request) -> dict[str, Any]:
        name = request.match_info["name"]
        return await self.console.update_subscriber(name, await self._body(request))

    async def delete_subscriber(self, request: web.Request) -> None:
        self.console.delete_subscriber(request.match_info["name"])

    async def test_subscriber(self, request: web.Request) -> web.Response:
        results = await self.console.send_test(request.match_info["name"])
        return web.json_response({"results": results})

    async def silences(self, request: web.Request) -> list[dict[str, Any]]:
        return self.console.silences()

    async def add_silence(self, request: web.Request) -> dict[str, Any]:
        body = await self._body(request)
        return self.console.add_silence(
            field(body, "subscriber", str),
            field(body, "key", str),
            field(body, "duration", str),
            field(body, "reason", str, required=False),
        )

    async def remove_silence(self, request: web.Request) -> None:
        silence_id = request.match_info["silence_id"]
        if not silence_id.isdigit():
            raise NotFound(f"no silence {silence_id}")
        self.console.remove_silence(int(silence_id))

    async def match(self, request: web.Request) -> web.Response:
        """How many stories of the last 7 days a keyword filter would have matched."""
        body = await self._body(request)
        topics = body.get("topics") or []
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise BadInput("topics: must be a list of strings")
        result = self.console.would_have_matched(field(body, "keywords", str), topics)
        return web.json_response(result)
