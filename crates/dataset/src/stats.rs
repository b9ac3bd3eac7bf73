//! Streaming dataset statistics in bounded memory.
//!
//! Per row the accumulator keeps nothing but counts: text lengths go into a histogram
//! (length -> rows, exact quantiles with a few thousand entries at most in practice), the
//! vocabulary is a set of 64-bit word hashes, and duplicates are detected with a set of 64-bit
//! hashes of the normalized text. Memory grows with distinct words and distinct texts only:
//! about 10-20 bytes per distinct text (hash-set slot and control byte at 7/8 load), briefly
//! up to ~30 while the set grows.
//!
//! Quantiles use the nearest-rank method: the p-quantile of n sorted lengths is the value at
//! 1-based rank `ceil(p * n)`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use taxon_core::{DatasetStats, LengthQuantiles, Record};

use crate::text::{PrehashedState, for_each_word_hash, text_hash64};
use crate::{DatasetReader, Format, ReadError, ReadOptions};

/// Accumulates [`DatasetStats`] one record at a time.
#[derive(Debug, Default)]
pub struct StatsBuilder {
    rows: u64,
    label_counts: BTreeMap<String, u64>,
    lengths: HashMap<u64, u64>,
    total_chars: u128,
    vocabulary: HashSet<u64, PrehashedState>,
    texts: HashSet<u64, PrehashedState>,
    duplicates: u64,
    scratch: String,
    recent_words: Option<Vec<u64>>,
}

/// Slots of the recent-words cache (a power of two; 32 KiB).
const RECENT_WORDS: usize = 4096;

impl StatsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record.
    pub fn add(&mut self, record: &Record) {
        self.rows += 1;
        if let Some(label) = &record.label {
            match self.label_counts.get_mut(label.as_str()) {
                Some(n) => *n += 1,
                None => {
                    self.label_counts.insert(label.clone(), 1);
                }
            }
        }
        let chars = record.text.chars().count() as u64;
        *self.lengths.entry(chars).or_insert(0) += 1;
        self.total_chars += u128::from(chars);
        let vocabulary = &mut self.vocabulary;
        let recent = self
            .recent_words
            .get_or_insert_with(|| vec![0; RECENT_WORDS]);
        for_each_word_hash(&record.text, |h| {
            // A direct-mapped cache of words already in the set saves most set probes on
            // natural text (a hash enters the cache only after it entered the set).
            let slot = &mut recent[(h as usize) & (RECENT_WORDS - 1)];
            if *slot != h || h == 0 {
                vocabulary.insert(h);
                *slot = h;
            }
        });
        if !self
            .texts
            .insert(text_hash64(&record.text, &mut self.scratch))
        {
            self.duplicates += 1;
        }
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The statistics of everything added, with `skipped_rows` recorded as given.
    pub fn finish(&self, skipped_rows: u64) -> DatasetStats {
        DatasetStats {
            rows: self.rows,
            label_counts: self.label_counts.clone(),
            text_length_chars: self.quantiles(),
            vocabulary_size: self.vocabulary.len() as u64,
            duplicate_rate: if self.rows == 0 {
                0.0
            } else {
                self.duplicates as f64 / self.rows as f64
            },
            skipped_rows,
        }
    }

    fn quantiles(&self) -> LengthQuantiles {
        if self.rows == 0 {
            return LengthQuantiles::default();
        }
        let mut hist: Vec<(u64, u64)> = self.lengths.iter().map(|(&l, &c)| (l, c)).collect();
        hist.sort_unstable();
        let n = self.rows;
        let at_rank = |p: f64| -> u64 {
            let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
            let mut seen = 0;
            for &(len, count) in &hist {
                seen += count;
                if seen >= rank {
                    return len;
                }
            }
            hist.last().map_or(0, |&(len, _)| len)
        };
        LengthQuantiles {
            min: hist.first().map_or(0, |&(len, _)| len),
            p25: at_rank(0.25),
            p50: at_rank(0.50),
            p75: at_rank(0.75),
            p95: at_rank(0.95),
            p99: at_rank(0.99),
            max: hist.last().map_or(0, |&(len, _)| len),
            mean: (self.total_chars as f64) / n as f64,
        }
    }
}

