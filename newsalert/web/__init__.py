"""The pages and the /api/v1 API on the service's HTTP endpoint (README, "Pages and API")."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from newsalert.settings import Settings


def console_routes(
    settings: Settings,
) -> tuple[Callable[[web.Application], None], Callable[[], None]]:
    """The routes of the pages and the API, and what closes their stores. Without
    NEWSALERT_API_TOKEN they answer 503 saying how to turn them on (and the service says so
    once it runs: newsalert/service.py)."""
    from newsalert.web.api import Api
    from newsalert.web.auth import Guard
    from newsalert.web.ops import Console
    from newsalert.web.pages import Pages

    token = settings.api_token.get_secret_value() if settings.api_token else ""
    guard = Guard(token) if token else None
    console = Console.open(settings)
    api = Api(console, guard, settings.api_max_body_bytes)
    pages = Pages(console, guard, settings.api_max_body_bytes, settings.api_cookie_secure)

    def routes(app: web.Application) -> None:
        api.routes(app)
        pages.routes(app)

    return routes, console.close
