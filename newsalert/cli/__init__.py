"""The ``newsalert`` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from newsalert.settings import ConfigError, Settings, load_settings
from streams.classify.model import ModelError
from streams.classify.taxonomy import TaxonomyError


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


# In the order `newsalert --help` lists them: the service first, then what manages it.
COMMAND_GROUPS = (
    "run",
    "config",
    "kafka",
    "demo",
    "feeds",
    "subscribers",
    "silences",
    "deliveries",
    "deadletters",
    "classify",
    "eval",
    "train",
    "backtest",
)


def command_modules() -> list[ModuleType]:
    """One module per command group: ``newsalert/cli/<group>.py`` with ``add_parser(commands)``
    and ``run(args, settings) -> int`` (settings from the common options), or
    ``run_without_settings(args) -> int`` for commands that need no config."""
    return [importlib.import_module(f"{__name__}.{name}") for name in COMMAND_GROUPS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsalert",
        description="Streaming news ingestion and alerting: feeds -> Kafka -> topics -> spikes -> alerts.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for module in command_modules():
        before = set(commands.choices)
        module.add_parser(commands)
        for name in set(commands.choices) - before:
            commands.choices[name].set_defaults(command_module=module)

    return parser


def load_from_args(args: argparse.Namespace) -> Settings:
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


# 128 + SIGPIPE: the status a shell shows for a writer whose reader went away (`| head`).
EXIT_READER_WENT_AWAY = 141


def _reader_went_away() -> int:
    """Output went into a pipe nobody reads any more: stop without a word. What is still
    buffered goes to /dev/null, or the interpreter's last flush would fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_READER_WENT_AWAY


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from newsalert.broker import BrokerError
    from newsalert.service import StartError, setup_logging

    module = args.command_module
    try:
        if hasattr(module, "run_without_settings"):
            code = int(module.run_without_settings(args))
        else:
            settings = load_from_args(args)
            setup_logging(settings.log_level)
            code = int(module.run(args, settings))
        sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's flush
        return code
    except BrokenPipeError:  # before ConnectionError, which it is a kind of
        return _reader_went_away()
    except (ConfigError, TaxonomyError, ModelError) as exc:
        print(f"newsalert: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:  # a port or directory to change in the settings: like a config error
        print(f"newsalert {_command_name(args)}: {exc}", file=sys.stderr)
        return 2
    except (BrokerError, ConnectionError) as exc:  # the broker or the state database is down
        # One line (libpq's messages span several), naming the command: exit status 3.
        print(f"newsalert {_command_name(args)}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
