//! The story index of `streams/stories/dedupe.py` (`StoryClusterer`): the entries, the
//! inverted index of sketch values, expiry, and the decision of which story an article joins.
//! The same rules as the Python class, step for step, with the same results (the tests run
//! both over the same articles); the Python docstrings say why the rules are what they are.
//! Also the sketch of an article's words (`sketch`), as `StoryClusterer.sketch` computes it.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

/// A fast hasher for the integer keys (sketch values and sequence numbers): one keyed
/// multiply-xor-shift round (SplitMix64's finaliser), keyed per index so that values chosen
/// to collide cannot be known in advance. SipHash, the default, costs several times more.
#[derive(Clone)]
struct MixState(u64);

impl Default for MixState {
    fn default() -> Self {
        MixState(RandomState::new().hash_one(0x5eed_u64) | 1)
    }
}

impl BuildHasher for MixState {
    type Hasher = MixHasher;
    fn build_hasher(&self) -> MixHasher {
        MixHasher(self.0)
    }
}

struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, value: u64) {
        let mut z = (value ^ self.0).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IntMap<V> = HashMap<u64, V, MixState>;

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

/// Counts per entry, in a reused array indexed by the entry's position (its sequence number
/// less the oldest's), with the entries in the order first counted: Python's `Counter`
/// iterates them in that order, and the first best candidate wins a tie, so the order decides
/// stories. `clear` zeroes only what was counted.
#[derive(Default)]
struct Tally {
    counts: Vec<usize>,
    order: Vec<usize>,
}

impl Tally {
    fn reset(&mut self, entries: usize) {
        if self.counts.len() < entries {
            self.counts.resize(entries, 0);
        }
        for &at in &self.order {
            self.counts[at] = 0;
        }
        self.order.clear();
    }

    fn add(&mut self, at: usize, n: usize) {
        if self.counts[at] == 0 {
            self.order.push(at);
        }
        self.counts[at] += n;
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
    index: IntMap<VecDeque<u64>>,
    passages: Tally, // candidate -> passage fingerprints shared, for one decision
    values: Tally,   // candidate -> sketch values shared, for one decision
}

impl StoryIndex {
    fn entry(&self, seq: u64) -> Option<&Entry> {
        seq.checked_sub(self.first_seq)
            .and_then(|i| self.entries.get(i as usize))
    }

    fn postings(&self, value: u64) -> Option<&VecDeque<u64>> {
        self.index.get(&value).filter(|p| !p.is_empty())
    }

    /// The position of the entry whose story the article joins, if any.
    fn best_story(
        &mut self,
        words: &[u64],
        word_count: usize,
        fingerprints: &[u64],
    ) -> Option<usize> {
        let (mut passages, mut values) = (
            std::mem::take(&mut self.passages),
            std::mem::take(&mut self.values),
        );
        passages.reset(self.entries.len());
        values.reset(self.entries.len());
        let best = self.best_with(words, word_count, fingerprints, &mut passages, &mut values);
        (self.passages, self.values) = (passages, values);
        best
    }

    fn best_with(
        &self,
        words: &[u64],
        word_count: usize,
        fingerprints: &[u64],
        passages: &mut Tally,
        values: &mut Tally,
    ) -> Option<usize> {
        let limit = self.max_candidates_per_value;
        let position = |seq: u64| (seq - self.first_seq) as usize;
        let mut uncounted_passages = 0usize;
        for &value in fingerprints {
            if let Some(posting) = self.postings(value) {
                if posting.len() >= limit {
                    uncounted_passages += 1;
                } else {
                    for &seq in posting {
                        passages.add(position(seq), 1);
                    }
                }
            }
        }
        let needed = self.min_shared_fingerprints as i64 - uncounted_passages as i64;
        let candidates: Vec<usize> = if word_count > self.sketch_size && needed > 0 {
            let needed = needed as usize;
            passages
                .order
                .iter()
                .copied()
                .filter(|&at| passages.counts[at] >= needed)
                .collect()
        } else {
            for &value in words {
                if let Some(posting) = self.postings(value) {
                    if posting.len() < limit {
                        for &seq in posting {
                            values.add(position(seq), 1);
                        }
                    }
                }
            }
            for &at in &passages.order {
                values.add(at, passages.counts[at]);
            }
            let least = self.min_shared_words.min(self.min_shared_fingerprints);
            values
                .order
                .iter()
                .copied()
                .filter(|&at| values.counts[at] >= least)
                .collect()
        };
        let mut best = None;
        let mut best_score = 0.0f64;
        for at in candidates {
            let Some(entry) = self.entries.get(at) else {
                continue;
            };
            let most_passages = passages.counts[at] + uncounted_passages;
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
                best = Some(at);
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
            index: IntMap::default(),
            passages: Tally::default(),
            values: Tally::default(),
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
        let (sorted_words, sorted_fingerprints) =
            (sorted(words.clone()), sorted(fingerprints.clone()));
        let story_id = match self.best_story(&sorted_words, word_count, &sorted_fingerprints) {
            Some(at) => self.entries[at].story_id.clone(),
            None => article_id.to_owned(),
        };
        self.record(
            article_id,
            story_id.clone(),
            words,
            word_count,
            fingerprints,
            now,
        );
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
        self.record(
            article_id,
            story_id,
            words,
            word_count,
            fingerprints,
            seen_at,
        );
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

// Sketching: `_word_sketch` and `_passage_fingerprints` of streams/stories/dedupe.py.

const SHINGLE_WORDS: usize = 5;
const STOPWORDS: &str = "a about after again against all also an and any are as at be been \
before being but by can could did do does down during each few for from further had has have \
having he her here him his how i if in into is it its just more most my new no nor not now of \
off on once one only or other our out over own said same says say she should so some such than \
that the their them then there these they this those through to too two under until up very \
was we were what when where which while who whom why will with would year years you your";

/// CRC-32 (ISO-HDLC, zlib's `crc32`), fed in pieces.
struct Crc32 {
    table: [u32; 256],
}

impl Crc32 {
    fn new() -> Self {
        let mut table = [0u32; 256];
        for (n, slot) in table.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        Crc32 { table }
    }

    fn update(&self, crc: u32, bytes: &[u8]) -> u32 {
        let mut c = !crc;
        for &b in bytes {
            c = self.table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        !c
    }
}

#[pyclass(module = "streams.stories._storyindex")]
struct Sketcher {
    crc: Crc32,
    stopwords: HashSet<&'static str>,
}

#[pymethods]
impl Sketcher {
    #[new]
    fn new() -> Self {
        Sketcher {
            crc: Crc32::new(),
            stopwords: STOPWORDS.split_whitespace().collect(),
        }
    }

    /// `(word sketch, content-word count, passage fingerprints)` of `words` (`text_words`):
    /// the bottom `size` CRC-32s of the content words, shifted left (even values), and the
    /// 5-word shingles' CRC-32s that are 0 modulo `sampling`, the `limit` smallest, shifted
    /// left plus one (odd values), each ascending.
    fn sketch<'py>(
        &self,
        py: Python<'py>,
        words: &Bound<'py, PyList>,
        size: usize,
        sampling: u32,
        limit: usize,
    ) -> PyResult<(Bound<'py, PyTuple>, usize, Bound<'py, PyTuple>)> {
        if sampling == 0 {
            return Err(PyValueError::new_err("sampling must be positive"));
        }
        let items: Vec<Bound<'py, PyString>> = words
            .iter()
            .map(|item| item.downcast_into::<PyString>().map_err(PyErr::from))
            .collect::<PyResult<_>>()?;
        let texts: Vec<&str> = items.iter().map(|w| w.to_str()).collect::<PyResult<_>>()?;
        let mut content: HashSet<&str> = HashSet::new();
        for &word in &texts {
            let chars = word.chars().count();
            if chars > 1 && !self.stopwords.contains(word) {
                let stem = if chars > 3 && word.ends_with('s') {
                    &word[..word.len() - 1]
                } else {
                    word
                };
                content.insert(stem);
            }
        }
        let mut values: Vec<u64> = content
            .iter()
            .map(|w| u64::from(self.crc.update(0, w.as_bytes())) << 1)
            .collect();
        values.sort_unstable();
        values.truncate(size);
        let mut found: HashSet<u32> = HashSet::new();
        if texts.len() >= SHINGLE_WORDS {
            for shingle in texts.windows(SHINGLE_WORDS) {
                let mut crc = self.crc.update(0, shingle[0].as_bytes());
                for word in &shingle[1..] {
                    crc = self.crc.update(crc, b" ");
                    crc = self.crc.update(crc, word.as_bytes());
                }
                if crc.is_multiple_of(sampling) {
                    found.insert(crc);
                }
            }
        }
        let mut fingerprints: Vec<u64> = found.into_iter().map(|v| u64::from(v) << 1 | 1).collect();
        fingerprints.sort_unstable();
        fingerprints.truncate(limit);
        Ok((
            PyTuple::new(py, values)?,
            content.len(),
            PyTuple::new(py, fingerprints)?,
        ))
    }
}

#[pymodule]
fn _storyindex(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StoryIndex>()?;
    m.add_class::<Sketcher>()?;
    Ok(())
}
