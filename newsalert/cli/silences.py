"""`newsalert silences add|list|remove`: mute a topic or entity for a subscriber, for a time."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from newsalert.cli.subscribers import open_store
from newsalert.settings import Settings
from newsalert.web.ops import duration_seconds


def add_parser(commands: Any) -> None:
    from newsalert.cli import common_options

    parser = commands.add_parser(
        "silences",
        help="mute a topic or entity for a subscriber for a while",
        description="Silences stop alerts about one topic or entity to one subscriber until "
        "they expire. They take effect at once, also in a running service.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="mute")
    add.add_argument("subscriber", help="the subscriber's name")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--topic", help="mute this topic, e.g. sanctions")
    what.add_argument("--entity", help="mute spikes of this entity, e.g. huawei")
    add.add_argument("--for", dest="duration", required=True, help="e.g. 2h, 1d, 1w")
    add.add_argument("--reason", help="a note shown in `silences list`")
    listing = actions.add_parser("list", help="active silences")
    remove = actions.add_parser("remove", help="end a silence early")
    remove.add_argument("id", type=int, help="the silence's id from `silences list`")
    for sub in (add, listing, remove):
        common_options(sub)


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(args, settings)
    try:
        if args.action == "add":
            try:
                seconds = duration_seconds(args.duration)
            except ValueError as exc:
                print(f"newsalert silences: {exc}", file=sys.stderr)
                return 2
            if store.subscriber(args.subscriber) is None:
                print(f"newsalert silences: no subscriber {args.subscriber!r}", file=sys.stderr)
                return 2
            key = args.topic or f"entity:{args.entity}"
            until = time.time() + seconds
            silence_id = store.add_silence(args.subscriber, key, until, args.reason)
            print(f"silence {silence_id}: {key} muted for {args.subscriber} until {_when(until)}")
        elif args.action == "list":
            silences = store.silences()
            for s in silences:
                reason = f" ({s.reason})" if s.reason else ""
                print(f"{s.id}: {s.subscriber} {s.key} until {_when(s.until)}{reason}")
            if not silences:
                print("no active silences")
        elif not store.remove_silence(args.id):
            print(f"newsalert silences: no silence {args.id}", file=sys.stderr)
            return 2
        else:
            print(f"silence {args.id} removed")
        return 0
    finally:
        store.close()


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
