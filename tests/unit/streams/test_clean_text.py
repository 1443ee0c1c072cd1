"""Cleaning: HTML to text, normalisation, boilerplate removal on the real seed pages; language."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.clean.text import clean_text, detect_language

SEEDS = Path("/work/shared/data/seeds")
SEED_GERMANY_WARNING = SEEDS / "000_3bf0a636fa45d0ae.txt"
SEED_REPEATED_TITLE = SEEDS / "003_4b3baaf2a478dab6.txt"
needs_seeds = pytest.mark.skipif(not SEEDS.exists(), reason="shared seed data not mounted")


@needs_seeds
def test_seed_keeps_article_sentences_and_drops_latest_stories_block():
    cleaned = clean_text(SEED_GERMANY_WARNING.read_text())
    assert cleaned.startswith("The US has told Germany it would curb intelligence sharing")
    assert cleaned.endswith('not to "believe everything you hear."')
    assert "filed a lawsuit against the US government over a ban" in cleaned
    for boilerplate in (
        "Audio By Carbonatix",
        "Latest Stories",
        "EPA cautions against entry into abandoned mine sites",
        "Author Joanna Trollope dies aged 82",
        "7 minutes",
        "1 hour",
    ):
        assert boilerplate not in cleaned
    assert len(cleaned.splitlines()) == 12


@needs_seeds
def test_seed_drops_repeated_title_related_block_and_server_error():
    cleaned = clean_text(SEED_REPEATED_TITLE.read_text())
    assert "U.S. warns Germany against using technology of China's Huawei" not in cleaned
    assert "Related news" not in cleaned
    assert "an error occurred while processing the directive" not in cleaned
    assert cleaned.startswith("While the U.S. embassy in Berlin would not confirm")
    assert cleaned.endswith("in a case that centers on the telecom company Orange Polska.")
    assert "violating worldwide sanctions on Iran." in cleaned


def test_title_given_is_removed_from_body_wherever_repeated():
    raw = "Huawei banned\nHuawei banned\nBritain banned Huawei on Tuesday.\nHuawei banned"
    assert clean_text(raw, title="Huawei Banned") == "Britain banned Huawei on Tuesday."


def test_html_to_text_drops_script_style_nav_footer_aside_and_decodes_entities():
    raw = (
        "<html><head><style>p {color: red}</style><script>var x = 1;</script></head><body>"
        "<nav><a href='/'>Home</a> <a href='/world'>World news section</a></nav>"
        "<p>Berlin &amp; Washington disagree on Huawei&#39;s role.</p>"
        "<aside>Sponsored: buy now and save big today</aside>"
        "<p>The letter   was\n sent on Friday.</p>"
        "<footer>Copyright footer text here for everyone</footer></body></html>"
    )
    assert clean_text(raw) == (
        "Berlin & Washington disagree on Huawei's role.\nThe letter was sent on Friday."
    )


def test_unicode_is_nfkc_normalised():
    assert clean_text("ﬁnal ＡＢＣ\u00a0report") == "final ABC report"


def test_whitespace_collapses_and_blank_lines_become_single_newlines():
    raw = "First   paragraph here.\n\n\n\n  Second\tparagraph here.  "
    assert clean_text(raw) == "First paragraph here.\nSecond paragraph here."


def test_single_line_headline_is_kept_even_when_short():
    assert clean_text("Huawei ban") == "Huawei ban"


def test_navigation_lines_and_share_buttons_are_dropped():
    raw = "NEWS\nPOLITICS\nFOOTBALL\nShare\ne-mail\n15\nThe minister spoke on Monday."
    assert clean_text(raw) == "The minister spoke on Monday."


def test_timestamp_and_dateline_lines_are_dropped():
    raw = (
        "PUBLISHED: 13:23, 20 February 2019 | UPDATED: 01:53, 21 February 2019\n"
        "Wed 15 Jul 2020 14.22 BST\n"
        "13 minutes -\n"
        "2022-01-18 15:21\n"
        "This article is more than 3 years old\n"
        "The bill passed its second reading."
    )
    assert clean_text(raw) == "The bill passed its second reading."


def test_read_more_link_and_its_headline_are_dropped_but_article_continues():
    raw = (
        "The government spent £250m.\n"
        "What is Huawei and why is its role in UK's 5G so controversial?\n"
        "Read more\n"
        "MPs will debate the bill on Tuesday."
    )
    assert clean_text(raw) == "The government spent £250m.\nMPs will debate the bill on Tuesday."


def test_consecutive_repeated_caption_is_kept_once():
    raw = (
        "Guto Harri is said to have suggested the chief of staff could nudge ministers\n"
        "Guto Harri is said to have suggested the chief of staff could nudge ministers (Image: PA)\n"
        "The story continues here."
    )
    assert clean_text(raw).splitlines() == [
        "Guto Harri is said to have suggested the chief of staff could nudge ministers",
        "The story continues here.",
    ]


def test_empty_input_gives_empty_text():
    assert clean_text("") == ""
    assert clean_text("<p> </p>") == ""


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The government said that it was not going to ban the company from the network.", "en"),
        (
            "Die Regierung hat gesagt, dass sie das Unternehmen nicht aus dem Netz ausschließen wird.",
            "de",
        ),
        (
            "Le gouvernement a dit qu'il ne va pas exclure la société du réseau pour le moment.",
            "fr",
        ),
        ("El gobierno dijo que no va a excluir a la empresa de la red por el momento.", "es"),
        ("Il governo ha detto che non escluderà la società dalla rete per il momento.", "it"),
        ("De regering heeft gezegd dat het bedrijf niet van het netwerk wordt uitgesloten.", "nl"),
        (
            "O governo disse que não vai excluir a empresa da rede por enquanto e que são regras.",
            "pt",
        ),
        ("英国政府宣布禁止华为参与5G网络建设", "zh"),
    ],
)
def test_detect_language(text, language):
    assert detect_language(text) == language


def test_detect_language_is_none_without_evidence():
    assert detect_language("") is None
    assert detect_language("Huawei 5G ZTE") is None
