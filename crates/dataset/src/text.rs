//! Text normalization and hashing shared by statistics, diff and (through the public API)
//! validation, so that "the same text" means the same thing everywhere in taxon.
//!
//! - Normalized text: trimmed, every run of whitespace collapsed to one space (case kept).
//! - Words: maximal runs of alphanumeric characters, lower-cased.
//! - Hashes: XXH3 of the normalized text (64-bit for duplicate sets, 128-bit to key diff rows,
//!   seed 0); words get a cheap incremental 64-bit hash ([`word_hash`]). All are stable across
//!   runs and machines.

use twox_hash::{XxHash3_64, XxHash3_128};

/// Writes the normalized form of `text` into `out` (cleared first).
pub fn normalize_into(text: &str, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        // Fast path: same result as the `split_whitespace` loop below for ASCII text.
        let mut pending_space = false;
        let mut start = 0;
        let bytes = text.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if b.is_ascii_whitespace() || b == 0x0B {
                if start < i {
                    if pending_space {
                        out.push(' ');
                    }
                    out.push_str(&text[start..i]);
                    pending_space = true;
                }
                start = i + 1;
            }
        }
        if start < bytes.len() {
            if pending_space {
                out.push(' ');
            }
            out.push_str(&text[start..]);
        }
        return;
    }
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// The normalized form of `text`: trimmed, whitespace runs collapsed to one space.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_into(text, &mut out);
    out
}

/// The normalized text: `text` itself (trimmed) when it is already normal, else built in `out`.
fn normalized<'a>(text: &'a str, out: &'a mut String) -> &'a str {
    if text.is_ascii() {
        let trimmed = text.trim_ascii();
        let bytes = trimmed.as_bytes();
        // Normal iff the only whitespace is single spaces (vectorized scans).
        let clean = memchr::memchr3(b'\t', b'\n', b'\r', bytes).is_none()
            && memchr::memchr2(0x0B, 0x0C, bytes).is_none()
            && memchr::memmem::find(bytes, b"  ").is_none();
        if clean {
            return trimmed;
        }
    }
    normalize_into(text, out);
    out
}

/// 64-bit hash of the normalized text; `scratch` is a reusable buffer.
pub fn text_hash64(text: &str, scratch: &mut String) -> u64 {
    XxHash3_64::oneshot(normalized(text, scratch).as_bytes())
}

/// 128-bit hash of the normalized text; `scratch` is a reusable buffer.
pub fn text_hash128(text: &str, scratch: &mut String) -> u128 {
    XxHash3_128::oneshot(normalized(text, scratch).as_bytes())
}

const WORD_SEED: u64 = 0x243F_6A88_85A3_08D3;
const WORD_MUL: u64 = 0x9E37_79B9_7F4A_7C15;
/// OR-ing 0x20 into an ASCII letter lower-cases it and leaves ASCII digits unchanged.
const ASCII_LOWER: u64 = 0x2020_2020_2020_2020;

/// Hashes `bytes` 8 at a time (FxHash-style mixing, murmur3 `fmix64` finish), OR-ing `or_mask`
/// into every byte first (`ASCII_LOWER` for alphanumeric ASCII, 0 for bytes already lower).
#[inline]
fn hash_word_bytes(bytes: &[u8], or_mask: u64) -> u64 {
    let mut h = WORD_SEED;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ (u64::from_le_bytes(word) | or_mask)).wrapping_mul(WORD_MUL);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Assembled in a register: a partial copy to the stack then a wide load would stall on
        // store forwarding, in the hottest loop of `data stats`.
        let mut word = 0u64;
        for (i, &b) in rest.iter().enumerate() {
            word |= u64::from(b) << (8 * i);
        }
        let mask = or_mask >> (8 * (8 - rest.len()));
        h = (h.rotate_left(5) ^ (word | mask)).wrapping_mul(WORD_MUL);
    }
    let mut k = h ^ bytes.len() as u64;
    k ^= k >> 33;
    k = k.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    k ^= k >> 33;
    k = k.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    k ^ (k >> 33)
}

