"""Apache Kafka on this machine, durable: `newsalert kafka start|stop|status`, `--broker
local-kafka`, and the test suite's second broker (one node, or a three-node KRaft cluster).

The jars come from Maven Central through a small Maven project in a cache directory
(`dependency:copy-dependencies` of ``kafka_2.13`` and a log4j binding), so the only things the
machine needs are Java 17+ and Maven. Each node is a combined broker/controller (KRaft) on
127.0.0.1 with its storage and logs under one directory; that directory is what makes it
durable: stop it, start it again, and the topics, offsets and changelogs are still there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from newsalert.broker import BrokerError, _die_with_parent, free_port, quiet_kafka_client

KAFKA_VERSION = "4.4.0"
LOG4J_VERSION = "2.24.3"
POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>newsalert</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""
LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""
# Settings every node gets; the ports and ids are added per node. Topics here are created by
# newsalert with explicit partitions; internal topics get the cluster's replication.
BROKER_DEFAULTS = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
}
STATE_FILE = "cluster.json"


def local_kafka_dir(data_dir: Path) -> Path:
    """Where `newsalert kafka` and `--broker local-kafka` keep the one-node cluster."""
    return Path(data_dir) / "kafka"


def has_cluster(directory: Path) -> bool:
    """Whether a cluster was ever started in ``directory`` (its ports and data are there)."""
    return (Path(directory) / STATE_FILE).exists()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsalert" / f"kafka-{KAFKA_VERSION}"


def _require_java() -> str:
    found = shutil.which("java")
    if found is None:
        raise BrokerError(
            f"Apache Kafka {KAFKA_VERSION} needs Java 17 or newer and there is no java on PATH; "
            "install it (Debian, Ubuntu: apt-get install default-jre-headless)"
        )
    return found


def _require_maven() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise BrokerError(
            f"Apache Kafka {KAFKA_VERSION} is fetched from Maven Central with Maven on first use "
            "and there is no mvn on PATH; install it (Debian, Ubuntu: apt-get install maven)"
        )
    return found


def is_provisioned(cache: Path | None = None) -> bool:
    """Whether Kafka's jars are in the cache already (no download on the next start)."""
    return ((cache or cache_dir()) / ".complete").exists()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if need be) for the block: two processes that
    download or start at once take turns instead of meeting in the middle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def provision(cache: Path | None = None) -> Path:
    """The directory of Kafka's jars, downloaded from Maven Central on first use."""
    cache = cache or cache_dir()
    lib = cache / "lib"
    if is_provisioned(cache):
        return lib
    _require_java()  # needed in any case: say so before a download for nothing
    mvn = _require_maven()
    with _locked(cache / ".lock"):
        if is_provisioned(cache):  # another process fetched them while this one waited
            return lib
        (cache / "pom.xml").write_text(POM)
        shutil.rmtree(lib, ignore_errors=True)
        done = subprocess.run(
            [mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={lib}"],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            tail = " ".join((done.stdout + done.stderr).split())[-400:]
            raise BrokerError(f"could not fetch Apache Kafka {KAFKA_VERSION} with Maven: {tail}")
        (cache / ".complete").write_text(KAFKA_VERSION + "\n")
    return lib


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int
    controller_port: int


class LocalKafka:
    """An Apache Kafka cluster of ``nodes`` KRaft nodes on 127.0.0.1 under ``directory``.

    Ports are chosen at the first start and kept in ``directory/cluster.json``, so a restart
    comes back on the same address with its data. ``detach=True`` leaves the JVMs running
    when this process ends (for `newsalert kafka start`); otherwise they die with it.
    """

    def __init__(
        self,
        directory: Path,
        nodes: int = 1,
        *,
        heap_mb: int = 512,
        start_timeout_seconds: float = 90.0,
        detach: bool = False,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.count = nodes
        self.heap_mb = heap_mb
        self.start_timeout_seconds = start_timeout_seconds
        self.detach = detach
        self.overrides = overrides or {}
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self.nodes = self._load_or_choose_nodes()

    # -- where things are ------------------------------------------------------------------

    def _load_or_choose_nodes(self) -> list[Node]:
        state = self.directory / STATE_FILE
        if state.exists():
            nodes = [Node(**node) for node in json.loads(state.read_text())["nodes"]]
            if len(nodes) != self.count:
                raise BrokerError(
                    f"{self.directory} holds an Apache Kafka cluster of {len(nodes)} node(s), "
                    f"not {self.count}; use another directory"
                )
            return nodes
        ports: list[int] = []
        while len(ports) < 2 * self.count:
            port = free_port()
            if port not in ports:
                ports.append(port)
        return [Node(i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(self.count)]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap_servers}"

    def node_dir(self, node: Node) -> Path:
        return self.directory / f"node-{node.node_id}"

    def log_path(self, node: Node) -> Path:
        return self.node_dir(node) / "server.log"

    def _config_path(self, node: Node) -> Path:
        return self.node_dir(node) / "server.properties"

    def _node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        lib = await asyncio.to_thread(provision)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._save_state()
        for node in self.nodes:
            await asyncio.to_thread(self._format, lib, node)
        self._check_ports_free()
        for node in self.nodes:
            self._spawn(lib, node)
        try:
            await self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        self._save_state()

    async def ensure_started(self) -> bool:
        """Start the cluster unless it runs already; True if this call started it. Two
        processes doing this at once take turns: the second finds the first one's cluster."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            if self.running():
                await self.wait_until_ready()
                return False
            await self.start()
            return True
        finally:
            os.close(lock)  # and with it the lock

    def running(self) -> bool:
        """Whether every node's JVM is running (started by this process or another)."""
        return len(self.pids()) == len(self.nodes)

    def _save_state(self) -> None:
        state = {
            "version": KAFKA_VERSION,
            "nodes": [vars(node) for node in self.nodes],
            "pids": {str(n): p.pid for n, p in self._processes.items() if p.poll() is None},
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def _check_ports_free(self) -> None:
        """The ports are kept for good (clients know the address); one that another program
        took meanwhile is said so here, not as a JVM exiting with a bind error."""
        for node in self.nodes:
            for port in (node.port, node.controller_port):
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM
                    try:
                        probe.bind(("127.0.0.1", port))
                    except OSError:
                        raise BrokerError(
                            f"port 127.0.0.1:{port} of the Apache Kafka in {self.directory} "
                            f"(kept in {STATE_FILE}, so that its address stays the same) is in "
                            "use by another program; stop that program, or move the directory "
                            "away to start afresh (its topics go with it)"
                        ) from None

    def _properties(self, node: Node) -> dict[str, str]:
        replicas = str(min(self.count, 3))
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        return {
            **BROKER_DEFAULTS,
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:"
            f"{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "log.dirs": str(self.node_dir(node) / "data"),
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": "2" if self.count >= 3 else "1",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": "2" if self.count >= 3 else "1",
            "default.replication.factor": replicas,
            "min.insync.replicas": "2" if self.count >= 3 else "1",
            **self.overrides,
        }

    def _format(self, lib: Path, node: Node) -> None:
        """Write the node's configuration; format its storage the first time only."""
        directory = self.node_dir(node)
        directory.mkdir(parents=True, exist_ok=True)
        config = self._config_path(node)
        config.write_text("".join(f"{k}={v}\n" for k, v in self._properties(node).items()))
        (directory / "log4j2.properties").write_text(LOG4J.format(log=self.log_path(node)))
        if (directory / "data" / "meta.properties").exists():
            return
        cluster_id = self._cluster_id()
        done = subprocess.run(
            # --cluster-id=ID in one word: a base64 id may start with "-".
            [*self._java(lib, node), "kafka.tools.StorageTool", "format"]
            + [f"--cluster-id={cluster_id}", f"--config={config}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise BrokerError(
                f"could not format Kafka storage in {directory}: "
                f"{_java_problem(done.stdout + done.stderr)}"
            )

    def _cluster_id(self) -> str:
        path = self.directory / "cluster-id"
        if not path.exists():
            raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            path.write_text(raw)
        return path.read_text().strip()

    def _java(self, lib: Path, node: Node) -> list[str]:
        java = _require_java()
        log4j = self.node_dir(node) / "log4j2.properties"
        return [
            java,
            f"-Xms{min(self.heap_mb, 256)}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{lib}/*",
        ]

    def _spawn(self, lib: Path, node: Node) -> None:
        # Called on the caller's own thread, never a worker thread: without detach the JVM
        # gets SIGTERM when the thread that started it ends (PR_SET_PDEATHSIG is per thread).
        output = open(self.node_dir(node) / "stdout.log", "ab")  # noqa: SIM115
        try:
            self._processes[node.node_id] = subprocess.Popen(
                [*self._java(lib, node), "kafka.Kafka", str(self._config_path(node))],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
                preexec_fn=None if self.detach else _die_with_parent,
            )
        finally:
            output.close()

    async def wait_until_ready(self) -> None:
        """Until every node answers, a metadata request sees them all and consumer groups
        have a coordinator."""
        with quiet_kafka_client():
            await self._poll_until_ready()

    async def _poll_until_ready(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        deadline = time.monotonic() + self.start_timeout_seconds
        last_error = "no answer"
        while time.monotonic() < deadline:
            for node_id, process in self._processes.items():
                if process.poll() is not None:
                    node = self._node(node_id)
                    stdout = (self.node_dir(node) / "stdout.log").read_text(errors="replace")
                    raise BrokerError(
                        f"Apache Kafka node {node_id} exited with code {process.returncode} "
                        f"during start: {_java_problem(stdout[-4000:])}; "
                        f"see {self.log_path(node)}"
                    )
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000
            )
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                if len(cluster.get("brokers", [])) >= len(self.nodes):
                    # The first group lookup makes Kafka create __consumer_offsets; done here,
                    # a service's first consumer finds a coordinator instead of logging errors.
                    await admin.find_coordinator("newsalert-ready-probe")
                    return
                last_error = f"{len(cluster.get('brokers', []))} of {len(self.nodes)} nodes up"
            except Exception as exc:  # any protocol or socket failure means "not yet"
                last_error = f"{type(exc).__name__}: {exc}"
            finally:
                await admin.close()
            await asyncio.sleep(0.25)
        raise BrokerError(
            f"Apache Kafka did not answer on {self.bootstrap_servers} within "
            f"{self.start_timeout_seconds:.0f} s ({last_error}); see {self.directory}/node-*/"
        )

    async def answers(self, timeout_seconds: float = 3.0) -> bool:
        """Whether the cluster answers a metadata request now (one try)."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            request_timeout_ms=int(timeout_seconds * 1000),
        )
        try:
            with quiet_kafka_client():
                async with asyncio.timeout(timeout_seconds):
                    await admin.start()
                    await admin.describe_cluster()
            return True
        except Exception:  # any protocol or socket failure, or the timeout, means "no"
            return False
        finally:
            await admin.close()

    def pids(self) -> dict[int, int]:
        """Node id -> pid of the JVMs that are running now (also ones another process started)."""
        if self._processes:
            return {n: p.pid for n, p in self._processes.items() if p.poll() is None}
        state = self.directory / STATE_FILE
        if not state.exists():
            return {}
        saved = json.loads(state.read_text()).get("pids", {})
        return {int(n): pid for n, pid in saved.items() if self._is_node(pid, self._node(int(n)))}

    def _is_node(self, pid: int, node: Node) -> bool:
        """``pid`` is this node's JVM (not a reused pid): its command line names its config."""
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in command and str(self._config_path(node)).encode() in command

    def stop(self, timeout_seconds: float = 30.0) -> dict[int, int]:
        """SIGTERM (a controlled shutdown: logs flushed, leadership handed over), then SIGKILL.
        Returns the node id -> pid of the JVMs it stopped."""
        running = self.pids()
        for pid in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        for node_id, pid in running.items():
            node, process = self._node(node_id), self._processes.get(node_id)
            while self._is_node(pid, node) and time.monotonic() < deadline:
                if process is not None and process.poll() is not None:
                    break
                time.sleep(0.1)
            if self._is_node(pid, node):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            if process is not None:
                process.wait(timeout=10)
        self._processes.clear()
        if (self.directory / STATE_FILE).exists():
            self._save_state()
        return running

    def stop_in_turn(self) -> dict[int, int]:
        """:meth:`stop`, after any start another process has under way (`newsalert kafka
        stop` during a `newsalert run` that is starting it)."""
        with _locked(self.directory / ".lock"):
            return self.stop()

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (fault drills); :meth:`restart_node` brings it back."""
        process = self._processes[node_id]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    async def restart_node(self, node_id: int) -> None:
        self._spawn(provision(), self._node(node_id))
        await self.wait_until_ready()
        self._save_state()

    async def __aenter__(self) -> LocalKafka:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()


def _java_problem(output: str) -> str:
    """What the JVM's output says went wrong, in words; an old Java gets a plain answer."""
    if "UnsupportedClassVersionError" in output:
        return f"Apache Kafka {KAFKA_VERSION} needs Java 17 or newer, and the java on PATH is older"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return " ".join(" ".join(lines[-3:]).split())[-400:] or "no output"


async def use_local_kafka(
    data_dir: Path, say: Callable[[str], None], *, detach: bool = False
) -> tuple[LocalKafka, bool]:
    """`--broker local-kafka` and `newsalert kafka start`: the one-node Apache Kafka under
    DATA_DIR/kafka, started unless it runs already; True with it if this call started it."""
    _require_java()  # before anything is downloaded or created for nothing
    if not is_provisioned():
        _require_maven()
        say(
            f"downloading Apache Kafka {KAFKA_VERSION} from Maven Central into {cache_dir()} "
            "(first start only)"
        )
    kafka = LocalKafka(local_kafka_dir(data_dir), detach=detach)
    started = await kafka.ensure_started()
    return kafka, started