/// Computes statistics over all `paths` in one streaming pass, and returns them with the column
/// names (those of the first file, then any new ones of later files, in order).
///
/// Each path is read in the format given next to it (overriding `opts.format`).
pub fn compute_stats(
    paths: &[(PathBuf, Format)],
    opts: &ReadOptions,
) -> Result<(DatasetStats, Vec<String>), ReadError> {
    let mut builder = StatsBuilder::new();
    let mut columns: Vec<String> = Vec::new();
    let mut skipped = 0;
    for (path, format) in paths {
        let mut reader = DatasetReader::open_as(path, *format, opts)?;
        merge_columns(&mut columns, reader.columns());
        while let Some(batch) = reader.next_batch()? {
            for record in &batch {
                builder.add(record);
            }
        }
        skipped += reader.skipped();
    }
    Ok((builder.finish(skipped), columns))
}

/// Appends to `into` the names of `more` it does not hold yet.
pub fn merge_columns(into: &mut Vec<String>, more: &[String]) {
    for c in more {
        if !into.contains(c) {
            into.push(c.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str, label: Option<&str>) -> Record {
        Record {
            text: text.to_string(),
            label: label.map(str::to_string),
        }
    }

    #[test]
    fn hand_computed_example() {
        let mut b = StatsBuilder::new();
        // Lengths in chars: 5, 11, 7, 3, 11 (the ö is one char).
        for r in [
            rec("Hello", Some("greet")),
            rec("hello wörld", Some("greet")),
            rec(" Hello ", Some("other")),
            rec("a-b", None),
            rec("Hello\tWorld", Some("greet")),
        ] {
            b.add(&r);
        }
        let s = b.finish(2);
        assert_eq!(s.rows, 5);
        assert_eq!(s.label_counts.get("greet"), Some(&3));
        assert_eq!(s.label_counts.get("other"), Some(&1));
        assert_eq!(s.label_counts.len(), 2);
        // Sorted lengths: 3, 5, 7, 11, 11.
        let q = &s.text_length_chars;
        assert_eq!(q.min, 3);
        assert_eq!(q.p25, 5); // rank ceil(1.25) = 2
        assert_eq!(q.p50, 7); // rank 3
        assert_eq!(q.p75, 11); // rank 4
        assert_eq!(q.p95, 11);
        assert_eq!(q.p99, 11);
        assert_eq!(q.max, 11);
        assert!((q.mean - 37.0 / 5.0).abs() < 1e-9);
        // Words: hello, wörld, a, b, world.
        assert_eq!(s.vocabulary_size, 5);
        // " Hello " normalizes to "Hello", seen at row 1.
        assert!((s.duplicate_rate - 0.2).abs() < 1e-9);
        assert_eq!(s.skipped_rows, 2);
    }

    #[test]
    fn empty_input_gives_zeros() {
        let s = StatsBuilder::new().finish(0);
        assert_eq!(s.rows, 0);
        assert_eq!(s.text_length_chars, LengthQuantiles::default());
        assert_eq!(s.duplicate_rate, 0.0);
    }

    #[test]
    fn compute_stats_spans_files_of_different_formats() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(
            &a,
            "{\"text\":\"one two\",\"label\":\"x\",\"id\":1}\nnot json\n{\"text\":\"three\",\"label\":\"y\"}\n",
        )
        .unwrap();
        let b = dir.path().join("b.data");
        std::fs::write(&b, "label,text,source\nx,one  two,web\n").unwrap();
        let opts = ReadOptions {
            on_error: crate::OnError::Skip,
            ..ReadOptions::default()
        };
        let (s, cols) =
            compute_stats(&[(a.clone(), Format::Jsonl), (b, Format::Csv)], &opts).unwrap();
        assert_eq!(s.rows, 3);
        assert_eq!(s.skipped_rows, 1);
        assert_eq!(s.label_counts.get("x"), Some(&2));
        assert_eq!(s.vocabulary_size, 3);
        // "one  two" normalizes to the first file's "one two".
        assert!((s.duplicate_rate - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(cols, ["text", "label", "id", "source"]);
        // Under Fail the bad line stops the computation with its location.
        let err = compute_stats(&[(a.clone(), Format::Jsonl)], &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{}:2: malformed JSON", a.display())),
            "{err}"
        );
    }

    #[test]
    fn columns_merge_in_order() {
        let mut c = vec!["text".to_string(), "label".to_string()];
        merge_columns(&mut c, &["id".to_string(), "text".to_string()]);
        assert_eq!(c, ["text", "label", "id"]);
    }
}
