"""What an analyst can see and do, as plain functions over the stores: the one implementation
behind the /api/v1 API, the pages and the command line (newsalert/cli/). Each returns plain
JSON-ready data and raises :class:`NotFound`, :class:`Invalid` or :class:`Conflict`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from alerts.activity import ActivityStore
from alerts.store import DeliveryStore
from connectors.state import FeedState
from newsalert.settings import Settings, SubscriptionConfig

HOUR, DAY = 3600.0, 86400.0
SUBSCRIBER_FIELDS = {
    "name",
    "topics",
    "entities",
    "webhook",
    "email",
    "keywords",
    "min_severity",
    "mode",
    "digest_time",
    "timezone",
    "quiet_hours",
    "active",
    "notify_on",
}


class NotFound(LookupError):
    """Unknown topic, spike, subscriber, message or silence (HTTP 404)."""


class Invalid(ValueError):
    """Input that cannot be accepted, with the reason (HTTP 422)."""


class Conflict(ValueError):
    """Allowed input that the current state refuses (HTTP 409)."""


def when(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_seconds(text: str) -> float:
    """'90m', '2h', '1d12h', '1w' -> seconds."""
    import re

    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if not re.fullmatch(r"(?:\d+[mhdw])+", text.strip()):
        raise Invalid(f"not a duration like 30m, 2h, 1d or 1w: {text!r}")
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([mhdw])", text)))


# -- feeds ---------------------------------------------------------------------------------


def feed_health(feed: Any, now: float) -> dict[str, Any]:
    """One feed's health (``feeds list --json``, ``GET /api/v1/feeds``)."""
    if feed.failing_since is None:
        health = "ok"
    else:
        health = "failing" if feed.healthy(now) else "unhealthy"
    return {
        "url": feed.url,
        "fetch_url": feed.fetch_url,
        "name": feed.name,
        "title": feed.title,
        "tags": list(feed.tags),
        "origin": feed.origin,
        "health": health,
        "last_success": when(feed.last_success_at),
        "last_error": feed.last_error,
        "last_error_at": when(feed.last_error_at),
        "warning": feed.last_warning,
        "failing_since": when(feed.failing_since),
        "consecutive_errors": feed.consecutive_errors,
        "next_poll": when(feed.next_poll_at) if feed.next_poll_at else "now",
        "interval_seconds": feed.interval_in_use_seconds or feed.interval_seconds,
        "items_seen": feed.items_seen,
        "entries_dropped": feed.entries_dropped,
        "full_text": feed.full_text,
    }


FEED_SORTS = ("health", "name", "last_success", "next_poll", "items_seen", "entries_dropped")
_HEALTH_ORDER = {"unhealthy": 0, "failing": 1, "ok": 2}


def sort_feeds(feeds: list[dict[str, Any]], sort: str = "health") -> list[dict[str, Any]]:
    """Unhealthy and failing feeds first, whatever the sort; then by ``sort``."""
    if sort not in FEED_SORTS:
        raise Invalid(f"unknown sort {sort!r}; one of {', '.join(FEED_SORTS)}")

    def key(feed: dict[str, Any]) -> tuple[Any, ...]:
        health = _HEALTH_ORDER[feed["health"]]
        if sort in ("items_seen", "entries_dropped"):
            return (health, -feed[sort])  # most first
        if sort == "health":
            return (health, feed["failing_since"] or "", feed["name"] or feed["url"])
        value = feed[sort] if sort != "name" else (feed["name"] or feed["title"] or feed["url"])
        return (health, value or "")

    return sorted(feeds, key=key)


# -- subscribers ---------------------------------------------------------------------------


def describe_subscribers(store: DeliveryStore) -> list[dict[str, Any]]:
    """Every subscriber with its channels' health; never a webhook secret."""
    health = {(e.subscriber, e.channel, e.target): e for e in store.endpoints()}
    silences: dict[str, list[dict[str, Any]]] = {}
    for s in store.silences():
        silences.setdefault(s.subscriber, []).append(
            {"id": s.id, "key": s.key, "until": when(s.until), "reason": s.reason}
        )
    rows = []
    for stored in store.subscribers():
        sub = stored.config
        channels = []
        for channel, target in (
            ("webhook", sub.webhook.url if sub.webhook else None),
            ("email", sub.email),
        ):
            if target is None:
                continue
            endpoint = health.get((sub.name, channel, target))
            channels.append(
                {
                    "channel": channel,
                    "target": target,
                    "disabled": endpoint.disabled_reason
                    if endpoint and endpoint.disabled_at
                    else None,
                    "failing_since": endpoint.failing_since if endpoint else None,
                    "last_success_at": endpoint.last_success_at if endpoint else None,
                }
            )
        rows.append(
            {
                "name": sub.name,
                "origin": stored.origin,
                "active": sub.active,
                "topics": list(sub.topics),
                "entities": list(sub.entities),
                "mode": sub.mode,
                "min_severity": sub.min_severity,
                "notify_on": list(sub.notify_on),
                "keywords": sub.keywords,
                "channels": channels,
                "silences": silences.get(sub.name, []),
            }
        )
    return rows


