"""Exact duplicates and story clustering: digests, expiry, seeds, and precision on uci-news."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from streams.clean.text import clean_text
from streams.stories import native
from streams.stories.dedupe import ExactDeduper, StoryClusterer, normalized_text_digest

DATA = Path("/work/shared/data")
DEVSET = Path(__file__).parents[2] / "data" / "devset.jsonl"
SEEDS = sorted((DATA / "seeds").glob("*.txt"))
needs_data = pytest.mark.skipif(not DATA.exists(), reason="shared data not mounted")
DAY = 86400.0


@pytest.fixture(params=["native", "python"])
def new_clusterer(request):
    """Both implementations of the story index (streams/stories/native.py): the Rust one, which
    ``make`` builds when cargo is installed, and the Python one."""
    if request.param == "native":
        if not native.available():
            if shutil.which("cargo"):
                pytest.fail("cargo is installed but the story index is not built: run make")
            pytest.skip("cargo not installed: the Rust story index is not built")

    def new(**settings):
        clusterer = StoryClusterer(native=request.param == "native", **settings)
        assert clusterer.is_native == (request.param == "native")
        return clusterer

    return new


def test_digest_ignores_case_punctuation_spacing_and_unicode_form():
    assert normalized_text_digest("Huawei  banned, UK says.") == normalized_text_digest(
        "huawei BANNED uk says"
    )
    assert normalized_text_digest("ﬁne print") == normalized_text_digest("fine print")
    assert normalized_text_digest("Huawei banned") != normalized_text_digest("ZTE banned")


def test_exact_deduper_reports_same_url_then_same_text():
    deduper = ExactDeduper(horizon_seconds=DAY, max_entries=100)
    assert deduper.check("https://a.example/1", "d1", now=0) is None
    assert deduper.check("https://a.example/1", "d2", now=1) == "same_url"
    assert deduper.check("https://b.example/9", "d1", now=2) == "same_text"
    assert deduper.check(None, "d1", now=3) == "same_text"
    assert deduper.check(None, "d3", now=4) is None


def test_exact_deduper_forgets_after_horizon():
    deduper = ExactDeduper(horizon_seconds=60, max_entries=100)
    deduper.check("https://a.example/1", "d1", now=0)
    assert deduper.check("https://a.example/1", "d1", now=30) == "same_url"
    assert deduper.check("https://a.example/1", "d1", now=61) is None


def test_exact_deduper_memory_is_bounded_by_count():
    deduper = ExactDeduper(horizon_seconds=DAY, max_entries=10)
    for n in range(1000):
        deduper.check(f"https://a.example/{n}", f"d{n}", now=n)
    assert len(deduper) == 20  # 10 URLs + 10 digests
    assert deduper.check("https://a.example/0", "d0", now=1000) is None  # oldest forgotten
    assert deduper.check("https://a.example/999", "x", now=1000) == "same_url"


@needs_data
def test_the_two_seed_articles_are_one_story(new_clusterer):
    clusterer = new_clusterer()
    first, second = (clean_text(path.read_text()) for path in SEEDS)
    assert clusterer.assign("seed-0", first, now=0) == "seed-0"
    assert clusterer.assign("seed-3", second, now=3600) == "seed-0"


@needs_data
def test_other_huawei_ban_articles_do_not_join_the_seed_story(new_clusterer):
    clusterer = new_clusterer()
    clusterer.assign("seed-0", clean_text(SEEDS[0].read_text()), now=0)
    rows = [json.loads(line) for line in (DATA / "articles/uk-huawei.jsonl").open()]
    joined = [
        row["id"]
        for row in rows
        if clusterer.assign(
            row["id"], f"{row['title']}\n{clean_text(row['text'], row['title'])}", 1
        )
        == "seed-0"
    ]
    assert joined == []


def test_unrelated_articles_get_their_own_story(new_clusterer):
    clusterer = new_clusterer()
    assert clusterer.assign("a", "Huawei banned from UK 5G networks by 2027", 0) == "a"
    assert clusterer.assign("b", "Manchester United beat Liverpool in the cup final", 1) == "b"
    assert clusterer.assign("c", "UK bans Huawei from 5G networks by 2027", 2) == "a"


def test_same_article_assigned_again_keeps_its_story(new_clusterer):
    clusterer = new_clusterer()
    clusterer.assign("a", "Huawei banned from UK 5G networks by 2027", 0)
    assert clusterer.assign("a", "completely different text now", 1) == "a"


def test_stories_expire_after_horizon(new_clusterer):
    clusterer = new_clusterer(horizon_seconds=3600)
    clusterer.assign("a", "Huawei banned from UK 5G networks by 2027", 0)
    assert clusterer.assign("b", "UK bans Huawei from 5G networks by 2027", 7200) == "b"
    assert len(clusterer) == 1


def test_story_memory_is_bounded_by_count(new_clusterer):
    clusterer = new_clusterer(max_entries=50)
    for n in range(2000):
        clusterer.assign(f"a{n}", f"headline number {n} about topic {n * 7} and {n * 13}", n)
    assert len(clusterer) == 50
    assert clusterer.postings_total() <= 50 * (32 + 64)


@needs_data
def test_uci_news_headline_clustering_pairwise_precision(new_clusterer):
    rows = [json.loads(line) for line in (DATA / "articles/uci-news.jsonl").open()][:3000]
    clusterer = new_clusterer()
    stories = defaultdict(list)
    for n, row in enumerate(rows):
        stories[clusterer.assign(row["id"], row["title"], now=n)].append(row["cluster"])
    same = merged = 0
    for members in stories.values():
        counts = Counter(members)
        same += sum(c * (c - 1) // 2 for c in counts.values())
        merged += len(members) * (len(members) - 1) // 2
    assert merged > 1000  # it does group headlines
    assert same / merged >= 0.85


class _EveryCandidateScored(StoryClusterer):
    """The search as it was before candidates were pruned by their shared-passage counts:
    every candidate sharing enough index values is scored in full."""

    def _best_story(self, words, word_count, fingerprints):
        shared: dict[int, int] = {}
        for value in words + fingerprints:
            posting = self._index.get(value, ())
            if len(posting) >= self.max_candidates_per_value:
                continue
            for other in posting:
                shared[other] = shared.get(other, 0) + 1
        best_story, best_score = None, 0.0
        for other, shared_values in shared.items():
            entry = self._entries.get(other)
            if entry is None or shared_values < min(
                self.min_shared_words, self.min_shared_fingerprints
            ):
                continue
            score = self._same_story_score(
                frozenset(words), word_count, frozenset(fingerprints), entry
            )
            if score > best_score:
                best_story, best_score = entry.story_id, score
        return best_story


def test_pruned_candidate_search_assigns_what_scoring_every_candidate_assigns(new_clusterer):
    """Dev-set texts and copies sharing boilerplate passages, with a small list cap so that
    values saturate and entries expire: the pruning must never skip a candidate that could
    have been the best."""
    rows = [json.loads(line) for line in DEVSET.read_text().splitlines()]
    footer = (
        "Reporting by the wire desk in London; additional reporting by the Washington bureau; "
        "editing by the night desk. Our standards: the trust principles of the agency."
    )
    texts = []
    for n, row in enumerate(rows):
        text = f"{row['title']}\n{row['text']}"
        texts.append((row["id"], text if n % 2 else f"{text} {footer}"))
        if n % 3 == 0:
            texts.append((f"copy-{row['id']}", f"Editor's note: updated. {text} {footer}"))
    settings = {"max_candidates_per_value": 4, "max_entries": 300, "horizon_seconds": 500}
    pruned, reference = new_clusterer(**settings), _EveryCandidateScored(native=False, **settings)
    got = [pruned.assign(a, t, n) for n, (a, t) in enumerate(texts)]
    expected = [reference.assign(a, t, n) for n, (a, t) in enumerate(texts)]
    assert got == expected
    assert sum(g != a for g, (a, _) in zip(got, texts, strict=True)) > 100  # stories were joined
