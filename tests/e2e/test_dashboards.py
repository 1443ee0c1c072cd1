"""The dashboards and rules of deploy/ against a real Prometheus (Debian's package) scraping a
real `newsalert run` that goes through the demo's spike: every panel's query and every rule's
metric finds series, and the spike panel counts the spike. A query that matches nothing (a
renamed metric, a label that never appears) fails here, not on a team's wall screen."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from newsalert.broker import free_port
from newsalert.demo import dated
from newsalert.localservers import load_demo_articles
from tests.conftest import eventually
from tests.e2e.test_pipeline import _eventually_async, start_service, write_config

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"

pytestmark = [pytest.mark.only_broker("embedded"), pytest.mark.e2e]  # Prometheus' side only


def dashboards_module():
    spec = importlib.util.spec_from_file_location(
        "dashboards", DEPLOY / "grafana" / "dashboards.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def rule_selectors() -> dict[str, list[str]]:
    """Alert name -> the series selectors of its expression (``name{matchers}`` or ``name``)."""
    found = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            names = re.findall(r"\b((?:newsalert_\w+|up)(?:\{[^}]*\})?)", rule["expr"])
            found[rule["alert"]] = sorted(set(names))
    return found


class Prometheus:
    """A real Prometheus on a free 127.0.0.1 port, scraping one target every second."""

    def __init__(self, directory: Path, target: str) -> None:
        self.port = free_port()
        self.directory = directory
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "newsalert",
                    "static_configs": [{"targets": [target], "labels": {"role": "run"}}],
                }
            ],
        }
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen | None = None

    def launch(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not found: `make test` installs Debian's prometheus package")
        self.log = (self.directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def start(self) -> None:
        self.launch()

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    answer = await client.get(f"http://127.0.0.1:{self.port}/-/ready")
                return answer.status_code == 200
            except httpx.HTTPError:
                assert self.process.poll() is None, (self.directory / "prometheus.log").read_text()
                return False

        await _eventually_async(ready, 60, "Prometheus ready")

    async def query(self, expr: str) -> list[dict]:
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": expr}
            )
        body = answer.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()


async def test_every_panel_and_rule_finds_its_series_in_a_real_prometheus(tmp_path, servers):
    feeds, receiver, smtp = servers
    feeds.set_feed("/sport.xml", "Sport Wire", dated(load_demo_articles("sport"), time.time()))
    feeds.set_feed("/tech.xml", "Telecom Wire", [])
    config = write_config(tmp_path, feeds, receiver, smtp)
    service = await start_service(config, tmp_path / "data")
    port = service.find(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1)
    prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{port}")
    try:
        await prometheus.start()

        async def scraped() -> bool:
            return bool(await prometheus.query('up{job="newsalert"} == 1'))

        # The spike comes after Prometheus has seen the counters at 0, as in a running service.
        await _eventually_async(scraped, 30, "the first scrape")
        feeds.set_feed(
            "/tech.xml", "Telecom Wire", dated(load_demo_articles("huawei-5g"), time.time())
        )
        await eventually(lambda: receiver.received and smtp.messages, 60, "the spike's alerts")

        async def spike_scraped() -> bool:
            found = await prometheus.query('newsalert_spikes_total{state="started"}')
            return bool(found) and float(found[0]["value"][1]) > 0

        await _eventually_async(spike_scraped, 30, "the spike scraped")
        await asyncio.sleep(3)  # a few more scrapes: rate() needs two samples in its window

        empty = []
        for board, title, expr in dashboards_module().queries():
            if not await prometheus.query(expr):
                empty.append(f"{board} / {title}: {expr}")
        for alert, selectors in rule_selectors().items():
            for selector in selectors:
                if not await prometheus.query(selector):
                    empty.append(f"rule {alert}: {selector}")
        assert not empty, "queries that find no series:\n" + "\n".join(empty)

        (started,) = await prometheus.query(
            'sum(increase(newsalert_spikes_total{state="started"}[24h]))'
        )
        assert float(started["value"][1]) > 0, "the spike panel shows no spike"
    finally:
        prometheus.stop()
        code = await service.stop()
    assert code == 0, "\n".join(service.lines)
