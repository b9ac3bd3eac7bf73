//! Import a folder of labelled text files as a seeded, stratified train/test split in JSONL.
//!
//! Layout read (the BBC News layout): `ROOT/<label>/<file>`, one sub-folder per label, one text
//! per file. Hidden entries (names starting with `.`) and files directly under `ROOT` are
//! ignored. Files are read as UTF-8; invalid bytes are replaced (U+FFFD) and the file is counted
//! and reported as lossy. Texts are trimmed; files that are empty after trimming are skipped and
//! counted.
//!
//! The split is exactly reproducible, across runs and machines:
//!
//! 1. labels are taken in byte order of their folder names;
//! 2. per label, the files are sorted by file name (byte order), then shuffled with
//!    `rand_chacha::ChaCha8Rng::seed_from_u64(seed)` (a fresh generator per label, so adding a
//!    label does not move the others' rows) using `rand`'s `SliceRandom::shuffle`;
//! 3. the first `round(n * test_ratio)` shuffled files of the label go to test, the rest to train;
//! 4. both outputs are written sorted by (label, file name), one `{"text":..,"label":..}` object
//!    per line, so `train.jsonl` and `test.jsonl` are byte-identical for the same input, ratio
//!    and seed.
//!
//! Outputs are written to temporary files and renamed into place.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ReadError;

/// Lossy files listed by name in a summary, at most.
pub const LOSSY_SAMPLE_LIMIT: usize = 10;

/// Rows per label on each side of the split.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSplit {
    pub train: u64,
    pub test: u64,
}

/// What an import wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    pub train_path: PathBuf,
    pub test_path: PathBuf,
    pub train_rows: u64,
    pub test_rows: u64,
    pub test_ratio: f64,
    pub seed: u64,
    pub labels: BTreeMap<String, LabelSplit>,
    /// Files that held invalid UTF-8 (replaced by U+FFFD).
    pub lossy_files: u64,
    /// The first [`LOSSY_SAMPLE_LIMIT`] of them.
    pub lossy_examples: Vec<PathBuf>,
    /// Files that were empty after trimming (not written).
    pub empty_files: u64,
}

/// One output line: `{"text":..,"label":..}`, in that key order.
#[derive(Serialize)]
struct Line<'a> {
    text: &'a str,
    label: &'a str,
}

struct Row {
    label: String,
    file: OsString,
    text: String,
}

/// Reads `root/<label>/<file>` texts and writes `out_dir/train.jsonl` and `out_dir/test.jsonl`
/// with a seeded, stratified split (see the module docs for the exact procedure).
pub fn import_label_folders(
    root: &Path,
    out_dir: &Path,
    test_ratio: f64,
    seed: u64,
) -> Result<SplitSummary, ReadError> {
    if !(0.0..=1.0).contains(&test_ratio) {
        return Err(ReadError::InvalidArgument {
            what: "test ratio",
            value: test_ratio.to_string(),
            expected: "a number between 0 and 1",
        });
    }
    let mut label_dirs = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| ReadError::io(root, e))? {
        let entry = entry.map_err(|e| ReadError::io(root, e))?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let file_type = fs::metadata(entry.path()).map_err(|e| ReadError::io(entry.path(), e))?;
        if file_type.is_dir() {
            label_dirs.push(entry.path());
        }
    }
    label_dirs.sort();

    let mut summary = SplitSummary {
        train_path: out_dir.join("train.jsonl"),
        test_path: out_dir.join("test.jsonl"),
        train_rows: 0,
        test_rows: 0,
        test_ratio,
        seed,
        labels: BTreeMap::new(),
        lossy_files: 0,
        lossy_examples: Vec::new(),
        empty_files: 0,
    };
    let mut train = Vec::new();
    let mut test = Vec::new();
    for dir in &label_dirs {
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files = list_files(dir)?;
        if files.is_empty() {
            continue;
        }
        files.sort();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        files.shuffle(&mut rng);
        let n_test = (files.len() as f64 * test_ratio).round() as usize;
        let counts = summary.labels.entry(label.clone()).or_default();
        for (i, file) in files.into_iter().enumerate() {
            let path = dir.join(&file);
            let bytes = fs::read(&path).map_err(|e| ReadError::io(&path, e))?;
            let text = match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => {
                    summary.lossy_files += 1;
                    if summary.lossy_examples.len() < LOSSY_SAMPLE_LIMIT {
                        summary.lossy_examples.push(path.clone());
                    }
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            };
            let text = text.trim();
            if text.is_empty() {
                summary.empty_files += 1;
                continue;
            }
            let row = Row {
                label: label.clone(),
                file,
                text: text.to_string(),
            };
            if i < n_test {
                counts.test += 1;
                test.push(row);
            } else {
                counts.train += 1;
                train.push(row);
            }
        }
    }
    if summary.labels.is_empty() {
        return Err(ReadError::NoLabelFolders {
            path: root.to_path_buf(),
        });
    }
    fs::create_dir_all(out_dir).map_err(|e| ReadError::io(out_dir, e))?;
    summary.train_rows = write_rows(&summary.train_path, train)?;
    summary.test_rows = write_rows(&summary.test_path, test)?;
    Ok(summary)
}

