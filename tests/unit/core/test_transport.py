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
    assert app.conf.broker_session_timeout == settings.broker_session_timeout_seconds
