"""One frozen settings object for the whole service: defaults < config file < environment < CLI.

Every top-level setting can come from the environment as ``NEWSALERT_<NAME>``; nested ones use a
double underscore (``NEWSALERT_SMTP__HOST``). Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "NEWSALERT_"
EMBEDDED_SESSION_TIMEOUT_SECONDS = 4.0
KAFKA_SESSION_TIMEOUT_SECONDS = 10.0
# `broker: local-kafka`: the Apache Kafka under DATA_DIR/kafka (newsalert/localkafka.py).
LOCAL_KAFKA = "local-kafka"


class ConfigError(Exception):
    """A configuration problem, phrased for the person who wrote the file: file, key, reason."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeedConfig(_Frozen):
    url: str
    name: str | None = None
    tags: tuple[str, ...] = ()
    interval_seconds: float | None = Field(default=None, gt=0)
    # Fetch each new article's page and use its extracted text (for summary-only feeds).
    full_text: bool = False

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError("feed URL must start with http:// or https://")
        return url


class WebhookConfig(_Frozen):
    url: str
    secret: SecretStr | None = None
    # Older secrets still signed with during a key rotation (one signature per secret).
    previous_secrets: tuple[SecretStr, ...] = ()

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError("webhook URL must start with http:// or https://")
        return url

    @field_validator("secret")
    @classmethod
    def _whsec(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            _check_whsec(secret)
        return secret

    @field_validator("previous_secrets")
    @classmethod
    def _whsecs(cls, secrets: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for secret in secrets:
            _check_whsec(secret)
        return secrets

    def secrets(self) -> list[str]:
        """Active signing secrets, newest first."""
        found = [self.secret] if self.secret else []
        return [s.get_secret_value() for s in [*found, *self.previous_secrets]]


def _check_whsec(secret: SecretStr) -> None:
    import base64
    import binascii

    value = secret.get_secret_value()
    if not value.startswith("whsec_"):
        raise ValueError("webhook secret must start with 'whsec_' (base64 key)")
    try:
        base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from None


def _clock_time(value: str) -> str:
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise ValueError(f"not a time of day HH:MM: {value!r}")
    return f"{int(hours):02d}:{int(minutes):02d}"


class QuietHours(_Frozen):
    """Instant alerts falling in [start, end) local time wait until ``end``."""

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _times(cls, value: str) -> str:
        return _clock_time(value)


class SubscriptionConfig(_Frozen):
    """A subscriber: who, by which channels, about what, how often (README, "Subscriptions")."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w.@+-]+$")
    topics: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    webhook: WebhookConfig | None = None
    email: str | None = None
    # Query language of the taxonomy, matched on story titles; its syntax is checked with the
    # other cross-package checks (newsalert/preflight.py).
    keywords: str | None = None
    min_severity: Literal["low", "medium", "high"] = "low"
    mode: Literal["instant", "hourly", "daily"] = "instant"
    digest_time: str = "08:00"  # for mode: daily, in ``timezone``
    timezone: str = "UTC"
    quiet_hours: QuietHours | None = None
    active: bool = True
    # Which spike states are announced: escalated/resolved updates only if asked for.
    notify_on: tuple[Literal["started", "escalated", "resolved"], ...] = ("started",)

    @field_validator("email")
    @classmethod
    def _email(cls, email: str | None) -> str | None:
        if email is not None and ("@" not in email or any(c in email for c in "\r\n<>,; ")):
            raise ValueError(f"not a single e-mail address: {email!r}")
        return email

    @field_validator("digest_time")
    @classmethod
    def _digest_time(cls, value: str) -> str:
        return _clock_time(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _has_channel_and_subject(self) -> SubscriptionConfig:
        if self.webhook is None and self.email is None:
            raise ValueError("a subscription needs at least one channel: webhook or email")
        if not self.topics and not self.entities:
            raise ValueError("a subscription needs at least one topic or entity")
        return self

    def keys(self) -> tuple[str, ...]:
        """The detector keys this subscriber follows: topics and ``entity:NAME``."""
        return self.topics + tuple(f"entity:{e}" for e in self.entities)


class SmtpConfig(_Frozen):
    host: str = Field(default="127.0.0.1", description="SMTP server host for e-mail alerts")
    port: int = Field(default=25, ge=1, le=65535, description="SMTP server port")
    security: Literal["none", "starttls", "tls"] = Field(
        default="none", description="`none`, `starttls` or `tls` (implicit TLS, usually port 465)"
    )
    username: str | None = Field(default=None, description="SMTP login; unset: no login")
    password: SecretStr | None = Field(default=None, description="SMTP password")
    sender: str = Field(default="newsalert@localhost", description="the From address of alerts")
    timeout_seconds: float = Field(
        default=15.0, gt=0, description="deadline of one SMTP conversation"
    )
    # Extra CA certificates (PEM) to trust for the server's certificate, e.g. a private CA.
    ca_file: Path | None = Field(
        default=None, description="extra CA certificates (PEM) to trust for the SMTP server"
    )


# What each `sensitivity` sets (README "Spike detection"); an explicit parameter wins.
SENSITIVITY: dict[str, dict[str, Any]] = {
    "low": {"min_count": 5, "ratio": 4.0, "z_threshold": 3.0, "max_p_value": 0.001},
    "medium": {"min_count": 3, "ratio": 3.0, "z_threshold": 2.0, "max_p_value": 0.03},
    "high": {"min_count": 3, "ratio": 2.0, "z_threshold": 1.5, "max_p_value": 0.1},
}
Sensitivity = Literal["low", "medium", "high"]


class SpikeParams(_Frozen):
    """Spike rule parameters (streams/spikes/detector.py documents each; README lists defaults).

    ``min_count``, ``ratio``, ``z_threshold`` and ``max_p_value`` left unset come from
    ``sensitivity``."""

    sensitivity: Sensitivity = Field(
        default="medium",
        description="sets min_count, ratio, z_threshold, max_p_value: low (5, 4, 3, 0.001), "
        "medium (3, 3, 2, 0.03), high (3, 2, 1.5, 0.1); an explicit parameter wins",
    )
    widths: tuple[float, ...] = Field(
        default=(3600.0, 86400.0),
        min_length=1,
        description="bucket widths in seconds, each with its own baseline; one spike per key",
    )
    bucket_seconds: float | None = Field(
        default=None,
        gt=0,
        description="deprecated: one bucket width only (replaces `widths` when set)",
    )
    count_by: Literal["articles", "stories", "sources"] = Field(
        default="stories", description="what a bucket counts: `stories`, `articles` or `sources`"
    )
    allowed_lateness_seconds: float = Field(
        default=7200.0, ge=0, description="how long a bucket waits for late articles"
    )
    baseline_buckets: int = Field(
        default=24, ge=1, description="EWMA span of each width's baseline, in its buckets"
    )
    ewma_alpha: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="EWMA weight of the newest bucket; unset: 2 / (baseline_buckets + 1)",
    )
    seasonal: bool = Field(default=False, description="learn hour-of-day and hour-of-week profiles")
    min_count: int | None = Field(
        default=None, ge=1, description="absolute floor: minimum count; unset: from sensitivity"
    )
    ratio: float | None = Field(
        default=None, ge=1.0, description="minimum count / baseline; unset: from sensitivity"
    )
    z_threshold: float | None = Field(
        default=None,
        ge=0,
        description="minimum standard deviations above the baseline; unset: from sensitivity",
    )
    max_p_value: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="significance per day: maximum tail probability of a day bucket's count "
        "under its baseline (a narrower width gets its share: an hour a 24th); unset: from "
        "sensitivity",
    )
    tail: Literal["poisson", "negbin"] = Field(
        default="negbin",
        description="tail of the count under the baseline: `negbin` (mean and variance of the "
        "baseline) or `poisson` (mean only)",
    )
    baseline_floor_per_day: float = Field(
        default=0.1,
        ge=0,
        description="lowest expected count per day the tail is computed with (scaled to width)",
    )
    min_history_buckets: int = Field(
        default=24, ge=0, description="closed buckets of a width needed before it starts a spike"
    )
    absolute_threshold: int | None = Field(
        default=None,
        ge=1,
        description="a count that starts a spike even without history; unset: off",
    )
    escalate_factor: float = Field(
        default=2.0, gt=1.0, description="`escalated` at this multiple of the count at start"
    )
    resolve_ratio: float = Field(
        default=1.5, gt=0, description="a bucket below this multiple of the baseline is quiet"
    )
    resolve_buckets: int = Field(
        default=2, ge=1, description="quiet buckets in a row that resolve a spike"
    )
    cooldown_seconds: float = Field(
        default=6 * 3600.0, ge=0, description="no new spike of a key this long after `resolved`"
    )
    top_stories: int = Field(default=5, ge=1, description="stories a spike event carries")


SENSITIVE = ("min_count", "ratio", "z_threshold", "max_p_value")


def resolve_sensitivity(params: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """The detector's parameters: ``sensitivity`` replaced by the values it maps to, for those
    of its parameters not set explicitly (``explicit``)."""
    level = SENSITIVITY[params["sensitivity"]]
    resolved = {name: value for name, value in params.items() if name != "sensitivity"}
    for name in SENSITIVE:
        if name not in explicit or resolved.get(name) is None:
            resolved[name] = level[name]
    return resolved


class SpikeConfig(SpikeParams):
    """Defaults for every topic, ``topics`` overrides per topic, ``entities`` turns on
    per-entity spikes (alias names from the taxonomy, e.g. ``huawei``) with ``entity`` params."""

    topics: dict[str, dict[str, Any]] = Field(
        default={},
        description="per-topic overrides of these parameters (`sensitivity` too): "
        "{topic: {name: value}}",
    )
    entities: tuple[str, ...] = Field(
        default=(), description="taxonomy entities that also get spikes of their own (`huawei`)"
    )
    entity: dict[str, Any] = Field(
        default={}, description="parameter overrides for every entity key"
    )

    @model_validator(mode="after")
    def _overrides_valid(self) -> SpikeConfig:
        base = self._explicit_base()
        for name, params in {**self.topics, "entity": self.entity}.items():
            try:
                SpikeParams(**{**base, **params})
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"spike override {name!r}: {where}: {first['msg']}") from None
        return self

    def _explicit_base(self) -> dict[str, Any]:
        return self.model_dump(exclude={"topics", "entities", "entity"}, exclude_none=True)

    def _resolve(self, overrides: dict[str, Any]) -> dict[str, Any]:
        own = {k for k in self.model_fields_set if k not in ("topics", "entities", "entity")}
        own |= {k for k in SENSITIVE if getattr(self, k) is not None}
        if "sensitivity" in overrides:
            # A key's own sensitivity is more specific than the defaults' explicit values.
            own -= set(SENSITIVE)
        params = {**self.model_dump(exclude={"topics", "entities", "entity"}), **overrides}
        return resolve_sensitivity(params, own | set(overrides))

    def base_params(self) -> dict[str, Any]:
        return self._resolve({})

    def params_for(self, key: str) -> dict[str, Any]:
        if key.startswith("entity:"):
            return self._resolve(dict(self.entity))
        return self._resolve(dict(self.topics.get(key, {})))


class Settings(BaseSettings):
    """The service's settings. Built once by :func:`load_settings`, then passed down frozen."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    broker: str | None = Field(
        default=None,
        description="Kafka as kafka://HOST:PORT[,...], or local-kafka (the Apache Kafka under "
        "DATA_DIR/kafka); unset: an embedded, memory-only broker inside `newsalert run`",
    )
    data_dir: Path = Field(
        default=Path("newsalert-data"),
        description="durable local state: the SQLite file, Faust's directory, spike-state.json",
    )
    # PostgreSQL for feed, subscription and delivery state (postgresql://USER:PASS@HOST/DB);
    # unset: the SQLite file DATA_DIR/newsalert.sqlite3. Holds the password: a secret.
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL state database, postgresql://USER:PASSWORD@HOST:5432/DB; "
        "unset: DATA_DIR/newsalert.sqlite3",
        json_schema_extra={"secret": True},
    )
    metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="port of the HTTP endpoint (/metrics, /healthz, /readyz, alert links); "
        "0: any free port",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the HTTP endpoint listens on (0.0.0.0 in a container)",
    )
    # The pages and the /api/v1 API on the HTTP endpoint (newsalert/web/): every request needs
    # this token (a bearer header, or the pages' login cookie). Unset: both are off.
    api_token: SecretStr | None = Field(
        default=None,
        description="token of the pages and the /api/v1 API (bearer header, or the login "
        "form); unset: both are off",
        json_schema_extra={"secret": True},
    )
    api_cookie_secure: bool = Field(
        default=False,
        description="mark the pages' session cookie Secure (behind an https proxy)",
    )
    api_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="largest request body the API and pages accept"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR"
    )
    app_id: str = Field(
        default="newsalert",
        description="Kafka consumer group and topic name prefix; one per deployment",
    )
    partitions: int = Field(
        default=1,
        ge=1,
        description="partitions of the raw and classified topics: at most this many stream "
        "workers share the work",
    )
    # exactly_once: the stream workers read, write and commit in Kafka transactions (Apache
    # Kafka only, one partition; README "Delivery guarantees"). at_least_once: after a crash
    # a record may be processed again, and the idempotency keys downstream absorb it.
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="at_least_once, or exactly_once (Kafka transactions; Apache Kafka only)",
    )

    consumer_fetch_max_wait_ms: int = Field(
        default=10,
        ge=0,
        le=60000,
        description="how long a consumer fetch waits on a quiet partition",
    )
    producer_linger_ms: float = Field(
        default=10.0,
        ge=0,
        description="how long a producer batches before sending (10: a tenth of the produce "
        "requests of 1 ms, and a third of the broker's CPU, at a few ms of latency per hop)",
    )
    # Unset: 4 s on the embedded broker (Tansu holds a first JoinGroup for about half of it),
    # 10 s on any other (Apache Kafka refuses less than its group.min.session.timeout.ms, 6 s).
    broker_session_timeout_seconds: float | None = Field(
        default=None,
        ge=1.0,
        description="consumer group session timeout; unset: 4 on the embedded broker, 10 on "
        "any other",
    )
    broker_heartbeat_interval_seconds: float = Field(
        default=1.0, gt=0, description="consumer group heartbeat interval"
    )
    process_batch_size: int = Field(
        default=200, ge=1, description="records a stream agent takes at once"
    )
    process_batch_seconds: float = Field(
        default=0.02, gt=0, description="longest wait to fill an agent's batch"
    )

    poll_interval_seconds: float = Field(
        default=300.0, gt=0, description="default interval between two polls of a feed"
    )
    fetch_timeout_seconds: float = Field(
        default=20.0, gt=0, description="total deadline of one feed fetch"
    )
    max_body_bytes: int = Field(
        default=15 * 1024 * 1024,
        gt=0,
        description="largest feed or page body accepted, after decompression",
    )
    # Entries taken from one feed document: over it, the newest by date are kept, the rest
    # counted (newsalert_feed_entries_dropped_total) and named in the feed's warning.
    max_entries_per_feed: int = Field(
        default=500, ge=1, description="entries taken from one feed document (the newest)"
    )
    allow_private_networks: str = Field(
        default="false",
        description="feeds and webhooks on private addresses: false, true, or a CIDR list",
    )
    user_agent: str = Field(
        default="newsalert/0.1 (+https://github.com/newsalert/newsalert)",
        description="User-Agent of feed fetches",
    )

    taxonomy: Path | None = Field(
        default=None, description="topic taxonomy file; unset: the shipped default"
    )
    model: Path | None = Field(
        default=None,
        description="topic model file written by `newsalert train` (a learned second opinion "
        "that may only add a topic above its threshold), or `default` for the shipped one; "
        "unset: rules alone",
    )
    feeds: tuple[FeedConfig, ...] = Field(
        default=(),
        description="feeds to poll (a list: better in the config file; also `feeds add`)",
    )
    subscriptions: tuple[SubscriptionConfig, ...] = Field(
        default=(),
        description="subscribers (a JSON list in the environment; holds the webhook secrets)",
    )
    smtp: SmtpConfig = Field(default=SmtpConfig(), description="e-mail delivery")
    spike: SpikeConfig = Field(default=SpikeConfig(), description="spike rule")

    delivery_timeout_seconds: float = Field(
        default=10.0, gt=0, description="deadline of one delivery attempt"
    )
    delivery_retry_schedule_seconds: tuple[float, ...] = Field(
        default=(5, 300, 1800, 7200, 18000, 36000),
        description="waits before each retry of a failed delivery; then a dead letter",
    )
    delivery_concurrency_per_endpoint: int = Field(
        default=4, ge=1, description="deliveries at once to one endpoint"
    )
    delivery_max_in_flight: int = Field(
        default=16, ge=1, description="deliveries at once, all endpoints"
    )
    # Near-duplicate stories: copies within this horizon share a story_id (streams/stories).
    story_horizon_seconds: float = Field(
        default=3 * 86400.0,
        gt=0,
        description="near-duplicate copies within this horizon share a story id",
    )
    # Exact duplicates (same canonical URL or normalized text) are dropped within this horizon.
    dedupe_horizon_seconds: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="exact duplicates (same URL or text) within this horizon are dropped",
    )
    # Alertmanager-like grouping per subscriber and topic (README, "Routing").
    alert_group_wait_seconds: float = Field(
        default=5.0, ge=0, description="wait before the first message of an alert group"
    )
    alert_group_interval_seconds: float = Field(
        default=300.0, ge=0, description="minimum spacing of messages in an alert group"
    )
    alert_repeat_interval_seconds: float = Field(
        default=4 * 3600.0,
        ge=0,
        description="minimum spacing of two new spikes of one topic to one subscriber",
    )
    # An endpoint failing without a success for this long is disabled (subscriber e-mailed).
    endpoint_disable_after_seconds: float = Field(
        default=5 * 86400.0,
        gt=0,
        description="an endpoint failing this long without a success is disabled",
    )
    email_suppress_after_hard_failures: int = Field(
        default=3,
        ge=1,
        description="permanent SMTP failures (5xx) after which an address gets no more e-mail",
    )
    # Where subscribers reach the service's unsubscribe and mute links (behind a proxy, its
    # public address); default: the metrics endpoint's own address.
    public_url: str | None = Field(
        default=None,
        description="public address of the unsubscribe and mute links; unset: the HTTP "
        "endpoint's own",
    )

    # Where the settings came from, for messages: the config file, else "settings".
    _source: str = PrivateAttr(default="settings")

    @property
    def config_source(self) -> str:
        return self._source

    @field_validator("subscriptions")
    @classmethod
    def _unique_names(
        cls, subscriptions: tuple[SubscriptionConfig, ...]
    ) -> tuple[SubscriptionConfig, ...]:
        first: dict[str, int] = {}
        for index, sub in enumerate(subscriptions):
            if sub.name in first:
                raise ValueError(
                    f"subscriber name {sub.name!r} is used twice (subscriptions."
                    f"{first[sub.name]} and subscriptions.{index}); each needs its own name"
                )
            first[sub.name] = index
        return subscriptions

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url in (None, ""):
            return None
        expected = (
            "database_url must be a PostgreSQL URL (postgresql://USER:PASSWORD@HOST:PORT/DB); "
            "leave it unset to keep state in DATA_DIR/newsalert.sqlite3"
        )
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"{expected}: {exc}") from None
        if parts.scheme.lower() not in ("postgresql", "postgres") or not (
            parts.netloc or parts.path.strip("/")
        ):
            raise ValueError(expected)
        return url

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, broker: str | None) -> str | None:
        if broker in (None, ""):
            return None
        if broker == LOCAL_KAFKA:
            return broker
        if not broker.startswith("kafka://") or len(broker) <= len("kafka://"):
            raise ValueError(f"broker must look like kafka://HOST:PORT, or be {LOCAL_KAFKA}")
        return broker

    @field_validator("allow_private_networks", mode="before")
    @classmethod
    def _yaml_boolean(cls, value: Any) -> Any:
        # `allow_private_networks: true` in YAML is a boolean; it means what "true" means.
        return str(value).lower() if isinstance(value, bool) else value

    @field_validator("allow_private_networks")
    @classmethod
    def _allow_list(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in ("", "false", "true"):
            return value.lower() or "false"
        for cidr in value.split(","):
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"not 'true', 'false' or a CIDR list: {cidr!r}") from exc
        return value

    @property
    def session_timeout_seconds(self) -> float:
        """The consumer group session timeout in force: the setting, else the broker's default."""
        if self.broker_session_timeout_seconds is not None:
            return self.broker_session_timeout_seconds
        return (
            EMBEDDED_SESSION_TIMEOUT_SECONDS
            if self.broker is None
            else KAFKA_SESSION_TIMEOUT_SECONDS
        )

    @property
    def database_path(self) -> Path:
        return self.data_dir / "newsalert.sqlite3"

    @property
    def state_database(self) -> Path | str:
        """What newsalert.database.open_database opens: the PostgreSQL URL, else the file."""
        return self.database_url or self.database_path

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI flags (init) beat the environment, which beats the config file (passed via
        # _FileSource below), which beats defaults.
        return (init_settings, env_settings, _FileSource(settings_cls), file_secret_settings)


class _FileSource(PydanticBaseSettingsSource):
    """The YAML file named by :data:`_current_file` (set by :func:`load_settings`)."""

    data: dict[str, Any] = {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FileSource.data)


def read_config_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; any problem is a one-line ConfigError (file and reason)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
            "save the file as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        reason = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{path}:{where} not valid YAML: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: top level must be a mapping of settings, not {type(data).__name__}"
        )
    return data