/// Calls `f` with a 64-bit hash of each lower-cased alphanumeric word of `text` (the
/// [`word_hash`] of the word's lower-cased UTF-8 bytes). ASCII text is hashed in place.
pub fn for_each_word_hash(text: &str, mut f: impl FnMut(u64)) {
    if text.is_ascii() {
        let bytes = text.as_bytes();
        let mut start = 0;
        for (i, b) in bytes.iter().enumerate() {
            if !b.is_ascii_alphanumeric() {
                if i > start {
                    f(hash_word_bytes(&bytes[start..i], ASCII_LOWER));
                }
                start = i + 1;
            }
        }
        if bytes.len() > start {
            f(hash_word_bytes(&bytes[start..], ASCII_LOWER));
        }
        return;
    }
    let mut word: Vec<u8> = Vec::with_capacity(32);
    let mut utf8 = [0u8; 4];
    for c in text.chars() {
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                word.extend_from_slice(lower.encode_utf8(&mut utf8).as_bytes());
            }
        } else if !word.is_empty() {
            f(hash_word_bytes(&word, 0));
            word.clear();
        }
    }
    if !word.is_empty() {
        f(hash_word_bytes(&word, 0));
    }
}

/// The hash [`for_each_word_hash`] gives a word that is already lower-cased.
pub fn word_hash(word: &str) -> u64 {
    hash_word_bytes(word.as_bytes(), 0)
}

/// The lower-cased alphanumeric words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// At most `max` chars of `text`, with `…` appended when it was cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &text[..idx]),
        None => text.to_string(),
    }
}

/// A `BuildHasher` for sets keyed by values that are already hashes (passes them through).
#[derive(Clone, Copy, Debug, Default)]
pub struct PrehashedState;

/// The hasher of [`PrehashedState`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PrehashedHasher(u64);

impl std::hash::Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-integer keys; fold the bytes in.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = (n as u64) ^ ((n >> 64) as u64);
    }
}

impl std::hash::BuildHasher for PrehashedState {
    type Hasher = PrehashedHasher;
    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_trims_and_collapses_whitespace() {
        // The ASCII fast path agrees with the Unicode path.
        for t in ["", "  ", "a", " a\tb\r\n c ", "a\x0b\x0cb", "x  y z  "] {
            let slow: Vec<&str> = t.split_whitespace().collect();
            assert_eq!(normalize(t), slow.join(" "), "{t:?}");
        }
        assert_eq!(normalize("\u{a0}é\u{2003} b "), "é b");
        assert_eq!(normalize("  Hello \t\n  World  "), "Hello World");
        let mut s = String::new();
        assert_eq!(text_hash64(" a  b", &mut s), text_hash64("a b\n", &mut s));
        assert_ne!(text_hash64("a b", &mut s), text_hash64("A b", &mut s));
        assert_eq!(text_hash128("x\ty", &mut s), text_hash128("x y", &mut s));
        // Already-normal text is hashed in place; others through the buffer: same hashes.
        for t in [" a b", "a  b", "a\tb", "a b", "a b ", "\u{a0}a b"] {
            assert_eq!(text_hash64(t, &mut s), XxHash3_64::oneshot(b"a b"), "{t:?}");
        }
    }

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        assert_eq!(
            words("It's 2024: Ünïcode-OK!"),
            ["it", "s", "2024", "ünïcode", "ok"]
        );
        let mut seen = Vec::new();
        for_each_word_hash("It's IT it", |h| seen.push(h));
        assert_eq!(seen.len(), 4);
        // Non-ASCII text takes the other path and must hash ASCII words the same way.
        let mut other = Vec::new();
        for_each_word_hash("ÉTÉ it's", |h| other.push(h));
        assert_eq!(other.len(), 3);
        assert_eq!(other[1], seen[3]);
        assert_eq!(other[0], word_hash("été"));
        assert_eq!(seen[1], word_hash("s"));
        // Distinct words, distinct hashes (and no prefix/length confusion).
        let hs: std::collections::HashSet<u64> = ["a", "aa", "aaa", "ab", "ba", "b", "0", "00"]
            .iter()
            .map(|w| word_hash(w))
            .collect();
        assert_eq!(hs.len(), 8);
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], seen[2]);
        assert_eq!(seen[2], seen[3]);
        assert_ne!(seen[0], seen[1]);
    }

    #[test]
    fn truncation_counts_chars() {
        assert_eq!(truncate_chars("héllo", 3), "hél…");
        assert_eq!(truncate_chars("héllo", 5), "héllo");
    }
}
