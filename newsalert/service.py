"""Starts and stops the running service: broker (embedded or external), stream processors,
feed connectors, alert dispatcher and the metrics endpoint, in that order, and back down.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsalert.broker import (
    BrokerError,
    EmbeddedBroker,
    quiet_kafka_client,
    unreachable_reason,
)
from newsalert.http import ServiceHttp
from newsalert.settings import LOCAL_KAFKA, Settings

log = logging.getLogger("newsalert")

# Creating the topics on a broker that answers takes well under a second; a broker that does
# not answer (a closed port, a host that drops packets) must not hold the start for long.
BROKER_REACH_SECONDS = 10.0


class StartError(RuntimeError):
    """Something the service needs cannot be had (a port, a directory); the message says what
    and which setting to change."""


NOISY_LOGGERS = (
    "faust",
    "mode",
    "aiokafka",
    "aiohttp.access",
    "kafka",
    "httpx",
    "httpcore",
    "mail.log",
    # Faust's services log through the module of their class: our subclasses live here.
    "streams.app",
    "streams.transport",
)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (test runners swap it), not at creation."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class RepeatFilter(logging.Filter):
    """While a broker is away, aiokafka logs every reconnection attempt (ten lines a second
    and more, each at ERROR): one line of each kind per ``window_seconds`` goes through, the
    next says how many like it were held back. Only the ``prefixes``' loggers are filtered."""

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka",), window_seconds: float = 30.0):
        super().__init__()
        self.prefixes = prefixes
        self.window_seconds = window_seconds
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # kind -> (window start, held)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        kind = (record.name, str(record.msg))
        now = record.created
        started, held = self._seen.get(kind, (None, 0))
        if started is not None and now - started < self.window_seconds:
            self._seen[kind] = (started, held + 1)
            return False
        self._seen[kind] = (now, 0)
        if held:
            record.msg = (
                f"{record.msg} ({held} more like it in the last {self.window_seconds:.0f} s)"
            )
        return True


