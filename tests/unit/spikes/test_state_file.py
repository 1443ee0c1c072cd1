"""DATA_DIR/spike-state.json: the per-width state is saved, and a file from before several
widths still loads, migrated with a log line."""

from __future__ import annotations

import json
import logging

from streams.spikes.agent import SnapshotFile
from streams.spikes.detector import SpikeDetector, SpikeRule, StoryRef

HOUR = 3600.0
T0 = 1_700_000_000 // 3600 * 3600 + 1800


def story(n: int, published: float) -> StoryRef:
    return StoryRef(f"a{n}", f"s{n}", f"title {n}", None, "src", published)


def test_a_state_file_from_before_several_widths_loads_and_is_saved_per_width(tmp_path, caplog):
    rule = SpikeRule(min_history_buckets=4, baseline_buckets=4, allowed_lateness_seconds=0)
    old = SpikeDetector(SpikeRule(widths=(HOUR,), min_history_buckets=4))
    for n in range(10):
        old.observe("sanctions", story(n, T0 + n * HOUR), [])
    flat = old.snapshot()
    flat["keys"]["sanctions"] = {
        **flat["keys"]["sanctions"].pop("lanes")["3600"],
        "active": None,
        "cooldown_until": 0.0,
    }
    path = tmp_path / "spike-state.json"
    path.write_text(json.dumps(flat), encoding="utf-8")

    detector = SpikeDetector(rule)
    with caplog.at_level(logging.WARNING, logger="streams.spikes.detector"):
        assert SnapshotFile(path).load(detector)
    assert "spike state of sanctions is from before several widths" in caplog.text
    assert detector.baseline("sanctions", HOUR) == old.baseline("sanctions")

    detector.observe("sanctions", story(99, T0 + 11 * HOUR), [])
    SnapshotFile(path).save(detector)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["version"] == 2
    assert set(saved["keys"]["sanctions"]["lanes"]) == {"3600", "86400"}
    again = SpikeDetector(rule)
    caplog.clear()
    assert SnapshotFile(path).load(again)
    assert "from before several widths" not in caplog.text
    assert again.snapshot() == detector.snapshot()
