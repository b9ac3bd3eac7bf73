//! CSV and TSV rows through the `csv` crate: a header row is required, the text and label
//! columns are chosen by name, and line numbers come from the parser's record positions.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use csv::{ByteRecord, ErrorKind};
use taxon_core::hash::Md5Reader;
use taxon_core::{Location, Md5Hex, Record};

use super::Fields;
use crate::ReadError;

pub(crate) struct CsvSource {
    path: Arc<PathBuf>,
    reader: csv::Reader<Md5Reader<File>>,
    record: ByteRecord,
    columns: Vec<String>,
    text_idx: usize,
    label_idx: Option<usize>,
    fields: Fields,
    /// Line of the last record read (1-based).
    line: u64,
}

impl CsvSource {
    pub fn open(
        path: Arc<PathBuf>,
        fields: Fields,
        delimiter: u8,
        hash: bool,
    ) -> Result<Self, ReadError> {
        let file = File::open(path.as_ref()).map_err(|e| ReadError::io(path.as_ref(), e))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .buffer_capacity(256 * 1024)
            .from_reader(Md5Reader::new(file, hash));
        let headers = reader
            .byte_headers()
            .map_err(|e| csv_error(&path, e, 1))?
            .clone();
        let columns: Vec<String> = headers
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        let find = |name: &str| columns.iter().position(|c| c == name);
        let text_idx = find(&fields.text).ok_or_else(|| ReadError::MissingColumn {
            path: path.to_path_buf(),
            role: "text",
            column: fields.text.clone(),
            found: columns.clone(),
        })?;
        let label_idx = find(&fields.label);
        if label_idx.is_none() && fields.label_required {
            return Err(ReadError::MissingColumn {
                path: path.to_path_buf(),
                role: "label",
                column: fields.label.clone(),
                found: columns,
            });
        }
        Ok(Self {
            path,
            reader,
            record: ByteRecord::new(),
            columns,
            text_idx,
            label_idx,
            fields,
            line: 1,
        })
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The md5 of the file once it was read to its end (when asked for at open).
    pub fn content_md5(&self) -> Option<Md5Hex> {
        self.reader.get_ref().md5()
    }

    fn at(&self) -> Location {
        Location {
            path: self.path.clone(),
            line: self.line,
            is_row: false,
        }
    }

    pub fn next_row(&mut self) -> Result<Option<Record>, ReadError> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => {
                let line = self.line + 1;
                return Err(csv_error(&self.path, e, line));
            }
        }
        if let Some(pos) = self.record.position() {
            self.line = pos.line();
        }
        // `flexible` is off, so every record has the header's field count.
        let text = self.field(self.text_idx, &self.fields.text)?;
        let label = match self.label_idx {
            Some(idx) => {
                let label = self.field(idx, &self.fields.label)?;
                if label.is_empty() { None } else { Some(label) }
            }
            None => None,
        };
        if label.is_none() && self.fields.label_required {
            return Err(ReadError::MissingField {
                at: self.at(),
                field: self.fields.label.clone(),
                expected: "a non-empty label",
            });
        }
        Ok(Some(Record { text, label }))
    }

    fn field(&self, idx: usize, name: &str) -> Result<String, ReadError> {
        let bytes = self.record.get(idx).unwrap_or_default();
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(ReadError::InvalidUtf8 {
                at: self.at(),
                field: Some(name.to_string()),
                byte: e.valid_up_to() + 1,
            }),
        }
    }
}

/// Maps a `csv` error to a row error at its position (or `fallback_line`), or an I/O error.
fn csv_error(path: &Arc<PathBuf>, err: csv::Error, fallback_line: u64) -> ReadError {
    let line = err.position().map_or(fallback_line, |p| p.line());
    let message = err.to_string();
    let at = Location {
        path: path.clone(),
        line,
        is_row: false,
    };
    match err.into_kind() {
        ErrorKind::Io(source) => ReadError::io(path.as_ref(), source),
        ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => ReadError::Csv {
            at,
            message: format!("expected {expected_len} fields as in the header row, found {len}"),
        },
        ErrorKind::Utf8 { err, .. } => ReadError::InvalidUtf8 {
            at,
            field: None,
            byte: err.valid_up_to() + 1,
        },
        _ => ReadError::Csv { at, message },
    }
}
