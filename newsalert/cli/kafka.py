"""`newsalert kafka start|stop|status`: a durable Apache Kafka on this machine, one node on
127.0.0.1 with its data under DATA_DIR/kafka, for `--broker local-kafka` and for several
`newsalert connectors` / `streams` processes to share."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from newsalert.settings import Settings


def add_parser(commands: Any) -> None:
    from newsalert.cli import common_options

    parser = commands.add_parser(
        "kafka",
        help="start, stop or check a durable Apache Kafka on this machine (--broker local-kafka)",
        description="A one-node Apache Kafka (KRaft) on 127.0.0.1 that keeps its topics in "
        "DATA_DIR/kafka across restarts, unlike the memory-only embedded broker. The first "
        "start downloads Kafka from Maven Central (needs Java 17+ and Maven); `newsalert run "
        "--broker local-kafka` uses it, and starts it if it is not running.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "start",
        help="start it in the background and print its address",
        description="Start Apache Kafka detached from this terminal, wait until it answers, "
        "print its address and return. Already running: says so.",
    )
    stop = actions.add_parser(
        "stop",
        help="stop it cleanly (its data stays)",
        description="A controlled shutdown of the Apache Kafka under DATA_DIR/kafka, whichever "
        "process started it; the topics stay for the next start.",
    )
    status = actions.add_parser(
        "status",
        help="say whether it runs, its address, pid and data location",
        description="Whether the Apache Kafka under DATA_DIR/kafka runs (exit status 0) or not "
        "(exit status 3), its address, pid, data directory and log.",
    )
    for sub in (start, stop, status):
        common_options(sub)


def say(message: str) -> None:
    print(f"newsalert kafka: {message}", flush=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from newsalert.localkafka import local_kafka_dir

    if args.action == "start":
        return asyncio.run(_start(settings.data_dir))
    directory = local_kafka_dir(settings.data_dir)
    if args.action == "stop":
        return _stop(directory)
    return _status(directory)


async def _start(data_dir: Path) -> int:
    from newsalert.localkafka import KAFKA_VERSION, use_local_kafka

    kafka, started = await use_local_kafka(data_dir, say, detach=True)
    pids = ", ".join(str(pid) for pid in kafka.pids().values())
    where = f"{kafka.url} (pid {pids}), data in {kafka.directory}"
    if not started:
        say(f"already running on {where}")
        return 0
    say(f"Apache Kafka {KAFKA_VERSION} running on {where}")
    say(
        f"use it with --broker local-kafka (same data directory) or --broker {kafka.url}; "
        "`newsalert kafka stop` stops it"
    )
    return 0


def _stop(directory: Path) -> int:
    from newsalert.localkafka import LocalKafka, has_cluster

    if not has_cluster(directory):
        say(f"not running (nothing in {directory.resolve()})")
        return 0
    kafka = LocalKafka(directory)
    stopped = kafka.stop_in_turn()
    if not stopped:
        say(f"not running (data in {kafka.directory})")
        return 0
    pids = ", ".join(str(pid) for pid in stopped.values())
    say(f"stopped Apache Kafka on {kafka.url} (pid {pids}); data kept in {kafka.directory}")
    return 0


def _status(directory: Path) -> int:
    from newsalert.localkafka import KAFKA_VERSION, LocalKafka, has_cluster

    if not has_cluster(directory):
        print(f"Apache Kafka {KAFKA_VERSION}: not running")
        print(f"data:    {directory.resolve()} (none yet; `newsalert kafka start` starts it)")
        return 3
    kafka = LocalKafka(directory)
    pids = kafka.pids()
    if not kafka.running():
        print(f"Apache Kafka {KAFKA_VERSION}: not running")
        print(f"address: {kafka.url} (when started again)")
        print(f"data:    {kafka.directory}")
        return 3
    answering = asyncio.run(kafka.answers())
    print(f"Apache Kafka {KAFKA_VERSION}: {'running' if answering else 'running, not answering'}")
    print(f"address: {kafka.url}")
    print(f"pid:     {', '.join(str(pid) for pid in pids.values())}")
    print(f"data:    {kafka.directory}")
    print(f"log:     {', '.join(str(kafka.log_path(node)) for node in kafka.nodes)}")
    return 0
