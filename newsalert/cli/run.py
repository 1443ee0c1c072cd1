"""`newsalert run|connectors|streams|check-config`: run the service, whole or one role, and
check the configuration exactly as `run` would before anything starts."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from newsalert.settings import Settings

SHARED_BROKER = (
    "It needs --broker kafka://HOST:PORT or --broker local-kafka (or NEWSALERT_BROKER): the "
    "roles talk only through Kafka topics, and the embedded broker lives inside one process "
    "and keeps nothing in memory that another process could read."
)


def _service_options(parser: argparse.ArgumentParser) -> None:
    from newsalert.cli import common_options

    common_options(parser)
    parser.add_argument(
        "--broker",
        help="external Kafka as kafka://HOST:PORT, or local-kafka: the durable Apache Kafka "
        "under DATA_DIR/kafka (see `newsalert kafka`), started if it is not running "
        "(env NEWSALERT_BROKER); default: an embedded, memory-only broker",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics (env NEWSALERT_METRICS_PORT; 0 = any free)",
    )


def add_parser(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run the whole service",
        description="Run connectors, stream processors "
        "and the alert dispatcher until Ctrl-C or SIGTERM.",
    )
    _service_options(run)

    connectors = commands.add_parser(
        "connectors",
        help="run only the feed connectors (needs a shared broker)",
        description="Poll feeds and publish raw articles, for deployments that run the stream "
        f"processors in other processes. {SHARED_BROKER}",
    )
    _service_options(connectors)

    streams = commands.add_parser(
        "streams",
        help="run only the stream processors and alert dispatcher (needs a shared broker)",
        description="Consume raw articles, classify, detect spikes and deliver alerts, for "
        f"deployments that run the feed connectors in other processes. {SHARED_BROKER}",
    )
    _service_options(streams)

    check = commands.add_parser(
        "check-config",
        help="validate a config file and print the effective settings",
        description="Load the config like `run` does (file, then NEWSALERT_* environment), run "
        "every check `run` runs before it starts (taxonomy, queries, subscriptions, feed and "
        "webhook URLs) and report errors with the file, the key and the reason. Secrets are "
        "masked.",
    )
    _service_options(check)


def effective_settings(settings: Settings) -> dict[str, Any]:
    """The settings as `check-config` prints them: every secret masked."""
    from newsalert.database import redacted

    shown = settings.model_dump(mode="json")  # SecretStr fields come out as "**********"
    if settings.database_url:
        shown["database_url"] = redacted(settings.database_url)
    return shown


def check_config(settings: Settings) -> int:
    from newsalert.preflight import check_settings

    checked = asyncio.run(check_settings(settings))
    for warning in checked.warnings:
        print(f"newsalert check-config: warning: {warning}", file=sys.stderr)
    print(json.dumps(effective_settings(settings), indent=2))
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    from newsalert.service import run_until_stopped

    if args.command == "check-config":
        return check_config(settings)
    if args.command in ("connectors", "streams") and not settings.broker:
        print(
            f"newsalert {args.command}: needs --broker kafka://HOST:PORT or --broker "
            "local-kafka (a broker shared with the other roles; the embedded one serves a "
            "single `newsalert run`)",
            file=sys.stderr,
        )
        return 2
    from newsalert.cli import load_from_args

    return asyncio.run(
        run_until_stopped(
            settings,
            streams=args.command in ("run", "streams"),
            connectors=args.command in ("run", "connectors"),
            reload=lambda: load_from_args(args),
        )
    )
