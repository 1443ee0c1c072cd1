from pathlib import Path

from newsalert.settings import load_settings

EXAMPLE = Path(__file__).parents[3] / "deploy" / "newsalert.example.yaml"


def test_example_config_loads():
    settings = load_settings(EXAMPLE)
    assert [f.name for f in settings.feeds] == ["guardian-tech", "bbc-tech"]
    assert settings.subscriptions[0].webhook.secret.get_secret_value().startswith("whsec_")
    assert settings.spike.min_count == 5
