//! The prediction log: predictions and feedback appended as JSON lines to size-capped,
//! rotated files in a folder, written by a background thread behind a bounded channel, and
//! read back (for drift and for `taxon monitor export`).
//!
//! Writing never blocks the caller: [`LogWriter::log`] is a `try_send` on a bounded channel,
//! and a record that finds it full is dropped and counted ([`LogWriter::dropped`]). The thread
//! writes whole lines and flushes whenever the channel is idle for `flush_interval` (and at
//! close), so a process killed with SIGKILL loses at most the records not yet flushed; a line
//! cut short by the kill is the last of its file, and [`read_dir`] skips a final line that
//! has no newline, so every file reads to its last complete record.
//!
//! Files are `predictions-<unix ms>-<seq>.jsonl` (names sort in time order, and a restart
//! never appends to an old file); a file past `max_file_bytes` is closed and the next one
//! opened; beyond `max_files`, the oldest are deleted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::MonitorError;
use crate::profile::{Observation, Profile};

/// One prediction, as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// The request's id; `ID/i` for text `i` of a batch request.
    pub request_id: String,
    pub model: String,
    pub version: String,
    pub label: String,
    /// Every label's probability.
    pub scores: BTreeMap<String, f32>,
    /// Compute time of the model batch that answered it, in milliseconds.
    pub latency_ms: f64,
    /// Tokens the model looked at.
    pub tokens: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_share: Option<f32>,
    /// The text, only when the server was told to log texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The text as a Fernet token instead, when the log has a key ([`LogOptions::text_key`]):
    /// `taxon monitor export` (or any Fernet library) decrypts it with the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_fernet: Option<String>,
}

impl PredictionRecord {
    /// The logged text: `text`, or `text_fernet` decrypted with `key`. `Ok(None)`: no text was
    /// logged; an error when the text is encrypted and `key` is missing or wrong.
    pub fn plain_text(&self, key: Option<&taxon_fernet::Key>) -> Result<Option<String>, String> {
        if let Some(t) = &self.text {
            return Ok(Some(t.clone()));
        }
        let Some(token) = &self.text_fernet else {
            return Ok(None);
        };
        let Some(key) = key else {
            return Err("its text is encrypted and no key was given".into());
        };
        let plain = key
            .decrypt(token)
            .ok_or("its text does not decrypt with the given key (wrong key or corrupted)")?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| "its decrypted text is not UTF-8".into())
    }
}

/// The true label of an earlier prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub time: f64,
    pub request_id: String,
    pub model: String,
    pub version: String,
    /// What the model predicted.
    pub predicted: String,
    /// The true label.
    pub label: String,
}

/// A line of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogRecord {
    Prediction(PredictionRecord),
    Feedback(FeedbackRecord),
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What the writer thread receives.
#[derive(Debug)]
enum Msg {
    Record(Box<LogRecord>),
    /// Flush the file, then answer.
    Flush(SyncSender<()>),
}

/// How the log is written.
#[derive(Clone, Debug)]
pub struct LogOptions {
    pub dir: PathBuf,
    /// A file past this size is closed and the next one opened.
    pub max_file_bytes: u64,
    /// Files kept; the oldest beyond this are deleted.
    pub max_files: usize,
    /// Records waiting for the writer; beyond this they are dropped and counted.
    pub capacity: usize,
    /// Idle time after which buffered records are flushed to the file.
    pub flush_interval: Duration,
    /// Encrypt logged texts with this key (by the writer thread, off the request path): a
    /// record's `text` is written as `text_fernet`.
    pub text_key: Option<taxon_fernet::Key>,
}

impl LogOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_file_bytes: 64 << 20,
            max_files: 32,
            capacity: 65_536,
            flush_interval: Duration::from_millis(200),
            text_key: None,
        }
    }
}

/// The writing end of a prediction log.
#[derive(Debug)]
pub struct LogWriter {
    tx: Option<SyncSender<Msg>>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    /// Creates the folder and starts the writer thread.
    pub fn start(opts: LogOptions) -> Result<Self, MonitorError> {
        std::fs::create_dir_all(&opts.dir).map_err(|source| MonitorError::Io {
            path: opts.dir.clone(),
            source,
        })?;
        let (tx, rx) = std::sync::mpsc::sync_channel(opts.capacity.max(1));
        let written = Arc::new(AtomicU64::new(0));
        let w = Arc::clone(&written);
        let thread = std::thread::Builder::new()
            .name("taxon-prediction-log".into())
            .spawn(move || write_loop(&opts, &rx, &w))
            .map_err(|source| MonitorError::Io {
                path: PathBuf::from("taxon-prediction-log thread"),
                source,
            })?;
        Ok(Self {
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
            written,
            thread: Some(thread),
        })
    }

