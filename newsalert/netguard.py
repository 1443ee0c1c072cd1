"""The network guard for every user-supplied URL we fetch (feeds, webhooks, full-text pages).

``check_url`` parses a URL with httpx's own parser (so we check exactly the host httpx would
dial), resolves it once and refuses any non-public address unless the allow-list covers it.
Link-local and cloud metadata addresses (``METADATA_NETWORKS``) stay refused even with
``allow_private_networks: true``: only a CIDR list that names them opens them.
``PinnedNetworkBackend`` then makes httpx connect to that checked address and nothing else:
there is no second DNS lookup, so no rebinding window, and a host that was never checked
cannot be dialled at all. ``GuardedTransport`` is the httpx transport built on it, and
``parse_retry_after`` reads the one header every HTTP client here honours.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Where a cloud VM's credentials are one GET away. A URL there is never a feed or a webhook,
# whatever allow_private_networks says, unless its CIDR list names the network (or a part of
# it): "169.254.0.0/16" or "169.254.169.254/32" opens 169.254.169.254; "true", "0.0.0.0/0" or
# "100.64.0.0/10" (a Tailscale range) do not.
METADATA_NETWORKS: dict[IPNetwork, str] = {
    # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean metadata at 169.254.169.254; ECS at .170.2
    ipaddress.ip_network("169.254.0.0/16"): "link-local address (cloud metadata services)",
    ipaddress.ip_network("fe80::/10"): "link-local address",
    ipaddress.ip_network("fd00:ec2::254/128"): "cloud metadata address (AWS, IPv6)",
    ipaddress.ip_network("fd20:ce::254/128"): "cloud metadata address (Google Cloud, IPv6)",
    ipaddress.ip_network("100.100.100.200/32"): "cloud metadata address (Alibaba Cloud)",
    ipaddress.ip_network("168.63.129.16/32"): "cloud host address (Azure WireServer)",
}


class SsrfRefused(Exception):
    """The URL may not be fetched; the message says which address and why."""


class UnresolvableHost(SsrfRefused):
    """The host does not resolve from here: refused now, though it may resolve elsewhere."""


@dataclass(frozen=True)
class NetworkPolicy:
    """Which non-public addresses may be fetched anyway (``allow_private_networks``)."""

    allow_all: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, value: str) -> NetworkPolicy:
        value = value.strip().lower()
        if value in ("", "false"):
            return cls()
        if value == "true":
            return cls(allow_all=True)
        networks = tuple(
            ipaddress.ip_network(cidr.strip(), strict=False) for cidr in value.split(",") if cidr
        )
        return cls(allowed_networks=networks)

    def permits(self, address: IPAddress) -> bool:
        if self.allow_all:
            return True
        return any(
            address.version == net.version and address in net for net in self.allowed_networks
        )

    def names(self, address: IPAddress, guarded: IPNetwork) -> bool:
        """Whether the CIDR list opens ``address`` of the metadata network ``guarded``: a listed
        network holds it and lies within ``guarded`` (a wider one, 0.0.0.0/0, does not count).
        Two networks that share an address are nested, so the longer prefix is the inner one."""
        return any(
            net.version == address.version and address in net and net.prefixlen >= guarded.prefixlen
            for net in self.allowed_networks
        )


@dataclass(frozen=True)
class CheckedTarget:
    """A URL whose host resolved to ``address``, which is allowed; connect there and only there."""

    url: httpx.URL
    host: str  # as httpcore will name the origin
    port: int
    address: str


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None if it is."""
    # An embedded IPv4 address says where the packet really goes, so it decides first.
    for candidate in (_embedded_ipv4(address), address):
        if candidate is None:
            continue
        if candidate.is_unspecified:
            return "unspecified"
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_link_local:
            return "link-local"
        if candidate.is_multicast:
            return "multicast"
        if candidate.version == 4 and candidate in _CGNAT:
            return "carrier-grade NAT"
        if candidate.is_reserved:
            return "reserved"
        if candidate.is_private:
            return "private"
        if not candidate.is_global:
            return "non-public"
    return None


def metadata_network(address: IPAddress) -> tuple[IPNetwork, IPAddress] | None:
    """The network of ``METADATA_NETWORKS`` that ``address`` (or the IPv4 address embedded in
    it) is in, with the address found there; None if it is in none."""
    for candidate in (_embedded_ipv4(address), address):
        if candidate is None:
            continue
        for network in METADATA_NETWORKS:
            if candidate.version == network.version and candidate in network:
                return network, candidate
    return None


