//! Content-level diff of two datasets: rows added, removed and relabelled, and the change in
//! label distribution (what DVC's file-level diff cannot tell).
//!
//! Rows are keyed by a 128-bit XXH3 hash of their normalized text (trimmed, whitespace
//! collapsed; see [`crate::text`]). Each side is a multiset of (text, label) pairs; per text:
//!
//! - `unchanged` = rows whose (text, label) pair is on both sides (multiset intersection);
//! - of the remaining rows, pairs of one A-row and one B-row with the same text are
//!   `relabelled` (A's leftover labels and B's leftover labels matched in sorted order);
//! - what remains of A is `removed`, what remains of B is `added`.
//!
//! So `rows_a = unchanged + relabelled + removed` and `rows_b = unchanged + relabelled + added`.
//! Memory grows with distinct texts (a 16-byte key and a small label bag each); example texts
//! are fetched by a second streaming pass, only when there is something to show.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::text::{PrehashedState, text_hash128, truncate_chars};
use crate::{DatasetReader, Format, ReadError, ReadOptions};

/// Examples kept per kind of change.
pub const EXAMPLES_PER_KIND: usize = 5;
/// Example texts are cut to this many chars.
pub const EXAMPLE_CHARS: usize = 80;

/// What changed between dataset A (old) and dataset B (new), row by row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentDiff {
    pub rows_a: u64,
    pub rows_b: u64,
    /// Rows of B whose text is not in A (beyond A's count for that text).
    pub added: u64,
    /// Rows of A whose text is not in B (beyond B's count for that text).
    pub removed: u64,
    /// Rows whose text is on both sides with another label.
    pub relabelled: u64,
    /// Rows with the same text and label on both sides.
    pub unchanged: u64,
    /// Rows skipped while reading A and B (under `--on-error skip`).
    pub skipped_a: u64,
    pub skipped_b: u64,
    pub label_counts_a: BTreeMap<String, u64>,
    pub label_counts_b: BTreeMap<String, u64>,
    /// Per label (of either side): counts, shares among labelled rows, and the share change.
    pub label_shift: BTreeMap<String, LabelShift>,
    pub examples: DiffExamples,
}

/// How one label's weight moved from A to B.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelShift {
    pub count_a: u64,
    pub count_b: u64,
    pub share_a: f64,
    pub share_b: f64,
    /// `share_b - share_a` (a fraction; multiply by 100 for percentage points).
    pub share_change: f64,
}

/// Up to [`EXAMPLES_PER_KIND`] rows of each kind of change, in file order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffExamples {
    pub added: Vec<RowExample>,
    pub removed: Vec<RowExample>,
    pub relabelled: Vec<RelabelExample>,
}

/// A row, its text cut to [`EXAMPLE_CHARS`] chars.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowExample {
    pub text: String,
    pub label: Option<String>,
}

/// A relabelled row: its text (cut) and its label on each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelabelExample {
    pub text: String,
    pub label_a: Option<String>,
    pub label_b: Option<String>,
}

/// Label ids; `None` (unlabelled) is a label of its own here.
#[derive(Default)]
struct Labels {
    ids: HashMap<Option<String>, u32>,
    names: Vec<Option<String>>,
}

impl Labels {
    fn id(&mut self, label: &Option<String>) -> u32 {
        if let Some(&id) = self.ids.get(label) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(label.clone());
        self.ids.insert(label.clone(), id);
        id
    }

    fn name(&self, id: u32) -> Option<String> {
        self.names.get(id as usize).cloned().flatten()
    }
}

/// The labels (with counts) of the rows sharing one text.
#[derive(Clone, Debug)]
enum Bag {
    One(u32, u32),
    Many(Vec<(u32, u32)>),
}

