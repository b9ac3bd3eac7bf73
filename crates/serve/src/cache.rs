//! The prediction cache: an LRU keyed by the served model's version and the normalized text,
//! with a time to live, bounded in entries and in bytes.
//!
//! Normalized text is trimmed, with internal whitespace runs collapsed to one space, and
//! lower-cased character by character (as the models do) when the model lower-cases. The cache
//! stores a 128-bit hash of that text (xxh3 with a seed drawn at start, so collisions cannot be
//! aimed at), never the text: an entry costs the same for a 5-character text as for a
//! 20,000-character one, and the byte budget counts every entry's key, probabilities and
//! bookkeeping. The cache is sharded by the hash, so concurrent requests rarely meet on one
//! lock, and a look-up of already normalized text allocates nothing. An entry records the load number
//! ([`crate::model::LoadedModel::seq`]) of the model that computed it; an entry of another model
//! is a miss, so a swap invalidates the cache at once (the swap also clears it to free memory).

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

/// Most shards; fewer when the capacity is small, so every shard holds at least one entry.
const SHARDS: usize = 16;

/// One cached prediction.
struct Entry {
    seq: u64,
    inserted: Instant,
    probs: Arc<[f32]>,
    /// The tokens of the text the model knew.
    known_tokens: usize,
}

impl Entry {
    /// Bytes held for an entry of `labels` probabilities: the key, the entry, the
    /// probabilities with their `Arc` counts, and the LRU's node and hash-table slot (two
    /// pointers and a key pointer per node, about one slot of 16 bytes per entry).
    fn bytes(labels: usize) -> usize {
        std::mem::size_of::<u128>()
            + std::mem::size_of::<Entry>()
            + 2 * std::mem::size_of::<usize>()
            + labels * std::mem::size_of::<f32>()
            + 3 * std::mem::size_of::<usize>()
            + 16
    }
}

/// One shard: the LRU of hashed keys, its entry cap and byte budget, and its bytes in use.
struct Shard {
    lru: Mutex<LruCache<u128, Entry>>,
    max_entries: usize,
    max_bytes: usize,
    bytes: AtomicUsize,
}

/// A sharded LRU of probability vectors with a TTL.
pub struct PredictionCache {
    shards: Box<[Shard]>,
    ttl: Duration,
    seed: u64,
    max_bytes: usize,
}

impl std::fmt::Debug for PredictionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictionCache")
            .field("shards", &self.shards.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl PredictionCache {
    /// A cache of at most `capacity` entries and `max_bytes` bytes living `ttl`; `None` when
    /// either is 0 (cache off).
    pub fn new(capacity: usize, max_bytes: usize, ttl: Duration) -> Option<Self> {
        if capacity == 0 || max_bytes == 0 {
            return None;
        }
        let n = SHARDS.min(capacity);
        let shards = (0..n)
            .map(|i| Shard {
                lru: Mutex::new(LruCache::unbounded()),
                max_entries: (capacity / n + usize::from(i < capacity % n)).max(1),
                max_bytes: max_bytes / n,
                bytes: AtomicUsize::new(0),
            })
            .collect();
        Some(Self {
            shards,
            ttl,
            seed: RandomState::new().hash_one(0u8),
            max_bytes,
        })
    }

    fn hash(&self, text: &str) -> u128 {
        twox_hash::XxHash3_128::oneshot_with_seed(self.seed, text.as_bytes())
    }

    fn shard(&self, hash: u128) -> &Shard {
        &self.shards[(hash as usize) % self.shards.len()]
    }

    /// The probabilities cached for `key` (normalized text) by model `seq`, if fresh, with the
    /// count of the text's tokens the model knew.
    pub fn get(&self, seq: u64, key: &str) -> Option<(Arc<[f32]>, usize)> {
        let now = Instant::now();
        let hash = self.hash(key);
        let shard = self.shard(hash);
        let mut lru = shard.lru.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = lru.get(&hash)?;
        if entry.seq == seq && now.saturating_duration_since(entry.inserted) < self.ttl {
            return Some((Arc::clone(&entry.probs), entry.known_tokens));
        }
        if let Some(old) = lru.pop(&hash) {
            shard
                .bytes
                .fetch_sub(Entry::bytes(old.probs.len()), Ordering::Relaxed);
        }
        None
    }

    /// Caches `probs` for `key` as computed by model `seq`, evicting the least recently used
    /// entries while the shard is over its entry cap or byte budget.
    pub fn insert(&self, seq: u64, key: &str, probs: &[f32], known_tokens: usize) {
        let size = Entry::bytes(probs.len());
        let hash = self.hash(key);
        let shard = self.shard(hash);
        if size > shard.max_bytes {
            return;
        }
        let entry = Entry {
            seq,
            inserted: Instant::now(),
            probs: probs.into(),
            known_tokens,
        };
        let mut lru = shard.lru.lock().unwrap_or_else(PoisonError::into_inner);
        let mut bytes = shard.bytes.load(Ordering::Relaxed) + size;
        if let Some(old) = lru.put(hash, entry) {
            bytes -= Entry::bytes(old.probs.len());
        }
        while lru.len() > shard.max_entries || bytes > shard.max_bytes {
            match lru.pop_lru() {
                Some((_, old)) => bytes -= Entry::bytes(old.probs.len()),
                None => break,
            }
        }
        shard.bytes.store(bytes, Ordering::Relaxed);
    }

    /// Drops every entry (after a model swap).
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut lru = shard.lru.lock().unwrap_or_else(PoisonError::into_inner);
            lru.clear();
            shard.bytes.store(0, Ordering::Relaxed);
        }
    }

    /// Entries held (expired ones included until looked up or evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lru.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Bytes the entries hold, as [`PredictionCache::new`]'s budget counts them.
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The cache key of `text`: trimmed, whitespace runs collapsed to one space, lower-cased when
/// `lowercase`. Borrows when `text` is already in that form.
pub fn normalize(text: &str, lowercase: bool) -> Cow<'_, str> {
    if is_normalized(text, lowercase) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        if lowercase {
            out.extend(word.chars().flat_map(char::to_lowercase));
        } else {
            out.push_str(word);
        }
    }
    Cow::Owned(out)
}

