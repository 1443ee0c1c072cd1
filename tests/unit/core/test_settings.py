"""Settings: file < environment < command line, and errors that name file, key and reason."""

import pytest

from newsalert.settings import ConfigError, load_settings


def write(tmp_path, text):
    path = tmp_path / "newsalert.yaml"
    path.write_text(text)
    return path


def test_environment_overrides_file_and_cli_overrides_environment(tmp_path, monkeypatch):
    path = write(tmp_path, "metrics_port: 1111\nbroker: kafka://file:9092\n")
    monkeypatch.setenv("NEWSALERT_METRICS_PORT", "2222")
    settings = load_settings(path)
    assert settings.metrics_port == 2222
    assert settings.broker == "kafka://file:9092"
    assert load_settings(path, metrics_port=3333).metrics_port == 3333


def test_nested_setting_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSALERT_SPIKE__MIN_COUNT", "9")
    assert load_settings(None).spike.min_count == 9


def test_invalid_file_names_file_key_and_reason(tmp_path):
    path = write(
        tmp_path,
        "subscriptions:\n  - name: desk\n    topics: [5g-security]\n"
        "    webhook: {url: 'ftp://x', secret: whsec_abc}\nmetrics_portt: 1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert f"{path}: subscriptions.0.webhook.url" in message and "http" in message
    assert f"{path}: metrics_portt: unknown setting" in message


def test_invalid_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("NEWSALERT_METRICS_PORT", "eighty")
    with pytest.raises(ConfigError, match="environment NEWSALERT_METRICS_PORT: metrics_port"):
        load_settings(None)


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "feeds:\n  - url: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML"):
        load_settings(path)


def test_subscription_without_channel_is_refused(tmp_path):
    path = write(tmp_path, "subscriptions:\n  - name: desk\n    topics: [sanctions]\n")
    with pytest.raises(ConfigError, match="at least one channel"):
        load_settings(path)


def test_broker_must_be_a_kafka_url():
    with pytest.raises(ConfigError, match="kafka://HOST:PORT, or be local-kafka"):
        load_settings(None, broker="localhost:9092")


def test_broker_local_kafka_is_taken_from_the_file_and_the_environment(tmp_path, monkeypatch):
    assert load_settings(write(tmp_path, "broker: local-kafka\n")).broker == "local-kafka"
    monkeypatch.setenv("NEWSALERT_BROKER", "local-kafka")
    assert load_settings(None).broker == "local-kafka"
    with pytest.raises(ConfigError, match="local-kafka"):
        load_settings(None, broker="local_kafka")


@pytest.mark.parametrize(
    "url",
    [
        "mysql://localhost/na",
        "postgresql://",
        "postgresql://u:p w@[::1/db",
        "postgresql://h:notaport/db",
    ],
)
def test_database_url_must_be_a_postgres_url(tmp_path, url):
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL"):
        load_settings(None, data_dir=tmp_path, database_url=url)


def test_state_lives_in_postgres_when_database_url_is_set(tmp_path):
    url = "postgresql://na:secret@127.0.0.1:5432/na"
    assert load_settings(None, data_dir=tmp_path, database_url=url).state_database == url
    assert load_settings(None, data_dir=tmp_path).state_database == tmp_path / "newsalert.sqlite3"


@pytest.mark.parametrize(
    "written, meant", [("true", "true"), ("false", "false"), ('"true"', "true")]
)
def test_allow_private_networks_takes_a_yaml_boolean(tmp_path, written, meant):
    path = write(tmp_path, f"allow_private_networks: {written}\n")
    assert load_settings(path).allow_private_networks == meant
