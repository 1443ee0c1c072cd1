"""The one shared HTTP client: connection limits, SSRF guard on every hop, conditional GET,
a total deadline per fetch and a body limit on decompressed bytes.

Redirects are followed here, not by httpx, so that each hop is checked before any socket
opens. Connections go to the address the SSRF check resolved (see ``netguard.PinnedNetworkBackend``)
while the URL keeps its host name, so the Host header, SNI and certificate checks are those
of the real host and the connection pool stays keyed by host name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import brotli
import httpx

from newsalert import netguard
from newsalert.netguard import GuardedTransport, parse_retry_after
from newsalert.settings import Settings

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9,"
    " application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
INFLATE_STEP_BYTES = 64 * 1024  # about the most bytes one decompression step may produce
# A 304 or redirect body is read to its end (up to this) so the connection goes back to the
# pool: httpcore closes a connection whose response was not read to the end.
DRAIN_MAX_BYTES = 64 * 1024


class FetchError(Exception):
    """A fetch failed. ``kind`` is a bounded label for metrics; the message says what and why."""

    def __init__(self, kind: str, message: str, *, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class HttpResponse:
    status: int  # 200 or 304
    url: str  # after redirects
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None
    raw_bytes: int = 0  # as transferred, before decompression


class _Inflater:
    """Decompresses in bounded steps, so a bomb is stopped after at most one step over the limit."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib = None
        self._brotli = None
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        elif encoding == "br":
            self._brotli = brotli.Decompressor()
        elif encoding not in ("", "identity"):
            raise FetchError("encoding", f"unsupported Content-Encoding {encoding!r}")
        self._first = True

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            if self._zlib is not None:
                yield from self._inflate_zlib(data)
            elif self._brotli is not None:
                yield from self._inflate_brotli(data)
            else:
                yield data
        except (zlib.error, brotli.error) as exc:
            raise FetchError("encoding", f"corrupt {self.encoding} body: {exc}") from None

    def _inflate_zlib(self, data: bytes) -> Iterator[bytes]:
        if self._first and self.encoding == "deflate" and data and (data[0] & 0x0F) != 8:
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
        self._first = False
        assert self._zlib is not None
        pending = data
        while pending and not self._zlib.eof:
            out = self._zlib.decompress(pending, INFLATE_STEP_BYTES)
            if out:
                yield out
            if len(self._zlib.unconsumed_tail) >= len(pending) and not out:
                break
            pending = self._zlib.unconsumed_tail

    def _inflate_brotli(self, data: bytes) -> Iterator[bytes]:
        assert self._brotli is not None
        # brotli's limit is soft (it stops growing the buffer once past it), and output may
        # still be pending while it says it can accept input: drain until a call comes up short.
        out = self._brotli.process(data, output_buffer_limit=INFLATE_STEP_BYTES)
        yield out
        while len(out) >= INFLATE_STEP_BYTES or not self._brotli.can_accept_more_data():
            out = self._brotli.process(b"", output_buffer_limit=INFLATE_STEP_BYTES)
            yield out
            if not out and self._brotli.can_accept_more_data():
                break


async def _drain(response: httpx.Response) -> None:
    """Read a small body to its end so keep-alive can reuse the connection; stop past the
    limit (the connection is then closed, as it would be anyway)."""
    drained = 0
    async for chunk in response.aiter_raw():
        drained += len(chunk)
        if drained > DRAIN_MAX_BYTES:
            return


