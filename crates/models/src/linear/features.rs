//! Text to features, as fastText does it: words, hashed word n-grams and optional hashed
//! character n-grams, with fastText's FNV-1a hash (including its sign extension of bytes).
//!
//! A feature is a 64-bit key: a word is keyed by its own 64-bit FNV-1a hash (top bit clear,
//! collisions negligible, so no vocabulary strings are stored); an n-gram is keyed by its bucket
//! (`hash % buckets`) with the top bit set, so n-grams share `buckets` rows as in fastText.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const NGRAM_TAG: u64 = 1 << 63;

/// Whether a feature key of [`Featurizer::features`] is a word (not a word or character n-gram).
pub(crate) fn is_word_key(key: u64) -> bool {
    key & NGRAM_TAG == 0
}
/// fastText's multiplier for chaining word hashes into an n-gram hash.
const NGRAM_MUL: u64 = 116_049_371;

/// fastText's 32-bit FNV-1a: `h ^= (int8_t)byte` sign-extends bytes >= 0x80, kept for parity.
pub fn fasttext_hash(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in bytes {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// 64-bit FNV-1a, the key of a word feature.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A hasher for keys that are already hashes: one multiply and a shift spread every input bit
/// over the high bits that the hash table probes with.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, k: u64) {
        let x = (k ^ (k >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

/// Feature key to row index.
pub type KeyMap = HashMap<u64, u32, BuildHasherDefault<KeyHasher>>;

/// The feature settings of a linear model.
#[derive(Clone, Debug)]
pub struct Featurizer {
    pub word_ngrams: usize,
    pub minn: usize,
    pub maxn: usize,
    pub buckets: u64,
    pub lowercase: bool,
    pub max_tokens: Option<u64>,
}

/// Reusable buffers, so featurizing allocates nothing per token in steady state.
#[derive(Default)]
pub struct Scratch {
    word: String,
    hashes: Vec<u32>,
    chars: String,
}

impl Featurizer {
    /// Calls `emit` with the key of every feature of `text` (repeats included); returns the
    /// number of tokens.
    pub fn features(&self, text: &str, s: &mut Scratch, mut emit: impl FnMut(u64)) -> usize {
        s.hashes.clear();
        let limit = self.max_tokens.map_or(usize::MAX, |m| m as usize);
        let mut n_tokens = 0usize;
        let mut word = std::mem::take(&mut s.word);
        let mut chars = std::mem::take(&mut s.chars);
        for_each_word(text, self.lowercase, &mut word, |w| {
            if n_tokens >= limit {
                return false;
            }
            n_tokens += 1;
            emit(fnv1a_64(w.as_bytes()) & !NGRAM_TAG);
            if self.word_ngrams > 1 {
                s.hashes.push(fasttext_hash(w.as_bytes()));
            }
            if self.maxn > 0 {
                char_ngrams(w, self.minn, self.maxn, self.buckets, &mut chars, &mut emit);
            }
            true
        });
        s.word = word;
        s.chars = chars;
        // Word n-grams, chained as fastText's Dictionary::addWordNgrams does.
        let h = &s.hashes;
        for i in 0..h.len() {
            let mut acc = h[i] as i32 as i64 as u64;
            for &next in h
                .iter()
                .take((i + self.word_ngrams).min(h.len()))
                .skip(i + 1)
            {
                acc = acc
                    .wrapping_mul(NGRAM_MUL)
                    .wrapping_add(next as i32 as i64 as u64);
                emit(NGRAM_TAG | (acc % self.buckets));
            }
        }
        n_tokens
    }
}

/// Calls `f` with each word of `text` (maximal runs of alphanumeric characters), lower-cased
/// when asked, until `f` returns false. ASCII is handled byte by byte, without Unicode tables.
fn for_each_word(text: &str, lowercase: bool, buf: &mut String, mut f: impl FnMut(&str) -> bool) {
    buf.clear();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (alnum, len) = if b < 0x80 {
            if b.is_ascii_alphanumeric() {
                buf.push(if lowercase { b.to_ascii_lowercase() } else { b } as char);
            }
            (b.is_ascii_alphanumeric(), 1)
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            let alnum = c.is_alphanumeric();
            if alnum {
                if lowercase {
                    buf.extend(c.to_lowercase());
                } else {
                    buf.push(c);
                }
            }
            (alnum, c.len_utf8())
        };
        if !alnum && !buf.is_empty() {
            if !f(buf) {
                buf.clear();
                return;
            }
            buf.clear();
        }
        i += len;
    }
    if !buf.is_empty() {
        f(buf);
        buf.clear();
    }
}

/// Character n-grams of `<word>` (lengths `minn..=maxn`), hashed into buckets; the bare
/// boundary markers alone are skipped, as in fastText's Dictionary::computeSubwords.
fn char_ngrams(
    word: &str,
    minn: usize,
    maxn: usize,
    buckets: u64,
    buf: &mut String,
    emit: &mut impl FnMut(u64),
) {
    buf.clear();
    buf.push('<');
    buf.push_str(word);
    buf.push('>');
    let starts: Vec<usize> = buf.char_indices().map(|(i, _)| i).collect();
    let n_chars = starts.len();
    for i in 0..n_chars {
        for n in minn.max(1)..=maxn {
            let end = i + n;
            if end > n_chars || (n == 1 && (i == 0 || end == n_chars)) {
                break;
            }
            let stop = if end == n_chars {
                buf.len()
            } else {
                starts[end]
            };
            let h = fasttext_hash(&buf.as_bytes()[starts[i]..stop]);
            emit(NGRAM_TAG | (u64::from(h) % buckets));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fz(word_ngrams: usize, minn: usize, maxn: usize) -> Featurizer {
        Featurizer {
            word_ngrams,
            minn,
            maxn,
            buckets: 1000,
            lowercase: true,
            max_tokens: None,
        }
    }

    fn keys(f: &Featurizer, text: &str) -> Vec<u64> {
        let mut out = Vec::new();
        f.features(text, &mut Scratch::default(), |k| out.push(k));
        out
    }

    #[test]
    fn fasttext_hash_matches_reference_values() {
        // FNV-1a 32 of "a" is 0xe40c292c; of "" the offset basis.
        assert_eq!(fasttext_hash(b""), 2_166_136_261);
        assert_eq!(fasttext_hash(b"a"), 0xe40c_292c);
        // A byte >= 0x80 is sign-extended (fastText's int8_t cast), unlike plain FNV-1a.
        let plain = (2_166_136_261u32 ^ 0xe9).wrapping_mul(16_777_619);
        assert_ne!(fasttext_hash(&[0xe9]), plain);
    }

    #[test]
    fn words_are_lowercased_and_split_on_punctuation() {
        let f = fz(1, 0, 0);
        assert_eq!(keys(&f, "Hello, WORLD!"), keys(&f, "hello world"));
        assert_eq!(keys(&f, "hello world").len(), 2);
    }

    #[test]
    fn bigrams_depend_on_order_and_live_in_buckets() {
        let f = fz(2, 0, 0);
        let ab = keys(&f, "a b");
        let ba = keys(&f, "b a");
        assert_eq!(ab.len(), 3);
        assert_ne!(ab[2], ba[2]);
        assert!(ab[2] & NGRAM_TAG != 0 && (ab[2] & !NGRAM_TAG) < 1000);
        assert!(ab[0] & NGRAM_TAG == 0);
    }

    #[test]
    fn char_ngrams_count() {
        // "<ab>" has 4 chars: n=2 gives 3 grams, n=3 gives 2.
        let f = fz(1, 2, 3);
        assert_eq!(keys(&f, "ab").len(), 1 + 3 + 2);
    }

    #[test]
    fn max_tokens_truncates() {
        let mut f = fz(1, 0, 0);
        f.max_tokens = Some(2);
        assert_eq!(keys(&f, "a b c d").len(), 2);
    }
}
