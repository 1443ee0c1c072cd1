"""deploy/k8s, as `kustomize build` renders the base and the production overlay."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import yaml

from newsalert.cli import build_parser
from newsalert.cli.config import secret_env_names
from tests.deploy.checks import (
    assert_variables_read,
    image_is_pinned,
    settings_from,
    unknown_variables,
)

KINDS = {"Deployment": 2, "Service": 2, "ConfigMap": 2, "PodDisruptionBudget": 2}
ROLES = {"connectors", "streams"}
# A value that would be a secret written into the manifests.
INLINE_SECRET = re.compile(r"whsec_|postgres(ql)?://[^\s:/@]+:[^\s@]+@|BEGIN [A-Z ]*PRIVATE KEY")


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in of_kind(objects, kind)}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def environment(objects: list[dict[str, Any]], deployment: dict[str, Any]) -> dict[str, Any]:
    """The container's environment: ConfigMaps of envFrom, then env (values or references)."""
    configmaps = by_name(objects, "ConfigMap")
    env: dict[str, Any] = {}
    spec = container(deployment)
    for source in spec.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for variable in spec.get("env", []):
        env[variable["name"]] = variable.get("value", variable.get("valueFrom"))
    return env


def test_kustomize_renders_a_deployment_per_role_and_no_secret_object(rendered):
    name, objects = rendered
    expected = dict(KINDS)
    if name == "overlays/production":
        expected["ServiceMonitor"] = 1
    assert Counter(o["kind"] for o in objects) == expected
    roles = {container(d)["args"][0] for d in of_kind(objects, "Deployment")}
    assert roles == ROLES


def test_each_role_runs_a_real_command_on_a_pinned_image(rendered):
    name, objects = rendered
    for deployment in of_kind(objects, "Deployment"):
        spec = container(deployment)
        args = build_parser().parse_args(spec["args"])
        assert args.command in ROLES
        assert image_is_pinned(spec["image"]), spec["image"]
        if name == "overlays/production":
            assert spec["image"].startswith("registry.example.org/")


def test_probes_use_healthz_and_readyz_on_the_roles_http_port(rendered):
    _, objects = rendered
    for deployment in of_kind(objects, "Deployment"):
        spec = container(deployment)
        env = environment(objects, deployment)
        (port,) = spec["ports"]
        assert port == {"name": "http", "containerPort": int(env["NEWSALERT_METRICS_PORT"])}
        assert env["NEWSALERT_METRICS_HOST"] == "0.0.0.0"
        probes = {
            kind: spec[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")
        }
        assert probes == {
            "startup": {"path": "/healthz", "port": "http"},
            "liveness": {"path": "/healthz", "port": "http"},
            "readiness": {"path": "/readyz", "port": "http"},
        }
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port["containerPort"])
        assert annotations["prometheus.io/path"] == "/metrics"


def test_every_container_has_requests_and_limits(rendered):
    _, objects = rendered
    for deployment in of_kind(objects, "Deployment"):
        resources = container(deployment)["resources"]
        for bound in ("requests", "limits"):
            assert set(resources[bound]) == {"cpu", "memory"}, deployment["metadata"]["name"]


def test_env_names_are_real_settings_and_secrets_come_only_from_secret_references(rendered):
    _, objects = rendered
    secrets = secret_env_names()
    for deployment in of_kind(objects, "Deployment"):
        env = environment(objects, deployment)
        assert unknown_variables(env) == set()
        for name, value in env.items():
            if name in secrets:
                assert isinstance(value, dict) and "secretKeyRef" in value, name
                assert value["secretKeyRef"]["name"] == "newsalert-secrets"
        assert "NEWSALERT_DATABASE_URL" in env  # state is shared by every role
    for configmap in of_kind(objects, "ConfigMap"):
        assert not set(configmap["data"]) & secrets


def test_no_secret_value_is_written_inline(rendered):
    _, objects = rendered
    text = yaml.safe_dump_all(objects)
    assert INLINE_SECRET.findall(text) == []


def test_the_rendered_configuration_loads_and_every_variable_is_read(
    rendered, tmp_path, monkeypatch
):
    _, objects = rendered
    configmaps = by_name(objects, "ConfigMap")
    for deployment in of_kind(objects, "Deployment"):
        env = {k: v for k, v in environment(objects, deployment).items() if isinstance(v, str)}
        pod = deployment["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
        config_file = None
        for volume in pod["volumes"]:
            if "configMap" in volume:
                data = configmaps[volume["configMap"]["name"]]["data"]
                for key, text in data.items():
                    if f"{mounts[volume['name']]}/{key}" == env["NEWSALERT_CONFIG"]:
                        config_file = tmp_path / key
                        config_file.write_text(text)
        settings = settings_from(env, config_file, monkeypatch)
        assert_variables_read(env, settings)
        partitions = settings.partitions
        if container(deployment)["args"] == ["streams"]:
            assert deployment["spec"]["replicas"] <= partitions, "a stream worker would idle"


def test_services_budgets_and_monitors_select_the_pods(rendered):
    _, objects = rendered
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in of_kind(objects, "Deployment")
    }

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return selector.items() <= labels.items()

    for service in of_kind(objects, "Service"):
        chosen = [d for d, labels in pods.items() if selects(service["spec"]["selector"], labels)]
        assert len(chosen) == 1, service["metadata"]["name"]
        assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    for budget in of_kind(objects, "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert sum(selects(selector, labels) for labels in pods.values()) == 1
    for monitor in of_kind(objects, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        watched = [
            s for s in of_kind(objects, "Service") if selects(selector, s["metadata"]["labels"])
        ]
        assert len(watched) == len(pods)
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_production_runs_in_its_own_namespace_with_more_workers(production):
    objects = production
    assert {o["metadata"].get("namespace") for o in objects} == {"newsalert"}
    replicas = {
        d["metadata"]["name"]: d["spec"]["replicas"] for d in of_kind(objects, "Deployment")
    }
    assert replicas == {"newsalert-connectors": 2, "newsalert-streams": 3}
