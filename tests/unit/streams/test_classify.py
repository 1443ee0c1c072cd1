"""Taxonomy loading, the query language, matching and the default taxonomy's core decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.classify.classifier import MatchedTerm, classify
from streams.classify.taxonomy import TaxonomyError, build_taxonomy, load_taxonomy
from streams.clean.text import clean_text

SEEDS = Path("/work/shared/data/seeds")
needs_seeds = pytest.mark.skipif(not SEEDS.exists(), reason="shared seed data not mounted")
CORE = {"5g-security", "sanctions", "vendor-bans"}


def taxonomy(*rules: str, aliases: dict | None = None, **topic_options):
    return build_taxonomy(
        {"aliases": aliases or {}, "topics": {"t": {"rules": list(rules), **topic_options}}}
    )


def topics(tax, title: str, text: str = "", language: str | None = None) -> set[str]:
    return set(classify(title, text, tax, language=language))


@pytest.fixture(scope="module")
def default():
    return load_taxonomy()


# --- query language ----------------------------------------------------------------------------


def test_phrase_matches_on_word_boundaries_case_insensitively():
    tax = taxonomy('"entity list"')
    assert topics(tax, "US adds firm to Entity List") == {"t"}
    assert topics(tax, "the nonentity listing") == set()


def test_bare_word_does_not_match_inside_another_word():
    tax = taxonomy("ban")
    assert topics(tax, "UK ban on Huawei") == {"t"}
    assert topics(tax, "urban banner bandwidth") == set()


def test_trailing_star_matches_word_endings():
    tax = taxonomy("ban*")
    assert topics(tax, "Huawei banned") == {"t"}
    assert topics(tax, "they are banning it") == {"t"}


def test_and_or_not_and_parentheses():
    tax = taxonomy("(huawei OR zte) AND ban NOT tennis")
    assert topics(tax, "ZTE ban") == {"t"}
    assert topics(tax, "Huawei news") == set()
    assert topics(tax, "Huawei ban tennis") == set()


def test_a_branch_that_holds_without_any_of_its_terms_is_not_skipped():
    # The classifier skips subtrees none of whose terms occurs, except those a NOT can satisfy.
    tax = taxonomy("huawei AND (ban OR NOT tennis)", "zte NEAR/3 (kit OR gear)")
    assert topics(tax, "Huawei news") == {"t"}
    assert topics(tax, "Huawei tennis") == set()
    assert topics(tax, "Huawei tennis ban") == {"t"}
    assert topics(tax, "ZTE sells kit") == {"t"}
    assert topics(tax, "ZTE sells phones") == set()


def test_adjacent_terms_are_anded():
    tax = taxonomy("huawei ban")
    assert topics(tax, "ban on huawei") == {"t"}
    assert topics(tax, "huawei phones") == set()


def test_near_counts_words_between_terms_in_either_order():
    tax = taxonomy('"huawei" NEAR/3 "5g"')
    assert topics(tax, "Huawei and its 5G kit") == {"t"}
    assert topics(tax, "5G kit from Huawei") == {"t"}
    assert topics(tax, "Huawei said on Monday that the 5G kit") == set()


def test_near_does_not_cross_paragraphs():
    tax = taxonomy('"huawei" NEAR/10 "5g"')
    assert topics(tax, "", "Huawei spoke.\n5G is fast.") == set()
    assert topics(tax, "", "Huawei spoke about 5G.") == {"t"}


def test_case_prefix_requires_case_as_written():
    tax = taxonomy("case:ZTE")
    assert topics(tax, "ZTE shares fall") == {"t"}
    assert topics(tax, "zte shares fall") == set()


def test_alias_expands_to_its_members():
    tax = taxonomy(
        "@vendors NEAR/2 ban*", aliases={"vendors": ["Huawei", "Hikvision", "China Mobile"]}
    )
    assert topics(tax, "US bans China Mobile") == {"t"}
    assert topics(tax, "Hikvision banned") == {"t"}
    assert topics(tax, "Apple banned") == set()


def test_field_scoping():
    tax = taxonomy('title:"huawei"')
    assert topics(tax, "Huawei news", "") == {"t"}
    assert topics(tax, "News", "Huawei said") == set()


def test_threshold_and_term_weights_and_title_counts_double():
    tax = taxonomy("huawei OR ban^2", threshold=3)
    assert topics(tax, "", "huawei") == set()  # 1
    assert topics(tax, "", "huawei ban") == {"t"}  # 1 + 2
    assert topics(tax, "huawei", "") == set()  # 2 in the title
    assert classify("huawei ban", "", tax)["t"].score == 6.0


def test_one_term_counts_at_most_three_times():
    tax = taxonomy("huawei", threshold=4)
    assert topics(tax, "", "huawei huawei huawei huawei huawei") == set()


def test_requires_other_topic():
    tax = build_taxonomy(
        {"topics": {"a": {"rules": ["huawei"]}, "b": {"rules": ["ban"], "requires": ["a"]}}}
    )
    assert topics(tax, "ban") == set()
    assert topics(tax, "huawei ban") == {"a", "b"}


def test_languages_limit_a_topic():
    tax = taxonomy("huawei", languages=["en"])
    assert topics(tax, "huawei", language="en") == {"t"}
    assert topics(tax, "huawei", language="de") == set()
    assert topics(tax, "huawei", language=None) == {"t"}


def test_exclude_vetoes_a_topic():
    tax = taxonomy("ban*", exclude=["tennis OR doping"])
    assert topics(tax, "Tennis player banned") == set()
    assert topics(tax, "Huawei banned") == {"t"}


def test_passing_mention_in_one_paragraph_of_a_long_article_does_not_count():
    tax = taxonomy("huawei NEAR/3 ban")
    body = "Passports.\nMore on passports.\nThe UK ban on Huawei was noted.\nVisas.\nEnd."
    assert topics(tax, "Hong Kong passports", body) == set()
    assert topics(tax, "Hong Kong passports", body + "\nA Huawei ban again.") == {"t"}
    assert topics(tax, "UK Huawei ban", body) == {"t"}


def test_matched_terms_carry_field_and_offsets():
    tax = taxonomy('"huawei" NEAR/5 ban*')
    match = classify("UK bans Huawei", "", tax)["t"]
    assert match.terms == [
        MatchedTerm("ban", "title", 3, 7),
        MatchedTerm("huawei", "title", 8, 14),
    ]
    assert match.as_dict() == {
        "score": 4.0,
        "terms": [
            {"term": "ban", "field": "title", "start": 3, "end": 7},
            {"term": "huawei", "field": "title", "start": 8, "end": 14},
        ],
    }


# --- invalid rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "position", "reason"),
    [
        ("(huawei OR zte", "position 0", "unclosed parenthesis"),
        ("huawei AND", "position 10", "query ends too early"),
        ("@nosuch NEAR/5 ban", "position 0", "unknown alias @nosuch"),
        ('huawei OR ""', "position 10", "empty phrase"),
        ("huawei )", "position 7", "unexpected ')'"),
        ("huawei NEAR/5 NOT ban", "position 7", "NEAR needs positive operands"),
    ],
)
def test_invalid_rule_names_topic_position_and_reason(rule, position, reason):
    with pytest.raises(TaxonomyError) as error:
        taxonomy(rule)
    message = str(error.value)
    assert "topic 't'" in message and "rules 0" in message
    assert position in message and reason in message


def test_invalid_topic_options_are_refused():
    with pytest.raises(TaxonomyError, match="threshold"):
        taxonomy("huawei", threshold=-1)
    with pytest.raises(TaxonomyError, match="unknown keys"):
        taxonomy("huawei", treshold=2)
    with pytest.raises(TaxonomyError, match="requires unknown topic"):
        taxonomy("huawei", requires=["nope"])
    with pytest.raises(TaxonomyError, match="cycle"):
        build_taxonomy(
            {
                "topics": {
                    "a": {"rules": ["x"], "requires": ["b"]},
                    "b": {"rules": ["y"], "requires": ["a"]},
                }
            }
        )


def test_load_taxonomy_reports_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("topics:\n  t:\n    rules: ['(a OR b']\n")
    with pytest.raises(TaxonomyError, match=str(path)):
        load_taxonomy(path)


def test_entity_spellings(default):
    assert "Huawei" in default.entity_spellings("vendors")
    assert default.entity_spellings("huawei") == ["Huawei"]
    assert default.entity_spellings("acme") == ["acme"]


# --- the default taxonomy ----------------------------------------------------------------------


def test_default_taxonomy_has_core_topics_and_neighbours(default):
    assert CORE | {
        "cyber-espionage",
        "semiconductors-supply-chain",
        "data-privacy-regulation",
    } <= set(default.topics)


@needs_seeds
@pytest.mark.parametrize("seed", ["000_3bf0a636fa45d0ae.txt", "003_4b3baaf2a478dab6.txt"])
def test_seed_articles_are_5g_security_and_vendor_bans(default, seed):
    raw = (SEEDS / seed).read_text()
    title = (
        "U.S. warns Germany against using technology of China's Huawei"
        if seed.startswith("003")
        else ""
    )
    found = topics(default, title, clean_text(raw, title or None))
    assert found & CORE == {"5g-security", "vendor-bans"}


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Huawei 5G kit ban: UK orders removal by 2027", {"5g-security", "vendor-bans"}),
        ("Tennis player banned for doping", set()),
        ("US adds Huawei to entity list", {"sanctions"}),
        ("Manchester United striker banned for three matches after red card", set()),
        ("Russian athletes face sanctions after doping scandal", set()),
        ("U.S. sanctions Venezuela state oil firm, escalating pressure on Maduro", {"sanctions"}),
        ("U.S. to pursue extradition of Huawei CFO from Canada", {"sanctions"}),
        ("Micron resumes some chip shipments to Huawei", {"sanctions"}),
        ("Poland set to exclude China's Huawei from 5G plans", {"5g-security", "vendor-bans"}),
        ("Huawei founder says firm does not spy for China", {"5g-security"}),
        (
            "Pompeo says U.S. looking at banning Chinese social media apps, including TikTok",
            {"vendor-bans"},
        ),
        ("Amazon.com bans, then un-bans TikTok app from employee mobile devices", set()),
        ("Huawei launches new foldable phone", set()),
        ("Ericsson inks $3.5 billion 5G deal with T-Mobile US", set()),
    ],
)
def test_default_taxonomy_on_headlines(default, title, expected):
    assert topics(default, title) & CORE == expected


def test_sports_article_gets_no_core_topic(default):
    text = (
        "The midfielder was banned for three matches by the league after a red card on Saturday.\n"
        "The club said it would appeal against the ban and the sanctions imposed by the FA.\n"
        "The coach said the team would miss him in the cup final against Liverpool.\n"
        "Fans protested outside the stadium before kick-off."
    )
    assert topics(default, "Midfielder banned for three matches", text) & CORE == set()