class Fetcher:
    """Shared by all feeds of a process. ``fetch`` returns a 200 or 304, or raises FetchError."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_redirects: int = 5,
        max_connections: int = 200,
        max_connections_per_host: int = 4,
        resolver: netguard.Resolver = netguard.system_resolver,
    ) -> None:
        self.deadline_seconds = settings.fetch_timeout_seconds
        self.max_body_bytes = settings.max_body_bytes
        self.max_redirects = max_redirects
        self.policy = netguard.NetworkPolicy.from_setting(settings.allow_private_networks)
        self._resolver = resolver
        self._per_host = max_connections_per_host
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections // 2
        )
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(limits),
            timeout=httpx.Timeout(self.deadline_seconds),
            follow_redirects=False,
            trust_env=False,
            headers={
                "User-Agent": settings.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate, br",
            },
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> HttpResponse:
        try:
            async with asyncio.timeout(self.deadline_seconds):
                return await self._follow(url, etag, last_modified)
        except TimeoutError:
            raise FetchError(
                "timeout", f"no complete response within the {self.deadline_seconds:g} s deadline"
            ) from None

    async def _follow(self, url: str, etag: str | None, last_modified: str | None) -> HttpResponse:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        seen: set[str] = set()
        current: str | httpx.URL = url
        all_permanent = True
        for hop in range(self.max_redirects + 1):
            try:
                try:
                    target = await netguard.check_url(current, self.policy, self._resolver)
                except netguard.SsrfRefused as exc:
                    raise FetchError("ssrf", str(exc)) from None
                seen.add(str(target.url))
                async with self._slot(target.host):
                    location, status = await self._request(target, headers)
            except FetchError as exc:
                if hop == 0:
                    raise
                raise FetchError(
                    exc.kind,
                    f"after redirect to {current}: {exc}",
                    retry_after_seconds=exc.retry_after_seconds,
                ) from None
            if isinstance(location, HttpResponse):
                if hop > 0 and all_permanent:
                    return dataclasses.replace(location, permanent_url=str(target.url))
                return location
            try:
                following = target.url.join(location)
            except httpx.InvalidURL as exc:
                raise FetchError("redirect", f"bad redirect Location {location!r}: {exc}") from None
            if str(following) in seen:
                raise FetchError(
                    "redirect_loop", f"redirect loop: {target.url} redirects back to {following}"
                )
            all_permanent = all_permanent and status in PERMANENT_REDIRECTS
            current = following
        raise FetchError("too_many_redirects", f"more than {self.max_redirects} redirects")

    async def _request(
        self, target: netguard.CheckedTarget, headers: dict[str, str]
    ) -> tuple[HttpResponse | str, int]:
        """One hop: the final response, or the redirect Location and status."""
        request = self._client.build_request("GET", target.url, headers=headers)
        with netguard.pinned([target]):
            try:
                response = await self._client.send(request, stream=True)
            except netguard.SsrfRefused as exc:
                raise FetchError("ssrf", str(exc)) from None
            except httpx.TimeoutException:
                raise FetchError("timeout", "timed out connecting or waiting for headers") from None
            except httpx.ConnectError as exc:
                raise FetchError("connect", f"cannot connect: {exc}") from None
            except httpx.HTTPError as exc:
                raise FetchError("http", f"{type(exc).__name__}: {exc}") from None
            try:
                return await self._handle(target, response)
            except httpx.TimeoutException:
                raise FetchError("timeout", "timed out reading the body") from None
            except httpx.HTTPError as exc:
                raise FetchError("http", f"{type(exc).__name__}: {exc}") from None
            finally:
                await response.aclose()

    async def _handle(
        self, target: netguard.CheckedTarget, response: httpx.Response
    ) -> tuple[HttpResponse | str, int]:
        status = response.status_code
        if status in REDIRECT_STATUSES:
            location = response.headers.get("Location")
            if not location:
                raise FetchError("redirect", f"HTTP {status} without a Location header")
            await _drain(response)
            return location, status
        if status == 304:
            await _drain(response)
            return HttpResponse(status=304, url=str(target.url)), status
        if status != 200:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            hint = f", retry after {retry_after:g} s" if retry_after is not None else ""
            raise FetchError(
                "http_status",
                f"HTTP {status}{hint}",
                retry_after_seconds=retry_after,
            )
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        body, raw_bytes = await self._read_body(response.aiter_raw(), encoding)
        return (
            HttpResponse(
                status=200,
                url=str(target.url),
                body=body,
                content_type=response.headers.get("Content-Type"),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                raw_bytes=raw_bytes,
            ),
            status,
        )

    async def _read_body(self, raw: AsyncIterator[bytes], encoding: str) -> tuple[bytes, int]:
        inflater = _Inflater(encoding)
        chunks: list[bytes] = []
        size = raw_bytes = 0
        async for chunk in raw:
            raw_bytes += len(chunk)
            for piece in inflater.feed(chunk):
                size += len(piece)
                if size > self.max_body_bytes:
                    after = (
                        " after decompression" if inflater.encoding not in ("", "identity") else ""
                    )
                    raise FetchError(
                        "too_large", f"body exceeds {self.max_body_bytes} bytes{after}"
                    )
                chunks.append(piece)
        return b"".join(chunks), raw_bytes

    def _slot(self, host: str) -> asyncio.Semaphore:
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self._per_host)
        return slot
