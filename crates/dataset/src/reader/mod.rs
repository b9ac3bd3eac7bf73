//! Streaming dataset readers: one [`DatasetReader`] over JSONL, CSV/TSV or Parquet that yields
//! [`Record`] batches in bounded memory.
//!
//! Each format has a row source that produces one record (or one error) at a time; the reader
//! applies the [`OnError`] policy, counts skipped rows, keeps the first few skipped errors for
//! reports, and gathers rows into batches of `batch_size`.

mod csv;
mod jsonl;
mod parquet;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use taxon_core::{Md5Hex, Record};

use crate::{Format, OnError, ReadError, ReadOptions};

/// The longest JSONL line the reader accepts (64 MiB); a longer line is an error that names it.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// How many skipped-row errors a reader keeps for reports.
pub const SKIPPED_SAMPLE_LIMIT: usize = 10;

/// One format's row source.
enum Source {
    Jsonl(jsonl::JsonlSource),
    Csv(csv::CsvSource),
    Parquet(parquet::ParquetSource),
}

impl Source {
    fn next_row(&mut self) -> Result<Option<Record>, ReadError> {
        match self {
            Source::Jsonl(s) => s.next_row(),
            Source::Csv(s) => s.next_row(),
            Source::Parquet(s) => s.next_row(),
        }
    }

    fn bytes_read(&self) -> u64 {
        match self {
            Source::Jsonl(s) => s.bytes_read(),
            Source::Csv(s) => s.bytes_read(),
            Source::Parquet(s) => s.bytes_read(),
        }
    }

    fn content_md5(&self) -> Option<Md5Hex> {
        match self {
            Source::Jsonl(s) => s.content_md5(),
            Source::Csv(s) => s.content_md5(),
            // Parquet is read by random access (footer first): its bytes do not stream by.
            Source::Parquet(_) => None,
        }
    }
}

/// The field names and row policy the row sources need.
pub(crate) struct Fields {
    pub text: String,
    pub label: String,
    pub label_required: bool,
}

/// A streaming reader over one dataset file.
///
/// Use [`DatasetReader::next_batch`] for batches, or iterate for single records. Memory stays
/// bounded by one batch (plus one line for JSONL, at most [`MAX_LINE_BYTES`]).
pub struct DatasetReader {
    path: PathBuf,
    format: Format,
    source: Source,
    columns: Vec<String>,
    on_error: OnError,
    batch_size: usize,
    skipped: u64,
    samples: Vec<ReadError>,
    done: bool,
    /// An error met after some rows of a batch: those rows are returned first, then this.
    deferred: Option<ReadError>,
    pending: std::vec::IntoIter<Record>,
}

impl DatasetReader {
    /// Opens `path` in `opts.format`, or in the format its extension names.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self, ReadError> {
        let format = match opts.format {
            Some(f) => f,
            None => Format::from_path(path).ok_or_else(|| ReadError::UnknownFormat {
                path: path.to_path_buf(),
            })?,
        };
        Self::open_as(path, format, opts)
    }

    /// Opens `path` in the given format, whatever its extension and `opts.format`.
    pub fn open_as(path: &Path, format: Format, opts: &ReadOptions) -> Result<Self, ReadError> {
        Self::open_with_limit(path, format, opts, MAX_LINE_BYTES)
    }

    pub(crate) fn open_with_limit(
        path: &Path,
        format: Format,
        opts: &ReadOptions,
        max_line_bytes: usize,
    ) -> Result<Self, ReadError> {
        let fields = Fields {
            text: opts.text_field.clone(),
            label: opts.label_field.clone(),
            label_required: opts.label_required,
        };
        let shared_path = Arc::new(path.to_path_buf());
        let (source, columns) = match format {
            Format::Jsonl => {
                let s = jsonl::JsonlSource::open(shared_path, fields, max_line_bytes, opts.hash)?;
                let cols = s.columns().to_vec();
                (Source::Jsonl(s), cols)
            }
            Format::Csv | Format::Tsv => {
                let delimiter = if format == Format::Csv { b',' } else { b'\t' };
                let s = csv::CsvSource::open(shared_path, fields, delimiter, opts.hash)?;
                let cols = s.columns().to_vec();
                (Source::Csv(s), cols)
            }
            Format::Parquet => {
                let s = parquet::ParquetSource::open(shared_path, fields, opts.batch_size.max(1))?;
                let cols = s.columns().to_vec();
                (Source::Parquet(s), cols)
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            format,
            source,
            columns,
            on_error: opts.on_error,
            batch_size: opts.batch_size.max(1),
            skipped: 0,
            samples: Vec::new(),
            done: false,
            deferred: None,
            pending: Vec::new().into_iter(),
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format being read.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Column or field names: the CSV/TSV header, the Parquet schema's top-level fields, or the
    /// keys of the first JSONL object (empty when the first line is not an object).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The next batch of at most `batch_size` records; `None` at the end.
    ///
    /// Under [`OnError::Fail`] the first bad row ends the read with its error. Under
    /// [`OnError::Skip`] bad rows are counted and skipped; errors that concern the whole file
    /// (I/O, a missing column, undecodable Parquet) end the read under either policy. The rows
    /// read before an error are returned first; the error comes with the next call.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Record>>, ReadError> {
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        if self.done {
            return Ok(None);
        }
        let mut batch = Vec::with_capacity(self.batch_size.min(65_536));
        while batch.len() < self.batch_size {
            match self.source.next_row() {
                Ok(Some(record)) => batch.push(record),
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(err) if err.is_row_error() && self.on_error == OnError::Skip => {
                    self.skipped += 1;
                    if self.samples.len() < SKIPPED_SAMPLE_LIMIT {
                        self.samples.push(err);
                    }
                }
                Err(err) => {
                    self.done = true;
                    if batch.is_empty() {
                        return Err(err);
                    }
                    self.deferred = Some(err);
                    break;
                }
            }
        }
        if batch.is_empty() && self.done {
            Ok(None)
        } else {
            Ok(Some(batch))
        }
    }

    /// Rows skipped so far under [`OnError::Skip`].
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The first [`SKIPPED_SAMPLE_LIMIT`] errors of skipped rows.
    pub fn skipped_samples(&self) -> &[ReadError] {
        &self.samples
    }

    /// Bytes of the file consumed so far (for Parquet, an estimate from the rows read), for
    /// progress bars.
    pub fn bytes_read(&self) -> u64 {
        self.source.bytes_read()
    }

    /// The md5 of the file's bytes (DVC's content hash), computed while reading, once the
    /// whole file was read; `None` before that, when [`ReadOptions::hash`] was not set, or for
    /// Parquet (read by random access, so its bytes do not stream by).
    pub fn content_md5(&self) -> Option<Md5Hex> {
        self.source.content_md5()
    }
}

impl Iterator for DatasetReader {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.pending.next() {
                return Some(Ok(record));
            }
            match self.next_batch() {
                Ok(Some(batch)) => self.pending = batch.into_iter(),
                Ok(None) => return None,
                Err(err) => return Some(Err(err)),
            }
        }
    }
}

/// Describes a JSON value's type (and small values) for "found ..." in error messages.
pub(crate) fn describe_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "null".to_string(),
        serde_json::Value::Bool(b) => format!("boolean {b}"),
        serde_json::Value::Number(n) => format!("number {n}"),
        serde_json::Value::String(s) => format!("string {:?}", crate::text::truncate_chars(s, 40)),
        serde_json::Value::Array(_) => "an array".to_string(),
        serde_json::Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
mod tests;
