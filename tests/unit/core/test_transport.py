"""Faust's hard-coded 1.5 s fetch wait is replaced by the configured one."""

from newsalert.settings import load_settings
from streams.app import create_app


async def test_worker_consumer_uses_configured_fetch_wait(tmp_path):
    # aiokafka builds its consumer only inside a running event loop.
    settings = load_settings(None, data_dir=tmp_path, consumer_fetch_max_wait_ms=7)
    app = create_app(settings, "kafka://127.0.0.1:1")
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 7
    assert app.conf.broker_session_timeout == settings.session_timeout_seconds


def test_session_timeout_defaults_per_broker_kind_and_the_setting_wins(tmp_path):
    assert load_settings(None, data_dir=tmp_path).session_timeout_seconds == 4.0
    kafka = load_settings(None, data_dir=tmp_path, broker="kafka://127.0.0.1:9092")
    assert kafka.session_timeout_seconds == 10.0  # Apache Kafka refuses less than 6 s
    chosen = load_settings(None, broker="kafka://h:1", broker_session_timeout_seconds=7)
    assert chosen.session_timeout_seconds == 7


def test_faust_keeps_its_directory_under_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, data_dir=tmp_path / "state")
    app = create_app(settings, "kafka://127.0.0.1:1")
    assert app.conf.tabledir.is_relative_to(tmp_path / "state")
    assert not (tmp_path / "newsalert-data").exists()
