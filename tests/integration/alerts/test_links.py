"""One-click unsubscribe (RFC 8058) and mute links on the service's real HTTP endpoint."""

from __future__ import annotations

import time

import httpx
import pytest

from alerts.links import Links
from alerts.store import DeliveryStore
from alerts.web import SubscriberPages
from newsalert.http import ServiceHttp


@pytest.fixture
async def site(tmp_path):
    store = DeliveryStore(tmp_path / "db.sqlite3")
    http = ServiceHttp("127.0.0.1", 0)
    http.add_routes(SubscriberPages(store, Links("", store.link_key())).routes)
    await http.start()
    links = Links(http.url, store.link_key())
    yield store, links
    await http.stop()
    store.close()


async def test_unsubscribe_get_asks_post_unsubscribes_and_repeats_are_harmless(site):
    store, links = site
    url = links.unsubscribe_url("desk", "risk@example.org")
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        assert page.status_code == 200 and "<form" in page.text
        assert store.endpoint_disabled("desk", "email", "risk@example.org") is None
        for _ in range(2):
            done = await client.post(url, content="List-Unsubscribe=One-Click")
            assert done.status_code == 200
    assert store.endpoint_disabled("desk", "email", "risk@example.org") == (
        "unsubscribed by recipient"
    )


async def test_a_forged_or_altered_token_is_refused(site):
    store, links = site
    url = links.unsubscribe_url("desk", "risk@example.org").replace("desk", "other")
    async with httpx.AsyncClient() as client:
        assert (await client.post(url)).status_code == 403
        forged = Links(links.base_url, b"x" * 32).unsubscribe_url("desk", "risk@example.org")
        assert (await client.post(forged)).status_code == 403
    assert store.endpoints() == []


async def test_mute_link_silences_the_topic_for_a_day(site):
    store, links = site
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            assert (await client.post(links.mute_url("desk", "5g-security"))).status_code == 200
    (silence,) = store.silences()
    assert silence.key == "5g-security" and silence.until > time.time() + 23 * 3600
