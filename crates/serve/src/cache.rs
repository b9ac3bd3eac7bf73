//! The prediction cache: an LRU keyed by the served model's version and the normalized text,
//! with a time to live.
//!
//! Normalized text is trimmed, with internal whitespace runs collapsed to one space, and
//! lower-cased character by character (as the models do) when the model lower-cases. The cache
//! is sharded by a hash of that key, so concurrent requests rarely meet on one lock, and a
//! look-up of already normalized text allocates nothing. An entry records the load number
//! ([`crate::model::LoadedModel::seq`]) of the model that computed it; an entry of another model
//! is a miss, so a swap invalidates the cache at once (the swap also clears it to free memory).

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
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
}

/// One shard: normalized text to entry.
type Shard = Mutex<LruCache<Box<str>, Entry>>;

/// A sharded LRU of probability vectors with a TTL.
pub struct PredictionCache {
    shards: Box<[Shard]>,
    ttl: Duration,
    hasher: RandomState,
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
    /// A cache of `capacity` entries living `ttl`; `None` when `capacity` is 0 (cache off).
    pub fn new(capacity: usize, ttl: Duration) -> Option<Self> {
        if capacity == 0 {
            return None;
        }
        let n = SHARDS.min(capacity);
        let shards = (0..n)
            .map(|i| {
                let cap = capacity / n + usize::from(i < capacity % n);
                Mutex::new(LruCache::new(
                    NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN),
                ))
            })
            .collect();
        Some(Self {
            shards,
            ttl,
            hasher: RandomState::new(),
        })
    }

    fn shard(&self, key: &str) -> &Shard {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        &self.shards[i]
    }

    /// The probabilities cached for `key` (normalized text) by model `seq`, if fresh.
    pub fn get(&self, seq: u64, key: &str) -> Option<Arc<[f32]>> {
        let now = Instant::now();
        let mut shard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = shard.get(key)?;
        if entry.seq == seq && now.saturating_duration_since(entry.inserted) < self.ttl {
            return Some(Arc::clone(&entry.probs));
        }
        shard.pop(key);
        None
    }

    /// Caches `probs` for `key` as computed by model `seq`.
    pub fn insert(&self, seq: u64, key: &str, probs: &[f32]) {
        let entry = Entry {
            seq,
            inserted: Instant::now(),
            probs: probs.into(),
        };
        let mut shard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.put(key.into(), entry);
    }

    /// Drops every entry (after a model swap).
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Entries held (expired ones included until looked up or evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
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
        let cache = PredictionCache::new(10, Duration::from_secs(60)).unwrap();
        cache.insert(1, "a text", &[0.25, 0.75]);
        assert_eq!(cache.get(1, "a text").as_deref(), Some(&[0.25, 0.75][..]));
        assert_eq!(cache.get(2, "a text"), None);
        // The stale entry was dropped on the miss.
        assert_eq!(cache.get(1, "a text"), None);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = PredictionCache::new(10, Duration::from_millis(30)).unwrap();
        cache.insert(1, "a text", &[1.0]);
        // Sleeping past the TTL can only make the entry older, so this cannot flake.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(1, "a text"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn capacity_bounds_the_entries_and_zero_turns_it_off() {
        assert!(PredictionCache::new(0, Duration::from_secs(1)).is_none());
        let cache = PredictionCache::new(40, Duration::from_secs(60)).unwrap();
        for i in 0..1000 {
            cache.insert(1, &format!("text {i}"), &[1.0]);
        }
        assert!(cache.len() <= 40, "{}", cache.len());
        let cache = PredictionCache::new(3, Duration::from_secs(60)).unwrap();
        for i in 0..10 {
            cache.insert(1, &format!("text {i}"), &[1.0]);
        }
        assert!(cache.len() <= 3, "{}", cache.len());
    }
}
