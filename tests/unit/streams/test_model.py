"""The topic model: `newsalert train` and `newsalert eval --model` on a small labelled fixture,
the pure-Python prediction, how it combines with the rules, and the model file's checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from newsalert.cli import main
from newsalert.settings import load_settings
from streams.classify.model import (
    ModelError,
    TopicModel,
    TopicWeights,
    add_model_topics,
    load_model,
    predict,
    save_model,
    words,
)
from streams.classify.taxonomy import load_taxonomy
from streams.pipeline import ArticleProcessor

SANCTION_LIKE = [
    "Treasury freezes assets of shipping firms over oil deals",
    "Treasury penalises banks in oil deals scheme",
    "Treasury targets oil traders with asset freezes",
    "Treasury adds oil shipping firms to its list",
    "New Treasury measures hit oil exports of the regime",
    "Treasury action against oil tanker owners",
]
OTHER = [
    "Local bakery wins bread award",
    "Football club signs new striker",
    "Rain expected across the region this weekend",
    "New museum opens downtown",
    "Bakery chain expands to three towns",
    "Weekend football results and highlights",
]


@pytest.fixture(autouse=True)
def no_environment_config(monkeypatch):
    for name in list(os.environ):
        if name.startswith("NEWSALERT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """Twelve tuning rows (the rules find none of the sanctions-like ones: no 'sanction' word)
    and four report rows."""
    rows = [
        {"id": f"s{n}", "title": t, "text": "", "labels": ["sanctions"], "split": "tuning"}
        for n, t in enumerate(SANCTION_LIKE)
    ] + [
        {"id": f"o{n}", "title": t, "text": "", "labels": [], "split": "tuning"}
        for n, t in enumerate(OTHER)
    ]
    rows += [
        {"id": "r1", "title": "Treasury oil measures", "text": "", "labels": ["sanctions"]},
        {
            "id": "r2",
            "title": "U.S. imposes sanctions on Iran",
            "text": "",
            "labels": ["sanctions"],
        },
        {"id": "r3", "title": "Bakery football weekend", "text": "", "labels": []},
        {"id": "r4", "title": "Museum opens", "text": "", "labels": []},
    ]
    for row in rows[-4:]:
        row["split"] = "report"
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_a_versioned_model_from_the_tuning_part(capsys, labelled, tmp_path):
    output = tmp_path / "model.json"
    code, out, err = run_cli(
        capsys, "train", str(labelled), "-o", str(output), "--topic", "sanctions", "--c", "10"
    )
    assert code == 0, err
    assert "12 articles" in out  # the tuning part only
    data = json.loads(output.read_text())
    assert data["format"] == "newsalert-topic-model" and data["version"] == 1
    assert len(data["trained_on"]) == 64  # sha256 of the rows read
    sanctions = data["topics"]["sanctions"]
    assert set(sanctions) == {"bias", "threshold", "weights"}
    assert sanctions["weights"]["treasury"] > 0 > sanctions["weights"].get("bakery", -1)
    model = load_model(output)
    assert predict(model, "Treasury oil traders hit", "")["sanctions"].probability >= 0.8
    assert predict(model, "Bakery opens downtown", "") == {}


def test_eval_prints_rules_alone_and_with_the_model_side_by_side(capsys, labelled, tmp_path):
    output = tmp_path / "model.json"
    assert run_cli(capsys, "train", str(labelled), "-o", str(output), "--c", "10",
                   "--topic", "sanctions")[0] == 0  # fmt: skip
    code, out, err = run_cli(capsys, "eval", str(labelled), "--model", str(output), "--json")
    assert code == 0, err
    result = json.loads(out)
    # Report part: r2 by the rules; r1 ("Treasury oil measures") only with the model.
    assert result["rules"]["sanctions"]["recall"] == 0.5
    assert result["with_model"]["sanctions"]["recall"] == 1.0
    assert result["with_model"]["sanctions"]["support"] == 2
    code, out, err = run_cli(capsys, "eval", str(labelled), "--model", str(output))
    assert code == 0, err
    assert "with model" in out and "(report part); model" in out


def test_show_errors_is_refused_on_the_report_part(capsys, labelled):
    code, _, err = run_cli(capsys, "eval", str(labelled), "--show-errors")
    assert code == 2 and "use --split tuning" in err
    code, out, err = run_cli(capsys, "eval", str(labelled), "--split", "tuning", "--show-errors")
    assert code == 0 and "sanctions missed s5" in out


def tiny_model(threshold: float = 0.8) -> TopicModel:
    weights = {"treasury": 2.0, "oil": 1.5, "bakery": -3.0, "huawei": 0.5}
    return TopicModel({"sanctions": TopicWeights(-1.0, threshold, weights)})


def test_the_model_only_adds_topics_the_rules_did_not_give_and_says_why():
    rules = {"sanctions": {"score": 4.0, "terms": [{"term": "sanction*"}]}}
    assert add_model_topics(dict(rules), tiny_model(), "Treasury oil", "") == rules
    added = add_model_topics({}, tiny_model(), "Treasury oil news", "huawei")
    assert added["sanctions"]["reason"] == "model"
    # The words that weighed most, heaviest first, as terms alerts can show.
    assert [t["term"] for t in added["sanctions"]["terms"]] == [
        "model:treasury",
        "model:oil",
        "model:huawei",
    ]
    assert added["sanctions"]["score"] == pytest.approx(1 / (1 + 2.718281828**-3.0), abs=1e-3)
    assert add_model_topics({}, tiny_model(), "Treasury bakery", "") == {}  # below threshold
    assert add_model_topics({}, None, "Treasury oil", "") == {}


def test_the_threshold_is_a_probability():
    assert predict(tiny_model(0.95), "Treasury oil", "") == {}  # p = 0.924
    assert set(predict(tiny_model(0.9), "Treasury oil", "")) == {"sanctions"}


def test_features_are_distinct_lower_case_words_of_title_and_text_start():
    assert words("U.S. Treasury", "oil_price, OIL") == {"u", "s", "treasury", "oil", "price"}
    assert "late" not in words("t", "x " * 2000 + "late")


def test_the_pipeline_applies_a_configured_model():
    processor = ArticleProcessor(load_taxonomy(None), model=tiny_model())
    _, _, _, topics = processor.classified({"title": "Treasury oil measures", "body": ""})
    assert topics["sanctions"]["reason"] == "model"
    _, _, _, topics = ArticleProcessor(load_taxonomy(None)).classified(
        {"title": "Treasury oil measures", "body": ""}
    )
    assert "sanctions" not in topics


def test_a_model_file_round_trips_and_a_wrong_version_is_refused(tmp_path):
    path = tmp_path / "m.json"
    save_model(tiny_model(), path)
    assert load_model(path).topics["sanctions"].weights["oil"] == 1.5
    data = json.loads(path.read_text())
    data["version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="version 99.*retrain"):
        load_model(path)
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "absent.json")


def test_the_model_setting_is_relative_to_the_config_file(tmp_path):
    config = tmp_path / "conf" / "newsalert.yaml"
    config.parent.mkdir()
    config.write_text("model: models/topics.json\n")
    settings = load_settings(config)
    assert settings.model == tmp_path / "conf" / "models" / "topics.json"
    assert load_settings(None).model is None
    config.write_text("model: default\n")
    assert str(load_settings(config).model) == "default"


def test_the_shipped_model_is_named_default_and_trained_on_the_tuning_part():
    model = load_model("default")
    assert set(model.topics) == {"5g-security", "sanctions", "vendor-bans"}
    assert all(topic.threshold == 0.8 for topic in model.topics.values())
    assert len(model.trained_on) == 64


def test_a_bad_model_setting_fails_at_start_naming_the_file(capsys, labelled, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, _, err = run_cli(capsys, "eval", str(labelled), "--model", str(bad))
    assert code == 2 and f"{bad}: not a newsalert topic model" in err


def test_classify_shows_a_topic_the_model_added_with_its_words(capsys, tmp_path):
    article = tmp_path / "a.json"
    article.write_text(json.dumps({"title": "Treasury oil measures", "text": ""}))
    model = tmp_path / "m.json"
    save_model(tiny_model(), model)
    config = tmp_path / "newsalert.yaml"
    config.write_text(f"model: {model}\n")
    code, out, err = run_cli(capsys, "classify", str(article), "--config", str(config))
    assert code == 0, err
    assert "sanctions  probability 0.924 (model; top words: treasury, oil)" in out
    code, out, err = run_cli(capsys, "classify", str(article), "--json", "--config", str(config))
    assert json.loads(out)["topics"]["sanctions"]["reason"] == "model"


async def test_run_refuses_an_unreadable_model_or_one_with_unknown_topics(tmp_path):
    from newsalert.preflight import check_settings
    from newsalert.settings import ConfigError

    settings = load_settings(None, data_dir=tmp_path, model=tmp_path / "absent.json")
    with pytest.raises(ConfigError, match="model: .*absent.json: no such model file"):
        await check_settings(settings)
    stray = TopicModel({"weather": TopicWeights(0.0, 0.8, {"rain": 1.0})})
    save_model(stray, tmp_path / "stray.json")
    settings = load_settings(None, data_dir=tmp_path, model=tmp_path / "stray.json")
    with pytest.raises(ConfigError, match="topic 'weather' is not in the taxonomy"):
        await check_settings(settings)
    assert await check_settings(load_settings(None, data_dir=tmp_path, model="default"))