def setup_logging(level: str) -> None:
    """Logs at the level the user chose; library chatter only at WARNING unless DEBUG."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if level != "DEBUG":
        handler.addFilter(RepeatFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")


def state_location(settings: Settings) -> str:
    """Where durable state lives, for the person at the terminal (no password)."""
    from newsalert.database import redacted

    return redacted(settings.database_url) if settings.database_url else str(settings.database_path)


def one_line(exc: BaseException) -> str:
    """An error for the terminal in one line (libpq's messages run over several)."""
    return " ".join(str(exc).split())


def say(message: str) -> None:
    """One line for the person at the terminal (stdout, flushed)."""
    print(f"newsalert: {message}", flush=True)


def prepare_data_dir(path: Path) -> None:
    """Create the data directory and write a file in it, before anything starts: the state,
    the broker's log and the spike baselines go there, and a late failure would leave a
    started broker behind a traceback."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".newsalert-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file" if blocker else f"{exc.strerror or exc}"
        raise StartError(
            f"data directory {path} cannot be created or written ({reason}); "
            "choose another with --data-dir or NEWSALERT_DATA_DIR"
        ) from None


def metrics_port_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"metrics port {host}:{port} is already in use; "
            "choose another with --metrics-port or NEWSALERT_METRICS_PORT"
        )
    reason = " ".join((exc.strerror or str(exc)).split())
    return (
        f"metrics endpoint {host}:{port} cannot be opened ({reason}); choose another "
        "port with --metrics-port or NEWSALERT_METRICS_PORT, or host with NEWSALERT_METRICS_HOST"
    )


@dataclass
class Service:
    """The pieces of a running service, for tests and the demo to look at."""

    settings: Settings
    broker_url: str = ""
    embedded: EmbeddedBroker | None = None
    local_kafka: Any = None  # newsalert.localkafka.LocalKafka with --broker local-kafka
    http: ServiceHttp | None = None
    app: Any = None
    dispatcher: Any = None
    poller: Any = None
    connectors: Any = None
    publisher: Any = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)

    async def start(self, streams: bool = True, connectors: bool = True) -> None:
        from newsalert.metrics import set_process_info

        settings = self.settings
        set_process_info()
        prepare_data_dir(settings.data_dir)
        if settings.database_url:
            # Unreachable PostgreSQL: say so now, before starting a broker for nothing.
            from newsalert.database import open_database

            open_database(settings.database_url).close()
        # The metrics port too: a port in use is found before a broker is started for nothing.
        await self._open_http(subscriber_pages=streams)
        if settings.broker == LOCAL_KAFKA:
            await self._use_local_kafka()
        elif settings.broker:
            self.broker_url = settings.broker
            say(f"broker {self.broker_url}")
            say(f"feed, subscription and delivery state is kept in {state_location(settings)}")
        else:
            self.embedded = EmbeddedBroker(log_path=settings.data_dir / "tansu.log")
            await self.embedded.start()
            self.closers.append(self.embedded.stop)
            self.broker_url = self.embedded.url
            say(
                f"embedded broker (tansu) on {self.embedded.bootstrap_servers}: MEMORY-ONLY, "
                "Kafka topics are lost when newsalert stops; feed, subscription and delivery "
                f"state is kept in {state_location(settings)}"
            )

        await self._ensure_topics()
        assert self.http is not None
        say(f"metrics on http://{settings.metrics_host}:{self.http.port}/metrics")
        if settings.api_token is not None:
            say(
                f"pages on http://{settings.metrics_host}:{self.http.port}/ (log in with "
                "NEWSALERT_API_TOKEN), API under /api/v1/"
            )
        else:
            say("pages and API off: set NEWSALERT_API_TOKEN to turn them on")

        if streams:
            if self.embedded is None:
                await self._check_group_limits()
            await self._start_streams()
        if connectors:
            await self._start_connectors()
        await self._start_readiness(streams)
        self.http.ready = True
        say("running; Ctrl-C to stop")

    async def _start_readiness(self, streams: bool) -> None:
        """/readyz: the broker answers, the state database answers, and with the streams the
        worker is in its consumer group; the first round runs before the service says it runs."""
        from newsalert.readiness import broker_check, database_check

        assert self.http is not None
        readiness = self.http.readiness
        readiness.add("broker", broker_check(self.broker_url.removeprefix("kafka://")))
        if streams:
            app = self.app

            async def group() -> str | None:
                return app.group_problem()

            readiness.add("group", group)
        readiness.add("database", database_check(self.settings.state_database))
        await readiness.check_once()
        readiness.start()
        self.closers.append(readiness.stop)

    async def _use_local_kafka(self) -> None:
        """The Apache Kafka under DATA_DIR/kafka: started and then stopped with the service
        unless it was running already (`newsalert kafka start`), then left running."""
        from newsalert.localkafka import KAFKA_VERSION, use_local_kafka

        self.local_kafka, started = await use_local_kafka(self.settings.data_dir, say)
        if started:
            self.closers.append(self.local_kafka.stop)
        self.broker_url = self.local_kafka.url
        how = "started for this run" if started else "already running, left running"
        say(
            f"Apache Kafka {KAFKA_VERSION} ({LOCAL_KAFKA}) on {self.local_kafka.bootstrap_servers}"
            f", {how}: durable, topics kept in {self.local_kafka.directory}; feed, subscription "
            f"and delivery state is kept in {state_location(self.settings)}"
        )

    async def _open_http(self, subscriber_pages: bool) -> None:
        settings = self.settings
        self.http = ServiceHttp(settings.metrics_host, settings.metrics_port)
        if subscriber_pages:
            self._add_subscriber_pages()
        self._add_console()
        try:
            await self.http.start()
        except OSError as exc:
            problem = metrics_port_problem(settings.metrics_host, settings.metrics_port, exc)
            raise StartError(problem) from None
        self.closers.append(self.http.stop)

    async def _ensure_topics(self) -> None:
        """Create the topics, which is also the first word with the broker: one that cannot be
        reached is said so in one line within BROKER_REACH_SECONDS."""
        from aiokafka.errors import KafkaConnectionError, KafkaError

        from streams.topics import ensure_topics

        settings = self.settings
        try:
            with quiet_kafka_client():
                async with asyncio.timeout(BROKER_REACH_SECONDS):
                    await ensure_topics(
                        self.broker_url.removeprefix("kafka://"),
                        settings.app_id,
                        settings.partitions,
                        max(settings.dedupe_horizon_seconds, settings.story_horizon_seconds),
                    )
        except (KafkaConnectionError, OSError, TimeoutError) as exc:
            reason = unreachable_reason(exc, BROKER_REACH_SECONDS)
            todo = (
                f"see its log, {settings.data_dir / 'tansu.log'}"
                if self.embedded is not None
                else "check that it runs and that --broker or NEWSALERT_BROKER names it"
            )
            raise BrokerError(
                f"broker {self.broker_url} could not be reached ({reason}); {todo}"
            ) from None
        except KafkaError as exc:
            raise BrokerError(
                f"broker {self.broker_url} refused to create the topics: {one_line(exc)}"
            ) from None

    def _add_subscriber_pages(self) -> None:
        from alerts.links import Links
        from alerts.store import DeliveryStore
        from alerts.web import SubscriberPages

        assert self.http is not None
        store = DeliveryStore(self.settings.state_database)
        self.closers.append(store.close)
        pages = SubscriberPages(store, Links("", store.link_key()))
        self.http.add_routes(pages.routes)

    def _add_console(self) -> None:
        """The pages and the /api/v1 API, behind NEWSALERT_API_TOKEN (newsalert/web/)."""
        from newsalert.web import console_routes

        assert self.http is not None
        routes, close = console_routes(self.settings)
        self.closers.append(close)
        self.http.add_routes(routes)

    async def _check_group_limits(self) -> None:
        """An external broker that would refuse the group session timeout: one line now,
        not a group join that fails forever."""
        from aiokafka.errors import KafkaError

        from newsalert.brokerlimits import (
            MAX_SESSION,
            MIN_SESSION,
            broker_configs,
            session_timeout_problem,
        )

        try:
            async with asyncio.timeout(BROKER_REACH_SECONDS):
                bootstrap = self.broker_url.removeprefix("kafka://")
                configs = await broker_configs(bootstrap, [MIN_SESSION, MAX_SESSION])
        except (KafkaError, OSError, TimeoutError) as exc:  # not told: the join will say
            log.info("broker limits not known (%s); joining anyway", one_line(exc))
            return
        problem = session_timeout_problem(self.settings.session_timeout_seconds, configs)
        if problem is not None:
            raise StartError(f"broker {self.broker_url}: {problem}")

    async def _start_streams(self) -> None:
        from alerts import activity
        from alerts import agent as alert_agent
        from alerts.activity import ActivityStore
        from alerts.runtime import build_dispatcher
        from streams.app import create_app

        assert self.http is not None
        self.dispatcher = build_dispatcher(self.settings, public_url=self.http.url)
        self.closers.append(self.dispatcher.close)
        self.app = create_app(
            self.settings, self.broker_url, persist_state=self.embedded is not None
        )
        alert_agent.register(self.app, self.app.spikes_topic, self.dispatcher)
        # What the pages show of the stream (volume, latest stories, spikes): alerts/activity.py
        activity_store = ActivityStore(self.settings.state_database)
        self.closers.append(activity_store.close)
        activity.register(
            self.app,
            self.app.hits_topic,
            self.app.spikes_topic,
            activity_store,
            self.settings.process_batch_size,
            self.settings.process_batch_seconds,
        )
        # Registered first: a start cancelled half way (a stop during the group join) still
        # stops what the app had started.
        self.closers.append(self.app.stop)
        self.closers.append(self.app.save_state)
        await self.app.start()
        self.tasks.append(asyncio.create_task(self.dispatcher.run(), name="dispatcher"))

    async def _start_connectors(self) -> None:
        from connectors.runtime import build_poller

        self.connectors = await build_poller(
            self.settings, self.broker_url.removeprefix("kafka://")
        )
        self.closers.append(self.connectors.close)
        self.poller, self.publisher = self.connectors.poller, self.connectors.publisher
        self.tasks.append(asyncio.create_task(self.poller.run(), name="feed-poller"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        while self.closers:
            closer = self.closers.pop()
            try:
                result = closer()
                if asyncio.iscoroutine(result):
                    await asyncio.wait_for(result, timeout=15)
            except Exception:
                log.exception("error while stopping %r", closer)

    async def reload(self, load: Callable[[], Settings]) -> None:
        """SIGHUP: re-read the config and check it as `run` does; apply subscriptions and feeds
        without a restart. A broken config is refused in one log line and the old one kept."""
        from newsalert.preflight import check_settings
        from newsalert.settings import ConfigError
        from streams.classify.taxonomy import TaxonomyError

        try:
            settings = load()
            checked = await check_settings(settings)
        except (ConfigError, TaxonomyError) as exc:
            log.error("reload refused, keeping the running configuration: %s", one_line(exc))
            return
        for warning in checked.warnings:
            log.warning("%s", warning)
        if self.dispatcher is not None:
            self.dispatcher.store.sync_config(settings.subscriptions)
        if self.connectors is not None:
            self.connectors.reload_feeds(settings.feeds)
        self.settings = settings
        say(f"configuration reloaded: {len(settings.subscriptions)} subscriptions from the file")

    def failed_task(self) -> asyncio.Task[Any] | None:
        return next((t for t in self.tasks if t.done()), None)


async def run_until_stopped(
    settings: Settings,
    streams: bool = True,
    connectors: bool = True,
    reload: Callable[[], Settings] | None = None,
) -> int:
    """Run until SIGINT/SIGTERM, reloading the config on SIGHUP; return the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    from newsalert.preflight import check_settings

    checked = await check_settings(settings)  # before anything starts: nothing to stop
    for warning in checked.warnings:
        log.warning("%s", warning)
    service = Service(settings)
    if reload is not None:
        reloads: set[asyncio.Task[None]] = set()

        def on_sighup() -> None:
            task = asyncio.create_task(service.reload(reload), name="reload")
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    started = False
    try:
        try:
            started = await _start_unless_stopped(service, stop, streams, connectors)
        except ConnectionError as unreachable:  # the state database (PostgreSQL)
            print(f"newsalert: {one_line(unreachable)}", file=sys.stderr, flush=True)
            return 3
        if not started:
            say("stopping during start-up")
            return 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # not wait_for: it can swallow a cancel
                    await stop.wait()
            failed = service.failed_task()
            if failed is not None:
                exc = failed.exception() if not failed.cancelled() else None
                say(f"{failed.get_name()} stopped unexpectedly: {exc!r}; shutting down")
                return 1
        say("stopping")
        return 0
    finally:
        await service.stop()
        if started or stop.is_set():  # after a failed start, its error line is the last word
            say("stopped")


async def _start_unless_stopped(
    service: Service, stop: asyncio.Event, streams: bool, connectors: bool
) -> bool:
    """Start the service; a SIGINT/SIGTERM during start-up (a broker that is slow to answer,
    a group join that waits) cancels the start at once. True when it started."""
    starting = asyncio.create_task(service.start(streams=streams, connectors=connectors))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if starting.done():
        starting.result()  # its error, if it failed
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False
