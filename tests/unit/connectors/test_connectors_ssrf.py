import asyncio
import ipaddress

import pytest

from newsalert.netguard import (
    NetworkPolicy,
    SsrfRefused,
    check_address,
    check_url,
    check_urls,
    forbidden_reason,
)

DENY = NetworkPolicy.from_setting("false")
PUBLIC = "93.184.215.14"


def resolver_for(table):
    async def resolve(host, port):
        if host not in table:
            raise OSError(f"unknown host {host}")
        return list(table[host])

    return resolve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_forbidden(address, reason):
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", [PUBLIC, "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://2130706433/",  # decimal 127.0.0.1
        "http://0x7f.1/",  # hex + short form
        "http://0177.0.0.1/",  # octal: httpx refuses to parse it, so do we
        "http://127.1/",
        "http://evil.example\\@127.0.0.1/",  # httpx dials 127.0.0.1 here
        "http://user@127.0.0.1:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.1.1/",
    ],
)
async def test_odd_spellings_of_forbidden_hosts_are_refused(url):
    # The system resolver is used on purpose: it is what turns 2130706433 into 127.0.0.1.
    with pytest.raises(SsrfRefused):
        await check_url(url, DENY)


async def test_host_resolving_to_a_private_address_is_refused():
    resolve = resolver_for({"intranet.example": ["10.0.0.5"]})
    with pytest.raises(SsrfRefused, match="resolves to 10.0.0.5, which is a private address"):
        await check_url("https://intranet.example/feed", DENY, resolve)


async def test_any_forbidden_address_among_several_refuses_the_host():
    resolve = resolver_for({"mixed.example": [PUBLIC, "127.0.0.1"]})
    with pytest.raises(SsrfRefused):
        await check_url("https://mixed.example/", DENY, resolve)


async def test_checked_target_carries_the_resolved_address_and_port():
    resolve = resolver_for({"news.example": [PUBLIC, "2606:4700:4700::1111"]})
    target = await check_url("https://News.Example/feed?x=1", DENY, resolve)
    assert (target.host, target.port, target.address) == ("news.example", 443, PUBLIC)
    assert str(target.url) == "https://news.example/feed?x=1"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/", "javascript:alert(1)"]
)
async def test_only_http_and_https_are_allowed(url):
    with pytest.raises(SsrfRefused, match="only http and https|not a valid URL|no host"):
        await check_url(url, DENY, resolver_for({}))


async def test_unresolvable_host_is_refused_with_reason():
    with pytest.raises(SsrfRefused, match="cannot resolve host 'nowhere.invalid'"):
        await check_url("http://nowhere.invalid/", DENY, resolver_for({}))


async def test_cidr_allow_list_permits_only_its_networks():
    policy = NetworkPolicy.from_setting("127.0.0.0/8, 10.1.0.0/16")
    assert (await check_url("http://127.0.0.1:8080/", policy)).address == "127.0.0.1"
    mapped = await check_url("http://[::ffff:127.0.0.1]/", policy)
    assert ipaddress.ip_address(mapped.address).ipv4_mapped == ipaddress.ip_address("127.0.0.1")
    assert (await check_url("http://10.1.2.3/", policy)).address == "10.1.2.3"
    with pytest.raises(SsrfRefused):
        await check_url("http://10.2.0.1/", policy)
    with pytest.raises(SsrfRefused):
        await check_url("http://[::1]/", policy)


async def test_true_allows_every_private_network():
    policy = NetworkPolicy.from_setting("true")
    for url in ("http://127.0.0.1/", "http://[::1]/", "http://192.168.0.1/", "http://100.64.0.1/"):
        await check_url(url, policy)


def test_false_and_empty_allow_nothing():
    assert NetworkPolicy.from_setting("false") == NetworkPolicy()
    assert NetworkPolicy.from_setting("") == NetworkPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack ... metadata
        "169.254.170.2",  # ECS task metadata
        "fe80::1",
        "fd00:ec2::254",
        "fd20:ce::254",
        "100.100.100.200",
        "168.63.129.16",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_true_still_refuses_link_local_and_metadata_addresses(address):
    reason = check_address(ipaddress.ip_address(address), NetworkPolicy.from_setting("true"))
    assert reason is not None and "refused whatever allow_private_networks says" in reason


async def test_a_refused_metadata_url_names_the_address_and_the_way_to_open_it():
    policy = NetworkPolicy.from_setting("true")
    with pytest.raises(SsrfRefused) as refused:
        await check_url("http://169.254.169.254/latest/meta-data/", policy)
    assert str(refused.value) == (
        "169.254.169.254 is a link-local address (cloud metadata services); refused whatever"
        " allow_private_networks says, unless its CIDR list names 169.254.0.0/16"
        ' (allow_private_networks: "169.254.0.0/16")'
    )


@pytest.mark.parametrize(
    ("setting", "address", "opened"),
    [
        ("169.254.0.0/16", "169.254.169.254", True),
        ("10.0.0.0/8, 169.254.169.254/32", "169.254.169.254", True),
        ("169.254.0.0/16", "::ffff:169.254.169.254", True),
        ("169.254.170.0/24", "169.254.169.254", False),  # names another part of the network
        ("0.0.0.0/0", "169.254.169.254", False),  # wider than the metadata network: not named
        ("169.0.0.0/8", "169.254.169.254", False),
        ("100.64.0.0/10", "100.64.0.1", True),  # a Tailscale range stays usable ...
        ("100.64.0.0/10", "100.100.100.200", False),  # ... without opening Alibaba's metadata
        ("100.100.100.200/32", "100.100.100.200", True),
        ("fe80::/10", "fe80::1", True),
        ("::/0", "fe80::1", False),
        ("fc00::/7", "fd00:ec2::254", False),
        ("fd00:ec2::254/128", "fd00:ec2::254", True),
    ],
)
def test_only_a_cidr_list_naming_a_metadata_network_opens_it(setting, address, opened):
    reason = check_address(ipaddress.ip_address(address), NetworkPolicy.from_setting(setting))
    assert (reason is None) == opened, reason


async def test_check_urls_refuses_warns_and_passes_each_url_in_order():
    table = resolver_for({"news.example": [PUBLIC], "intranet.example": ["10.0.0.5"]})

    async def resolve(host, port):
        if host == "hangs.example":
            await asyncio.Event().wait()  # a resolver that never answers
        return await table(host, port)

    urls = [
        "http://hangs.example/",
        "https://news.example/rss",
        "https://intranet.example/rss",
        "http://nowhere.invalid/",
    ]
    verdicts = await check_urls(urls, DENY, resolve, budget_seconds=0.2)
    assert [v.url for v in verdicts] == urls
    assert [(v.refused is not None, v.warning is not None) for v in verdicts] == [
        (False, True),
        (False, False),
        (True, False),
        (False, True),
    ]
    assert verdicts[0].warning == "not checked: resolving took over 0.2 s"
    assert "resolves to 10.0.0.5, which is a private address" in verdicts[2].refused
