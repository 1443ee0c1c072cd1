"""Everything `run` checks before it starts anything, in one place: `check-config` runs the
same checks, a SIGHUP reload runs them before it replaces the running configuration, and
`subscribers add` checks its one subscription with them.

The settings model (newsalert/settings.py) checks each value on its own; what needs the
taxonomy, the query language or the network guard is checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from newsalert import netguard
from newsalert.settings import ConfigError, Settings, SubscriptionConfig
from streams.classify.keywords import keyword_query_problem
from streams.classify.model import ModelError, load_model
from streams.classify.taxonomy import Taxonomy, load_taxonomy


@dataclass
class Preflight:
    """What the checks found: the loaded taxonomy and warnings (errors raise ConfigError)."""

    taxonomy: Taxonomy
    warnings: list[str] = field(default_factory=list)


def subscription_problems(
    sub: SubscriptionConfig, taxonomy: Taxonomy, settings: Settings, key: str
) -> list[str]:
    """``key: reason`` for each thing wrong with one subscription; ``key`` names it."""
    problems = []
    if sub.keywords is not None and (problem := keyword_query_problem(sub.keywords)):
        problems.append(f"{key}.keywords: {problem}")
    for topic in sub.topics:
        if topic not in taxonomy.topics:
            problems.append(f"{key}.topics: {unknown_topic(topic, taxonomy)}")
    for entity in sub.entities:
        if entity not in settings.spike.entities:
            problems.append(f"{key}.entities: {unfollowed_entity(entity)}")
    return problems


def unfollowed_entity(entity: str) -> str:
    return (
        f"entity {entity!r} has no spike detection, so it would never alert: "
        "add it to spike.entities"
    )


def unknown_topic(topic: str, taxonomy: Taxonomy) -> str:
    """The reason a topic name is refused, with the names that would do."""
    known = ", ".join(sorted(taxonomy.topics)) or "none"
    return f"no taxonomy defines topic {topic!r} (topics: {known})"


async def check_settings(settings: Settings) -> Preflight:
    """Run every check `run` runs before it starts; raise ConfigError naming the file, the
    key and the reason of each problem (TaxonomyError for a broken taxonomy file)."""
    taxonomy = load_taxonomy(settings.taxonomy)
    problems = []
    for index, sub in enumerate(settings.subscriptions):
        problems += subscription_problems(sub, taxonomy, settings, f"subscriptions.{index}")
    for topic in settings.spike.topics:
        if topic not in taxonomy.topics:
            problems.append(f"spike.topics.{topic}: {unknown_topic(topic, taxonomy)}")
    problems += guarantee_problems(settings)
    if settings.model:
        try:
            model = load_model(settings.model)
        except ModelError as exc:
            problems.append(f"model: {exc}")
        else:
            problems += [
                f"model: {model.source}: topic {name!r} is not in the taxonomy"
                for name in model.topics
                if name not in taxonomy.topics
            ]
    refused, warnings = await _check_urls(settings)
    problems += refused
    if problems:
        origin = settings.config_source
        raise ConfigError(
            "invalid configuration:\n  " + "\n  ".join(f"{origin}: {p}" for p in problems)
        )
    return Preflight(taxonomy, warnings)


def guarantee_problems(settings: Settings) -> list[str]:
    """exactly_once where it cannot hold: refused, never quietly weakened."""
    if settings.processing_guarantee != "exactly_once":
        return []
    if not settings.broker:
        return [
            "processing_guarantee: exactly_once needs Apache Kafka (transactions); the "
            "embedded broker has none: set broker: kafka://HOST:PORT, or processing_guarantee: "
            "at_least_once"
        ]
    if settings.partitions > 1:
        # faust-streaming puts a record sent to partition N in the transaction of input
        # partition N, committed only when that partition's input moves: a spike's topic hits
        # can wait there unread until Kafka aborts them.
        return [
            f"processing_guarantee: exactly_once needs partitions: 1 (not {settings.partitions}): "
            "with more, Faust commits what an agent sends to another partition only when that "
            "partition's own input moves, so records can stay unread"
        ]
    return []


def user_urls(settings: Settings) -> list[tuple[str, str]]:
    """(key, URL) of every URL the service will fetch or post to."""
    urls = [(f"feeds.{i}.url", feed.url) for i, feed in enumerate(settings.feeds)]
    for index, sub in enumerate(settings.subscriptions):
        if sub.webhook is not None:
            urls.append((f"subscriptions.{index}.webhook.url", sub.webhook.url))
    return urls


async def _check_urls(settings: Settings) -> tuple[list[str], list[str]]:
    """Every feed and webhook URL through the network guard. A host that does not resolve
    from here is a warning, not an error: DNS may differ where the service runs."""
    policy = netguard.NetworkPolicy.from_setting(settings.allow_private_networks)
    keyed = user_urls(settings)
    verdicts = await netguard.check_urls([url for _, url in keyed], policy)
    refused, warnings = [], []
    for (key, url), verdict in zip(keyed, verdicts, strict=True):
        if verdict.refused is not None:
            refused.append(f"{key}: {url}: refused: {verdict.refused}")
        elif verdict.warning is not None:
            warnings.append(f"{key}: {url}: {verdict.warning}")
    return refused, warnings
