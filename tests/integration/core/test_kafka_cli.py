"""`newsalert kafka start|status|stop` as a user runs it: a durable Apache Kafka under
DATA_DIR/kafka that keeps its topics across a restart, and one line when Java or Maven is
missing."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from newsalert.localkafka import KAFKA_VERSION, LocalKafka, has_cluster, local_kafka_dir

NEWSALERT = Path(sys.executable).with_name("newsalert")


async def newsalert(*argv: str, **env: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
    process = await asyncio.create_subprocess_exec(
        str(NEWSALERT),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **env},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, out.decode(), err.decode()


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever adopted it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def data_dir(tmp_path: Path):
    """A data directory whose Kafka, if a test left one running, is stopped after it."""
    data = tmp_path / "data"
    yield data
    if has_cluster(local_kafka_dir(data)):
        LocalKafka(local_kafka_dir(data)).stop()


@pytest.mark.only_broker("kafka")
async def test_start_status_stop_and_the_topics_survive_a_restart(data_dir):
    code, out, _ = await newsalert("kafka", "start", "--data-dir", str(data_dir))
    assert code == 0, out
    started = re.search(
        rf"^newsalert kafka: Apache Kafka {re.escape(KAFKA_VERSION)} running on "
        r"(kafka://127\.0\.0\.1:(\d+)) \(pid (\d+)\), data in (.+)$",
        out,
        re.MULTILINE,
    )
    assert started, out
    url, port, pid, where = started.group(1), started.group(2), int(started.group(3)), started[4]
    assert where == str((data_dir / "kafka").resolve())
    assert alive(pid), "the broker runs on after `kafka start` has returned"

    code, out, _ = await newsalert("kafka", "start", "--data-dir", str(data_dir))
    assert (code, out) == (
        0,
        f"newsalert kafka: already running on {url} (pid {pid}), data in {where}\n",
    )

    code, out, _ = await newsalert("kafka", "status", "--data-dir", str(data_dir))
    assert code == 0
    assert out.splitlines()[:4] == [
        f"Apache Kafka {KAFKA_VERSION}: running",
        f"address: {url}",
        f"pid:     {pid}",
        f"data:    {where}",
    ]

    bootstrap = f"127.0.0.1:{port}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # made at start: a service's first consumer finds a group coordinator at once
        assert "__consumer_offsets" in await admin.list_topics()
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("kept", b"still here", key=b"k")
    finally:
        await producer.stop()

    code, out, _ = await newsalert("kafka", "stop", "--data-dir", str(data_dir))
    assert (code, out) == (
        0,
        f"newsalert kafka: stopped Apache Kafka on {url} (pid {pid}); data kept in {where}\n",
    )
    assert not alive(pid)
    code, out, _ = await newsalert("kafka", "status", "--data-dir", str(data_dir))
    assert code == 3
    assert out.splitlines()[:2] == [
        f"Apache Kafka {KAFKA_VERSION}: not running",
        f"address: {url} (when started again)",
    ]

    code, out, _ = await newsalert("kafka", "start", "--data-dir", str(data_dir))
    assert code == 0 and f"running on {url} " in out, "the same address after a restart"
    consumer = AIOKafkaConsumer("kept", bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.value == b"still here"


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("kafka start", ["kafka", "start"]),
        ("run", ["run", "--broker", "local-kafka", "--metrics-port", "0"]),
    ],
)
async def test_no_java_is_one_line_before_anything_is_made(tmp_path, command, argv):
    empty = tmp_path / "bin"
    empty.mkdir()
    data = tmp_path / "data"
    code, out, err = await newsalert(*argv, "--data-dir", str(data), PATH=str(empty))
    assert code == 3
    assert err.splitlines() == [
        f"newsalert {command}: Apache Kafka {KAFKA_VERSION} needs Java 17 or newer and there "
        "is no java on PATH; install it (Debian, Ubuntu: apt-get install default-jre-headless)"
    ]
    assert not (data / "kafka").exists()


@pytest.fixture
def java_only(tmp_path: Path) -> Path:
    """A PATH directory holding the machine's java and nothing else."""
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "java").symlink_to(Path(shutil.which("java") or "java").resolve())
    return directory


@pytest.mark.only_broker("kafka")  # it needs the Java the Kafka tests need
async def test_no_maven_for_the_first_download_is_one_line(tmp_path, java_only):
    code, out, err = await newsalert(
        "kafka",
        "start",
        "--data-dir",
        str(tmp_path / "data"),
        PATH=str(java_only),
        XDG_CACHE_HOME=str(tmp_path / "empty-cache"),
    )
    assert code == 3 and out == ""
    assert err.splitlines() == [
        f"newsalert kafka start: Apache Kafka {KAFKA_VERSION} is fetched from Maven Central "
        "with Maven on first use and there is no mvn on PATH; install it (Debian, Ubuntu: "
        "apt-get install maven)"
    ]
