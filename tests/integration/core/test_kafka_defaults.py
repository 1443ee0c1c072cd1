"""On Apache Kafka as it is: the defaults start (the group join is accepted), and a session
timeout the broker would refuse is one line naming the setting and the broker's limit."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from newsalert.localkafka import LocalKafka

NEWSALERT = Path(sys.executable).with_name("newsalert")


@pytest.fixture
def apache_kafka(kafka_cluster: LocalKafka) -> LocalKafka:
    """The session's Apache Kafka (tests/conftest.py); each test runs with an app id of its own."""
    return kafka_cluster


async def start(tmp_path, broker: str, **settings: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
    env.update(NEWSALERT_DATA_DIR=str(tmp_path / "data"), NEWSALERT_METRICS_PORT="0", **settings)
    return await asyncio.create_subprocess_exec(
        str(NEWSALERT),
        "run",
        "--broker",
        broker,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )


@pytest.mark.only_broker("kafka")
async def test_run_with_its_defaults_joins_apache_kafka_and_stops_on_sigterm(
    tmp_path, apache_kafka
):
    process = await start(tmp_path, apache_kafka.url, NEWSALERT_APP_ID="defaults-test")
    try:
        async with asyncio.timeout(60):
            while b"running" not in (line := await process.stdout.readline()):
                assert line, (await process.stderr.read()).decode()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    # Faust's directory is under the data directory, not in the working directory.
    assert (tmp_path / "data" / "faust").is_dir()
    assert not (tmp_path / "newsalert-data").exists()


@pytest.mark.only_broker("kafka")
async def test_a_session_timeout_kafka_refuses_is_one_line_naming_setting_and_limit(
    tmp_path, apache_kafka
):
    process = await start(
        tmp_path,
        apache_kafka.url,
        NEWSALERT_BROKER_SESSION_TIMEOUT_SECONDS="4",
        NEWSALERT_APP_ID="refused-timeout-test",
    )
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode().splitlines()[-1] == (
        f"newsalert run: broker {apache_kafka.url}: broker_session_timeout_seconds is 4 s, but "
        "the broker accepts 6-1800 s (group.min.session.timeout.ms = 6 s); set "
        "broker_session_timeout_seconds (NEWSALERT_BROKER_SESSION_TIMEOUT_SECONDS) within "
        "that range"
    )
