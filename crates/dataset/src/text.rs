//! Text normalization and hashing shared by statistics, diff and (through the public API)
//! validation, so that "the same text" means the same thing everywhere in taxon.
//!
//! - Normalized text: trimmed, every run of whitespace collapsed to one space (case kept).
//! - Words: maximal runs of alphanumeric characters, lower-cased.
//! - Hashes: XXH3 (64-bit for sets of words and texts, 128-bit to key diff rows), seed 0,
//!   stable across runs and machines.

use twox_hash::{XxHash3_64, XxHash3_128};

/// Writes the normalized form of `text` into `out` (cleared first).
pub fn normalize_into(text: &str, out: &mut String) {
    out.clear();
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

/// 64-bit hash of the normalized text; `scratch` is a reusable buffer.
pub fn text_hash64(text: &str, scratch: &mut String) -> u64 {
    normalize_into(text, scratch);
    XxHash3_64::oneshot(scratch.as_bytes())
}

/// 128-bit hash of the normalized text; `scratch` is a reusable buffer.
pub fn text_hash128(text: &str, scratch: &mut String) -> u128 {
    normalize_into(text, scratch);
    XxHash3_128::oneshot(scratch.as_bytes())
}

/// Calls `f` with the 64-bit hash of each lower-cased alphanumeric word of `text`;
/// `scratch` is a reusable buffer.
pub fn for_each_word_hash(text: &str, scratch: &mut String, mut f: impl FnMut(u64)) {
    scratch.clear();
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_ascii() {
                scratch.push(c.to_ascii_lowercase());
            } else {
                scratch.extend(c.to_lowercase());
            }
        } else if !scratch.is_empty() {
            f(XxHash3_64::oneshot(scratch.as_bytes()));
            scratch.clear();
        }
    }
    if !scratch.is_empty() {
        f(XxHash3_64::oneshot(scratch.as_bytes()));
        scratch.clear();
    }
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
        assert_eq!(normalize("  Hello \t\n  World  "), "Hello World");
        let mut s = String::new();
        assert_eq!(text_hash64(" a  b", &mut s), text_hash64("a b\n", &mut s));
        assert_ne!(text_hash64("a b", &mut s), text_hash64("A b", &mut s));
        assert_eq!(text_hash128("x\ty", &mut s), text_hash128("x y", &mut s));
    }

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        assert_eq!(
            words("It's 2024: Ünïcode-OK!"),
            ["it", "s", "2024", "ünïcode", "ok"]
        );
        let mut seen = Vec::new();
        let mut s = String::new();
        for_each_word_hash("It's IT it", &mut s, |h| seen.push(h));
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
