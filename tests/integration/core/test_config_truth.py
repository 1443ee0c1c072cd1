"""Configuration tells the truth before anything starts: `check-config` runs every check that
`run` runs, `run` runs them before it starts a broker, secrets never print, and a file that
is not UTF-8 or not YAML is one line, also for a SIGHUP reload."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from newsalert.cli import main
from newsalert.service import Service
from newsalert.settings import load_settings

EMAIL_SUB = {"name": "desk", "topics": ["5g-security"], "email": "desk@example.org"}
SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="


def write_config(tmp_path, **settings):
    path = tmp_path / "newsalert.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), **settings}))
    return path


BAD_CONFIGS = {
    "unknown subscription topic": (
        {"subscriptions": [{**EMAIL_SUB, "topics": ["no-such-topic"]}]},
        "subscriptions.0.topics: no taxonomy defines topic 'no-such-topic'",
    ),
    "duplicate subscriber name": (
        {"subscriptions": [EMAIL_SUB, {**EMAIL_SUB, "topics": ["sanctions"]}]},
        "subscriptions: subscriber name 'desk' is used twice (subscriptions.0 and subscriptions.1)",
    ),
    "keyword query syntax": (
        {"subscriptions": [{**EMAIL_SUB, "keywords": "(huawei AND"}]},
        "subscriptions.0.keywords: keyword query, position",
    ),
    "entity without spike detection": (
        {"subscriptions": [{**EMAIL_SUB, "topics": [], "entities": ["zte"]}]},
        "subscriptions.0.entities: entity 'zte' has no spike detection",
    ),
    "spike override of an unknown topic": (
        {"spike": {"topics": {"no-such-topic": {"min_count": 2}}}},
        "spike.topics.no-such-topic: no taxonomy defines topic",
    ),
    "feed URL at a private address": (
        {"feeds": [{"url": "http://127.0.0.1:9/feed.xml"}]},
        "feeds.0.url: http://127.0.0.1:9/feed.xml: refused: 127.0.0.1 is a loopback address",
    ),
    "webhook URL at a metadata address": (
        {
            "subscriptions": [
                {**EMAIL_SUB, "webhook": {"url": "http://169.254.169.254/x", "secret": SECRET}}
            ]
        },
        "subscriptions.0.webhook.url: http://169.254.169.254/x: refused",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_config_and_run_refuse_the_same_config_before_starting(case, tmp_path, capsys):
    settings, expected = BAD_CONFIGS[case]
    path = write_config(tmp_path, **settings)
    assert main(["check-config", "--config", str(path)]) == 2
    checked = capsys.readouterr().err
    assert f"{path}: {expected}" in checked
    assert main(["run", "--config", str(path), "--metrics-port", "0"]) == 2
    assert capsys.readouterr().err == checked
    # Refused before anything started: no broker, no state written.
    assert not (tmp_path / "data").exists()


def test_a_broken_taxonomy_file_is_refused_by_both(tmp_path, capsys):
    (tmp_path / "taxonomy.yaml").write_text("topics:\n  t:\n    rules: ['(unclosed']\n")
    path = write_config(tmp_path, taxonomy="taxonomy.yaml")
    assert main(["check-config", "--config", str(path)]) == 2
    checked = capsys.readouterr().err
    assert "taxonomy.yaml" in checked
    assert main(["run", "--config", str(path), "--metrics-port", "0"]) == 2
    assert capsys.readouterr().err == checked
    assert not (tmp_path / "data").exists()


def test_subscribers_add_refuses_a_topic_no_taxonomy_defines(tmp_path, capsys):
    path = write_config(tmp_path)
    args = ["subscribers", "add", "desk", "--topic", "no-such-topic", "--email", "a@example.org"]
    assert main([*args, "--config", str(path)]) == 2
    assert "no taxonomy defines topic 'no-such-topic'" in capsys.readouterr().err
    assert main(["subscribers", "list", "--config", str(path)]) == 0
    assert "no subscribers" in capsys.readouterr().out


def test_check_config_masks_every_secret(tmp_path, capsys):
    path = write_config(
        tmp_path,
        database_url="postgresql://newsalert:db-pass-123@127.0.0.1:1/newsalert?password=q-pass",
        smtp={"username": "mailer", "password": "smtp-pass-456"},
        subscriptions=[
            {**EMAIL_SUB, "webhook": {"url": "https://hooks.example.org/x", "secret": SECRET}}
        ],
    )
    assert main(["check-config", "--config", str(path)]) == 0
    shown = capsys.readouterr()
    printed = shown.out + shown.err
    for secret in ("db-pass-123", "q-pass", "smtp-pass-456", SECRET):
        assert secret not in printed
    effective = json.loads(shown.out)
    assert effective["database_url"] == (
        "postgresql://newsalert:***@127.0.0.1:1/newsalert?password=***"
    )


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"data_dir: caf\xe9\n", "not UTF-8 text (byte 0xe9 on line 1)"),
        (b"feeds: [unclosed\n", "not valid YAML"),
        (b"\x00\x01", "not valid YAML"),
    ],
)
def test_a_file_that_is_not_utf8_or_not_yaml_is_one_line(tmp_path, capsys, content, reason):
    path = tmp_path / "newsalert.yaml"
    path.write_bytes(content)
    for command in (["check-config"], ["run", "--metrics-port", "0"]):
        assert main([*command, "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and reason in err
        assert "Traceback" not in err


async def test_a_reload_of_a_broken_file_keeps_the_running_config_in_one_log_line(tmp_path, caplog):
    path = write_config(tmp_path, subscriptions=[EMAIL_SUB])
    running = load_settings(path)
    service = Service(running)
    path.write_bytes(b"subscriptions: caf\xe9\n")
    with caplog.at_level(logging.INFO, logger="newsalert"):
        await service.reload(lambda: load_settings(path))
    path.write_text(yaml.safe_dump({"subscriptions": [{**EMAIL_SUB, "topics": ["nope"]}]}))
    with caplog.at_level(logging.INFO, logger="newsalert"):
        await service.reload(lambda: load_settings(path))
    assert service.settings is running
    records = [r for r in caplog.records if r.name == "newsalert"]
    assert [r.levelname for r in records] == ["ERROR", "ERROR"]
    assert "not UTF-8 text" in records[0].getMessage()
    assert "no taxonomy defines topic 'nope'" in records[1].getMessage()
    for record in records:
        assert "\n" not in record.getMessage() and record.exc_info is None
