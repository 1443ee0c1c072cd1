"""The pages an analyst opens in a browser: topics and spikes, feeds, deliveries, subscribers.
Server-rendered from Jinja2 templates (autoescaped), charts as inline SVG, one small script
for the live "would have matched" count; no external asset, so they work offline. Login with
NEWSALERT_API_TOKEN sets the session cookie; every POST carries the session's CSRF token."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from yarl import URL

from newsalert.web.api import BadInput, read_body
from newsalert.web.auth import SESSION_COOKIE, SESSION_SECONDS, Guard
from newsalert.web.charts import bar_chart
from newsalert.web.ops import DAY, HOUR, Conflict, Console, Invalid, NotFound

log = logging.getLogger(__name__)
# Guessing the token through the login form: at most this many wrong tokens a minute, from
# anyone (the endpoint sits behind a proxy often enough that the client address says little).
MAX_LOGIN_FAILURES = 10
LOGIN_FAILURE_WINDOW_SECONDS = 60.0
Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
FORM = web.RequestKey("form", dict[str, Any])  # a POST's fields, read once and CSRF-checked
# Inline styles only (the templates' <style>); scripts only from this origin; no framing.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _datetime(value: Any) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value or "—").replace("T", " ").replace("Z", " UTC")


class Pages:
    def __init__(
        self, console: Console, guard: Guard | None, max_body_bytes: int, secure_cookie: bool
    ) -> None:
        self.console = console
        self.guard = guard
        self.max_body_bytes = max_body_bytes
        self.secure_cookie = secure_cookie
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("newsalert.web", "templates"),
            autoescape=True,
        )
        self.templates.filters["datetime"] = _datetime
        self.templates.filters["urlpart"] = lambda value: quote(str(value), safe="")
        self.templates.filters["weblink"] = _weblink
        self._failed_logins: deque[float] = deque()  # when the recent wrong tokens came

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_get("/console.js", self._script)
        page = self._session_page
        for method, path, handler in (
            ("POST", "/logout", self.logout),
            ("GET", "/", self.home),
            ("GET", "/spikes/{spike_id}", self.spike),
            ("GET", "/feeds", self.feeds),
            ("GET", "/deliveries", self.deliveries),
            ("POST", "/deliveries/{message_id}/replay", self.replay),
            ("GET", "/subscribers", self.subscribers),
            ("POST", "/subscribers", self.add_subscriber),
            ("GET", "/match", self.match),
            ("GET", "/subscribers/{name}", self.edit_form),
            ("POST", "/subscribers/{name}", self.edit),
            ("POST", "/subscribers/{name}/disable", self.disable),
            ("POST", "/subscribers/{name}/enable", self.enable),
            ("POST", "/subscribers/{name}/silence", self.silence),
            ("POST", "/subscribers/{name}/test", self.test),
            ("POST", "/subscribers/{name}/delete", self.delete),
        ):
            app.router.add_route(method, path, page(handler))

    # -- the session -------------------------------------------------------------------

    def _session_page(self, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
        async def page(request: web.Request) -> web.StreamResponse:
            if self.guard is None:
                return self._off()
            session = self.guard.session_of(request.cookies.get(SESSION_COOKIE))
            if session is None:
                if request.method == "GET":
                    raise web.HTTPSeeOther(URL("/login").with_query(next=request.path_qs))
                return self._render(
                    "message.html",
                    None,
                    status=401,
                    title="Not logged in",
                    message="Log in first: this form's session has ended.",
                )
            form: dict[str, Any] = {}
            if request.method == "POST":
                try:
                    form = await self._form(request)
                except web.HTTPRequestEntityTooLarge:
                    return self._render(
                        "message.html",
                        session,
                        status=413,
                        title="Too large",
                        message=f"The form is larger than {self.max_body_bytes} bytes.",
                    )
                if not self.guard.csrf_ok(session, form.get("csrf")):
                    log.warning(
                        "refused a form post to %s without a valid CSRF token", request.path
                    )
                    return self._render(
                        "message.html",
                        session,
                        status=403,
                        title="Refused",
                        message="This form has no valid CSRF token; reload the page and try again.",
                    )
            request[FORM] = form
            try:
                return await handler(request, session)
            except NotFound as exc:
                return self._render(
                    "message.html", session, status=404, title="Not found", message=str(exc)
                )
            except (Invalid, Conflict, BadInput) as exc:
                return self._render(
                    "message.html", session, status=422, title="Not accepted", message=str(exc)
                )

        return page

    async def _form(self, request: web.Request) -> dict[str, Any]:
        from urllib.parse import parse_qs

        body = await read_body(request, self.max_body_bytes)
        parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        form: dict[str, Any] = {k: v[-1] for k, v in parsed.items()}
        form["_lists"] = parsed
        return form

    def _off(self) -> web.Response:
        return web.Response(
            status=503,
            text='The pages are off: set NEWSALERT_API_TOKEN (README, "Pages and API").\n',
        )

    def _render(
        self, template: str, session: str | None, status: int = 200, **context: Any
    ) -> web.Response:
        csrf = self.guard.csrf_token(session) if self.guard and session else ""
        text = self.templates.get_template(template).render(csrf=csrf, session=session, **context)
        response = web.Response(text=text, status=status, content_type="text/html")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        if self.guard is None:
            return self._off()
        return self._render("login.html", None, next=_local(request.query.get("next")), error=None)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if self.guard is None:
            return self._off()
        now = time.monotonic()
        while self._failed_logins and now - self._failed_logins[0] > LOGIN_FAILURE_WINDOW_SECONDS:
            self._failed_logins.popleft()
        form = await self._form(request)
        target = _local(form.get("next"))
        if len(self._failed_logins) >= MAX_LOGIN_FAILURES:
            return self._render(
                "login.html",
                None,
                status=429,
                next=target,
                error="Too many wrong tokens in the last minute; try again later.",
            )
        if not self.guard.token_ok(form.get("token")):
            self._failed_logins.append(now)
            log.warning("refused a login from %s: wrong token", request.remote)
            return self._render("login.html", None, status=401, next=target, error="Wrong token.")
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            SESSION_COOKIE,
            self.guard.new_session(),
            max_age=int(SESSION_SECONDS),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookie,
        )
        raise response

    async def logout(self, request: web.Request, session: str) -> web.StreamResponse:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    async def _script(self, request: web.Request) -> web.StreamResponse:
        from importlib import resources

        text = resources.files("newsalert.web").joinpath("console.js").read_text("utf-8")
        return web.Response(text=text, content_type="application/javascript")

    # -- topics and spikes -------------------------------------------------------------

    async def home(self, request: web.Request, session: str) -> web.StreamResponse:
        topics = []
        for topic in self.console.topics():
            windows = [
                (_epoch(s["window_start"]), _epoch(s["window_end"])) for s in topic["spikes"]
            ]
            topics.append(
                {
                    **topic,
                    "chart_48h": bar_chart(
                        topic["hourly"], HOUR, windows, label=f"{topic['name']}, 48 hours"
                    ),
                    "chart_30d": bar_chart(
                        topic["daily"], DAY, windows, label=f"{topic['name']}, 30 days"
                    ),
                }
            )
        # Topics with something to show first: a running spike, then any stories.
        topics.sort(key=lambda t: (t["spike_state"] == "quiet", not t["latest_stories"], t["name"]))
        return self._render("home.html", session, title="Topics", topics=topics)

    async def spike(self, request: web.Request, session: str) -> web.StreamResponse:
        spike = self.console.spike(request.match_info["spike_id"])
        window = (_epoch(spike["window_start"]), _epoch(spike["window_end"]))
        chart = bar_chart(
            spike["recent_counts"],
            # The width the spike was seen at (events from before widths: the hour).
            spike.get("width_seconds") or 3600.0,
            [window],
            width=480,
            height=90,
            label=f"{spike['topic']}, recent buckets",
        )
        return self._render(
            "spike.html", session, title=f"Spike {spike['topic']}", spike=spike, chart=chart
        )

    # -- feeds and deliveries ----------------------------------------------------------

    async def feeds(self, request: web.Request, session: str) -> web.StreamResponse:
        sort = request.query.get("sort", "health")
        return self._render(
            "feeds.html", session, title="Feeds", feeds=self.console.feeds(sort), sort=sort
        )

    async def deliveries(self, request: web.Request, session: str) -> web.StreamResponse:
        return self._render(
            "deliveries.html",
            session,
            title="Deliveries",
            outbox=self.console.delivery_list(limit=200),
            dead=self.console.delivery_list("dead", limit=200),
        )

    async def replay(self, request: web.Request, session: str) -> web.StreamResponse:
        row = self.console.replay(request.match_info["message_id"])
        return self._render(
            "message.html",
            session,
            title="Replayed",
            message=f"{row['message_id']} is back in the outbox "
            f"({row['subscriber']}, {row['channel']}); the dispatcher sends it now.",
        )

    # -- subscribers -------------------------------------------------------------------

    def _subscribers_page(self, session: str, status: int = 200, **context: Any) -> web.Response:
        context.setdefault("error", None)
        context.setdefault("values", {})
        return self._render(
            "subscribers.html",
            session,
            status=status,
            title="Subscribers",
            subscribers=self.console.subscribers(),
            topics=self.console.topic_names(),
            entities=list(self.console.settings.spike.entities),
            **context,
        )

    async def subscribers(self, request: web.Request, session: str) -> web.StreamResponse:
        return self._subscribers_page(session)

    async def add_subscriber(self, request: web.Request, session: str) -> web.StreamResponse:
        form = request[FORM]
        try:
            created = await self.console.create_subscriber(_spec(form))
        except (Invalid, Conflict, NotFound) as exc:
            return self._subscribers_page(session, status=422, error=str(exc), values=form)
        return self._render("created.html", session, title="Subscriber added", created=created)

    async def match(self, request: web.Request, session: str) -> web.StreamResponse:
        keywords = request.query.get("keywords", "").strip()
        topics = [t for t in request.query.getall("topic", []) if t]
        if not keywords:
            return web.json_response({"matched": None})
        try:
            return web.json_response(self.console.would_have_matched(keywords, topics))
        except (Invalid, NotFound) as exc:
            return web.json_response({"error": str(exc)}, status=422)

    async def edit_form(self, request: web.Request, session: str) -> web.StreamResponse:
        sub = self.console.subscriber(request.match_info["name"])
        return self._render(
            "subscriber.html",
            session,
            title=f"Subscriber {sub['name']}",
            sub=sub,
            topics=self.console.topic_names(),
            entities=list(self.console.settings.spike.entities),
            error=None,
            results=None,
        )

    async def edit(self, request: web.Request, session: str) -> web.StreamResponse:
        name = request.match_info["name"]
        spec = _spec(request[FORM])
        spec.pop("name", None)
        if not spec.get("webhook"):
            spec["webhook"] = None
        result = await self.console.update_subscriber(name, spec)
        return self._render("created.html", session, title="Subscriber saved", created=result)

    async def _set_active(self, request: web.Request, session: str, active: bool) -> web.Response:
        name = request.match_info["name"]
        await self.console.update_subscriber(name, {"active": active})
        raise web.HTTPSeeOther(f"/subscribers/{quote(name, safe='')}")

    async def disable(self, request: web.Request, session: str) -> web.StreamResponse:
        return await self._set_active(request, session, False)

    async def enable(self, request: web.Request, session: str) -> web.StreamResponse:
        return await self._set_active(request, session, True)

    async def silence(self, request: web.Request, session: str) -> web.StreamResponse:
        form = request[FORM]
        name = request.match_info["name"]
        self.console.add_silence(
            name, form.get("key", ""), form.get("duration", ""), form.get("reason") or None
        )
        raise web.HTTPSeeOther(f"/subscribers/{quote(name, safe='')}")

    async def test(self, request: web.Request, session: str) -> web.StreamResponse:
        name = request.match_info["name"]
        results = await self.console.send_test(name)
        sub = self.console.subscriber(name)
        return self._render(
            "subscriber.html",
            session,
            title=f"Subscriber {name}",
            sub=sub,
            topics=self.console.topic_names(),
            entities=list(self.console.settings.spike.entities),
            error=None,
            results=results,
        )

    async def delete(self, request: web.Request, session: str) -> web.StreamResponse:
        self.console.delete_subscriber(request.match_info["name"])
        raise web.HTTPSeeOther("/subscribers")


def _spec(form: dict[str, Any]) -> dict[str, Any]:
    """A subscriber spec from the add or edit form."""
    lists = form.get("_lists", {})
    spec: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "topics": [t for t in lists.get("topics", []) if t],
        "entities": [e.strip() for e in form.get("entities", "").split(",") if e.strip()],
        "keywords": form.get("keywords", "").strip() or None,
        "email": form.get("email", "").strip() or None,
        "min_severity": form.get("min_severity") or "low",
        "mode": form.get("mode") or "instant",
    }
    webhook = form.get("webhook", "").strip()
    if webhook:
        spec["webhook"] = webhook
    return spec


def _weblink(url: str | None) -> str | None:
    """A story's link only when it is http(s): a feed could carry ``javascript:`` URLs."""
    if url and url.lower().startswith(("http://", "https://")):
        return url
    return None


def _epoch(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _local(target: str | None) -> str:
    """Where to go after the login: a path on this site only (never //elsewhere)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
