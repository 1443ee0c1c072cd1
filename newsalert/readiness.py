"""``/readyz``: whether this role can do its work now. Each role registers its checks (the
broker answers, the consumer group is joined, the state database answers); a loop runs them
every ``interval_seconds`` and the endpoint answers from the last round at once, so a probe
never waits on a broker that does not answer, and a lost broker or database shows within
``interval_seconds`` plus one check's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from newsalert.database import is_postgres_url, redacted

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 2.0

# A check returns None when all is well, else the reason in a few words.
Check = Callable[[], Awaitable[str | None]]

# aiokafka logs every refused connection at ERROR; a probe that fails is reported by /readyz
# itself, so lines logged while one runs are dropped (the stream's own clients still log).
_probing: contextvars.ContextVar[bool] = contextvars.ContextVar("probing", default=False)


def _not_probing(record: logging.LogRecord) -> bool:
    return not _probing.get()


for _name in ("aiokafka.client", "aiokafka.conn"):
    logging.getLogger(_name).addFilter(_not_probing)


class Readiness:
    def __init__(
        self,
        interval_seconds: float = CHECK_INTERVAL_SECONDS,
        timeout_seconds: float = CHECK_TIMEOUT_SECONDS,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.timeout_seconds = timeout_seconds
        self.checks: dict[str, Check] = {}
        # check -> reason, from the last round; nothing is known before the first
        self.problems: dict[str, str] = {"checks": "not run yet"}
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def check_once(self) -> dict[str, str]:
        names = list(self.checks)
        reasons = await asyncio.gather(*(self._run(self.checks[name]) for name in names))
        problems = {name: reason for name, reason in zip(names, reasons, strict=True) if reason}
        for name in problems.keys() - self.problems.keys():
            log.warning("not ready: %s: %s", name, problems[name])
        if self.problems and not problems:
            log.info("ready")
        self.problems = problems
        return problems

    async def _run(self, check: Check) -> str | None:
        token = _probing.set(True)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await check()
        except TimeoutError:
            return f"no answer within {self.timeout_seconds:g} s"
        except Exception as exc:  # a check that fails says why; the loop goes on
            return one_line(exc) or type(exc).__name__
        finally:
            _probing.reset(token)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="readiness")

    async def _loop(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self.interval_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def broker_check(bootstrap_servers: str, timeout_seconds: float = CHECK_TIMEOUT_SECONDS) -> Check:
    """The broker answers a metadata request (a new connection each time: the question is
    whether a client can reach it now, not whether an old connection lingers)."""

    async def check() -> str | None:
        from aiokafka import AIOKafkaClient

        client = AIOKafkaClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=int(timeout_seconds * 1000),
            client_id="newsalert-readyz",
        )
        try:
            await client.bootstrap()
        except Exception:  # aiokafka says "Unable to bootstrap from [('127.0.0.1', ...)]"
            return f"{bootstrap_servers} does not answer"
        finally:
            await client.close()
        return None

    return check


def database_check(target: Path | str, timeout_seconds: float = CHECK_TIMEOUT_SECONDS) -> Check:
    """The state database answers ``SELECT 1`` on a new connection."""

    async def check() -> str | None:
        return await asyncio.to_thread(ping_database, target, timeout_seconds)

    return check


def ping_database(target: Path | str, timeout_seconds: float) -> str | None:
    if is_postgres_url(target):
        import psycopg

        try:
            with psycopg.connect(
                str(target), connect_timeout=max(1, round(timeout_seconds)), autocommit=True
            ) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"PostgreSQL at {redacted(str(target))}: {one_line(exc)}"
        return None
    try:  # mode=rw: a state file that is gone is not created again, empty, by the check
        uri = f"{Path(target).resolve().as_uri()}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, timeout=timeout_seconds)
        try:
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return f"SQLite file {target}: {one_line(exc)}"
    return None
