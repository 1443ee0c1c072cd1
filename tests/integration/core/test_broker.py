"""The embedded broker: starts on a free port, answers Kafka, stops with no orphan."""

from __future__ import annotations

import os

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from newsalert.broker import BrokerError, EmbeddedBroker

pytestmark = pytest.mark.only_broker("embedded")


async def test_embedded_broker_round_trips_a_message_and_stops(embedded_broker):
    producer = AIOKafkaProducer(bootstrap_servers=embedded_broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait("probe", b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "probe", bootstrap_servers=embedded_broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        message = await consumer.getone()
    finally:
        await consumer.stop()
    assert message.value == b"hello"

    pid = embedded_broker.pid
    embedded_broker.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_missing_binary_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    with pytest.raises(BrokerError, match="no tansu binary|CALF_TANSU_BIN"):
        await EmbeddedBroker().start()


async def test_binary_that_exits_at_once_is_reported(tmp_path):
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\nexit 7\n")
    fake.chmod(0o755)
    with pytest.raises(BrokerError, match="exited with code 7"):
        await EmbeddedBroker(binary=str(fake)).start()


async def test_broker_dies_with_a_killed_newsalert(tmp_path):
    """SIGKILL gives newsalert no chance to stop its broker; the kernel must."""
    import asyncio
    import signal
    import sys
    import time

    script = (
        "import asyncio\n"
        "from newsalert.broker import EmbeddedBroker\n"
        "async def main():\n"
        "    b = EmbeddedBroker()\n"
        "    await b.start()\n"
        "    print(b.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    broker_pid = int((await asyncio.wait_for(parent.stdout.readline(), 30)).decode())
    os.kill(broker_pid, 0)  # running
    parent.send_signal(signal.SIGKILL)
    await parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(broker_pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    os.kill(broker_pid, signal.SIGKILL)
    pytest.fail("the broker outlived its killed parent")
