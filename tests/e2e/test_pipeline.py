"""The whole service as a user runs it (`newsalert run`), against real local servers: a feed
server, a webhook receiver and an SMTP server; and a broker, each kind: the embedded one the
service starts itself, or Apache Kafka named with NEWSALERT_BROKER (``service_broker``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from newsalert.demo import DEMO_SECRET, dated
from newsalert.localservers import FeedServer, SmtpSink, WebhookReceiver, load_demo_articles
from tests.conftest import eventually

pytestmark = pytest.mark.e2e
NEWSALERT = Path(sys.executable).with_name("newsalert")


class RunningService:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def find(self, pattern: str) -> re.Match[str] | None:
        return next((m for line in self.lines if (m := re.search(pattern, line))), None)

    async def metrics(self) -> dict[str, float]:
        port = self.find(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1)
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items()))
                values[key] = values.get(key, 0.0) + sample.value
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
        return values

    async def stop(self) -> int:
        print("\n".join(self.lines))  # shown by pytest when the test fails
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout=30)
        except TimeoutError:
            self.kill()
            raise AssertionError("newsalert did not stop within 30 s of SIGTERM") from None
        await self._reader
        return code

    def kill(self) -> None:
        """The fixture's last resort: never leave a service (or its broker) behind."""
        if self.process.returncode is None:
            self.process.kill()