    /// Queues `record` for writing; false (and counted as dropped) when the queue is full.
    pub fn log(&self, record: LogRecord) -> bool {
        let sent = match &self.tx {
            Some(tx) => !matches!(
                tx.try_send(Msg::Record(Box::new(record))),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            ),
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Records dropped because the queue was full (or the writer had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records written to files.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Waits until every record queued before this call is in the file (flushed).
    pub fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (ack, done) = std::sync::mpsc::sync_channel(1);
            if tx.send(Msg::Flush(ack)).is_ok() {
                let _ = done.recv();
            }
        }
    }

    /// Writes what is queued, flushes and stops the thread.
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The open file and its size.
struct Current {
    out: BufWriter<File>,
    bytes: u64,
}

fn open_next(opts: &LogOptions, seq: &mut u64) -> Option<Current> {
    let ms = (now() * 1000.0) as u64;
    *seq += 1;
    let path = opts
        .dir
        .join(format!("predictions-{ms:013}-{seq:06}.jsonl"));
    match std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => {
            prune(opts);
            Some(Current {
                out: BufWriter::with_capacity(64 * 1024, f),
                bytes: 0,
            })
        }
        Err(e) => {
            tracing_free_warn(&format!(
                "prediction log: cannot create {}: {e}",
                path.display()
            ));
            None
        }
    }
}

/// The writer has no logging framework; a failure goes to stderr once per event.
fn tracing_free_warn(msg: &str) {
    eprintln!("warning: {msg}");
}

/// Deletes the oldest log files beyond `max_files`.
fn prune(opts: &LogOptions) {
    let Ok(files) = log_files(&opts.dir) else {
        return;
    };
    if files.len() > opts.max_files {
        for f in &files[..files.len() - opts.max_files] {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn write_loop(opts: &LogOptions, rx: &Receiver<Msg>, written: &AtomicU64) {
    let mut seq = 0u64;
    let mut cur: Option<Current> = None;
    let mut line = Vec::with_capacity(512);
    loop {
        let mut record = match rx.recv_timeout(opts.flush_interval) {
            Ok(Msg::Record(r)) => r,
            Ok(Msg::Flush(ack)) => {
                if let Some(c) = &mut cur {
                    let _ = c.out.flush();
                }
                let _ = ack.send(());
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(c) = &mut cur {
                    let _ = c.out.flush();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let (Some(key), LogRecord::Prediction(p)) = (&opts.text_key, &mut *record) {
            if let Some(text) = p.text.take() {
                p.text_fernet = Some(key.encrypt(text.as_bytes()));
            }
        }
        line.clear();
        if serde_json::to_writer(&mut line, &*record).is_err() {
            continue;
        }
        line.push(b'\n');
        if cur.as_ref().is_none_or(|c| c.bytes >= opts.max_file_bytes) {
            if let Some(mut c) = cur.take() {
                let _ = c.out.flush();
            }
            cur = open_next(opts, &mut seq);
        }
        if let Some(c) = &mut cur {
            // BufWriter writes whole buffers: a line is never split across two writes unless
            // it is larger than the buffer.
            if c.out.write_all(&line).is_ok() {
                c.bytes += line.len() as u64;
                written.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if let Some(mut c) = cur {
        let _ = c.out.flush();
    }
}

/// The log files of `dir`, oldest first.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, MonitorError> {
    let io = |source| MonitorError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("predictions-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Calls `f` with every complete record of the log in `dir`, oldest first. A final line
/// without a newline (cut by a kill) is skipped; a malformed complete line is an error naming
/// its file and line.
pub fn read_dir(dir: &Path, f: &mut dyn FnMut(LogRecord)) -> Result<u64, MonitorError> {
    let files = log_files(dir)?;
    if files.is_empty() {
        return Err(MonitorError::Invalid {
            path: dir.to_path_buf(),
            message: "no prediction log files (predictions-*.jsonl) in this folder".into(),
        });
    }
    read_files(&files, f)
}

/// Calls `f` with every complete record of `files` (some of [`log_files`], in that order),
/// as [`read_dir`] does: for a reader that bounds its work to the newest files.
pub fn read_files(files: &[PathBuf], f: &mut dyn FnMut(LogRecord)) -> Result<u64, MonitorError> {
    let mut n = 0;
    for path in files {
        let io = |source| MonitorError::Io {
            path: path.clone(),
            source,
        };
        let mut r = BufReader::new(File::open(path).map_err(io)?);
        let mut buf = Vec::new();
        let mut line_no = 0;
        loop {
            buf.clear();
            let read = r.read_until(b'\n', &mut buf).map_err(io)?;
            if read == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            line_no += 1;
            let rec: LogRecord =
                serde_json::from_slice(&buf).map_err(|e| MonitorError::Invalid {
                    path: path.clone(),
                    message: format!("line {line_no}: {e}"),
                })?;
            f(rec);
            n += 1;
        }
    }
    Ok(n)
}

/// The profile of the logged predictions of a model with `labels` (predictions of other label
/// sets are left out and counted in the second value).
pub fn profile_log(
    dir: &Path,
    model_type: &str,
    labels: &[String],
) -> Result<(Profile, u64), MonitorError> {
    let mut p = Profile::new(model_type, labels, dir.display().to_string());
    let mut skipped = 0;
    let mut scores = Vec::with_capacity(labels.len());
    read_dir(dir, &mut |rec| {
        if let LogRecord::Prediction(r) = rec {
            scores.clear();
            scores.extend(labels.iter().map_while(|l| r.scores.get(l).copied()));
            if scores.len() != labels.len() || r.scores.len() != labels.len() {
                skipped += 1;
                return;
            }
            p.observe(&Observation {
                tokens: r.tokens,
                unknown_share: r.unknown_share,
                scores: &scores,
                embedding: None,
            });
        }
    })?;
    Ok((p, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(id: &str, label: &str) -> LogRecord {
        LogRecord::Prediction(PredictionRecord {
            time: now(),
            request_id: id.into(),
            model: "m".into(),
            version: "v1".into(),
            label: label.into(),
            scores: [("a".to_string(), 0.7), ("b".to_string(), 0.3)]
                .into_iter()
                .collect(),
            latency_ms: 0.1,
            tokens: 5,
            unknown_share: Some(0.0),
            text: Some(format!("text {id}")),
            text_fernet: None,
        })
    }

    fn all(dir: &Path) -> Vec<LogRecord> {
        let mut v = Vec::new();
        read_dir(dir, &mut |r| v.push(r)).unwrap();
        v
    }

    #[test]
    fn records_round_trip_in_order_and_files_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = LogOptions::new(dir.path());
        opts.max_file_bytes = 1000;
        opts.max_files = 1000;
        let mut w = LogWriter::start(opts).unwrap();
        for i in 0..100 {
            assert!(w.log(pred(&i.to_string(), "a")));
        }
        w.close();
        assert_eq!(w.written(), 100);
        let recs = all(dir.path());
        assert_eq!(recs.len(), 100);
        assert!(matches!(&recs[99], LogRecord::Prediction(r) if r.request_id == "99"));
        let files = log_files(dir.path()).unwrap();
        assert!(files.len() > 5, "{} files", files.len());
        for f in files {
            // A file goes at most one line past the cap.
            assert!(std::fs::metadata(f).unwrap().len() < 1400);
        }
    }

    #[test]
    fn oldest_files_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = LogOptions::new(dir.path());
        opts.max_file_bytes = 300;
        opts.max_files = 3;
        let mut w = LogWriter::start(opts).unwrap();
        for i in 0..60 {
            w.log(pred(&i.to_string(), "a"));
        }
        w.close();
        assert_eq!(log_files(dir.path()).unwrap().len(), 3);
        let recs = all(dir.path());
        assert!(matches!(recs.last(), Some(LogRecord::Prediction(r)) if r.request_id == "59"));
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = LogOptions::new(dir.path());
        opts.capacity = 1;
        let w = LogWriter::start(opts).unwrap();
        let sent = (0..10_000)
            .filter(|i| w.log(pred(&i.to_string(), "a")))
            .count() as u64;
        assert_eq!(sent + w.dropped(), 10_000);
        assert!(w.dropped() > 0);
        w.flush();
        assert_eq!(all(dir.path()).len() as u64, sent);
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_a_bad_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = serde_json::to_string(&pred("1", "a")).unwrap();
        let cut = &serde_json::to_string(&pred("2", "b")).unwrap()[..40];
        let f = dir.path().join("predictions-0000000000001-000001.jsonl");
        std::fs::write(&f, format!("{good}\n{cut}")).unwrap();
        assert_eq!(all(dir.path()).len(), 1);
        std::fs::write(&f, format!("{good}\nnot json\n")).unwrap();
        let e = read_dir(dir.path(), &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("predictions-"), "{e}");
    }

    #[test]
    fn profile_of_a_log_uses_the_logged_features() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::start(LogOptions::new(dir.path())).unwrap();
        for i in 0..10 {
            w.log(pred(&i.to_string(), "a"));
        }
        w.close();
        let labels = vec!["a".to_string(), "b".to_string()];
        let (p, skipped) = profile_log(dir.path(), "linear", &labels).unwrap();
        assert_eq!((p.rows, skipped), (10, 0));
        assert_eq!(p.predicted_label.counts["a"], 10);
        let other = vec!["a".to_string(), "c".to_string()];
        assert_eq!(profile_log(dir.path(), "linear", &other).unwrap().1, 10);
    }
}
