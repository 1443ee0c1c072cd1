"""A service HTTP endpoint with the pages and the API on 127.0.0.1, over a fresh state
database holding one 5g-security spike, its stories and a notification about it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import pytest

from alerts.routing import Notification
from newsalert.http import ServiceHttp
from newsalert.settings import Settings, load_settings
from newsalert.web import console_routes
from newsalert.web.ops import Console

TOKEN = "test-token-" + "x" * 24
NOW = time.time()


def spike_event(state: str = "started") -> dict:
    return {
        "spike_id": "spike-5g-1",
        "topic": "5g-security",
        "state": state,
        "window_start": NOW - 3600,
        "window_end": NOW,
        "count": 9,
        "baseline": 0.5,
        "ratio": 18.0,
        "score": 9.0,
        "detected_at": NOW - 60,
        "top_stories": [
            {
                "article_id": "a1",
                "title": "Huawei 5G kit banned over security fears",
                "url": "https://news.example/huawei",
                "source": "Telecom Wire",
                "published": NOW - 600,
            }
        ],
        "top_terms": ["huawei", "5g"],
        "recent_counts": [{"start": NOW - 7200, "count": 0}, {"start": NOW - 3600, "count": 9}],
    }


def seed(console: Console) -> None:
    hits = [
        {
            "key": "5g-security",
            "story_id": f"s{i}",
            "published": NOW - 60 * i,
            "title": f"Huawei 5G security story {i}" if i % 2 else f"Network ban story {i}",
            "url": f"https://news.example/{i}",
            "source": "Telecom Wire",
            "terms": ["huawei", "5g"],
        }
        for i in range(9)
    ]
    console.activity.record_hits(hits, now=NOW)
    console.activity.record_spike(spike_event())
    note = Notification("m-1", "desk", "email", "desk@example.org", spike_event())
    console.deliveries.enqueue([(note, NOW, "pending")], now=NOW)


@dataclass
class Site:
    url: str
    console: Console
    settings: Settings

    def client(self, token: str | None = TOKEN) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, follow_redirects=False)


@pytest.fixture
async def site(tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        api_token=TOKEN,
        allow_private_networks="127.0.0.0/8",
        api_max_body_bytes=4096,
    )
    routes, close = console_routes(settings)
    http = ServiceHttp("127.0.0.1", 0)
    http.add_routes(routes)
    await http.start()
    console = Console.open(settings)
    seed(console)
    yield Site(http.url, console, settings)
    await http.stop()
    console.close()
    close()
