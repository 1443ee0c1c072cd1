"""A '*' inside a term never matched anything; the loader now refuses it where it is written."""

from __future__ import annotations

import pytest

from streams.classify.taxonomy import TaxonomyError, build_taxonomy


def test_star_inside_a_phrase_is_refused_with_its_position():
    with pytest.raises(TaxonomyError) as error:
        build_taxonomy({"topics": {"t": {"rules": ['x OR "telecom* worker"']}}})
    assert "rules 0" in str(error.value)
    assert "position 13: '*' only at the end of a term: 'telecom* worker'" in str(error.value)


def test_star_inside_an_alias_entry_is_refused():
    with pytest.raises(TaxonomyError, match=r"alias 'a', entry 1: '\*' only at the end"):
        build_taxonomy({"aliases": {"a": ["ok*", "x* y"]}, "topics": {"t": {"rules": ["@a"]}}})


def test_trailing_star_in_a_phrase_still_works():
    taxonomy = build_taxonomy({"topics": {"t": {"rules": ['"telecoms worker*"']}}})
    assert taxonomy.topics["t"].rules[0].specs
