"""`spike.sensitivity`: one word for the parameters that decide how much of a rise alerts."""

from __future__ import annotations

import pytest

from newsalert.settings import SENSITIVITY, SpikeConfig
from streams.spikes.detector import SpikeRule

SENSITIVE = ("min_count", "ratio", "z_threshold", "max_p_value")


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_each_level_sets_its_documented_parameters(level):
    params = SpikeConfig(sensitivity=level).base_params()
    assert {name: params[name] for name in SENSITIVE} == SENSITIVITY[level]
    assert "sensitivity" not in params
    SpikeRule(**params)  # the detector takes them as they are


def test_levels_are_ordered_from_strict_to_permissive():
    low, medium, high = (SENSITIVITY[level] for level in ("low", "medium", "high"))
    for name in ("min_count", "ratio", "z_threshold", "max_p_value"):
        strict_first = [low[name], medium[name], high[name]]
        if name == "max_p_value":
            assert strict_first == sorted(strict_first)
        else:
            assert strict_first == sorted(strict_first, reverse=True)


def test_the_default_is_medium_and_matches_the_detectors_own_defaults():
    params = SpikeConfig().base_params()
    assert {name: params[name] for name in SENSITIVE} == SENSITIVITY["medium"]
    rule = SpikeRule()
    assert {name: getattr(rule, name) for name in SENSITIVE} == SENSITIVITY["medium"]
    assert rule.widths == (3600.0, 86400.0) and rule.min_count == 3
    assert rule.count_by == "stories"


def test_a_topic_overrides_the_sensitivity_and_an_explicit_parameter_wins():
    config = SpikeConfig(
        sensitivity="low",
        topics={"sanctions": {"sensitivity": "high"}, "vendor-bans": {"min_count": 4}},
    )
    assert config.params_for("sanctions")["max_p_value"] == SENSITIVITY["high"]["max_p_value"]
    bans = config.params_for("vendor-bans")
    assert bans["min_count"] == 4 and bans["max_p_value"] == SENSITIVITY["low"]["max_p_value"]
    assert config.params_for("5g-security")["ratio"] == SENSITIVITY["low"]["ratio"]


def test_an_explicit_top_level_parameter_wins_over_the_top_level_sensitivity():
    config = SpikeConfig(sensitivity="high", min_count=6)
    assert config.base_params()["min_count"] == 6
    assert config.base_params()["ratio"] == SENSITIVITY["high"]["ratio"]
    # ...but a topic's own sensitivity is more specific than the defaults' explicit values.
    topic = SpikeConfig(min_count=6, topics={"t": {"sensitivity": "medium"}}).params_for("t")
    assert topic["min_count"] == SENSITIVITY["medium"]["min_count"]


def test_the_deprecated_bucket_seconds_means_one_width():
    params = SpikeConfig(bucket_seconds=86400).base_params()
    assert SpikeRule(**params).bucket_widths == (86400.0,)
    assert SpikeRule(**SpikeConfig().base_params()).bucket_widths == (3600.0, 86400.0)


def test_an_unknown_level_is_refused():
    with pytest.raises(ValueError, match="sensitivity"):
        SpikeConfig(sensitivity="extreme")
    with pytest.raises(ValueError, match="spike override 't'"):
        SpikeConfig(topics={"t": {"sensitivity": "extreme"}})
