"""`newsalert demo`: the whole pipeline on sample articles, offline, ending in one alert."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the whole pipeline on sample articles, offline, and show an alert",
        description="Start the embedded broker, a local feed server built from sample articles, "
        "a local webhook receiver and SMTP server; make a 5g-security spike happen and print "
        "the webhook payload and the e-mail a subscriber receives, then exit.",
    )
    demo.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default="WARNING",
        help="log level of the service under the demo (default WARNING: only the story)",
    )
    demo.add_argument("--timeout", type=float, default=50.0, help="give up after this many seconds")


def run_without_settings(args: argparse.Namespace) -> int:
    from newsalert.demo import run_demo
    from newsalert.service import setup_logging

    setup_logging(args.log_level)
    return asyncio.run(run_demo(timeout_seconds=args.timeout))
