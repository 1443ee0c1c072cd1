"""Every health check and probe the deployments define asks for a path the service serves."""

from __future__ import annotations

import re

from tests.deploy.checks import REPO, http_statuses


def probe_paths(compose, rendered_objects) -> set[str]:
    paths = set(re.findall(r"/(?:healthz|readyz)\b", (REPO / "Dockerfile").read_text()))
    for service in compose["services"].values():
        if service["image"].startswith("newsalert:"):
            paths |= set(re.findall(r"127\.0\.0\.1:\d+(/\w+)", str(service["healthcheck"])))
    for objects in rendered_objects:
        for deployment in (o for o in objects if o["kind"] == "Deployment"):
            for spec in deployment["spec"]["template"]["spec"]["containers"]:
                paths |= {spec[p]["httpGet"]["path"] for p in spec if p.endswith("Probe")}
    return paths


def test_probe_paths_are_served_by_every_role(compose, base, production):
    paths = probe_paths(compose, [base, production])
    assert paths == {"/healthz", "/readyz"}
    statuses = http_statuses(paths | {"/metrics"})
    assert statuses["/metrics"] == 200
    # Not ready yet is fine (503); unknown is not.
    unserved = {path for path, status in statuses.items() if status == 404}
    assert not unserved, f"probes ask for paths the service does not serve: {unserved}"
