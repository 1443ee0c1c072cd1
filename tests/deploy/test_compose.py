"""deploy/compose.yaml, checked without a container engine: what compose would read."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from newsalert.cli import build_parser
from newsalert.localkafka import KAFKA_VERSION
from tests.deploy.checks import (
    DEPLOY,
    REPO,
    assert_variables_read,
    image_is_pinned,
    settings_from,
    unknown_variables,
)

ROLES = {"connectors": ["connectors"], "streams-1": ["streams"], "streams-2": ["streams"]}
EVERY_PART = {"kafka", "postgres", *ROLES, "prometheus", "grafana", "mailpit"}


def newsalert_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service["image"].startswith("newsalert:")
    }


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_compose_runs_every_part_with_kafka_in_kraft_mode(compose):
    assert set(compose["services"]) == EVERY_PART
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert not any("ZOOKEEPER" in name for name in env)


def test_the_roles_are_real_commands_connectors_once_and_two_stream_workers(compose):
    services = newsalert_services(compose)
    assert {name: service["command"] for name, service in services.items()} == ROLES
    for service in services.values():
        assert build_parser().parse_args(service["command"]).command in ("connectors", "streams")


def test_every_image_is_pinned_by_version(compose):
    loose = [s["image"] for s in compose["services"].values() if not image_is_pinned(s["image"])]
    assert loose == []
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for service in newsalert_services(compose).values():
        assert service["image"] == f"newsalert:{version}"
        assert service["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / "Dockerfile").is_file()


def test_kafka_is_the_version_the_tests_run_against(compose):
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_newsalert_variables_are_settings_the_service_reads(compose, monkeypatch):
    for name, service in newsalert_services(compose).items():
        env = service["environment"]
        assert unknown_variables(env) == set(), name
        mounts = {target: source for source, target in bind_mounts(service)}
        config = DEPLOY / mounts[env["NEWSALERT_CONFIG"]]
        settings = settings_from(env, config, monkeypatch)
        assert_variables_read(env, settings)
        assert settings.metrics_host == "0.0.0.0"  # reachable from Prometheus' container


def test_newsalert_points_at_the_kafka_postgres_and_mail_services(compose):
    services = compose["services"]
    kafka_listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    postgres = services["postgres"]["environment"]
    for service in newsalert_services(compose).values():
        env = service["environment"]
        broker = env["NEWSALERT_BROKER"].removeprefix("kafka://")
        assert f"PLAINTEXT://{broker}" in kafka_listeners.split(",")
        database = urlsplit(env["NEWSALERT_DATABASE_URL"])
        assert (database.hostname, database.port) == ("postgres", 5432)
        assert database.username == postgres["POSTGRES_USER"]
        assert database.password == postgres["POSTGRES_PASSWORD"]
        assert database.path == f"/{postgres['POSTGRES_DB']}"
        assert env["NEWSALERT_SMTP__HOST"] == "mailpit"
        assert int(env["NEWSALERT_PARTITIONS"]) >= sum(
            s["command"] == ["streams"] for s in newsalert_services(compose).values()
        )


def test_every_mounted_file_exists_in_the_repository(compose):
    for name, service in compose["services"].items():
        for source, target in bind_mounts(service):
            path = (DEPLOY / source).resolve()
            assert path.exists(), f"{name}: {source} (mounted at {target}) is not in the repo"
            assert path.is_relative_to(REPO), f"{name}: {source} is outside the repository"


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose):
    services = compose["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert how == {"condition": "service_healthy"}, name


def test_newsalert_healthchecks_ask_the_role_for_healthz_on_its_port(compose):
    for name, service in newsalert_services(compose).items():
        command = " ".join(service["healthcheck"]["test"])
        port = service["environment"]["NEWSALERT_METRICS_PORT"]
        assert f"http://127.0.0.1:{port}/healthz" in command, name


def test_state_lives_in_named_volumes_one_per_service(compose):
    declared = set(compose["volumes"])
    used: dict[str, str] = {}
    for name, service in compose["services"].items():
        named = [v.split(":")[0] for v in service["volumes"] if not v.startswith((".", "/"))]
        assert len(named) == 1, f"{name}: {named}"
        assert named[0] in declared, f"{name}: volume {named[0]} is not declared"
        assert named[0] not in used, f"{name} and {used.get(named[0])} share {named[0]}"
        used[named[0]] = name
    assert set(used) == declared


def test_prometheus_scrapes_every_role_and_loads_the_mounted_rules(compose):
    prometheus = compose["services"]["prometheus"]
    mounts = {target: source for source, target in bind_mounts(prometheus)}
    config_file = re.search(r"--config.file=(\S+)", " ".join(prometheus["command"]))[1]
    config = yaml.safe_load((DEPLOY / mounts[config_file]).read_text())
    for rule_file in config["rule_files"]:
        # Prometheus reads a relative rule file beside its configuration file.
        rule_file = str(Path(config_file).parent / rule_file)
        assert rule_file in mounts, f"{rule_file} is not mounted"
        assert Path(mounts[rule_file]).name == "rules.yml"
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    expected = {
        f"{name}:{service['environment']['NEWSALERT_METRICS_PORT']}"
        for name, service in newsalert_services(compose).items()
    }
    assert targets == expected
