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
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from newsalert.broker import BrokerError, _die_with_parent, free_port

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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsalert" / f"kafka-{KAFKA_VERSION}"


def _require(tool: str, why: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise BrokerError(f"Apache Kafka needs {tool} ({why}); install it (Debian: {tool} package)")
    return found


def provision(cache: Path | None = None) -> Path:
    """The directory of Kafka's jars, downloaded from Maven Central on first use."""
    cache = cache or cache_dir()
    lib = cache / "lib"
    if (cache / ".complete").exists():
        return lib
    mvn = _require("mvn", "to fetch Kafka's jars from Maven Central")
    _require("java", "Java 17 or newer runs Kafka")
    cache.mkdir(parents=True, exist_ok=True)
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
            saved = json.loads(state.read_text())
            return [Node(**node) for node in saved["nodes"]]
        return [Node(i + 1, free_port(), free_port()) for i in range(self.count)]

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

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        lib = await asyncio.to_thread(provision)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._save_state()
        for node in self.nodes:
            await asyncio.to_thread(self._format, lib, node)
        for node in self.nodes:
            self._spawn(lib, node)
        try:
            await self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        self._save_state()

    def _save_state(self) -> None:
        state = {
            "version": KAFKA_VERSION,
            "nodes": [vars(node) for node in self.nodes],
            "pids": {str(n): p.pid for n, p in self._processes.items()},
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

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
        config = directory / "server.properties"
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
            tail = " ".join((done.stdout + done.stderr).split())[-400:]
            raise BrokerError(f"could not format Kafka storage in {directory}: {tail}")

    def _cluster_id(self) -> str:
        path = self.directory / "cluster-id"
        if not path.exists():
            raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            path.write_text(raw)
        return path.read_text().strip()

    def _java(self, lib: Path, node: Node) -> list[str]:
        java = _require("java", "Java 17 or newer runs Kafka")
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
        output = open(self.node_dir(node) / "stdout.log", "ab")  # noqa: SIM115
        try:
            config = self.node_dir(node) / "server.properties"
            self._processes[node.node_id] = subprocess.Popen(
                [*self._java(lib, node), "kafka.Kafka", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
                preexec_fn=None if self.detach else _die_with_parent,
            )
        finally:
            output.close()

    async def wait_until_ready(self) -> None:
        """Until every node answers and a metadata request sees them all."""
        from aiokafka.admin import AIOKafkaAdminClient

        deadline = time.monotonic() + self.start_timeout_seconds
        last_error = "no answer"
        while time.monotonic() < deadline:
            for node_id, process in self._processes.items():
                if process.poll() is not None:
                    node = next(n for n in self.nodes if n.node_id == node_id)
                    raise BrokerError(
                        f"Apache Kafka node {node_id} exited with code {process.returncode} "
                        f"during start; see {self.log_path(node)}"
                    )
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000
            )
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                if len(cluster.get("brokers", [])) >= len(self.nodes):
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

    def pids(self) -> dict[int, int]:
        """Node id -> pid of the JVMs that are running now (also ones another process started)."""
        if self._processes:
            return {n: p.pid for n, p in self._processes.items() if p.poll() is None}
        state = self.directory / STATE_FILE
        if not state.exists():
            return {}
        saved = json.loads(state.read_text()).get("pids", {})
        return {int(n): pid for n, pid in saved.items() if _is_kafka(pid)}

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown: logs flushed, leadership handed over), then SIGKILL."""
        running = self.pids()
        for pid in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        for node_id, pid in running.items():
            process = self._processes.get(node_id)
            while _is_kafka(pid) and time.monotonic() < deadline:
                if process is not None and process.poll() is not None:
                    break
                time.sleep(0.1)
            if _is_kafka(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            if process is not None:
                process.wait(timeout=10)
        self._processes.clear()
        if (self.directory / STATE_FILE).exists():
            self._save_state()

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (fault drills); :meth:`restart_node` brings it back."""
        process = self._processes[node_id]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    async def restart_node(self, node_id: int) -> None:
        node = next(n for n in self.nodes if n.node_id == node_id)
        self._spawn(provision(), node)
        await self.wait_until_ready()

    async def __aenter__(self) -> LocalKafka:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()


def _is_kafka(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"kafka.Kafka" in command
