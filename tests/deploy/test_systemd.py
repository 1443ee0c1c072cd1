"""deploy/systemd/newsalert.service: the single-host unit runs a real command with real settings."""

from __future__ import annotations

import shlex
from collections import defaultdict

from newsalert.cli import build_parser
from tests.deploy.checks import DEPLOY, unknown_variables

UNIT = DEPLOY / "systemd" / "newsalert.service"


def read_unit() -> dict[str, dict[str, list[str]]]:
    """Sections of keys, each with every value given (systemd allows a key repeatedly)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        assert section is not None, f"{line!r} before any section"
        key, _, value = line.partition("=")
        sections[section][key].append(value)
    return sections


def test_unit_runs_the_whole_service_with_a_config_file():
    (exec_start,) = read_unit()["Service"]["ExecStart"]
    program, *argv = shlex.split(exec_start)
    assert program.startswith("/") and program.endswith("/bin/newsalert")
    args = build_parser().parse_args(argv)
    assert args.command == "run"
    assert str(args.config) == "/etc/newsalert/newsalert.yaml"


def test_unit_sets_only_real_settings_and_keeps_state_in_its_state_directory():
    service = read_unit()["Service"]
    env = dict(value.split("=", 1) for value in service["Environment"])
    assert unknown_variables(env) == set()
    assert service["StateDirectory"] == ["newsalert"]
    assert env["NEWSALERT_DATA_DIR"] == "/var/lib/newsalert"
    # Secrets come from a file that may be absent (the leading '-'), never from the unit.
    assert service["EnvironmentFile"] == ["-/etc/newsalert/newsalert.env"]
    assert not any("PASSWORD" in v or "DATABASE_URL" in v for v in service["Environment"])


def test_unit_runs_unprivileged_restarts_on_failure_and_reloads_with_sighup():
    unit = read_unit()
    service = unit["Service"]
    assert service["User"] == ["newsalert"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]  # newsalert's exit status for bad config
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
