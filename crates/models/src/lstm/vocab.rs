//! The word vocabulary of an lstm model: built from the training texts (lower-cased runs of
//! letters and digits, a minimum count, a maximum size), with `<pad>` at id 0 and `<unk>` at
//! id 1, and saved next to the weights as `vocab.txt` (one word per line, line N is id N-1).

use std::collections::HashMap;
use std::path::Path;

use taxon_core::model::ModelError;

/// Id of the padding token.
pub const PAD: u32 = 0;
/// Id of the token that stands for every word outside the vocabulary.
pub const UNK: u32 = 1;
/// The file name of the vocabulary in a model folder.
pub const VOCAB_TXT: &str = "vocab.txt";

const PAD_TOKEN: &str = "<pad>";
const UNK_TOKEN: &str = "<unk>";

/// Words and their ids.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, u32>,
    lowercase: bool,
}

/// Calls `f` on each word of `text`: maximal runs of alphanumeric characters, lower-cased when
/// `lowercase` (`buf` is reused between words).
pub fn for_each_word(text: &str, lowercase: bool, buf: &mut String, mut f: impl FnMut(&str)) {
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        if w.is_empty() {
            continue;
        }
        if lowercase && w.chars().any(char::is_uppercase) {
            buf.clear();
            buf.extend(w.chars().flat_map(char::to_lowercase));
            f(buf);
        } else {
            f(w);
        }
    }
}

impl Vocab {
    /// Builds the vocabulary of `texts`: words seen at least `min_count` times, the `max_size - 2`
    /// most frequent ones (ties broken alphabetically, so the result depends only on the data).
    pub fn build<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        lowercase: bool,
        min_count: usize,
        max_size: usize,
    ) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut buf = String::new();
        for text in texts {
            for_each_word(text, lowercase, &mut buf, |w| {
                if let Some(c) = counts.get_mut(w) {
                    *c += 1;
                } else {
                    counts.insert(w.to_string(), 1);
                }
            });
        }
        let mut kept: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= min_count.max(1))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kept.truncate(max_size.saturating_sub(2));
        let words = [PAD_TOKEN.to_string(), UNK_TOKEN.to_string()]
            .into_iter()
            .chain(kept.into_iter().map(|(w, _)| w))
            .collect();
        Self::from_words(words, lowercase)
    }

    fn from_words(words: Vec<String>, lowercase: bool) -> Self {
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Self {
            words,
            index,
            lowercase,
        }
    }

    /// Number of ids, `<pad>` and `<unk>` included.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Never true: `<pad>` and `<unk>` are always present.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The id of `word`, or [`UNK`].
    pub fn id(&self, word: &str) -> u32 {
        self.index.get(word).copied().unwrap_or(UNK)
    }

    /// The ids of the first `max_len` words of `text`.
    pub fn encode(&self, text: &str, max_len: usize, buf: &mut String) -> Vec<u32> {
        let mut ids = Vec::new();
        for_each_word(text, self.lowercase, buf, |w| {
            if ids.len() < max_len {
                ids.push(self.id(w));
            }
        });
        ids
    }

    /// The contents of `vocab.txt`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for w in &self.words {
            s.push_str(w);
            s.push('\n');
        }
        s
    }

    /// Parses `vocab.txt` (`path` is for errors): line 1 must be `<pad>`, line 2 `<unk>`, and no
    /// word may be empty or appear twice.
    pub fn from_text(text: &str, lowercase: bool, path: &Path) -> Result<Self, ModelError> {
        let words: Vec<String> = text.lines().map(str::to_string).collect();
        let bad = |line: usize, message: String| ModelError::Weights {
            path: path.to_path_buf(),
            message: format!("line {line}: {message}"),
        };
        for (i, expected) in [PAD_TOKEN, UNK_TOKEN].iter().enumerate() {
            match words.get(i) {
                Some(w) if w == expected => {}
                found => {
                    return Err(bad(
                        i + 1,
                        format!(
                            "expected {expected:?}, found {:?}",
                            found.map(String::as_str)
                        ),
                    ));
                }
            }
        }
        let vocab = Self::from_words(words, lowercase);
        if vocab.index.len() != vocab.words.len() {
            let mut seen = HashMap::new();
            for (i, w) in vocab.words.iter().enumerate() {
                if let Some(first) = seen.insert(w.as_str(), i) {
                    return Err(bad(
                        i + 1,
                        format!("word {w:?} already on line {}", first + 1),
                    ));
                }
            }
        }
        if let Some(i) = vocab.words.iter().position(String::is_empty) {
            return Err(bad(i + 1, "empty word".into()));
        }
        Ok(vocab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_keeps_frequent_words_in_count_then_alphabetical_order() {
        let v = Vocab::build(["The cat, the DOG.", "the dog", "a bird"], true, 2, 100);
        assert_eq!(v.to_text(), "<pad>\n<unk>\nthe\ndog\n");
        assert_eq!(v.id("cat"), UNK);
        let mut buf = String::new();
        assert_eq!(v.encode("THE dog cat dog", 3, &mut buf), vec![2, 3, UNK]);
        let small = Vocab::build(["a a a b b c"], true, 1, 4);
        assert_eq!(small.len(), 4);
        assert_eq!(small.id("a"), 2);
        assert_eq!(small.id("c"), UNK);
    }

    #[test]
    fn text_round_trip_and_bad_files_name_the_line() {
        let v = Vocab::build(["x y y"], true, 1, 10);
        let p = Path::new("vocab.txt");
        assert_eq!(Vocab::from_text(&v.to_text(), true, p).unwrap(), v);
        let err = Vocab::from_text("<unk>\n<pad>\n", true, p).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = Vocab::from_text("<pad>\n<unk>\na\nb\na\n", true, p).unwrap_err();
        assert!(err.to_string().contains("line 5"), "{err}");
    }
}