def subscription_from(spec: dict[str, Any]) -> SubscriptionConfig:
    """A SubscriptionConfig, or Invalid naming each field that is wrong."""
    unknown = sorted(set(spec) - SUBSCRIBER_FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    try:
        return SubscriptionConfig(**spec)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'subscriber'}: "
            + str(e.get("ctx", {}).get("error", e["msg"]))
            for e in exc.errors()
        )
        raise Invalid(problems) from None
    except TypeError as exc:
        raise Invalid(str(exc)) from None


@dataclass
class Console:
    """The stores of one process (the service's HTTP endpoint, or one CLI command)."""

    settings: Settings
    deliveries: DeliveryStore
    feeds_state: FeedState
    activity: ActivityStore

    @classmethod
    def open(cls, settings: Settings) -> Console:
        target = settings.state_database
        return cls(settings, DeliveryStore(target), FeedState(target), ActivityStore(target))

    def close(self) -> None:
        for store in (self.deliveries, self.feeds_state, self.activity):
            store.close()

    @cached_property
    def _taxonomy(self) -> Any:
        """Read once: the taxonomy, like the settings, changes with a restart."""
        from streams.classify.taxonomy import load_taxonomy

        return load_taxonomy(self.settings.taxonomy)

    # -- topics and spikes -----------------------------------------------------------

    def topic_names(self) -> list[str]:
        return sorted(self._taxonomy.topics)

    def topic(self, name: str, now: float | None = None) -> dict[str, Any]:
        """One topic: volume per hour (48 h) and per day (30 d), spikes, latest stories."""
        if name not in self.topic_names():
            raise NotFound(f"unknown topic {name!r}")
        now = time.time() if now is None else now
        spikes = self.activity.spikes(topic=name, limit=50)
        active = next((s for s in spikes if s["state"] != "resolved"), None)
        return {
            "name": name,
            "spike_state": active["state"] if active else "quiet",
            "active_spike": active["spike_id"] if active else None,
            "hourly": self._series(name, now, HOUR, 48),
            "daily": self._series(name, now, DAY, 30),
            "spikes": [spike_summary(s) for s in spikes],
            "latest_stories": self.activity.latest_stories(name, limit=8),
        }

    def _series(self, key: str, now: float, bucket: float, buckets: int) -> list[dict[str, Any]]:
        last = int(now // bucket)
        first = last - buckets + 1
        counts = self.activity.volume(key, first * bucket, bucket)
        return [{"start": i * bucket, "count": counts.get(i, 0)} for i in range(first, last + 1)]

    def topics(self, now: float | None = None) -> list[dict[str, Any]]:
        return [self.topic(name, now) for name in self.topic_names()]

    def spikes(self, topic: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if topic is not None and topic not in self.topic_names():
            raise NotFound(f"unknown topic {topic!r}")
        return [spike_summary(s) for s in self.activity.spikes(topic=topic, limit=limit)]

    def spike(self, spike_id: str) -> dict[str, Any]:
        """A spike as a subscriber sees it, its events, and who was told by which channel."""
        events = self.activity.spike(spike_id)
        messages = self.deliveries.spike_messages(spike_id)
        if not events and not messages:
            raise NotFound(f"unknown spike {spike_id!r}")
        latest = events[-1] if events else messages[-1].spike
        return {
            **spike_summary(latest),
            "top_stories": latest.get("top_stories", []),
            "top_terms": latest.get("top_terms", []),
            "recent_counts": latest.get("recent_counts", []),
            "events": [
                {"state": e["state"], "detected_at": when(e["detected_at"])} for e in events
            ],
            "notified": [delivery_row(m) for m in messages],
        }

    # -- feeds -------------------------------------------------------------------------

    def feeds(self, sort: str = "health", now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return sort_feeds([feed_health(f, now) for f in self.feeds_state.list_feeds()], sort)

    # -- deliveries --------------------------------------------------------------------

    def delivery_list(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        statuses = ("pending", "delivered", "dead", "digest", "digested", "superseded")
        if status is not None and status not in statuses:
            raise Invalid(f"unknown status {status!r}")
        if not 1 <= limit <= 1000:
            raise Invalid("limit must be between 1 and 1000")
        return [delivery_row(r) for r in self.deliveries.messages(status=status, limit=limit)]

    def replay(self, message_id: str) -> dict[str, Any]:
        """Put a dead letter back in the outbox: the running dispatcher delivers it at once."""
        return delivery_row(requeue_dead_letter(self.deliveries, message_id))

    # -- subscribers -------------------------------------------------------------------

    def subscribers(self) -> list[dict[str, Any]]:
        return describe_subscribers(self.deliveries)

    def subscriber(self, name: str) -> dict[str, Any]:
        found = [s for s in self.subscribers() if s["name"] == name]
        if not found:
            raise NotFound(f"no subscriber named {name!r}")
        return found[0]

    async def check_subscription(self, config: SubscriptionConfig) -> list[str]:
        return await check_subscription(config, self.settings)

    async def create_subscriber(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Add a subscriber. A webhook without a secret gets a new one, returned here once."""
        from alerts.signing import new_secret

        spec = dict(spec)
        generated = None
        webhook = spec.get("webhook")
        if isinstance(webhook, str):
            webhook = {"url": webhook}
        if isinstance(webhook, dict) and not webhook.get("secret"):
            generated = new_secret()
            webhook = {**webhook, "secret": generated}
        if webhook is not None:
            spec["webhook"] = webhook
        config = subscription_from(spec)
        if self.deliveries.subscriber(config.name) is not None:
            raise Conflict(f"subscriber {config.name!r} exists; update it instead")
        warnings = await self.check_subscription(config)
        self._save(config)
        result = {"subscriber": self.subscriber(config.name), "warnings": warnings}
        if generated:
            result["webhook_secret"] = generated
        return result

    async def update_subscriber(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of a CLI- or page-added subscriber; the secret is kept (a
        webhook added to a subscriber that had none gets a new one, returned once)."""
        from alerts.signing import new_secret

        current = self.deliveries.subscriber(name)
        if current is None:
            raise NotFound(f"no subscriber named {name!r}")
        if "name" in changes and changes["name"] != name:
            raise Invalid("name: a subscriber cannot be renamed")
        spec = current.model_dump(mode="json", exclude_none=True)
        if current.webhook:  # model_dump masks the secrets: the real ones are kept
            secrets = current.webhook.secrets()
            spec["webhook"] = {"url": current.webhook.url, "secret": secrets[0]} | (
                {"previous_secrets": secrets[1:]} if secrets[1:] else {}
            )
        generated = None
        if "webhook" in changes:
            webhook = changes["webhook"]
            if isinstance(webhook, str):
                webhook = {"url": webhook}
            if isinstance(webhook, dict) and not webhook.get("secret"):
                if current.webhook:
                    webhook = {**spec["webhook"], "url": webhook.get("url")}
                else:
                    generated = new_secret()
                    webhook = {**webhook, "secret": generated}
            changes = {**changes, "webhook": webhook}
        spec.update(changes)
        spec = {k: v for k, v in spec.items() if v is not None}
        config = subscription_from(spec)
        warnings = await self.check_subscription(config)
        self._save(config)
        result = {"subscriber": self.subscriber(name), "warnings": warnings}
        if generated:
            result["webhook_secret"] = generated
        return result

    def _save(self, config: SubscriptionConfig) -> None:
        try:
            self.deliveries.add_subscriber(config)
        except ValueError as exc:  # defined in the config file
            raise Conflict(str(exc)) from None

    def delete_subscriber(self, name: str) -> None:
        delete_subscriber(self.deliveries, name)

    async def send_test(self, name: str) -> list[dict[str, Any]]:
        return await send_test(self.settings, name)

    def would_have_matched(
        self, keywords: str, topics: list[str] | None = None, now: float | None = None
    ) -> dict[str, Any]:
        """How many stories of the last 7 days (under ``topics``, or any) the filter takes."""
        from streams.classify.keywords import keyword_match, keyword_query_problem

        if problem := keyword_query_problem(keywords):
            raise Invalid(problem)
        unknown = sorted(set(topics or []) - set(self.topic_names()))
        if unknown:
            raise NotFound(f"unknown topic {unknown[0]!r}")
        now = time.time() if now is None else now
        titles = self.activity.titles_since(now - 7 * DAY, topics or [])
        matched = sum(keyword_match(keywords, title) for title in titles.values())
        return {"keywords": keywords, "matched": matched, "of": len(titles), "days": 7}

    # -- silences ----------------------------------------------------------------------

    def silences(self) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "subscriber": s.subscriber, "key": s.key, "until": when(s.until)}
            | {"reason": s.reason}
            for s in self.deliveries.silences()
        ]

    def add_silence(
        self, subscriber: str, key: str, duration: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Mute ``key`` (a topic, or entity:NAME) for ``subscriber`` for ``duration``."""
        if self.deliveries.subscriber(subscriber) is None:
            raise NotFound(f"no subscriber named {subscriber!r}")
        entity = key.removeprefix("entity:")
        if key == entity and key not in self.topic_names():
            raise Invalid(f"unknown topic {key!r}")
        if key != entity and entity not in self.settings.spike.entities:
            raise Invalid(f"entity {entity!r} is not in spike.entities")
        until = time.time() + duration_seconds(duration)
        silence_id = self.deliveries.add_silence(subscriber, key, until, reason)
        return {"id": silence_id, "subscriber": subscriber, "key": key, "until": when(until)}

    def remove_silence(self, silence_id: int) -> None:
        if not self.deliveries.remove_silence(silence_id):
            raise NotFound(f"no silence {silence_id}")


async def check_subscription(config: SubscriptionConfig, settings: Settings) -> list[str]:
    """The checks `run` makes of a config file's subscription (query syntax, topics, entities)
    and the network guard's verdict on its webhook URL: Invalid, or the warnings (a webhook
    host that does not resolve from here)."""
    from newsalert.preflight import subscription_problems
    from streams.classify.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy)
    problems = subscription_problems(config, taxonomy, settings, "subscriber")
    if problems:
        raise Invalid("; ".join(problems))
    if config.webhook is None:
        return []
    return await check_webhook_url(config.webhook.url, settings)


async def send_test(
    settings: Settings, name: str, sync_config: bool = False
) -> list[dict[str, Any]]:
    """A marked test notification through each channel of subscriber ``name``, now; one
    result per channel: channel, target, outcome (delivered, retry, failed, disabled), detail."""
    from alerts.runtime import build_dispatcher

    dispatcher = build_dispatcher(settings, sync_config=sync_config)
    try:
        sub = dispatcher.store.subscriber(name)
        if sub is None:
            raise NotFound(f"no subscriber named {name!r}")
        results = await dispatcher.send_test(sub)
    finally:
        await dispatcher.close()
    return [
        {"channel": c, "target": t, "outcome": r.outcome, "detail": r.detail} for c, t, r in results
    ]


async def check_webhook_url(url: str, settings: Settings) -> list[str]:
    """The network guard at the door (as ``subscribers add``): a URL it would refuse at
    delivery is Invalid; a host that does not resolve from here is a warning (DNS may differ
    where the service runs)."""
    from newsalert import netguard

    policy = netguard.NetworkPolicy.from_setting(settings.allow_private_networks)
    try:
        await netguard.check_url(url, policy)
    except netguard.UnresolvableHost as exc:
        return [str(exc)]
    except netguard.SsrfRefused as exc:
        raise Invalid(f"webhook URL refused: {exc}") from None
    return []


def spike_summary(spike: dict[str, Any]) -> dict[str, Any]:
    return {
        "spike_id": spike["spike_id"],
        "topic": spike["topic"],
        "state": spike["state"],
        "count": spike["count"],
        "baseline": round(float(spike["baseline"]), 2),
        "ratio": round(float(spike["ratio"]), 2),
        "window_start": when(spike["window_start"]),
        "window_end": when(spike["window_end"]),
        "detected_at": when(spike["detected_at"]),
    }


def delivery_fields(row: Any) -> dict[str, Any]:
    """One outbox row as JSON-ready fields, times as epoch seconds (``deliveries list --json``)."""
    return {
        "message_id": row.message_id,
        "subscriber": row.subscriber,
        "channel": row.channel,
        "target": row.target,
        "topic": row.topic,
        "state": row.state,
        "spike_id": row.spike_id,
        "kind": row.kind,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
    }


def delivery_row(row: Any) -> dict[str, Any]:
    """``delivery_fields`` with ISO times (the API and the pages)."""
    fields = delivery_fields(row)
    fields["created_at"] = when(row.created_at)
    fields["delivered_at"] = when(row.delivered_at)
    return fields


def delete_subscriber(store: DeliveryStore, name: str) -> None:
    """Remove a CLI- or page-added subscriber (the API, the pages, ``subscribers remove``)."""
    if store.subscriber(name) is None:
        raise NotFound(f"no subscriber named {name!r}")
    origin = next(s.origin for s in store.subscribers() if s.config.name == name)
    if origin == "config":
        raise Conflict(f"subscriber {name!r} is defined in the config file; remove it there")
    store.remove_subscriber(name)


def requeue_dead_letter(store: DeliveryStore, message_id: str) -> Any:
    """Put a dead letter back in the outbox (due now); its row. NotFound for an unknown id,
    Conflict for a message that is not a dead letter. The API, the pages and
    ``deliveries replay`` all replay through here."""
    row = store.get(message_id)
    if row is None:
        raise NotFound(f"unknown message {message_id!r}")
    if not store.requeue(message_id):
        raise Conflict(f"message {message_id!r} is {row.status}, not a dead letter")
    replayed = store.get(message_id)
    assert replayed is not None
    return replayed
