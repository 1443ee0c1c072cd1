"""Every agent of the running app has one actor: with ``concurrency > 1`` Faust can commit an
offset past a record another actor is still processing (faust-streaming issue 606)."""

from __future__ import annotations

from alerts import agent as alert_agent
from newsalert.settings import load_settings
from streams.app import create_app


async def test_every_agent_the_service_runs_has_concurrency_one(tmp_path):
    app = create_app(load_settings(None, data_dir=tmp_path), "kafka://127.0.0.1:1")
    alert_agent.register(app, app.spikes_topic, sink=None)  # as newsalert/service.py does
    concurrency = {name: agent.concurrency for name, agent in app.agents.items()}
    assert concurrency == {
        "process-articles": 1,
        "assign-stories": 1,
        "detect-spikes": 1,
        "alert": 1,
    }