def check_address(address: IPAddress, policy: NetworkPolicy) -> str | None:
    """Why connecting to ``address`` under ``policy`` is refused ("a loopback address; refused
    (see allow_private_networks)"), or None. A metadata address is refused under every policy
    but a CIDR list naming its network."""
    metadata = metadata_network(address)
    if metadata is not None:
        network, found = metadata
        if policy.names(found, network):
            return None
        return (
            f"a {METADATA_NETWORKS[network]}; refused whatever allow_private_networks says,"
            f' unless its CIDR list names {network} (allow_private_networks: "{network}")'
        )
    reason = forbidden_reason(address)
    if reason is None:
        return None
    embedded = _embedded_ipv4(address)
    if policy.permits(address) or (embedded is not None and policy.permits(embedded)):
        return None
    return f"a {reason} address; refused (see allow_private_networks)"


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for ``host``, in its order of preference."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse(url: str | httpx.URL) -> httpx.URL:
    try:
        return url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise SsrfRefused(f"not a valid URL: {exc}") from None


async def check_url(
    url: str | httpx.URL, policy: NetworkPolicy, resolver: Resolver = system_resolver
) -> CheckedTarget:
    """Parse, resolve once and check ``url``; raise :class:`SsrfRefused` if it may not be fetched.

    Every resolved address must be allowed (a host that answers with one public and one
    private address is refused); the first is the one to connect to.
    """
    parsed = _parse(url)
    if parsed.scheme not in DEFAULT_PORTS:
        raise SsrfRefused(f"scheme {parsed.scheme!r} is not allowed; only http and https")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise SsrfRefused("URL has no host")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            resolved = await resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnresolvableHost(f"cannot resolve host {host!r}: {exc}") from None
        addresses = [ipaddress.ip_address(address.split("%", 1)[0]) for address in resolved]
    if not addresses:
        raise SsrfRefused(f"host {host!r} resolves to no address")
    for address in addresses:
        reason = check_address(address, policy)
        if reason is not None:
            shown = host if str(address) == host else f"{host!r} resolves to {address}, which"
            raise SsrfRefused(f"{shown} is {reason}")
    return CheckedTarget(url=parsed, host=host, port=port, address=str(addresses[0]))


@dataclass(frozen=True)
class UrlVerdict:
    """What the guard says of one URL checked ahead of any fetch (:func:`check_urls`)."""

    url: str
    refused: str | None = None  # why it may never be fetched
    warning: str | None = None  # why it could not be checked from here; each fetch checks again


async def check_urls(
    urls: Iterable[str],
    policy: NetworkPolicy,
    resolver: Resolver | None = None,
    *,
    at_once: int = 32,
    budget_seconds: float = 10.0,
) -> list[UrlVerdict]:
    """Each URL through :func:`check_url`, in the order given, ``at_once`` at a time and all
    within ``budget_seconds`` (a resolver that hangs must not hang the caller). A host that
    does not resolve, or not in time, is a warning, not a refusal: DNS may differ where the
    service runs, and every fetch runs the guard again."""
    resolve = resolver or system_resolver  # looked up now: tests replace the system resolver
    slots = asyncio.Semaphore(at_once)

    async def check(url: str) -> UrlVerdict:
        async with slots:
            try:
                await check_url(url, policy, resolve)
            except UnresolvableHost as exc:
                return UrlVerdict(url, warning=str(exc))
            except SsrfRefused as exc:
                return UrlVerdict(url, refused=str(exc))
            return UrlVerdict(url)

    wanted = list(urls)
    tasks = [asyncio.ensure_future(check(url)) for url in wanted]
    if not tasks:
        return []
    _, pending = await asyncio.wait(tasks, timeout=budget_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    late = f"not checked: resolving took over {budget_seconds:g} s"
    return [
        UrlVerdict(url, warning=late) if task in pending else task.result()
        for url, task in zip(wanted, tasks, strict=True)
    ]


# (host, port) -> checked address, for the fetch running in the current task.
_PINNED: contextvars.ContextVar[dict[tuple[str, int], str] | None] = contextvars.ContextVar(
    "newsalert_pinned_addresses", default=None
)


@contextlib.contextmanager
def pinned(targets: Iterable[CheckedTarget]) -> Iterator[None]:
    """Let :class:`PinnedNetworkBackend` dial these checked targets within this block."""
    token = _PINNED.set({(t.host, t.port): t.address for t in targets})
    try:
        yield
    finally:
        _PINNED.reset(token)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Dials only addresses pinned by :func:`pinned`; refuses everything else.

    httpcore passes the URL's host name here and uses it for SNI and certificate checks, so
    TLS stays correct while the TCP connection goes to the checked IP.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = (_PINNED.get() or {}).get((host, port))
        if address is None:
            raise SsrfRefused(f"connection to {host}:{port} was not checked; refused")
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SsrfRefused("unix sockets are never dialled")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a pool that can dial only SSRF-checked addresses.

    httpx has no public hook for the network backend, so we replace the pool it built
    with an identical one that uses ours (tests/integration/connectors pins this behaviour).
    """

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedNetworkBackend(),
        )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