fn is_hidden(name: &OsString) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Regular (non-hidden) files directly in `dir`, by name.
fn list_files(dir: &Path) -> Result<Vec<OsString>, ReadError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| ReadError::io(dir, e))? {
        let entry = entry.map_err(|e| ReadError::io(dir, e))?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let meta = fs::metadata(entry.path()).map_err(|e| ReadError::io(entry.path(), e))?;
        if meta.is_file() {
            files.push(name);
        }
    }
    Ok(files)
}

/// Writes rows sorted by (label, file name) as JSONL, through a temporary file renamed into
/// place. Returns the number of rows.
fn write_rows(path: &Path, mut rows: Vec<Row>) -> Result<u64, ReadError> {
    rows.sort_by(|a, b| (&a.label, &a.file).cmp(&(&b.label, &b.file)));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(&tmp)?);
        for row in &rows {
            let line = Line {
                text: &row.text,
                label: &row.label,
            };
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ReadError::io(path, e)
    })?;
    Ok(rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds `root/<label>/NNN.txt` with `n` files per label.
    fn corpus(root: &Path, labels: &[(&str, usize)]) {
        for (label, n) in labels {
            let dir = root.join(label);
            fs::create_dir_all(&dir).unwrap();
            for i in 0..*n {
                fs::write(
                    dir.join(format!("{:03}.txt", i + 1)),
                    format!("  {label} story {i}\n"),
                )
                .unwrap();
            }
        }
    }

    fn read_rows(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn split_is_deterministic_and_stratified() {
        let src = tempfile::tempdir().unwrap();
        corpus(src.path(), &[("business", 50), ("sport", 30), ("tech", 11)]);
        let out1 = tempfile::tempdir().unwrap();
        let out2 = tempfile::tempdir().unwrap();
        let s1 = import_label_folders(src.path(), out1.path(), 0.2, 42).unwrap();
        let s2 = import_label_folders(src.path(), out2.path(), 0.2, 42).unwrap();
        for f in ["train.jsonl", "test.jsonl"] {
            assert_eq!(
                fs::read(out1.path().join(f)).unwrap(),
                fs::read(out2.path().join(f)).unwrap(),
                "{f} differs between two runs"
            );
        }
        assert_eq!(s1.labels, s2.labels);
        assert_eq!(
            s1.labels["business"],
            LabelSplit {
                train: 40,
                test: 10
            }
        );
        assert_eq!(s1.labels["sport"], LabelSplit { train: 24, test: 6 });
        // round(11 * 0.2) = round(2.2) = 2
        assert_eq!(s1.labels["tech"], LabelSplit { train: 9, test: 2 });
        assert_eq!((s1.train_rows, s1.test_rows), (73, 18));

        let test = read_rows(&s1.test_path);
        assert_eq!(test.len(), 18);
        // Sorted by (label, file): labels come in order, texts are trimmed.
        let labels: Vec<&str> = test.iter().map(|r| r["label"].as_str().unwrap()).collect();
        let mut sorted = labels.clone();
        sorted.sort();
        assert_eq!(labels, sorted);
        assert!(
            test.iter()
                .all(|r| !r["text"].as_str().unwrap().ends_with('\n'))
        );
        let raw = fs::read_to_string(&s1.test_path).unwrap();
        assert!(raw.starts_with("{\"text\":\"business story "), "{raw}");

        // Another seed picks other test files.
        let out3 = tempfile::tempdir().unwrap();
        import_label_folders(src.path(), out3.path(), 0.2, 7).unwrap();
        assert_ne!(
            fs::read(out1.path().join("test.jsonl")).unwrap(),
            fs::read(out3.path().join("test.jsonl")).unwrap()
        );
    }

    #[test]
    fn lossy_empty_and_hidden_files_are_reported_or_ignored() {
        let src = tempfile::tempdir().unwrap();
        corpus(src.path(), &[("a", 4)]);
        fs::write(src.path().join("a/bad.txt"), b"caf\xe9 au lait").unwrap();
        fs::write(src.path().join("a/empty.txt"), b"  \n").unwrap();
        fs::write(src.path().join("a/.hidden"), b"secret").unwrap();
        fs::write(src.path().join("README"), b"not a label").unwrap();
        let out = tempfile::tempdir().unwrap();
        let s = import_label_folders(src.path(), out.path(), 0.0, 1).unwrap();
        assert_eq!(s.lossy_files, 1);
        assert_eq!(s.lossy_examples, [src.path().join("a/bad.txt")]);
        assert_eq!(s.empty_files, 1);
        assert_eq!((s.train_rows, s.test_rows), (5, 0));
        let rows = read_rows(&s.train_path);
        assert!(rows.iter().any(|r| r["text"] == "caf\u{FFFD} au lait"));
        assert!(!rows.iter().any(|r| r["text"] == "secret"));
    }

    #[test]
    fn bad_ratio_and_empty_root_are_errors() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = import_label_folders(src.path(), out.path(), 1.5, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid test ratio \"1.5\": expected a number between 0 and 1"
        );
        let err = import_label_folders(src.path(), out.path(), 0.2, 1).unwrap_err();
        assert!(matches!(err, ReadError::NoLabelFolders { .. }), "{err}");
        let missing = src.path().join("nope");
        let err = import_label_folders(&missing, out.path(), 0.2, 1).unwrap_err();
        assert!(
            err.to_string().starts_with(&missing.display().to_string()),
            "{err}"
        );
    }
}
