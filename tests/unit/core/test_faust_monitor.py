"""The app's Faust Monitor skips its per-event statistics but keeps what Faust reads back:
its rebalance bookkeeping (no "Missing sensor state" warning at each rebalance) and when each
partition's stream last took an event (Faust's stalled-stream check)."""

from __future__ import annotations

import logging

from faust.types import TP

from newsalert.settings import load_settings
from streams.app import QuietMonitor, create_app


async def test_rebalances_and_the_stall_check_still_have_what_they_read(tmp_path, caplog):
    app = create_app(load_settings(None, data_dir=tmp_path), "kafka://127.0.0.1:1")
    assert isinstance(app.monitor, QuietMonitor)
    app.sensors.add(app.monitor)  # as Faust does when the app starts
    with caplog.at_level(logging.WARNING):
        app.on_rebalance_start()
        app.on_rebalance_return()
        app.on_rebalance_end()
    assert "Missing sensor state" not in caplog.text
    tp = TP("newsalert.articles.raw", 0)
    assert app.sensors.on_stream_event_in(tp, 7, stream=None, event=None) is not None
    assert tp in app.monitor.stream_inbound_time
    assert app.monitor.events_total == 0  # the statistics are not kept
