//! The request bodies: one text per line of the `--texts` file, each serialised once at start
//! as `{"text": ...}` so the hot loop only clones a reference-counted buffer.

use std::collections::HashSet;
use std::path::Path;

use bytes::Bytes;

use crate::error::Error;

/// The pre-serialised bodies, in file order, and how many distinct texts they hold.
#[derive(Debug, Clone)]
pub struct Texts {
    bodies: Vec<Bytes>,
    distinct: usize,
}

impl Texts {
    /// Reads `path`: every non-empty line (without its `\n` or `\r\n`) is one text.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let raw = std::fs::read(path).map_err(|source| Error::TextsRead {
            path: path.to_owned(),
            source,
        })?;
        let mut lines = Vec::new();
        for (i, line) in raw.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = std::str::from_utf8(line).map_err(|_| Error::TextsEncoding {
                path: path.to_owned(),
                line: i + 1,
            })?;
            lines.push(text);
        }
        if lines.is_empty() {
            return Err(Error::TextsEmpty {
                path: path.to_owned(),
            });
        }
        Ok(Self::from_lines(lines))
    }

    /// Builds the bodies from texts already in memory.
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut seen = HashSet::new();
        let bodies: Vec<Bytes> = lines
            .into_iter()
            .map(|text| {
                seen.insert(text);
                Bytes::from(serde_json::json!({ "text": text }).to_string())
            })
            .collect();
        Self {
            distinct: seen.len(),
            bodies,
        }
    }

    /// The number of texts (lines).
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// Whether there are no texts (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// The number of distinct texts in the whole file.
    pub fn distinct(&self) -> usize {
        self.distinct
    }

    /// The body of the `i`-th request: requests cycle through the texts in file order (an
    /// empty body when there are no texts, which `load` and `run` refuse).
    pub fn body(&self, i: u64) -> Bytes {
        let n = self.bodies.len() as u64;
        i.checked_rem(n)
            .and_then(|k| self.bodies.get(k as usize))
            .cloned()
            .unwrap_or_default()
    }

    /// How the first `sent` requests used the texts: (distinct texts sent, whether any text
    /// was sent twice).
    pub fn usage(&self, sent: u64) -> (usize, bool) {
        let n = self.bodies.len();
        let used = usize::try_from(sent).unwrap_or(usize::MAX).min(n);
        let distinct: HashSet<&Bytes> = self.bodies[..used].iter().collect();
        (distinct.len(), sent > n as u64 || distinct.len() < used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `content` to a temporary file and loads it.
    fn load(content: &[u8]) -> Result<Texts, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("texts.txt");
        std::fs::write(&path, content).unwrap();
        Texts::load(&path)
    }

    #[test]
    fn lines_become_json_bodies_and_blank_lines_are_skipped() {
        let texts =
            load(b"first \"quoted\" text\r\n\n  \nsecond\\text\nfirst \"quoted\" text").unwrap();
        assert_eq!(texts.len(), 3);
        assert_eq!(texts.distinct(), 2);
        assert_eq!(&texts.body(0)[..], br#"{"text":"first \"quoted\" text"}"#);
        assert_eq!(&texts.body(1)[..], br#"{"text":"second\\text"}"#);
        // Requests cycle through the lines.
        assert_eq!(texts.body(4), texts.body(1));
    }

    #[test]
    fn usage_reports_distinct_texts_and_repeats() {
        let texts = Texts::from_lines(["a", "b", "a", "c"]);
        assert_eq!(texts.usage(0), (0, false));
        assert_eq!(texts.usage(2), (2, false));
        assert_eq!(texts.usage(3), (2, true));
        assert_eq!(texts.usage(9), (3, true));
        let distinct = Texts::from_lines(["a", "b"]);
        assert_eq!(distinct.usage(2), (2, false));
        assert_eq!(distinct.usage(3), (2, true));
    }

    #[test]
    fn no_texts_give_empty_bodies_not_a_panic() {
        let texts = Texts::from_lines([]);
        assert!(texts.is_empty());
        assert!(texts.body(3).is_empty());
        assert_eq!(texts.usage(5), (0, true));
    }

    #[test]
    fn empty_file_is_refused() {
        let err = load(b"\n \n").unwrap_err().to_string();
        assert!(err.contains("no non-empty line"), "{err}");
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let err = load(b"ok\n\xff\xfe\n").unwrap_err().to_string();
        assert!(err.ends_with("texts.txt:2: not valid UTF-8"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Texts::load(Path::new("/nonexistent/texts.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/texts.txt"), "{err}");
    }
}
