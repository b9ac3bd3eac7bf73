//! Text to token ids for the encoder: the checkpoint's own `tokenizer.json` (Hugging Face
//! `tokenizers`, WordPiece for BERT) without its special tokens, then this module's truncation,
//! then `[CLS] ... [SEP]`.
//!
//! Truncation keeps `max_len - 2` word-piece tokens (two places go to `[CLS]` and `[SEP]`):
//! - `head`: the first `max_len - 2`;
//! - `head-tail` (default; Sun et al. 2019, "How to Fine-Tune BERT for Text Classification?",
//!   who found head 128 + tail 382 best at 512): with `budget = max_len - 2`, the first
//!   `min(128, ceil(budget / 4))` tokens and the last `budget - head` tokens. At max_len 512
//!   that is exactly head 128 + tail 382; at max_len 128 it is head 32 + tail 94.
//!
//! Batches are padded to their longest sequence (not to `max_len`), with an attention mask.

use std::path::Path;

use serde::{Deserialize, Serialize};
use taxon_core::model::ModelError;
use tokenizers::Tokenizer;

/// The tokenizer file in a checkpoint or model folder.
pub const TOKENIZER_JSON: &str = "tokenizer.json";

/// Which tokens of a long text are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncation {
    /// The start and the end of the text (see the module docs for the exact split).
    #[default]
    HeadTail,
    /// The start of the text.
    Head,
}

impl std::str::FromStr for Truncation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "head-tail" | "head_tail" => Ok(Self::HeadTail),
            "head" => Ok(Self::Head),
            other => Err(format!(
                "unknown truncation {other:?} (known: head-tail, head)"
            )),
        }
    }
}

/// The number of (head, tail) tokens kept of `n` word pieces under `max_len` (which counts
/// `[CLS]` and `[SEP]`).
pub fn split(n: usize, max_len: usize, truncation: Truncation) -> (usize, usize) {
    let budget = max_len.saturating_sub(2);
    if n <= budget {
        return (n, 0);
    }
    match truncation {
        Truncation::Head => (budget, 0),
        Truncation::HeadTail => {
            let head = budget.div_ceil(4).min(128);
            (head, budget - head)
        }
    }
}

/// A `tokenizer.json` with the ids of its special tokens.
#[derive(Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    max_len: usize,
    truncation: Truncation,
    lowercase: bool,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("cls", &self.cls)
            .field("sep", &self.sep)
            .field("max_len", &self.max_len)
            .field("truncation", &self.truncation)
            .finish_non_exhaustive()
    }
}

impl TextEncoder {
    /// Parses the bytes of a `tokenizer.json` (`path` is only used in errors); its own padding
    /// and truncation settings are turned off.
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        max_len: usize,
        truncation: Truncation,
    ) -> Result<Self, ModelError> {
        let err = |message: String| ModelError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let mut tokenizer =
            Tokenizer::from_bytes(bytes).map_err(|e| err(format!("not a tokenizer: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        let special = |tok: &str| {
            tokenizer.token_to_id(tok).ok_or_else(|| {
                err(format!(
                    "vocabulary has no {tok} token (a BERT WordPiece tokenizer is needed)"
                ))
            })
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let ids = |t: &str| {
            tokenizer
                .encode(t, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default()
        };
        let lowercase = ids("HELLO") == ids("hello");
        Ok(Self {
            tokenizer,
            cls,
            sep,
            max_len: max_len.max(3),
            truncation,
            lowercase,
        })
    }

    /// Reads `dir/tokenizer.json`; returns the encoder and the file's bytes.
    pub fn read(
        dir: &Path,
        max_len: usize,
        truncation: Truncation,
    ) -> Result<(Self, Vec<u8>), ModelError> {
        let path = dir.join(TOKENIZER_JSON);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        Ok((Self::from_bytes(&bytes, &path, max_len, truncation)?, bytes))
    }

    /// Whether the tokenizer folds case (it maps `HELLO` and `hello` to the same ids).
    pub fn lowercase(&self) -> bool {
        self.lowercase
    }

    /// The ids of `[CLS] text [SEP]`, truncated; never more than `max_len`. A text the
    /// tokenizer cannot handle becomes `[CLS] [SEP]` (training data, where one odd text must
    /// not stop a run; prediction uses [`try_encode`](Self::try_encode)).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.try_encode(text)
            .unwrap_or_else(|_| vec![self.cls, self.sep])
    }

    /// The ids of `[CLS] text [SEP]`, truncated; never more than `max_len`; the tokenizer's
    /// error when it cannot handle `text`.
    pub fn try_encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| format!("the tokenizer failed on the text: {e}"))?;
        let pieces = encoding.get_ids();
        let (head, tail) = split(pieces.len(), self.max_len, self.truncation);
        let mut ids = Vec::with_capacity(head + tail + 2);
        ids.push(self.cls);
        ids.extend_from_slice(&pieces[..head]);
        ids.extend_from_slice(&pieces[pieces.len() - tail..]);
        ids.push(self.sep);
        Ok(ids)
    }

    /// The largest id the tokenizer produces, to check against the embedding's rows.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_tail_split_matches_the_documented_formula() {
        assert_eq!(split(100, 128, Truncation::HeadTail), (100, 0));
        assert_eq!(split(126, 128, Truncation::HeadTail), (126, 0));
        assert_eq!(split(500, 128, Truncation::HeadTail), (32, 94));
        assert_eq!(split(2000, 512, Truncation::HeadTail), (128, 382));
        assert_eq!(split(500, 128, Truncation::Head), (126, 0));
        assert_eq!(split(10, 3, Truncation::HeadTail), (1, 0));
    }

    #[test]
    fn truncation_names_parse() {
        assert_eq!("head-tail".parse(), Ok(Truncation::HeadTail));
        assert_eq!("head".parse(), Ok(Truncation::Head));
        assert!(
            "tail"
                .parse::<Truncation>()
                .unwrap_err()
                .contains("head-tail")
        );
    }
}
