"""Evaluation of a taxonomy against labelled articles: the metrics, the labelled-file reader,
and the default taxonomy's measured accuracy on the development set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.classify.evaluate import (
    LabelledArticle,
    LabelledSetError,
    Outcome,
    TopicScore,
    classify_article,
    evaluate,
    labelled_topics,
    read_labelled,
    score,
)
from streams.classify.model import load_model
from streams.classify.taxonomy import build_taxonomy, load_taxonomy
from streams.pipeline import ArticleProcessor

DEVSET = Path(__file__).parents[2] / "data" / "devset.jsonl"
CORE = ("5g-security", "sanctions", "vendor-bans")
SOURCE_FIELDS = {"id", "title", "text", "url", "source", "published", "dataset", "cluster"}
# The default taxonomy's F1 by the rules alone on the report part of tests/data/devset.jsonl
# (rows no rule was written against, DEVSET.md) must not fall below these: just under the
# measured figures.
REPORT_F1_FLOOR = {"5g-security": 0.84, "sanctions": 0.92, "vendor-bans": 0.76}
# The same with the shipped topic model beside the rules (`model: default`).
REPORT_F1_FLOOR_WITH_MODEL = {"5g-security": 0.87, "sanctions": 0.91, "vendor-bans": 0.78}


@pytest.fixture(scope="module")
def default():
    return load_taxonomy()


def outcome(gold: set[str], predicted: set[str]) -> Outcome:
    article = LabelledArticle("a", "title", "", frozenset(gold))
    return Outcome(article, frozenset(predicted))


def test_precision_recall_f1_and_support_on_a_hand_made_set():
    outcomes = [
        outcome({"a"}, {"a"}),  # a: tp
        outcome({"a"}, {"a", "b"}),  # a: tp, b: fp
        outcome({"a", "b"}, set()),  # a: fn, b: fn
        outcome(set(), {"a"}),  # a: fp
        outcome(set(), set()),
    ]
    scores = score(outcomes, ["a", "b"])
    a, b = scores["a"], scores["b"]
    assert (a.true_positives, a.false_positives, a.false_negatives) == (2, 1, 1)
    assert a.support == 3
    assert a.precision == pytest.approx(2 / 3)
    assert a.recall == pytest.approx(2 / 3)
    assert a.f1 == pytest.approx(2 / 3)
    assert (b.support, b.precision, b.recall, b.f1) == (1, 0.0, 0.0, 0.0)


def test_f1_is_the_harmonic_mean_of_precision_and_recall():
    s = TopicScore(true_positives=3, false_positives=1, false_negatives=5)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(3 / 8)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.375 / (0.75 + 0.375))
    assert s.as_dict() == {"precision": 0.75, "recall": 0.375, "f1": 0.5, "support": 8}


def test_no_predictions_and_no_support_score_zero_not_an_error():
    assert TopicScore(0, 0, 0).as_dict() == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def test_evaluate_classifies_each_labelled_article():
    taxonomy = build_taxonomy(
        {"topics": {"fruit": {"rules": ["apple OR pear"]}, "tools": {"rules": ["hammer"]}}}
    )
    articles = [
        LabelledArticle("1", "An apple a day", "", frozenset({"fruit"})),
        LabelledArticle("2", "A pear and a hammer", "", frozenset({"fruit"})),
        LabelledArticle("3", "Nothing here", "", frozenset({"fruit"})),
    ]
    scores = evaluate(articles, taxonomy)
    assert list(scores) == ["fruit"]  # nobody labelled 'tools': it is not scored
    assert scores["fruit"].as_dict() == {
        "precision": 1.0,
        "recall": pytest.approx(2 / 3, abs=1e-4),
        "f1": 0.8,
        "support": 3,
    }
    assert list(evaluate(articles, taxonomy, topics=["tools"])) == ["tools"]


def test_cleaning_and_classification_match_the_pipeline(default):
    title = "Germany weighs <b>Huawei</b> ban from 5G networks"
    body = (
        "<p>Berlin is considering excluding Huawei from its 5G networks over espionage fears.</p>"
        "<p>Related news</p><p>The security services warned of spying risks.</p>"
    )
    processed = ArticleProcessor(default).process(
        {"article_id": "x", "title": title, "body": body, "published": 0.0}, now=0.0
    )
    clean_title, clean_body, language, topics = classify_article(title, body, default)
    assert processed.article is not None
    assert (clean_title, clean_body, language) == (
        processed.article["title"],
        processed.article["text"],
        processed.article["language"],
    )
    assert {name: m.as_dict() for name, m in topics.items()} == processed.article["topics"]
    assert {"5g-security", "vendor-bans"} <= set(topics)


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"id": "g", "title": "Huawei banned", "text": "", "labels": ["vendor-bans"]})


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"title": "x", "labels": [', "line 2: invalid JSON"),
        ('["not", "an", "object"]', "line 2: expected a JSON object"),
        ('{"title": "x"}', "line 2: 'labels' must be a list of topic names"),
        ('{"title": "x", "labels": "sanctions"}', "line 2: 'labels' must be a list"),
        ('{"text": "x", "labels": []}', "line 2: 'title' must be a string"),
        ('{"title": "x", "labels": ["sanction"]}', "line 2: unknown topic 'sanction'"),
    ],
)
def test_bad_lines_are_refused_with_line_number_and_reason(tmp_path, default, bad_line, reason):
    path = write_lines(tmp_path, GOOD, bad_line)
    with pytest.raises(LabelledSetError) as error:
        read_labelled(path, default.topics)
    assert str(error.value).startswith(f"{path}: {reason}")


def test_missing_and_empty_files_are_refused(tmp_path, default):
    with pytest.raises(LabelledSetError, match="no such file"):
        read_labelled(tmp_path / "absent.jsonl", default.topics)
    with pytest.raises(LabelledSetError, match="no labelled articles"):
        read_labelled(write_lines(tmp_path, ""), default.topics)


def test_split_selects_a_part_and_an_unknown_split_is_refused(tmp_path, default):
    rows = [
        json.dumps({"id": "t", "title": "t", "labels": [], "split": "tuning"}),
        json.dumps({"id": "r", "title": "r", "labels": [], "split": "report"}),
    ]
    path = write_lines(tmp_path, *rows)
    assert [a.article_id for a in read_labelled(path, default.topics, split="report")] == ["r"]
    assert [a.split for a in read_labelled(path, default.topics)] == ["tuning", "report"]
    bad = json.dumps({"id": "x", "title": "x", "labels": [], "split": "test"})
    with pytest.raises(LabelledSetError, match="line 1: 'split' must be one of tuning, report"):
        read_labelled(write_lines(tmp_path, bad), default.topics)


def test_blank_lines_are_skipped_and_language_is_kept(tmp_path, default):
    row = json.dumps({"id": "1", "title": "t", "text": None, "labels": [], "language": "de"})
    articles = read_labelled(write_lines(tmp_path, GOOD, "", row), default.topics)
    assert [a.article_id for a in articles] == ["g", "1"]
    assert articles[1].language == "de" and articles[1].text == ""


# The development set and the default taxonomy's accuracy on it.


@pytest.fixture(scope="module")
def devset(default):
    return read_labelled(DEVSET, default.topics)


@pytest.fixture(scope="module")
def report_part(default):
    return read_labelled(DEVSET, default.topics, split="report")


def test_devset_has_enough_real_labelled_articles(devset):
    assert len(devset) >= 1000
    rows = [json.loads(line) for line in DEVSET.read_text(encoding="utf-8").splitlines()]
    assert all(SOURCE_FIELDS <= set(row) for row in rows)
    assert len({row["id"] for row in rows}) == len(rows)
    for topic in CORE:
        positives = sum(topic in article.labels for article in devset)
        assert positives >= 50, topic
    assert sum(not article.labels for article in devset) >= 100


def test_devset_is_split_once_into_tuning_and_a_report_part_of_new_rows_only(devset):
    parts = [article.split for article in devset]
    assert set(parts) == {"tuning", "report"}
    # DEVSET.md: 759 tuning rows after issue 17's split, plus 453 added in round three.
    assert (parts.count("tuning"), parts.count("report")) == (1212, 286)
    # The 569 rows tuned on before the split come first and are all in the tuning part.
    assert set(parts[:569]) == {"tuning"}
    for topic in CORE:
        assert sum(topic in a.labels for a in devset if a.split == "report") >= 40, topic


def test_devset_labels_the_core_topics(devset, default):
    assert set(CORE) <= set(labelled_topics(devset, default))


def test_default_taxonomy_reaches_the_f1_floor_on_the_report_part(report_part, default):
    scores = evaluate(report_part, default, topics=CORE)
    low = {name: round(s.f1, 3) for name, s in scores.items() if s.f1 < REPORT_F1_FLOOR[name]}
    assert not low, f"F1 below {REPORT_F1_FLOOR}: {low}"


def test_rules_with_the_shipped_model_reach_their_floor_on_the_report_part(report_part, default):
    scores = evaluate(report_part, default, topics=CORE, model=load_model("default"))
    floor = REPORT_F1_FLOOR_WITH_MODEL
    low = {name: round(s.f1, 3) for name, s in scores.items() if s.f1 < floor[name]}
    assert not low, f"F1 below {floor}: {low}"


# Headlines written for these tests (not in the devset), one per rule added while tuning, so a
# rule that stops generalising fails here and not only in the aggregate F1.
@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Poland arrests Huawei executive on suspicion of spying", {"5g-security"}),
        ("Canadian court grants bail to Huawei executive", {"sanctions"}),
        ("WTO lets EU impose trade sanctions on U.S. goods", set()),
        ("TIM excludes Huawei from 5G core tender", {"5g-security"}),
        ("Italy decides to exclude Huawei from 5G core network", {"5g-security", "vendor-bans"}),
        ("Trump administration targets WeChat with new order", {"vendor-bans"}),
        (
            "Japan considers decision on Huawei gear after U.S. pressure",
            {"5g-security", "vendor-bans"},
        ),
        ("ZTE agrees to pay U.S. penalty and hire compliance officers", {"sanctions"}),
        ("Huawei unveils new laptop", set()),
        # Issue 17, from the tuning part's misses.
        ("Washington cautions Italy over Huawei", {"5g-security", "vendor-bans"}),
        ("Canada PM says he played no role in Huawei executive's arrest", {"sanctions"}),
        ("Washington bans sales to Chinese telecom equipment maker ZTE", {"sanctions"}),
        ("Report ties ZTE to front companies in Syria", {"sanctions"}),
        ("Regulator backs tougher rules on 5G suppliers", {"5g-security"}),
        ("Vodafone and BT set to drop Huawei from their core", {"5g-security"}),
        ("ZTE sues the FCC over its designation", {"5g-security", "vendor-bans"}),
        ("Intelligence agency rejects operator's Huawei 5G plan", {"5g-security", "vendor-bans"}),
        ("TikTok bans political ads", set()),
        ("ZTE posts a loss for the year because of the U.S. penalty", {"sanctions"}),
        # Issue 17, from the rules' output on unlabelled articles of ../shared/data/articles.
        ("Huawei says it expects no new U.S. sanctions: press", {"sanctions"}),
        ("Cambridge college stops taking research grants from Huawei", set()),
        ("Huawei's new phone blocked from using Google apps", {"sanctions"}),
        ("Record label on master tapes fire", set()),
        ("How false claims about 5G health risks spread", set()),
        ("Phone masts set on fire after 5G conspiracy theories", {"5g-security"}),
        ("Operators drop Huawei phones from their 5G launch", set()),
        ("Huawei fires sales manager accused by Poland of espionage", {"5g-security"}),
        ("Minister faces rebellion after allowing Huawei 5G role", {"5g-security", "vendor-bans"}),
        ("China calls for end to case of Huawei executive arrested in Canada", {"sanctions"}),
        ("U.S. firms may restart Huawei sales within weeks", {"sanctions"}),
        ("New U.S. restrictions on Europe: what they mean for travelers", set()),
        ("Macron sets conditions for Huawei's participation in 5G", {"5g-security", "vendor-bans"}),
        ("Japan to halt buying Huawei equipment for ministries", {"5g-security", "vendor-bans"}),
        ("Pompeo: no partnership with countries that use Huawei", {"5g-security", "vendor-bans"}),
        ("UK says Huawei role is under review", {"5g-security", "vendor-bans"}),
        ("Regulator deems ZTE a national security risk", {"5g-security"}),
        ("Senate panel faults oversight of Chinese telecom carriers", {"5g-security"}),
        ("White House weighs cutting Huawei out of the banking system", {"sanctions"}),
        (
            "Huawei fights to keep subsidies flowing to rural carriers",
            {"5g-security", "vendor-bans"},
        ),
        # Round three, one per phrasing family added from the enlarged tuning part's errors.
        ("Senators urge White House to stay tough on China's ZTE", {"sanctions"}),
        ("Chip shipments to Iran fall after new export curbs", {"sanctions"}),
        ("Commerce Department restricts exports to Chinese memory maker", {"sanctions"}),
        ("India bans exports of onions to keep prices down", set()),
        ("Shares rise on Huawei licence extension", {"sanctions"}),
        ("Huawei CFO arrested at U.S. request, Chinese embassy protests", {"sanctions"}),
        ("Italy to allow limited Huawei gear in 5G networks", {"5g-security", "vendor-bans"}),
        (
            "Minister says Ottawa's 5G decision will come after the election",
            {"5g-security", "vendor-bans"},
        ),
        ("Regulator rejects Huawei's 5G equipment bid", {"5g-security", "vendor-bans"}),
        ("Telefonica reviews its Huawei ties", {"5g-security"}),
        ("Hackers spied on telecom operators in Asia", {"5g-security"}),
        ("Berlin officials raise alarm over Chinese 5G suppliers", {"5g-security"}),
        ("Agency opens national security review of WeChat", {"vendor-bans"}),
        ("Huawei denies spying after U.S. warning", {"5g-security"}),
    ],
)
def test_tuned_rules_on_new_headlines(default, title, expected):
    *_, topics = classify_article(title, "", default)
    assert set(topics) & set(CORE) == expected
