//! The story index of `streams/stories/dedupe.py` (`StoryClusterer`): the entries, the
//! inverted index of sketch values, expiry, and the decision of which story an article joins.
//! The same rules as the Python class, step for step, with the same results (the tests run
//! both over the same articles); the Python docstrings say why the rules are what they are.

use std::collections::{HashMap, VecDeque};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

struct Entry {
    article_id: String,
    story_id: String,
    words: Vec<u64>,        // the word sketch, ascending
    fingerprints: Vec<u64>, // the passage fingerprints, ascending
    word_count: usize,
    seen_at: f64,
}

/// Values an article and an entry share (both ascending).
fn shared(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Counts in the order keys were first seen, as Python's `Counter` iterates them: the first
/// best candidate wins a tie, so the order decides stories.
#[derive(Default)]
struct OrderedCount {
    order: Vec<u64>,
    counts: HashMap<u64, usize>,
}

impl OrderedCount {
    fn add(&mut self, key: u64, n: usize) {
        let count = self.counts.entry(key).or_insert(0);
        if *count == 0 {
            self.order.push(key);
        }
        *count += n;
    }

    fn get(&self, key: u64) -> usize {
        self.counts.get(&key).copied().unwrap_or(0)
    }
}

#[pyclass(module = "streams.stories._storyindex")]
struct StoryIndex {
    horizon_seconds: f64,
    max_entries: usize,
    sketch_size: usize,
    min_similarity: f64,
    min_shared_words: usize,
    min_shared_fingerprints: usize,
    max_candidates_per_value: usize,
    entries: VecDeque<Entry>, // entries[i] has the sequence number first_seq + i
    first_seq: u64,
    by_article: HashMap<String, u64>,
    index: HashMap<u64, VecDeque<u64>>,
}

impl StoryIndex {
    fn entry(&self, seq: u64) -> Option<&Entry> {
        seq.checked_sub(self.first_seq)
            .and_then(|i| self.entries.get(i as usize))
    }

    fn postings(&self, value: u64) -> Option<&VecDeque<u64>> {
        self.index.get(&value).filter(|p| !p.is_empty())
    }

    fn best_story(&self, words: &[u64], word_count: usize, fingerprints: &[u64]) -> Option<&str> {
        let limit = self.max_candidates_per_value;
        let mut shared_passages = OrderedCount::default();
        let mut uncounted_passages = 0usize;
        for &value in fingerprints {
            if let Some(posting) = self.postings(value) {
                if posting.len() >= limit {
                    uncounted_passages += 1;
                } else {
                    for &seq in posting {
                        shared_passages.add(seq, 1);
                    }
                }
            }
        }
        let needed = self.min_shared_fingerprints as i64 - uncounted_passages as i64;
        let candidates: Vec<u64> = if word_count > self.sketch_size && needed > 0 {
            let needed = needed as usize;
            shared_passages
                .order
                .iter()
                .copied()
                .filter(|&seq| shared_passages.get(seq) >= needed)
                .collect()
        } else {
            let mut shared_values = OrderedCount::default();
            for &value in words {
                if let Some(posting) = self.postings(value) {
                    if posting.len() < limit {
                        for &seq in posting {
                            shared_values.add(seq, 1);
                        }
                    }
                }
            }
            for &seq in &shared_passages.order {
                shared_values.add(seq, shared_passages.get(seq));
            }
            let least = self.min_shared_words.min(self.min_shared_fingerprints);
            shared_values
                .order
                .iter()
                .copied()
                .filter(|&seq| shared_values.get(seq) >= least)
                .collect()
        };
        let mut best: Option<&str> = None;
        let mut best_score = 0.0f64;
        for seq in candidates {
            let Some(entry) = self.entry(seq) else { continue };
            let most_passages = shared_passages.get(seq) + uncounted_passages;
            let passages_possible = most_passages >= self.min_shared_fingerprints;
            if !passages_possible && word_count.max(entry.word_count) > self.sketch_size {
                continue;
            }
            let score = self.same_story_score(
                words,
                word_count,
                passages_possible.then_some(fingerprints),
                entry,
            );
            if score > best_score {
                best = Some(entry.story_id.as_str());
                best_score = score;
            }
        }
        best
    }

    fn same_story_score(
        &self,
        words: &[u64],
        word_count: usize,
        fingerprints: Option<&[u64]>,
        entry: &Entry,
    ) -> f64 {
        if let Some(fingerprints) = fingerprints {
            let passages = shared(fingerprints, &entry.fingerprints);
            if passages >= self.min_shared_fingerprints {
                return 1.0 + passages as f64;
            }
        }
        if word_count > self.sketch_size || entry.word_count > self.sketch_size {
            return 0.0;
        }
        let shared_words = shared(words, &entry.words);
        let union = word_count + entry.word_count - shared_words.min(word_count + entry.word_count);
        if union == 0 {
            return 0.0;
        }
        let similarity = shared_words as f64 / union as f64;
        if similarity >= self.min_similarity && shared_words >= self.min_shared_words {
            similarity
        } else {
            0.0
        }
    }

    fn expire_at(&mut self, now: f64) {
        let oldest_kept = now - self.horizon_seconds;
        while let Some(front) = self.entries.front() {
            if self.entries.len() <= self.max_entries && front.seen_at >= oldest_kept {
                break;
            }
            let entry = self.entries.pop_front().expect("a front entry");
            let seq = self.first_seq;
            self.first_seq += 1;
            if self.by_article.get(&entry.article_id) == Some(&seq) {
                self.by_article.remove(&entry.article_id);
            }
            for value in entry.words.iter().chain(entry.fingerprints.iter()) {
                if let Some(posting) = self.index.get_mut(value) {
                    if let Some(at) = posting.iter().position(|&s| s == seq) {
                        posting.remove(at);
                    }
                    if posting.is_empty() {
                        self.index.remove(value);
                    }
                }
            }
        }
    }

    fn record(
        &mut self,
        article_id: &str,
        story_id: String,
        words: Vec<u64>,
        word_count: usize,
        fingerprints: Vec<u64>,
        seen_at: f64,
    ) {
        let seq = self.first_seq + self.entries.len() as u64;
        let limit = self.max_candidates_per_value;
        // Values in the sketch's order, as the Python index appends them.
        for &value in words.iter().chain(fingerprints.iter()) {
            let posting = self.index.entry(value).or_default();
            posting.push_back(seq);
            if posting.len() > limit {
                posting.pop_front(); // saturated: ignored for candidates, bounded in memory
            }
        }
        self.entries.push_back(Entry {
            article_id: article_id.to_owned(),
            story_id,
            words: sorted(words),
            fingerprints: sorted(fingerprints),
            word_count,
            seen_at,
        });
        self.by_article.insert(article_id.to_owned(), seq);
        self.expire_at(seen_at);
    }
}

fn sorted(mut values: Vec<u64>) -> Vec<u64> {
    values.sort_unstable();
    values
}

#[pymethods]
impl StoryIndex {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        horizon_seconds: f64,
        max_entries: usize,
        sketch_size: usize,
        min_similarity: f64,
        min_shared_words: usize,
        min_shared_fingerprints: usize,
        max_candidates_per_value: usize,
    ) -> PyResult<Self> {
        if horizon_seconds <= 0.0 || max_entries == 0 || sketch_size == 0 {
            return Err(PyValueError::new_err(
                "horizon_seconds, max_entries and sketch_size must be positive",
            ));
        }
        Ok(StoryIndex {
            horizon_seconds,
            max_entries,
            sketch_size,
            min_similarity,
            min_shared_words,
            min_shared_fingerprints,
            max_candidates_per_value,
            entries: VecDeque::new(),
            first_seq: 0,
            by_article: HashMap::new(),
            index: HashMap::new(),
        })
    }

    /// `StoryClusterer.assign_sketch`: the story of `article_id`, recorded.
    fn assign(
        &mut self,
        article_id: &str,
        words: Vec<u64>,
        word_count: usize,
        fingerprints: Vec<u64>,
        now: f64,
    ) -> String {
        self.expire_at(now);
        if let Some(&seq) = self.by_article.get(article_id) {
            if let Some(entry) = self.entry(seq) {
                return entry.story_id.clone();
            }
        }
        let (sorted_words, sorted_fingerprints) = (sorted(words.clone()), sorted(fingerprints.clone()));
        let story_id = self
            .best_story(&sorted_words, word_count, &sorted_fingerprints)
            .unwrap_or(article_id)
            .to_owned();
        self.record(article_id, story_id.clone(), words, word_count, fingerprints, now);
        story_id
    }

    /// `StoryClusterer.restore`: record `article_id` in `story_id` as `assign` does.
    fn restore(
        &mut self,
        article_id: &str,
        story_id: String,
        words: Vec<u64>,
        word_count: usize,
        fingerprints: Vec<u64>,
        seen_at: f64,
    ) {
        self.record(article_id, story_id, words, word_count, fingerprints, seen_at);
    }

    fn known(&self, article_id: &str) -> bool {
        self.by_article.contains_key(article_id)
    }

    fn expire(&mut self, now: f64) {
        self.expire_at(now);
    }

    /// How many article references the index holds (for the memory bound's test).
    fn postings_total(&self) -> usize {
        self.index.values().map(VecDeque::len).sum()
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }
}


#[pymodule]
fn _storyindex(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StoryIndex>()?;
    Ok(())
}
