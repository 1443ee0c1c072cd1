"""The ``newsalert`` command line."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import newsalert
from streams.classify.taxonomy import TaxonomyError
from streams.settings import ConfigError, Settings, load_settings


def common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="YAML config file (see deploy/newsalert.example.yaml)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="where durable state lives (default ./newsalert-data)"
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )


def _service_options(parser: argparse.ArgumentParser) -> None:
    common_options(parser)
    parser.add_argument(
        "--broker",
        help="external Kafka as kafka://HOST:PORT (env NEWSALERT_BROKER); "
        "default: an embedded, memory-only broker",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics (env NEWSALERT_METRICS_PORT; 0 = any free)",
    )


def command_modules() -> list[ModuleType]:
    """Subcommands that live in their own module: ``newsalert/cmd_<name>.py`` with
    ``add_parser(commands)`` and ``run(args, settings) -> int`` (settings from the common
    options), or ``run_without_settings(args) -> int`` for commands that need no config."""
    names = sorted(
        m.name for m in pkgutil.iter_modules(newsalert.__path__) if m.name.startswith("cmd_")
    )
    return [importlib.import_module(f"newsalert.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsalert",
        description="Streaming news ingestion and alerting: feeds -> Kafka -> topics -> spikes -> alerts.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run the whole service",
        description="Run connectors, stream processors "
        "and the alert dispatcher until Ctrl-C or SIGTERM.",
    )
    _service_options(run)

    connectors = commands.add_parser(
        "connectors",
        help="run only the feed connectors",
        description="Poll feeds and publish raw articles; for deployments that run the stream "
        "processors separately. Needs --broker (or NEWSALERT_BROKER).",
    )
    _service_options(connectors)

    streams = commands.add_parser(
        "streams",
        help="run only the stream processors and alert dispatcher",
        description="Consume raw articles, classify, detect spikes and deliver alerts. Needs "
        "--broker (or NEWSALERT_BROKER).",
    )
    _service_options(streams)

    demo = commands.add_parser(
        "demo",
        help="run the whole pipeline on sample articles, offline, and show an alert",
        description="Start the embedded broker, a local feed server built from sample articles, "
        "a local webhook receiver and SMTP server; make a 5g-security spike happen and print "
        "the webhook payload and the e-mail a subscriber receives, then exit.",
    )
    demo.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="WARNING"
    )
    demo.add_argument("--timeout", type=float, default=50.0, help="give up after this many seconds")

    for module in command_modules():
        before = set(commands.choices)
        module.add_parser(commands)
        for name in set(commands.choices) - before:
            commands.choices[name].set_defaults(command_module=module)

    check = commands.add_parser(
        "check-config",
        help="validate a config file and print the effective settings",
        description="Load the config like `run` does (file, then NEWSALERT_* environment) and "
        "report errors with the file, the key and the reason.",
    )
    _service_options(check)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "data_dir": getattr(args, "data_dir", None),
        "log_level": getattr(args, "log_level", None),
        "broker": getattr(args, "broker", None),
        "metrics_port": getattr(args, "metrics_port", None),
    }
    return load_settings(getattr(args, "config", None), **overrides)


def _command_name(args: argparse.Namespace) -> str:
    """``feeds list``, ``subscribers add``, ``run``: the command as the user typed it."""
    sub = getattr(args, "feeds_command", None) or getattr(args, "action", None)
    return f"{args.command} {sub}" if sub else str(args.command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from newsalert.broker import BrokerError
    from newsalert.service import run_until_stopped, setup_logging

    module = getattr(args, "command_module", None)
    try:
        if module is not None and hasattr(module, "run_without_settings"):
            return int(module.run_without_settings(args))
        if args.command == "demo":
            from newsalert.demo import run_demo

            setup_logging(args.log_level)
            return asyncio.run(run_demo(timeout_seconds=args.timeout))
        settings = _settings(args)
        setup_logging(settings.log_level)
        if module is not None:
            return int(module.run(args, settings))
        if args.command == "check-config":
            print(settings.model_dump_json(indent=2))
            return 0
        if args.command in ("connectors", "streams") and not settings.broker:
            print(f"newsalert {args.command}: needs --broker kafka://HOST:PORT", file=sys.stderr)
            return 2
        return asyncio.run(
            run_until_stopped(
                settings,
                streams=args.command in ("run", "streams"),
                connectors=args.command in ("run", "connectors"),
                reload=lambda: _settings(args),
            )
        )
    except (ConfigError, TaxonomyError) as exc:
        print(f"newsalert: {exc}", file=sys.stderr)
        return 2
    except (BrokerError, ConnectionError) as exc:  # the broker or the state database is down
        # One line (libpq's messages span several), naming the command: exit status 3.
        print(f"newsalert {_command_name(args)}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
