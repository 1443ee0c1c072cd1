"""The settings table in deploy/README.md is `newsalert config --table`'s output, and that
table describes every setting by the environment variable the service really reads."""

from __future__ import annotations

import re

from newsalert.cli import main
from newsalert.cli.config import markdown_table, secret_env_names, setting_rows
from newsalert.settings import Settings
from tests.deploy.checks import DEPLOY, assert_variables_read, settings_from

BEGIN = "<!-- settings table: `newsalert config --table` writes it -->"
END = "<!-- end of settings table -->"


def test_readme_table_is_the_commands_output():
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    found = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), readme, re.S)
    assert found, f"deploy/README.md has no {BEGIN} ... {END} block"
    assert found[1] == markdown_table(), (
        "deploy/README.md's settings table is out of date: replace it with the output of "
        "`newsalert config --table`"
    )


def test_config_table_command_prints_the_table(capsys):
    assert main(["config", "--table"]) == 0
    assert capsys.readouterr().out == markdown_table()


def test_every_setting_has_a_meaning():
    assert [row.name for row in setting_rows() if not row.meaning] == []


def test_every_field_is_a_row_nested_ones_with_double_underscores():
    names = {row.name: row.env for row in setting_rows()}
    top_level = set(Settings.model_fields) - {"smtp", "spike"}
    assert top_level | {
        f"smtp.{n}" for n in Settings.model_fields["smtp"].annotation.model_fields
    } <= set(names)
    assert names["smtp.password"] == "NEWSALERT_SMTP__PASSWORD"
    assert names["spike.min_count"] == "NEWSALERT_SPIKE__MIN_COUNT"


def test_secrets_are_marked_and_shown_without_a_default():
    assert secret_env_names() == {
        "NEWSALERT_API_TOKEN",
        "NEWSALERT_DATABASE_URL",  # the password is in the URL
        "NEWSALERT_SMTP__PASSWORD",
        "NEWSALERT_SUBSCRIPTIONS",  # webhook secrets
    }
    table = markdown_table()
    for name in secret_env_names():
        (line,) = [line for line in table.splitlines() if f"`{name}`" in line]
        assert "| (secret) |" in line


def test_the_variables_of_each_shape_are_read(monkeypatch):
    env = {
        "NEWSALERT_METRICS_PORT": "9500",
        "NEWSALERT_SMTP__PASSWORD": "s3cret",
        "NEWSALERT_SPIKE__MIN_COUNT": "7",
        "NEWSALERT_DELIVERY_RETRY_SCHEDULE_SECONDS": "[1, 2]",
        "NEWSALERT_SPIKE__ENTITIES": '["huawei"]',
    }
    assert_variables_read(env, settings_from(env, None, monkeypatch))