async def start_service(config: Path, data_dir: Path, **settings: str) -> RunningService:
    """``newsalert run`` as a user starts it; ``settings`` are more NEWSALERT_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
    env.update(NEWSALERT_METRICS_PORT="0", NEWSALERT_DATA_DIR=str(data_dir), **settings)
    process = await asyncio.create_subprocess_exec(
        str(NEWSALERT),
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    service = RunningService(process)
    try:
        await eventually(
            lambda: service.find("running;") or process.returncode is not None, 60, "service start"
        )
    except BaseException:
        service.kill()
        raise
    assert process.returncode is None, "\n".join(service.lines)
    return service


def write_config(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver, smtp: SmtpSink
) -> Path:
    config = {
        "poll_interval_seconds": 0.5,
        "allow_private_networks": "127.0.0.0/8",
        "feeds": [
            {"url": feeds.url("/sport.xml"), "name": "sport"},
            {"url": feeds.url("/tech.xml"), "name": "telecom"},
        ],
        "subscriptions": [
            {
                "name": "telecom-risk",
                "topics": ["5g-security"],
                "webhook": {"url": receiver.url("/hook"), "secret": DEMO_SECRET},
                "email": "risk@example.org",
            }
        ],
        "smtp": {"host": "127.0.0.1", "port": smtp.port},
        "spike": {"bucket_seconds": 3600, "min_count": 5, "absolute_threshold": 5},
    }
    path = tmp_path / "newsalert.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_huawei_burst_alerts_once_by_webhook_and_email_and_sport_alerts_nobody(
    tmp_path, servers, service_broker
):
    feeds, receiver, smtp = servers
    sport = dated(load_demo_articles("sport"), time.time())
    feeds.set_feed("/sport.xml", "Sport Wire", sport)
    feeds.set_feed("/tech.xml", "Telecom Wire", [])
    config = write_config(tmp_path, feeds, receiver, smtp)
    service = await start_service(config, tmp_path / "data", **service_broker)
    try:
        await eventually(
            lambda: feeds.requests.count("/tech.xml") >= 1, 30, "first poll of the feeds"
        )
        # The sport burst is processed and produces no alert for the 5g-security subscriber.
        metrics: dict[str, float] = {}

        async def sport_processed() -> bool:
            metrics.update(await service.metrics())
            return metrics.get("newsalert_articles_processed_total", 0) >= len(sport)

        await _eventually_async(sport_processed, 30, "sport articles processed")
        assert metrics.get("newsalert_spikes_total|state=started|topic=5g-security", 0) == 0
        assert receiver.received == [] and smtp.messages == []

        burst = dated(load_demo_articles("huawei-5g"), time.time())
        feeds.set_feed("/tech.xml", "Telecom Wire", burst)
        await eventually(lambda: receiver.received and smtp.messages, 40, "webhook and e-mail")

        # Let the feeds be polled a few more times: still exactly one POST.
        polls = feeds.requests.count("/tech.xml")
        await eventually(lambda: feeds.requests.count("/tech.xml") >= polls + 3, 20, "more polls")
        assert len(receiver.received) == 1
        hook = receiver.received[0]
        assert hook.verified, "webhook signature must verify with the subscriber's secret"
        assert hook.payload["topic"] == "5g-security"
        assert len(smtp.messages) == 1
        message = smtp.messages[0]
        assert message["To"] == "risk@example.org"
        assert "5g-security" in message["Subject"]
        plain = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        assert "Huawei" in plain and "Huawei" in html

        final = await service.metrics()
        assert final["newsalert_spikes_total|state=started|topic=5g-security"] == 1
        assert final.get("newsalert_deliveries_total|channel=webhook|outcome=delivered") == 1
        assert final.get("newsalert_deliveries_total|channel=email|outcome=delivered") == 1
    finally:
        code = await service.stop()
    assert code == 0, "\n".join(service.lines)


async def _eventually_async(check, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds} s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.only_broker("embedded")  # the embedded broker's life and its memory-only topics
async def test_sigterm_stops_the_embedded_broker_and_restart_does_not_republish(tmp_path, servers):
    feeds, receiver, smtp = servers
    sport = dated(load_demo_articles("sport"), time.time())
    feeds.set_feed("/sport.xml", "Sport Wire", sport[1:])
    feeds.set_feed("/tech.xml", "Telecom Wire", [])
    config = write_config(tmp_path, feeds, receiver, smtp)
    service = await start_service(config, tmp_path / "data")
    broker_port = service.find(r"embedded broker \(tansu\) on 127\.0\.0\.1:(\d+)").group(1)
    assert service.find("MEMORY-ONLY")

    async def published() -> bool:
        return (await service.metrics()).get("newsalert_articles_published_total", 0) >= 7

    await _eventually_async(published, 30, "sport entries published")

    async def processed() -> bool:
        return (await service.metrics()).get("newsalert_articles_processed_total", 0) >= 7

    await _eventually_async(processed, 30, "sport entries processed")
    assert await service.stop() == 0
    assert not _process_listening(broker_port), "tansu must not outlive newsalert"

    # The feed changes while newsalert is down: one new entry among the seven it already has.
    feeds.set_feed("/sport.xml", "Sport Wire", sport)
    again = await start_service(config, tmp_path / "data")
    # The broker's memory is gone, the spike baselines are not (DATA_DIR/spike-state.json).
    assert again.find("spike baselines restored from"), "\n".join(again.lines)
    try:
        polls = feeds.requests.count("/sport.xml")
        await eventually(lambda: feeds.requests.count("/sport.xml") >= polls + 2, 20, "re-polls")
        metrics = await again.metrics()
        assert metrics.get("newsalert_articles_published_total", 0) == 1
    finally:
        assert await again.stop() == 0


def _process_listening(port: str) -> bool:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "tansu" in cmdline and f"127.0.0.1:{port}" in cmdline:
            return True
    return False


async def test_sighup_reloads_subscriptions_and_a_broken_config_is_refused(
    tmp_path, servers, service_broker
):
    feeds, receiver, smtp = servers
    feeds.set_feed("/sport.xml", "Sport Wire", [])
    feeds.set_feed("/tech.xml", "Telecom Wire", [])
    config = write_config(tmp_path, feeds, receiver, smtp)
    data_dir = tmp_path / "data"
    service = await start_service(config, data_dir, **service_broker)
    try:
        data = yaml.safe_load(config.read_text())
        data["subscriptions"].append(
            {"name": "trade-desk", "topics": ["sanctions"], "email": "trade@example.org"}
        )
        config.write_text(yaml.safe_dump(data))
        service.process.send_signal(signal.SIGHUP)
        await eventually(lambda: service.find("configuration reloaded"), 10, "the reload")
        listed = await asyncio.create_subprocess_exec(
            str(NEWSALERT),
            "subscribers",
            "list",
            "--data-dir",
            str(data_dir),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await listed.communicate()
        assert "trade-desk [config]" in out.decode() and "telecom-risk [config]" in out.decode()

        config.write_text("subscriptions: [{name: broken}]\n")
        service.process.send_signal(signal.SIGHUP)
        await eventually(lambda: service.find("reload refused"), 10, "the refusal")
        assert service.process.returncode is None
    finally:
        assert await service.stop() == 0
