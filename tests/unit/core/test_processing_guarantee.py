"""processing_guarantee: exactly_once is refused before anything starts where it cannot hold,
never quietly run as at_least_once."""

from __future__ import annotations

import pytest

from newsalert.preflight import check_settings
from newsalert.settings import ConfigError, load_settings


async def test_exactly_once_on_the_embedded_broker_is_refused(tmp_path):
    settings = load_settings(None, data_dir=tmp_path, processing_guarantee="exactly_once")
    with pytest.raises(ConfigError) as refused:
        await check_settings(settings)
    assert str(refused.value).splitlines()[1] == (
        "  settings: processing_guarantee: exactly_once needs Apache Kafka (transactions); the "
        "embedded broker has none: set broker: kafka://HOST:PORT, or processing_guarantee: "
        "at_least_once"
    )


async def test_exactly_once_over_several_partitions_is_refused(tmp_path):
    settings = load_settings(
        None,
        data_dir=tmp_path,
        broker="kafka://127.0.0.1:9092",
        partitions=2,
        processing_guarantee="exactly_once",
    )
    with pytest.raises(ConfigError, match="exactly_once needs partitions: 1 \\(not 2\\)"):
        await check_settings(settings)


@pytest.mark.parametrize(
    ("guarantee", "broker"),
    [("exactly_once", "kafka://127.0.0.1:9092"), ("at_least_once", None)],
)
async def test_a_guarantee_the_broker_can_give_passes(tmp_path, guarantee, broker):
    settings = load_settings(None, data_dir=tmp_path, broker=broker, processing_guarantee=guarantee)
    await check_settings(settings)
    assert settings.processing_guarantee == guarantee


def test_at_least_once_is_the_default(tmp_path):
    assert load_settings(None, data_dir=tmp_path).processing_guarantee == "at_least_once"
