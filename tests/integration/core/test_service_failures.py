"""`newsalert run|connectors|streams` that cannot start: one line on stderr saying what and what
to do, a non-zero exit status, no traceback, and nothing it started left running; and the
service's HTTP endpoint refusing oversized requests with one log line, not a traceback each."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import sys
import uuid
from pathlib import Path

import pytest
from aiohttp.http_exceptions import LineTooLong

from alerts.links import Links
from alerts.store import DeliveryStore
from alerts.web import SubscriberPages
from newsalert import service
from newsalert.broker import BrokerError
from newsalert.http import BadRequestLog, ServiceHttp
from newsalert.service import Service
from newsalert.settings import load_settings

NEWSALERT = Path(sys.executable).with_name("newsalert")
MARKER = "NEWSALERT_TEST_RUN"  # not a setting: only tells this run's processes apart
PAGES = ("/mute", "/unsubscribe", "/metrics")


def processes_of(run_id: str) -> list[int]:
    """Processes that inherited this run's environment: newsalert and whatever it started
    (the embedded broker gets newsalert's environment)."""
    needle = f"{MARKER}={run_id}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(pid))
    return found


async def newsalert(*argv: str, **settings: str) -> tuple[int, str, str]:
    """Run the command as a user does; return its exit status, stdout and stderr once it has
    exited, after checking that nothing it started outlives it."""
    run_id = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
    env.update(settings, **{MARKER: run_id})
    process = await asyncio.create_subprocess_exec(
        str(NEWSALERT),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert processes_of(run_id) == [], "a process newsalert started outlives it"
    return process.returncode, out.decode(), err.decode()


def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("in_the_way", ["file/sub", "file"])
async def test_a_data_directory_that_cannot_be_made_is_one_line_before_anything_starts(
    tmp_path, in_the_way
):
    # Root writes through any permission bits; a regular file in the path stops it too.
    (tmp_path / "file").write_text("not a directory")
    data_dir = tmp_path / in_the_way
    code, out, err = await newsalert(
        "run", NEWSALERT_DATA_DIR=str(data_dir), NEWSALERT_METRICS_PORT="0"
    )
    assert code == 2
    assert err.splitlines() == [
        f"newsalert run: data directory {data_dir} cannot be created or written "
        f"({tmp_path / 'file'} is a file); choose another with --data-dir or NEWSALERT_DATA_DIR"
    ]
    assert out == "", "nothing started, nothing to report"


async def test_a_metrics_port_in_use_is_one_line_and_no_broker_is_started(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await newsalert(
            "run", NEWSALERT_DATA_DIR=str(tmp_path / "data"), NEWSALERT_METRICS_PORT=str(port)
        )
    assert code == 2
    assert err.splitlines() == [
        f"newsalert run: metrics port 127.0.0.1:{port} is already in use; "
        "choose another with --metrics-port or NEWSALERT_METRICS_PORT"
    ]
    assert "embedded broker" not in out, "found before a broker is started for nothing"


@pytest.mark.parametrize("command", ["run", "connectors", "streams"])
async def test_a_broker_that_refuses_connections_is_one_line(tmp_path, command):
    broker = f"kafka://127.0.0.1:{closed_port()}"
    code, _, err = await newsalert(
        command,
        "--broker",
        broker,
        NEWSALERT_DATA_DIR=str(tmp_path / "data"),
        NEWSALERT_METRICS_PORT="0",
    )
    assert code == 3
    assert err.splitlines() == [
        f"newsalert {command}: broker {broker} could not be reached (no connection); "
        "check that it runs and that --broker or NEWSALERT_BROKER names it"
    ]


async def test_a_broker_that_never_answers_is_given_up_within_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(service, "BROKER_REACH_SECONDS", 1.0)
    with socket.socket() as silent:  # takes connections (the backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        broker = f"kafka://127.0.0.1:{silent.getsockname()[1]}"
        settings = load_settings(data_dir=tmp_path / "data", broker=broker, metrics_port=0)
        running = Service(settings)
        try:
            async with asyncio.timeout(10):  # aiokafka alone would wait 40 s per request
                with pytest.raises(BrokerError) as raised:
                    await running.start(streams=False)
        finally:
            await running.stop()
    assert str(raised.value) == (
        f"broker {broker} could not be reached (no answer within 1 s); "
        "check that it runs and that --broker or NEWSALERT_BROKER names it"
    )
    assert running.http is not None
    with pytest.raises(ConnectionRefusedError):  # the metrics endpoint was closed again
        await asyncio.open_connection("127.0.0.1", running.http.port)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_during_start_up_stops_the_service_within_seconds(tmp_path, signum):
    """The broker takes connections but never answers: start-up waits (10 s), and a signal
    sent meanwhile ends it at once, leaving nothing behind."""
    run_id = uuid.uuid4().hex
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
        env.update(NEWSALERT_DATA_DIR=str(tmp_path / "data"), NEWSALERT_METRICS_PORT="0")
        env[MARKER] = run_id
        process = await asyncio.create_subprocess_exec(
            str(NEWSALERT),
            "run",
            "--broker",
            f"kafka://127.0.0.1:{silent.getsockname()[1]}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            async with asyncio.timeout(30):
                while b"broker kafka://" not in await process.stdout.readline():
                    pass
            process.send_signal(signum)
            async with asyncio.timeout(5):
                out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, err.decode()
    assert "stopping during start-up" in out.decode() and b"Traceback" not in err
    assert processes_of(run_id) == []


@pytest.fixture
async def service_http(tmp_path):
    """The service's HTTP endpoint with the subscriber pages, as `newsalert run` serves it."""
    store = DeliveryStore(tmp_path / "db.sqlite3")
    http = ServiceHttp("127.0.0.1", 0)
    http.add_routes(SubscriberPages(store, Links("", store.link_key())).routes)
    await http.start()
    http.ready = True
    yield http
    await http.stop()
    store.close()


async def exchange(port: int, request: bytes) -> bytes:
    """Send a raw request; return the status line of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()


OVERSIZED = [
    *(f"GET {path}?q={'a' * 100_000} HTTP/1.1\r\nHost: x\r\n\r\n" for path in PAGES),
    f"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: {'b' * 100_000}\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{i}: y\r\n" for i in range(500)) + "\r\n",
]


async def test_oversized_requests_get_a_4xx_and_one_warning_line_per_client(service_http, caplog):
    caplog.set_level(logging.DEBUG)
    for request in OVERSIZED * 2:
        status = await exchange(service_http.port, request.encode())
        assert re.match(rb"HTTP/1\.[01] 4\d\d ", status), status
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    (record,) = records
    assert record.levelno == logging.WARNING and "127.0.0.1" in record.getMessage()
    assert "\n" not in record.getMessage()
    assert not any(r.exc_info or "Traceback" in r.getMessage() for r in caplog.records)

    health = await exchange(service_http.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 ")


def test_a_client_refused_again_after_the_interval_gets_another_line_with_the_count(caplog):
    now = [0.0]
    bad_requests = BadRequestLog(interval_seconds=60, clock=lambda: now[0])
    refusal = LineTooLong("Status line is too long", "8190", "100000")
    for at in (0.0, 10.0, 59.0, 60.0, 61.0):
        now[0] = at
        bad_requests.exception("Error handling request from %s", "192.0.2.7", exc_info=refusal)
    bad_requests.exception("Error handling request from %s", "192.0.2.8", exc_info=refusal)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "192.0.2.7" in lines[0] and "2 more from it since the last such line" in lines[1]
    assert "192.0.2.8" in lines[2]