fn is_normalized(text: &str, lowercase: bool) -> bool {
    // `true` at the start, so leading whitespace fails.
    let mut after_space = true;
    for c in text.chars() {
        if c.is_whitespace() {
            if c != ' ' || after_space {
                return false;
            }
            after_space = true;
        } else {
            if lowercase && !is_lower(c) {
                return false;
            }
            after_space = false;
        }
    }
    // Trailing whitespace fails; the empty text is normalized.
    !after_space || text.is_empty()
}

/// Whether lower-casing leaves `c` unchanged.
fn is_lower(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_uppercase();
    }
    let mut lower = c.to_lowercase();
    lower.next() == Some(c) && lower.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_trims_collapses_and_lowercases() {
        assert_eq!(normalize("  Hello \t\n World  ", true), "hello world");
        assert_eq!(normalize("  Hello \t\n World  ", false), "Hello World");
        assert_eq!(normalize("ΟΔΟΣ  x", true), "οδοσ x");
        assert!(matches!(normalize("already fine", true), Cow::Borrowed(_)));
        assert!(matches!(normalize("Kept Case", false), Cow::Borrowed(_)));
        assert!(matches!(normalize("Kept Case", true), Cow::Owned(_)));
        assert!(matches!(normalize("", true), Cow::Borrowed(_)));
        assert_eq!(normalize("   ", true), "");
    }

    #[test]
    fn entries_of_another_model_are_misses() {
        let cache = PredictionCache::new(10, 1 << 20, Duration::from_secs(60)).unwrap();
        cache.insert(1, "a text", &[0.25, 0.75], 1);
        assert_eq!(
            cache.get(1, "a text").map(|(p, _)| p).as_deref(),
            Some(&[0.25, 0.75][..])
        );
        assert_eq!(cache.get(2, "a text"), None);
        // The stale entry was dropped on the miss.
        assert_eq!(cache.get(1, "a text"), None);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = PredictionCache::new(10, 1 << 20, Duration::from_millis(30)).unwrap();
        cache.insert(1, "a text", &[1.0], 1);
        // Sleeping past the TTL can only make the entry older, so this cannot flake.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(1, "a text"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn capacity_bounds_the_entries_and_zero_turns_it_off() {
        assert!(PredictionCache::new(0, 1 << 20, Duration::from_secs(1)).is_none());
        assert!(PredictionCache::new(10, 0, Duration::from_secs(1)).is_none());
        let cache = PredictionCache::new(40, 1 << 20, Duration::from_secs(60)).unwrap();
        for i in 0..1000 {
            cache.insert(1, &format!("text {i}"), &[1.0], 1);
        }
        assert!(cache.len() <= 40, "{}", cache.len());
        let cache = PredictionCache::new(3, 1 << 20, Duration::from_secs(60)).unwrap();
        for i in 0..10 {
            cache.insert(1, &format!("text {i}"), &[1.0], 1);
        }
        assert!(cache.len() <= 3, "{}", cache.len());
    }

    #[test]
    fn long_texts_cost_no_more_than_short_ones_and_the_byte_budget_holds() {
        let budget = 64 * 1024;
        let cache = PredictionCache::new(1_000_000, budget, Duration::from_secs(60)).unwrap();
        cache.insert(1, "short", &[0.5; 5], 1);
        let one = cache.bytes();
        let long = "word ".repeat(4_000);
        cache.insert(1, &long, &[0.5; 5], 4_000);
        assert_eq!(
            cache.bytes(),
            2 * one,
            "an entry's cost does not depend on its text"
        );
        let (probs, known) = cache.get(1, &long).unwrap();
        assert_eq!((&probs[..], known), (&[0.5; 5][..], 4_000));
        // One user sending distinct 20,000-character texts.
        for i in 0..5_000 {
            cache.insert(1, &format!("{i} {long}"), &[0.5; 5], 4_001);
        }
        assert!(
            cache.bytes() <= budget,
            "{} bytes over {budget}",
            cache.bytes()
        );
        assert!(
            cache.len() >= budget / one / 2,
            "{} entries kept",
            cache.len()
        );
        assert_eq!(cache.max_bytes(), budget);
        cache.clear();
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn an_entry_larger_than_a_shard_budget_is_not_kept() {
        let cache = PredictionCache::new(100, 16 * 100, Duration::from_secs(60)).unwrap();
        cache.insert(1, "many labels", &[0.001; 1000], 2);
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }
}