def load_settings(config_path: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings from an optional YAML file, the environment and explicit overrides.

    Raises :class:`ConfigError` naming the file (or environment variable), the key and the reason.
    """
    path = Path(config_path) if config_path else None
    if path is None and os.environ.get(f"{ENV_PREFIX}CONFIG"):
        path = Path(os.environ[f"{ENV_PREFIX}CONFIG"])
    file_data = read_config_file(path) if path else {}
    for key in ("taxonomy", "model"):  # relative to the config file
        if path and key in file_data and file_data[key] and file_data[key] != "default":
            relative = Path(str(file_data[key]))
            if not relative.is_absolute():
                file_data[key] = str(path.parent / relative)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _FileSource.data = file_data
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, file_data, overrides)) from None
    finally:
        _FileSource.data = {}
    if path is not None:
        settings._source = str(path)
    return settings


def _describe(exc: ValidationError, path: Path | None, file_data: dict, overrides: dict) -> str:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        top = str(error["loc"][0]) if error["loc"] else ""
        env_name = f"{ENV_PREFIX}{top.upper()}"
        if top in overrides:
            origin = "command line"
        elif env_name in os.environ or any(k.startswith(env_name + "__") for k in os.environ):
            origin = f"environment {env_name}"
        elif path is not None and top in file_data:
            origin = str(path)
        else:
            origin = str(path) if path else "settings"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        elif error["type"] == "value_error":  # our own validators' words, without pydantic's
            message = str(error.get("ctx", {}).get("error", message))
        lines.append(f"{origin}: {loc}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
