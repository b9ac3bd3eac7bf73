//! The md5 content hash that names every versioned object (as DVC 3 does).

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// A lower-case hex md5 digest, optionally with DVC's `.dir` suffix for folder manifests.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Md5Hex(String);

/// A string that is not a 32-hex-digit md5 (with an optional `.dir` suffix).
#[derive(Debug, thiserror::Error)]
#[error("not an md5 hash: {0:?} (expected 32 lower-case hex digits, optionally followed by .dir)")]
pub struct InvalidHash(pub String);

impl Md5Hex {
    /// The md5 of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(hex::encode(Md5::digest(bytes)))
    }

    /// Wraps a finished digest.
    pub fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }

    /// True for a folder manifest hash (`<md5>.dir`).
    pub fn is_dir(&self) -> bool {
        self.0.ends_with(".dir")
    }

    /// The hash as written in `.dvc` files.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short form for people (first 8 hex digits).
    pub fn short(&self) -> &str {
        &self.0[..8]
    }

    /// The path of this object under a DVC 3 cache or remote root: `files/md5/xx/yyyy...`.
    pub fn cache_rel_path(&self) -> String {
        format!("files/md5/{}/{}", &self.0[..2], &self.0[2..])
    }
}

impl fmt::Display for Md5Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Md5Hex {
    type Err = InvalidHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_suffix(".dir").unwrap_or(s);
        if hex_part.len() == 32
            && hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidHash(s.to_string()))
        }
    }
}

impl TryFrom<String> for Md5Hex {
    type Error = InvalidHash;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Md5Hex> for String {
    fn from(h: Md5Hex) -> String {
        h.0
    }
}

/// A reader that computes the md5 of every byte read through it, so a file read once for its
/// records also yields its content hash (DVC's: the md5 of the raw bytes).
pub struct Md5Reader<R> {
    inner: R,
    hasher: Option<Md5>,
    at_end: bool,
}

impl<R> Md5Reader<R> {
    /// Wraps `inner`; hashes only when `hash` is true (otherwise it only passes bytes on).
    pub fn new(inner: R, hash: bool) -> Self {
        Self {
            inner,
            hasher: hash.then(Md5::new),
            at_end: false,
        }
    }

    /// The md5 of everything read, once `inner` has reported its end; `None` before that, or
    /// when not hashing.
    pub fn md5(&self) -> Option<Md5Hex> {
        match (&self.hasher, self.at_end) {
            (Some(h), true) => Some(Md5Hex::from_digest(&h.clone().finalize())),
            _ => None,
        }
    }
}

impl<R: std::io::Read> std::io::Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        if n == 0 && !buf.is_empty() {
            self.at_end = true;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_hashes_what_passes_through_once_it_reaches_the_end() {
        use std::io::Read;
        let data = b"hello\n".repeat(1000);
        let mut r = Md5Reader::new(&data[..], true);
        let mut buf = [0u8; 100];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(r.md5(), None, "not at the end yet");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(r.md5(), Some(Md5Hex::of_bytes(&data)));
        let mut off = Md5Reader::new(&data[..], false);
        off.read_to_end(&mut rest).unwrap();
        assert_eq!(off.md5(), None);
    }

    #[test]
    fn parses_and_lays_out_like_dvc() {
        let h = Md5Hex::of_bytes(b"hello\n");
        assert_eq!(h.as_str(), "b1946ac92492d2347c6235b4d2611184");
        assert_eq!(
            h.cache_rel_path(),
            "files/md5/b1/946ac92492d2347c6235b4d2611184"
        );
        let d: Md5Hex = "b1946ac92492d2347c6235b4d2611184.dir".parse().unwrap();
        assert!(d.is_dir());
        assert!(
            "B1946AC92492D2347C6235B4D2611184"
                .parse::<Md5Hex>()
                .is_err()
        );
        assert!("../etc/passwd".parse::<Md5Hex>().is_err());
    }
}
