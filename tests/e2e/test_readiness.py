"""/readyz with real processes: a role turns not-ready within seconds when its broker or its
PostgreSQL is stopped, says which, and ready again when it is back; /healthz stays 200 (alive)
throughout. The broker and the PostgreSQL server are the test's own, stopped and started for
real (Apache Kafka by SIGTERM, PostgreSQL by SIGTERM to its postmaster)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from newsalert.broker import free_port
from newsalert.localkafka import LocalKafka
from newsalert.localservers import PostgresCluster
from tests.conftest import running_postgres

NEWSALERT = Path(sys.executable).with_name("newsalert")
NOT_READY_WITHIN_SECONDS = 10.0  # what the README promises is "a few seconds"; this bounds it
READY_AGAIN_WITHIN_SECONDS = 90.0  # a broker restart: the worker rejoins its group first

pytestmark = pytest.mark.e2e


@pytest.fixture
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL server of the test's own: what it stops, no other test sees."""
    with running_postgres() as cluster:
        yield cluster


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """An Apache Kafka of the test's own."""
    broker = LocalKafka(tmp_path / "kafka")
    asyncio.run(broker.start())
    try:
        yield broker
    finally:
        broker.stop()


class Role:
    """`newsalert ROLE` as a process of its own, its metrics port known in advance."""

    def __init__(self, tmp_path: Path, role: str, env: dict[str, str]) -> None:
        self.role = role
        self.port = free_port()
        self.log = tmp_path / f"{role}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
        self.env.update(
            NEWSALERT_DATA_DIR=str(tmp_path / role),
            NEWSALERT_METRICS_PORT=str(self.port),
            NEWSALERT_LOG_LEVEL="INFO",
            **env,
        )
        self.process: asyncio.subprocess.Process | None = None
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    async def start(self, *args: str) -> None:
        self.process = await asyncio.create_subprocess_exec(
            str(NEWSALERT),
            self.role,
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env=self.env,
        )

    async def readyz(self) -> tuple[int, str]:
        try:
            response = await self.client.get("/readyz")
        except httpx.TransportError as exc:
            return 0, f"no answer: {exc!r}"
        return response.status_code, response.text

    async def healthz(self) -> int:
        return (await self.client.get("/healthz")).status_code

    async def until_readyz(self, status: int, timeout_seconds: float) -> tuple[float, str]:
        """Seconds until /readyz answers ``status``, and its body then."""
        started = time.monotonic()
        deadline = started + timeout_seconds
        while True:
            assert self.process is not None
            if self.process.returncode is not None:
                pytest.fail(f"newsalert {self.role} exited; its log ends: {self.tail()}")
            got, body = await self.readyz()
            if got == status:
                return time.monotonic() - started, body
            if time.monotonic() > deadline:
                pytest.fail(
                    f"/readyz still {got} ({body.strip()!r}) after {timeout_seconds} s, "
                    f"not {status}; the log ends: {self.tail()}"
                )
            await asyncio.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def stop(self) -> None:
        await self.client.aclose()
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@pytest.fixture
async def roles() -> AsyncIterator[list[Role]]:
    started: list[Role] = []
    yield started
    for role in started:
        await role.stop()


async def flip(role: Role, stop: object, start: object, check: str) -> tuple[float, float]:
    """Stop a dependency, wait for /readyz to say ``check`` failed (while /healthz stays 200),
    start it again, wait for /readyz 200; the two waits in seconds."""
    stop()  # type: ignore[operator]
    down, body = await role.until_readyz(503, NOT_READY_WITHIN_SECONDS)
    assert f"{check}: " in body, body
    assert await role.healthz() == 200  # alive: nothing to restart
    await start()  # type: ignore[operator]
    up, _ = await role.until_readyz(200, READY_AGAIN_WITHIN_SECONDS)
    return down, up


@pytest.mark.only_broker("kafka")
@pytest.mark.parametrize("role_name", ["streams", "connectors"])
async def test_a_role_is_not_ready_without_its_broker_or_database_and_ready_again(
    tmp_path, kafka, postgres, roles, role_name
):
    database_url = postgres.create_database()
    role = Role(tmp_path, role_name, {"NEWSALERT_DATABASE_URL": database_url})
    roles.append(role)
    await role.start("--broker", kafka.url)
    await role.until_readyz(200, 90)

    async def start_kafka() -> None:
        await kafka.start()

    async def start_postgres() -> None:
        await asyncio.to_thread(postgres.start_server)

    broker_down, broker_up = await flip(role, kafka.stop, start_kafka, "broker")
    database_down, database_up = await flip(role, postgres.stop_server, start_postgres, "database")
    print(
        f"{role_name}: not ready {broker_down:.1f} s after the broker stopped, ready "
        f"{broker_up:.1f} s after it started; not ready {database_down:.1f} s after PostgreSQL "
        f"stopped, ready {database_up:.1f} s after it started"
    )


@pytest.mark.only_broker("embedded")
async def test_run_with_its_embedded_broker_is_not_ready_without_its_database(
    tmp_path, postgres, roles
):
    role = Role(tmp_path, "run", {"NEWSALERT_DATABASE_URL": postgres.create_database()})
    roles.append(role)
    await role.start()
    _, body = await role.until_readyz(200, 90)
    assert body == "ready\n"

    async def start_postgres() -> None:
        await asyncio.to_thread(postgres.start_server)

    down, up = await flip(role, postgres.stop_server, start_postgres, "database")
    print(f"run: not ready {down:.1f} s after PostgreSQL stopped, ready {up:.1f} s after")
