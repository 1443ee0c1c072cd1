"""The subscribers, deliveries and silences commands against a real database and real local
webhook and SMTP servers, as a user runs them (`newsalert.cli.main`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from alerts.store import DeliveryStore
from newsalert.cli import main
from newsalert.localservers import SmtpSink, WebhookReceiver

SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="


@pytest.fixture
async def servers():
    receiver, smtp = WebhookReceiver(SECRET), SmtpSink()
    await receiver.start()
    await smtp.start()
    yield receiver, smtp
    await receiver.stop()
    await smtp.stop()


def config_file(tmp_path, smtp_port, subscriptions=()):
    path = tmp_path / "newsalert.yaml"
    config = {
        "data_dir": str(tmp_path / "data"),
        "allow_private_networks": "127.0.0.0/8",
        "smtp": {"host": "127.0.0.1", "port": smtp_port},
        "subscriptions": list(subscriptions),
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


async def cli(*argv: str) -> int:
    # The commands run their own event loop, as from a shell.
    return await asyncio.to_thread(main, list(argv))


async def test_add_list_test_remove_a_subscriber(tmp_path, servers, capsys):
    receiver, smtp = servers
    config = config_file(tmp_path, smtp.port)
    assert (
        await cli(
            "subscribers",
            "add",
            "desk",
            "--topic",
            "5g-security",
            "--topic",
            "vendor-bans",
            "--webhook",
            receiver.url("/hook"),
            "--secret",
            SECRET,
            "--email",
            "d@example.org",
            "--config",
            config,
        )
        == 0
    )
    assert await cli("subscribers", "list", "--json", "--config", config) == 0
    listed = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert listed[0]["name"] == "desk" and listed[0]["topics"] == ["5g-security", "vendor-bans"]
    assert {c["channel"] for c in listed[0]["channels"]} == {"webhook", "email"}

    assert await cli("subscribers", "test", "desk", "--config", config) == 0
    out = capsys.readouterr().out
    assert out.count(": OK") == 2
    (hook,) = receiver.received
    assert hook.verified and hook.payload["test"] is True
    (mail,) = smtp.messages
    assert mail["Subject"].startswith("[TEST]")

    receiver.status = 500
    assert await cli("subscribers", "test", "desk", "--config", config) == 1
    assert "FAILED (HTTP 500)" in capsys.readouterr().out

    assert await cli("subscribers", "remove", "desk", "--config", config) == 0
    assert await cli("subscribers", "remove", "desk", "--config", config) == 2
    assert "no subscriber named 'desk'" in capsys.readouterr().err


async def test_a_generated_secret_is_printed_once_and_signs(tmp_path, servers, capsys):
    receiver, smtp = servers
    config = config_file(tmp_path, smtp.port)
    args = ["subscribers", "add", "hook-only", "--topic", "sanctions"]
    assert await cli(*args, "--webhook", receiver.url("/h"), "--config", config) == 0
    out = capsys.readouterr().out
    secret = next(line for line in out.splitlines() if "): " in line).split("): ")[1].strip()
    assert secret.startswith("whsec_")
    receiver.secret = secret
    assert await cli("subscribers", "test", "hook-only", "--config", config) == 0
    assert receiver.received[0].verified


async def test_invalid_input_is_refused_with_the_reason(tmp_path, servers, capsys):
    _, smtp = servers
    config = config_file(tmp_path, smtp.port)
    add = ["subscribers", "add", "x", "--topic", "t", "--config", config]
    cases = [
        ([], "needs at least one channel"),
        (["--email", "a@b.org", "--timezone", "Mars/Base"], "unknown time zone"),
        (["--email", "a@b.org", "--keywords", "(huawei AND"], "keyword query"),
    ]
    for extra, reason in cases:
        assert await cli(*add, *extra) == 2
        assert reason in capsys.readouterr().err


async def test_config_subscribers_are_listed_but_changed_only_in_the_file(
    tmp_path, servers, capsys
):
    _, smtp = servers
    sub = {"name": "from-file", "topics": ["sanctions"], "email": "f@example.org"}
    config = config_file(tmp_path, smtp.port, [sub])
    assert await cli("subscribers", "list", "--config", config) == 0
    assert "from-file [config]" in capsys.readouterr().out
    assert await cli("subscribers", "remove", "from-file", "--config", config) == 2
    assert "config file" in capsys.readouterr().err


async def test_silences_add_list_remove(tmp_path, servers, capsys):
    _, smtp = servers
    sub = {"name": "desk", "topics": ["sanctions"], "email": "f@example.org"}
    config = config_file(tmp_path, smtp.port, [sub])
    assert (
        await cli(
            "silences", "add", "desk", "--topic", "sanctions", "--for", "2h", "--config", config
        )
        == 0
    )
    assert await cli("silences", "list", "--config", config) == 0
    out = capsys.readouterr().out
    assert "desk sanctions until" in out
    store = DeliveryStore(tmp_path / "data" / "newsalert.sqlite3")
    try:
        (silence,) = store.silences()
        assert store.silenced("desk", "sanctions", silence.until - 60)
    finally:
        store.close()
    assert (
        await cli("silences", "add", "desk", "--topic", "x", "--for", "soon", "--config", config)
        == 2
    )
    assert await cli("silences", "remove", str(silence.id), "--config", config) == 0
    assert await cli("silences", "list", "--config", config) == 0
    assert "no active silences" in capsys.readouterr().out


async def test_deliveries_replay_resends_dead_letters(tmp_path, servers, capsys):
    receiver, smtp = servers
    sub = {
        "name": "desk",
        "topics": ["5g-security"],
        "webhook": {"url": receiver.url("/hook"), "secret": SECRET},
    }
    config = config_file(tmp_path, smtp.port, [sub])
    from alerts.runtime import build_dispatcher
    from newsalert.settings import load_settings

    settings = load_settings(config, alert_group_wait_seconds=0, delivery_retry_schedule_seconds=())
    dispatcher = build_dispatcher(settings)
    spike = {
        "spike_id": "s1",
        "topic": "5g-security",
        "state": "started",
        "window_start": 0.0,
        "window_end": 3600.0,
        "count": 5,
        "baseline": 0.0,
        "ratio": 5.0,
        "score": 5.0,
        "detected_at": 100.0,
        "top_stories": [],
        "top_terms": [],
        "recent_counts": [],
    }
    receiver.status = 503
    try:
        await dispatcher.accept(spike)
        await dispatcher.deliver_due()
    finally:
        await dispatcher.close()
    assert await cli("deliveries", "list", "--status", "dead", "--config", config) == 0
    assert "HTTP 503" in capsys.readouterr().out
    receiver.status = 200
    assert await cli("deliveries", "replay", "--config", config) == 0
    assert ": delivered" in capsys.readouterr().out
    assert [h.verified for h in receiver.received] == [True, True]
    assert len({h.headers["webhook-id"] for h in receiver.received}) == 1
    assert await cli("deliveries", "replay", "--config", config) == 0
    assert "no dead letters" in capsys.readouterr().out


async def test_a_webhook_url_the_ssrf_guard_refuses_is_refused_when_added(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n")
    config = str(tmp_path / "c.yaml")
    for url in ("http://127.0.0.1:8080/hook", "http://2130706433/hook", "http://[::1]/x"):
        args = ["subscribers", "add", "x", "--topic", "5g-security", "--webhook", url]
        assert await cli(*args, "--config", config) == 2
        assert "webhook URL refused" in capsys.readouterr().err


async def test_subscribers_silences_and_deliveries_use_postgresql_when_configured(
    tmp_path, servers, capsys, monkeypatch, postgres_url
):
    import psycopg

    receiver, smtp = servers
    monkeypatch.setenv("NEWSALERT_DATABASE_URL", postgres_url)
    config = config_file(tmp_path, smtp.port)
    add = ["subscribers", "add", "desk", "--topic", "5g-security", "--email", "d@example.org"]
    hook = ["--webhook", receiver.url("/hook"), "--secret", SECRET]
    assert await cli(*add, *hook, "--config", config) == 0
    assert await cli("subscribers", "list", "--config", config) == 0
    assert "desk [cli] instant: 5g-security" in capsys.readouterr().out
    assert await cli("subscribers", "test", "desk", "--config", config) == 0
    assert len(receiver.received) == 1 and len(smtp.messages) == 1
    silence = ["silences", "add", "desk", "--topic", "5g-security", "--for", "1h"]
    assert await cli(*silence, "--config", config) == 0
    assert "silence 1: 5g-security muted for desk until" in capsys.readouterr().out
    assert await cli("deliveries", "list", "--config", config) == 0
    assert "no notifications" in capsys.readouterr().out

    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT name, origin FROM subscribers").fetchall() == [("desk", "cli")]
        assert db.execute("SELECT subscriber, key FROM silences").fetchall() == [
            ("desk", "5g-security")
        ]
    assert not (tmp_path / "data" / "newsalert.sqlite3").exists()


async def test_an_unreachable_database_is_one_line_without_the_password(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("NEWSALERT_DATABASE_URL", "postgresql://newsalert:s3cret@127.0.0.1:1/na")
    (tmp_path / "c.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n")
    config = str(tmp_path / "c.yaml")
    for command in (["subscribers", "list"], ["silences", "list"], ["deliveries", "list"]):
        assert await cli(*command, "--config", config) == 3
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(
            f"newsalert {' '.join(command)}: cannot reach PostgreSQL at "
            "postgresql://newsalert:***@127.0.0.1:1/na: "
        )
        assert "s3cret" not in line


async def test_newsalert_run_with_an_unreachable_database_says_so_and_exits(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
    env.update(
        NEWSALERT_DATABASE_URL="postgresql://newsalert:s3cret@127.0.0.1:1/na",
        NEWSALERT_DATA_DIR=str(tmp_path / "data"),
        NEWSALERT_METRICS_PORT="0",
    )
    newsalert = Path(sys.executable).with_name("newsalert")
    process = await asyncio.create_subprocess_exec(
        str(newsalert),
        "run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 3, (out, err)
    errors = err.decode().splitlines()
    assert errors == [
        next(line for line in errors if "cannot reach PostgreSQL at postgresql://newsalert:***@")
    ], err.decode()
    assert "s3cret" not in (out + err).decode() and b"Traceback" not in err
    assert b"embedded broker" not in out  # nothing started for nothing


def add_with_a_generated_secret(tmp_path: Path, stdout: int) -> subprocess.Popen[bytes]:
    """`newsalert subscribers add` from a shell, its output into ``stdout`` (a pipe's end)."""
    config = tmp_path / "newsalert.yaml"
    config.write_text(
        yaml.safe_dump({"data_dir": str(tmp_path / "data"), "allow_private_networks": "true"})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSALERT_")}
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("newsalert")), "subscribers", "add", "desk"]
        + ["--topic", "5g-security", "--webhook", "http://127.0.0.1:9/hook"]
        + ["--config", str(config)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_subscribers_add_into_a_closed_pipe_exits_quietly_and_saves_no_unseen_secret(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -c0`: the reader is gone before the first line
    process = add_with_a_generated_secret(tmp_path, write_end)
    os.close(write_end)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 141, err.decode()
    assert err == b"", "no BrokenPipeError, no traceback, not a word"
    with closing(DeliveryStore(tmp_path / "data" / "newsalert.sqlite3")) as store:
        assert store.subscriber("desk") is None, "its secret never reached anyone"


def test_a_reader_that_takes_one_line_gets_the_generated_secret(tmp_path):
    process = add_with_a_generated_secret(tmp_path, subprocess.PIPE)
    assert process.stdout is not None
    first = process.stdout.readline().decode()  # `| head -n1`
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert first.startswith("webhook secret (shown once; verify signatures with it): whsec_")
    assert process.returncode in (0, 141), err.decode()  # 141 if it wrote after the close
    assert b"Traceback" not in err and b"Broken pipe" not in err
    with closing(DeliveryStore(tmp_path / "data" / "newsalert.sqlite3")) as store:
        saved = store.subscriber("desk")
    assert saved is not None and saved.webhook is not None and saved.webhook.secret is not None
    assert saved.webhook.secret.get_secret_value() == first.split("): ")[1].strip()
