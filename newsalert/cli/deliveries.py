"""`newsalert deliveries list|replay`: the delivery outbox and its dead letters."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from alerts.store import DeliveryStore
from newsalert.settings import Settings
from newsalert.web.ops import Conflict, NotFound, delivery_fields, requeue_dead_letter

STATUSES = ["pending", "delivered", "dead", "superseded", "digest", "digested"]


def add_parser(commands: Any) -> None:
    from newsalert.cli import common_options

    parser = commands.add_parser(
        "deliveries",
        help="list notifications and replay dead letters",
        description="The outbox of notifications. A dead letter is a notification that "
        "exhausted its retries or failed for good; `replay` sends it again.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="recent notifications")
    listing.add_argument("--status", choices=STATUSES, help="only this status (e.g. dead)")
    listing.add_argument(
        "--limit", type=int, default=50, help="show at most this many, newest first (default 50)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = actions.add_parser(
        "replay",
        help="resend dead letters now",
        description="Put dead letters back in the outbox and try each once now; the running "
        "service (if any) retries those that fail again on the usual schedule.",
    )
    replay.add_argument("message_id", nargs="*", help="message ids (default: all dead letters)")
    for sub in (listing, replay):
        common_options(sub)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        store = DeliveryStore(settings.state_database)
        try:
            return _list(args, store)
        finally:
            store.close()
    return asyncio.run(_replay(args, settings))


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch else "-"


def _list(args: argparse.Namespace, store: DeliveryStore) -> int:
    rows = store.messages(status=args.status, limit=args.limit)
    for row in rows:
        if args.json:
            print(json.dumps(delivery_fields(row)))
        else:
            print(
                f"{row.message_id} {_when(row.created_at)} {row.status:10} {row.subscriber} "
                f"{row.channel} {row.topic}/{row.state} attempts={row.attempts}"
                + (f" error: {row.last_error}" if row.last_error else "")
            )
    if not rows and not args.json:
        print("no notifications")
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.runtime import build_dispatcher

    dispatcher = build_dispatcher(settings, sync_config=args.config is not None)
    store = dispatcher.store
    try:
        ids = args.message_id or [r.message_id for r in store.messages("dead", limit=10_000)]
        if not ids:
            print("no dead letters")
            return 0
        unknown = []
        for mid in ids:  # the same requeue as the API's and the pages' replay
            try:
                requeue_dead_letter(store, mid)
            except (NotFound, Conflict) as exc:
                unknown.append(mid)
                print(f"newsalert deliveries: {exc}", file=sys.stderr)
        await dispatcher.deliver_due()
        failed = 0
        for mid in ids:
            if mid in unknown:
                continue
            row = store.get(mid)
            assert row is not None
            ok = row.status == "delivered"
            failed += not ok
            state = "delivered" if ok else f"{row.status}: {row.last_error}"
            print(f"{mid} {row.subscriber} {row.channel}: {state}")
    finally:
        await dispatcher.close()
    return 1 if failed or unknown else 0
