"""`newsalert subscribers add|list|remove|enable|test`: manage subscribers in the database.

Works whether or not the service runs: the service reads subscribers from the database for
every spike. Subscribers from the config file are listed too but changed only in the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from alerts.signing import new_secret
from alerts.store import DeliveryStore
from newsalert.settings import Settings
from newsalert.web import ops


def add_parser(commands: Any) -> None:
    from newsalert.cli import common_options

    parser = commands.add_parser(
        "subscribers",
        help="add, list, remove and test subscribers",
        description="Manage subscribers stored in the state database (DATA_DIR/newsalert.sqlite3, "
        "or PostgreSQL when database_url is set). "
        "Config-file subscribers are shown but changed in the file (then SIGHUP the service).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="add or replace a subscriber")
    add.add_argument("name", help="a name of your choice (letters, digits, . @ + - _)")
    add.add_argument(
        "--topic",
        action="append",
        default=[],
        help="a topic the taxonomy defines, e.g. 5g-security (repeat)",
    )
    add.add_argument(
        "--entity",
        action="append",
        default=[],
        help="an entity listed in spike.entities, e.g. huawei (repeat)",
    )
    add.add_argument("--webhook", metavar="URL", help="webhook URL")
    add.add_argument("--secret", help="webhook secret whsec_... (default: a new one, printed once)")
    add.add_argument("--email", metavar="ADDR", help="e-mail address")
    add.add_argument("--keywords", metavar="QUERY", help="keyword filter on story titles")
    add.add_argument(
        "--min-severity",
        choices=["low", "medium", "high"],
        default="low",
        help="only spikes this strong: low (any), medium (ratio >= 5), high (ratio >= 10)",
    )
    add.add_argument(
        "--mode",
        choices=["instant", "hourly", "daily"],
        default="instant",
        help="instant alerts, or an hourly or daily digest (default instant)",
    )
    add.add_argument("--digest-time", default="08:00", help="HH:MM for --mode daily")
    add.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Berlin")
    add.add_argument("--quiet-hours", metavar="HH:MM-HH:MM", help="hold instant alerts")
    add.add_argument(
        "--notify-on",
        action="append",
        choices=["started", "escalated", "resolved"],
        help="spike states to announce (repeat; default: started)",
    )
    add.add_argument("--inactive", action="store_true", help="store it, but send nothing")

    listing = actions.add_parser("list", help="list subscribers and their channels' health")
    listing.add_argument("--json", action="store_true", help="one JSON object per subscriber")
    remove = actions.add_parser("remove", help="remove a CLI-added subscriber")
    remove.add_argument("name", help="the subscriber's name")
    enable = actions.add_parser("enable", help="re-enable a subscriber's disabled channels")
    enable.add_argument("name", help="the subscriber's name")
    test = actions.add_parser(
        "test", help="send a clearly marked test notification through each channel"
    )
    test.add_argument("name", help="the subscriber's name")
    for sub in (add, listing, remove, enable, test):
        common_options(sub)


def open_store(args: argparse.Namespace, settings: Settings) -> DeliveryStore:
    """The database, with the config file's subscribers applied if ``--config`` was given
    (without it the file's subscribers stay as the service last synced them)."""
    store = DeliveryStore(settings.state_database)
    if args.config is not None:
        store.sync_config(settings.subscriptions)
    return store


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(args, settings)
    try:
        if args.action == "add":
            return _add(args, store, settings)
        action = {"list": _list, "remove": _remove, "enable": _enable}.get(args.action)
        if action is not None:
            return action(args, store)
        return asyncio.run(_test(args, settings))
    except (ValueError, ops.NotFound) as exc:
        print(f"newsalert subscribers: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _add(args: argparse.Namespace, store: DeliveryStore, settings: Settings) -> int:
    spec: dict[str, Any] = {
        "name": args.name,
        "topics": args.topic,
        "entities": args.entity,
        "email": args.email,
        "keywords": args.keywords,
        "min_severity": args.min_severity,
        "mode": args.mode,
        "digest_time": args.digest_time,
        "timezone": args.timezone,
        "active": not args.inactive,
    }
    if args.notify_on:
        spec["notify_on"] = args.notify_on
    generated = None
    if args.webhook:
        generated = None if args.secret else new_secret()
        spec["webhook"] = {"url": args.webhook, "secret": args.secret or generated}
    elif args.secret:
        raise ValueError("--secret needs --webhook")
    if args.quiet_hours:
        start, _, end = args.quiet_hours.partition("-")
        spec["quiet_hours"] = {"start": start, "end": end}
    config = ops.subscription_from(spec)  # the checks the API and the pages make
    for warning in asyncio.run(ops.check_subscription(config, settings)):
        print(f"newsalert subscribers: warning: {warning}", file=sys.stderr)
    if generated:
        # First, flushed, and before the save: a reader that goes away early (`| head -1`)
        # still has the one line it cannot get again, and if it went away before it, the
        # write fails and no subscriber is saved with a secret nobody saw.
        print(f"webhook secret (shown once; verify signatures with it): {generated}", flush=True)
    store.add_subscriber(config)
    print(f"subscriber {config.name!r} saved")
    return 0


def _list(args: argparse.Namespace, store: DeliveryStore) -> int:
    rows = ops.describe_subscribers(store)
    if args.json:
        for row in rows:
            row.pop("silences")  # `silences list` shows them
            print(json.dumps(row))
        return 0
    if not rows:
        print("no subscribers")
    for row in rows:
        about = ", ".join(row["topics"] + [f"entity:{e}" for e in row["entities"]])
        state = "" if row["active"] else " (inactive)"
        print(f"{row['name']}{state} [{row['origin']}] {row['mode']}: {about}")
        for ch in row["channels"]:
            health = f"DISABLED: {ch['disabled']}" if ch["disabled"] else "ok"
            if not ch["disabled"] and ch["failing_since"]:
                health = "failing"
            print(f"    {ch['channel']:7} {ch['target']}  {health}")
    return 0


def _remove(args: argparse.Namespace, store: DeliveryStore) -> int:
    ops.delete_subscriber(store, args.name)  # the API's and the pages' delete
    print(f"subscriber {args.name!r} removed")
    return 0


def _enable(args: argparse.Namespace, store: DeliveryStore) -> int:
    sub = store.subscriber(args.name)
    if sub is None:
        raise ValueError(f"no subscriber named {args.name!r}")
    from alerts.routing import channels_of

    for channel, target in channels_of(sub):
        store.enable_endpoint(sub.name, channel, target)
    print(f"channels of {args.name!r} enabled")
    return 0


async def _test(args: argparse.Namespace, settings: Settings) -> int:
    results = await ops.send_test(settings, args.name, sync_config=args.config is not None)
    failed = 0
    for result in results:
        ok = result["outcome"] == "delivered"
        failed += not ok
        state = "OK" if ok else "FAILED"
        print(f"{result['channel']:7} {result['target']}: {state} ({result['detail']})")
    return 1 if failed else 0