impl Bag {
    fn add(&mut self, label: u32) {
        match self {
            Bag::One(l, n) if *l == label => *n += 1,
            Bag::One(l, n) => *self = Bag::Many(vec![(*l, *n), (label, 1)]),
            Bag::Many(v) => match v.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => v.push((label, 1)),
            },
        }
    }

    fn count(&self, label: u32) -> u32 {
        match self {
            Bag::One(l, n) => {
                if *l == label {
                    *n
                } else {
                    0
                }
            }
            Bag::Many(v) => v.iter().find(|(l, _)| *l == label).map_or(0, |(_, n)| *n),
        }
    }

    fn entries(&self) -> Vec<(u32, u32)> {
        match self {
            Bag::One(l, n) => vec![(*l, *n)],
            Bag::Many(v) => v.clone(),
        }
    }
}

type Bags = HashMap<u128, Bag, PrehashedState>;

struct Side {
    bags: Bags,
    rows: u64,
    skipped: u64,
    label_counts: BTreeMap<String, u64>,
}

fn read_side(
    paths: &[(PathBuf, Format)],
    opts: &ReadOptions,
    labels: &mut Labels,
) -> Result<Side, ReadError> {
    let mut side = Side {
        bags: Bags::default(),
        rows: 0,
        skipped: 0,
        label_counts: BTreeMap::new(),
    };
    let mut scratch = String::new();
    for (path, format) in paths {
        let mut reader = DatasetReader::open_as(path, *format, opts)?;
        while let Some(batch) = reader.next_batch()? {
            for record in batch {
                side.rows += 1;
                if let Some(l) = &record.label {
                    *side.label_counts.entry(l.clone()).or_insert(0) += 1;
                }
                let label = labels.id(&record.label);
                let key = text_hash128(&record.text, &mut scratch);
                side.bags
                    .entry(key)
                    .and_modify(|b| b.add(label))
                    .or_insert(Bag::One(label, 1));
            }
        }
        side.skipped += reader.skipped();
    }
    Ok(side)
}

/// Expands a bag into its labels, `count` times each, sorted.
fn expand(entries: impl IntoIterator<Item = (u32, u32)>) -> Vec<u32> {
    let mut out: Vec<u32> = entries
        .into_iter()
        .flat_map(|(l, n)| std::iter::repeat_n(l, n as usize))
        .collect();
    out.sort_unstable();
    out
}

/// What is left to show for one text.
#[derive(Default)]
struct Pending {
    removed: Vec<u32>,
    added: Vec<u32>,
    /// (label in A, label in B)
    relabelled: Vec<(u32, u32)>,
}

/// Diffs dataset A (`a`, possibly several files) against dataset B (`b`).
pub fn diff(
    a: &[(PathBuf, Format)],
    b: &[(PathBuf, Format)],
    opts: &ReadOptions,
) -> Result<ContentDiff, ReadError> {
    let mut labels = Labels::default();
    let side_a = read_side(a, opts, &mut labels)?;
    let side_b = read_side(b, opts, &mut labels)?;

    let mut out = ContentDiff {
        rows_a: side_a.rows,
        rows_b: side_b.rows,
        skipped_a: side_a.skipped,
        skipped_b: side_b.skipped,
        ..ContentDiff::default()
    };
    let mut pending: HashMap<u128, Pending, PrehashedState> = HashMap::default();
    for (key, bag_a) in &side_a.bags {
        let entries_a = bag_a.entries();
        let Some(bag_b) = side_b.bags.get(key) else {
            let left = expand(entries_a);
            out.removed += left.len() as u64;
            pending.entry(*key).or_default().removed = left;
            continue;
        };
        let entries_b = bag_b.entries();
        let mut left_a = Vec::new();
        for &(l, n) in &entries_a {
            let common = n.min(bag_b.count(l));
            out.unchanged += u64::from(common);
            left_a.push((l, n - common));
        }
        let left_a = expand(left_a);
        let left_b = expand(
            entries_b
                .iter()
                .map(|&(l, n)| (l, n - n.min(bag_a.count(l)))),
        );
        let pairs = left_a.len().min(left_b.len());
        out.relabelled += pairs as u64;
        out.removed += (left_a.len() - pairs) as u64;
        out.added += (left_b.len() - pairs) as u64;
        if !left_a.is_empty() || !left_b.is_empty() {
            let p = pending.entry(*key).or_default();
            p.relabelled = left_a.iter().copied().zip(left_b.iter().copied()).collect();
            p.removed = left_a[pairs..].to_vec();
            p.added = left_b[pairs..].to_vec();
        }
    }
    for (key, bag_b) in &side_b.bags {
        if !side_a.bags.contains_key(key) {
            let left = expand(bag_b.entries());
            out.added += left.len() as u64;
            pending.entry(*key).or_default().added = left;
        }
    }
    drop(side_a.bags);
    drop(side_b.bags);

    if out.removed > 0 || out.relabelled > 0 {
        collect_examples(a, opts, &mut labels, &mut pending, &mut out.examples, true)?;
    }
    if out.added > 0 {
        collect_examples(b, opts, &mut labels, &mut pending, &mut out.examples, false)?;
    }

    out.label_shift = label_shift(&side_a.label_counts, &side_b.label_counts);
    out.label_counts_a = side_a.label_counts;
    out.label_counts_b = side_b.label_counts;
    Ok(out)
}

/// Second pass over one side: the first rows (in file order) of each pending change.
fn collect_examples(
    paths: &[(PathBuf, Format)],
    opts: &ReadOptions,
    labels: &mut Labels,
    pending: &mut HashMap<u128, Pending, PrehashedState>,
    examples: &mut DiffExamples,
    side_a: bool,
) -> Result<(), ReadError> {
    let mut scratch = String::new();
    let full = |e: &DiffExamples| {
        if side_a {
            e.removed.len() >= EXAMPLES_PER_KIND && e.relabelled.len() >= EXAMPLES_PER_KIND
        } else {
            e.added.len() >= EXAMPLES_PER_KIND
        }
    };
    for (path, format) in paths {
        let mut reader = DatasetReader::open_as(path, *format, opts)?;
        while let Some(batch) = reader.next_batch()? {
            for record in batch {
                if full(examples) {
                    return Ok(());
                }
                let key = text_hash128(&record.text, &mut scratch);
                let Some(p) = pending.get_mut(&key) else {
                    continue;
                };
                let label = labels.id(&record.label);
                let text = || truncate_chars(&record.text, EXAMPLE_CHARS);
                if side_a {
                    if let Some(i) = p.removed.iter().position(|&l| l == label) {
                        p.removed.swap_remove(i);
                        if examples.removed.len() < EXAMPLES_PER_KIND {
                            examples.removed.push(RowExample {
                                text: text(),
                                label: record.label.clone(),
                            });
                        }
                    } else if let Some(i) = p.relabelled.iter().position(|&(l, _)| l == label) {
                        let (la, lb) = p.relabelled.swap_remove(i);
                        if examples.relabelled.len() < EXAMPLES_PER_KIND {
                            examples.relabelled.push(RelabelExample {
                                text: text(),
                                label_a: labels.name(la),
                                label_b: labels.name(lb),
                            });
                        }
                    }
                } else if let Some(i) = p.added.iter().position(|&l| l == label) {
                    p.added.swap_remove(i);
                    if examples.added.len() < EXAMPLES_PER_KIND {
                        examples.added.push(RowExample {
                            text: text(),
                            label: record.label.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn label_shift(
    a: &BTreeMap<String, u64>,
    b: &BTreeMap<String, u64>,
) -> BTreeMap<String, LabelShift> {
    let total_a: u64 = a.values().sum();
    let total_b: u64 = b.values().sum();
    let share = |n: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 / total as f64
        }
    };
    a.keys()
        .chain(b.keys())
        .map(|label| {
            let count_a = a.get(label).copied().unwrap_or(0);
            let count_b = b.get(label).copied().unwrap_or(0);
            let share_a = share(count_a, total_a);
            let share_b = share(count_b, total_b);
            (
                label.clone(),
                LabelShift {
                    count_a,
                    count_b,
                    share_a,
                    share_b,
                    share_change: share_b - share_a,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write(dir: &Path, name: &str, rows: &[(&str, &str)]) -> (PathBuf, Format) {
        let path = dir.join(name);
        let body: String = rows
            .iter()
            .map(|(t, l)| format!("{}\n", serde_json::json!({"text": t, "label": l})))
            .collect();
        std::fs::write(&path, body).unwrap();
        (path, Format::Jsonl)
    }

    #[test]
    fn counts_on_a_hand_made_pair() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.jsonl",
            &[
                ("the cat sat", "animals"),
                ("stocks fell", "business"),
                ("stocks fell", "business"),
                ("goal scored", "sport"),
                ("old news", "business"),
                ("rain today", "weather"),
            ],
        );
        let b = write(
            dir.path(),
            "b.jsonl",
            &[
                ("  the   cat sat ", "animals"), // unchanged (normalized text)
                ("stocks fell", "business"),     // unchanged (one of the two)
                ("goal scored", "business"),     // relabelled sport -> business
                ("rain today", "weather"),       // unchanged
                ("new match", "sport"),          // added
                ("new match", "sport"),          // added (duplicate counts twice)
            ],
        );
        let d = diff(&[a], &[b], &ReadOptions::default()).unwrap();
        assert_eq!((d.rows_a, d.rows_b), (6, 6));
        assert_eq!(d.unchanged, 3);
        assert_eq!(d.relabelled, 1);
        // "stocks fell" once and "old news" once.
        assert_eq!(d.removed, 2);
        assert_eq!(d.added, 2);
        assert_eq!(d.rows_a, d.unchanged + d.relabelled + d.removed);
        assert_eq!(d.rows_b, d.unchanged + d.relabelled + d.added);
        assert_eq!(d.label_counts_a["business"], 3);
        assert_eq!(d.label_counts_b["business"], 2);
        let sport = &d.label_shift["sport"];
        assert!((sport.share_a - 1.0 / 6.0).abs() < 1e-9);
        assert!((sport.share_b - 2.0 / 6.0).abs() < 1e-9);
        assert!((sport.share_change - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(
            d.examples.relabelled,
            [RelabelExample {
                text: "goal scored".into(),
                label_a: Some("sport".into()),
                label_b: Some("business".into()),
            }]
        );
        let removed: Vec<&str> = d.examples.removed.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(removed, ["stocks fell", "old news"]);
        assert_eq!(d.examples.added.len(), 2);
        assert_eq!(d.examples.added[0].label.as_deref(), Some("sport"));
    }

    #[test]
    fn identical_sides_have_no_changes_and_examples_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<(String, &str)> = (0..20).map(|i| (format!("text {i}"), "x")).collect();
        let rows: Vec<(&str, &str)> = rows.iter().map(|(t, l)| (t.as_str(), *l)).collect();
        let a = write(dir.path(), "a.jsonl", &rows);
        let empty = write(dir.path(), "e.jsonl", &[]);
        let one = std::slice::from_ref(&a);
        let same = diff(one, one, &ReadOptions::default()).unwrap();
        assert_eq!(same.unchanged, 20);
        assert_eq!(same.added + same.removed + same.relabelled, 0);
        let gone = diff(&[a], &[empty], &ReadOptions::default()).unwrap();
        assert_eq!(gone.removed, 20);
        assert_eq!(gone.examples.removed.len(), EXAMPLES_PER_KIND);
        assert_eq!(gone.examples.removed[0].text, "text 0");
        assert_eq!(gone.label_shift["x"].share_change, -1.0);
    }

    #[test]
    fn long_example_texts_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let long = "word ".repeat(40);
        let a = write(dir.path(), "a.jsonl", &[]);
        let b = write(dir.path(), "b.jsonl", &[(long.as_str(), "x")]);
        let d = diff(&[a], &[b], &ReadOptions::default()).unwrap();
        assert_eq!(d.examples.added[0].text.chars().count(), EXAMPLE_CHARS + 1);
        assert!(d.examples.added[0].text.ends_with('…'));
    }
}
