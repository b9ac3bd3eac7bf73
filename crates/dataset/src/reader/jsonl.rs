//! JSON Lines rows: a buffered line reader that reuses one buffer and refuses lines over a
//! limit, and a serde visitor that extracts only the text and label fields of each object.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use taxon_core::hash::Md5Reader;
use taxon_core::{Location, Md5Hex, Record};

use super::{Fields, describe_json};
use crate::ReadError;

/// Capacity kept by the line buffer after an unusually long line.
const KEEP_CAPACITY: usize = 1 << 20;

pub(crate) struct JsonlSource {
    path: Arc<PathBuf>,
    reader: BufReader<Md5Reader<File>>,
    buf: Vec<u8>,
    line: u64,
    limit: usize,
    fields: Fields,
    bytes_read: u64,
    columns: Vec<String>,
    /// The first non-empty line was read at open (for the columns) and is still in `buf`.
    pending: Option<LineKind>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Line,
    TooLong,
}

impl JsonlSource {
    pub fn open(
        path: Arc<PathBuf>,
        fields: Fields,
        limit: usize,
        hash: bool,
    ) -> Result<Self, ReadError> {
        let file = File::open(path.as_ref()).map_err(|e| ReadError::io(path.as_ref(), e))?;
        let mut source = Self {
            path,
            reader: BufReader::with_capacity(256 * 1024, Md5Reader::new(file, hash)),
            buf: Vec::new(),
            line: 0,
            limit,
            fields,
            bytes_read: 0,
            columns: Vec::new(),
            pending: None,
        };
        // Peek the first non-empty line for the column names; it is parsed again by next_row.
        while let Some(kind) = source.read_line()? {
            if kind == LineKind::Line && is_blank(&source.buf) {
                continue;
            }
            if kind == LineKind::Line {
                strip_bom(&mut source.buf);
                if let Ok(text) = std::str::from_utf8(&source.buf) {
                    let mut de = serde_json::Deserializer::from_str(text);
                    if let Ok(Row::Object { keys, .. }) =
                        RowSeed::new(&source.fields, true).deserialize(&mut de)
                    {
                        source.columns = keys;
                    }
                }
            }
            source.pending = Some(kind);
            break;
        }
        Ok(source)
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
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

    /// Reads the next line into `buf` (without its line ending). `None` at end of file.
    fn read_line(&mut self) -> Result<Option<LineKind>, ReadError> {
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY * 8 {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
        let mut any = false;
        let mut too_long = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::io(self.path.as_ref(), e)),
            };
            if available.is_empty() {
                break;
            }
            any = true;
            let (used, ends) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if !too_long {
                let content = self.buf.len() + used - usize::from(ends);
                // One byte of slack for a `\r` before the `\n`.
                if content > self.limit.saturating_add(1) {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&available[..used]);
                }
            }
            self.reader.consume(used);
            self.bytes_read += used as u64;
            if ends {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.line += 1;
        if too_long {
            return Ok(Some(LineKind::TooLong));
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > self.limit {
            return Ok(Some(LineKind::TooLong));
        }
        Ok(Some(LineKind::Line))
    }

    pub fn next_row(&mut self) -> Result<Option<Record>, ReadError> {
        loop {
            let kind = match self.pending.take() {
                Some(kind) => kind,
                None => match self.read_line()? {
                    Some(kind) => kind,
                    None => return Ok(None),
                },
            };
            match kind {
                LineKind::TooLong => {
                    return Err(ReadError::LineTooLong {
                        at: self.at(),
                        limit: self.limit,
                    });
                }
                LineKind::Line if is_blank(&self.buf) => continue,
                LineKind::Line => return self.parse_line().map(Some),
            }
        }
    }

    fn parse_line(&mut self) -> Result<Record, ReadError> {
        if self.line == 1 {
            strip_bom(&mut self.buf);
        }
        let text = std::str::from_utf8(&self.buf).map_err(|e| ReadError::InvalidUtf8 {
            at: self.at(),
            field: None,
            byte: e.valid_up_to() + 1,
        })?;
        let mut de = serde_json::Deserializer::from_str(text);
        let row = RowSeed::new(&self.fields, false)
            .deserialize(&mut de)
            .and_then(|row| de.end().map(|()| row))
            .map_err(|e| ReadError::MalformedJson {
                at: self.at(),
                message: format!("{e}"),
            })?;
        let (text, label) = match row {
            Row::NotObject(found) => {
                return Err(ReadError::NotAnObject {
                    at: self.at(),
                    found,
                });
            }
            Row::Object { text, label, .. } => (text, label),
        };
        let text = match text {
            Cell::Str(s) => s,
            Cell::Absent | Cell::Null => {
                return Err(ReadError::MissingField {
                    at: self.at(),
                    field: self.fields.text.clone(),
                    expected: "a string",
                });
            }
            Cell::Int(s) => {
                return Err(ReadError::WrongType {
                    at: self.at(),
                    field: self.fields.text.clone(),
                    expected: "a string",
                    found: format!("number {s}"),
                });
            }
            Cell::Other(found) => {
                return Err(ReadError::WrongType {
                    at: self.at(),
                    field: self.fields.text.clone(),
                    expected: "a string",
                    found,
                });
            }
        };
        let label = match label {
            Cell::Str(s) | Cell::Int(s) => Some(s),
            Cell::Absent | Cell::Null if !self.fields.label_required => None,
            Cell::Absent | Cell::Null => {
                return Err(ReadError::MissingField {
                    at: self.at(),
                    field: self.fields.label.clone(),
                    expected: "a string or an integer",
                });
            }
            Cell::Other(found) => {
                return Err(ReadError::WrongType {
                    at: self.at(),
                    field: self.fields.label.clone(),
                    expected: "a string or an integer",
                    found,
                });
            }
        };
        Ok(Record { text, label })
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn strip_bom(buf: &mut Vec<u8>) {
    if buf.starts_with(b"\xEF\xBB\xBF") {
        buf.drain(..3);
    }
}

/// One field's value, as far as the reader cares.
enum Cell {
    Absent,
    Null,
    Str(String),
    /// An integer, already formatted (accepted as a label).
    Int(String),
    /// Anything else, described for the error message.
    Other(String),
}

impl Cell {
    fn from_value(value: serde_json::Value) -> Cell {
        match value {
            serde_json::Value::String(s) => Cell::Str(s),
            serde_json::Value::Null => Cell::Null,
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Cell::Int(n.to_string()),
            other => Cell::Other(describe_json(&other)),
        }
    }
}

enum Row {
    Object {
        text: Cell,
        label: Cell,
        keys: Vec<String>,
    },
    NotObject(String),
}

/// Deserializes one line, keeping only the text and label fields (and, when asked, the keys).
struct RowSeed<'a> {
    fields: &'a Fields,
    want_keys: bool,
}

impl<'a> RowSeed<'a> {
    fn new(fields: &'a Fields, want_keys: bool) -> Self {
        Self { fields, want_keys }
    }
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        d.deserialize_any(self)
    }
}

enum KeyKind {
    Text,
    Label,
    Other,
}

struct KeySeed<'a> {
    fields: &'a Fields,
    keys: Option<&'a mut Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = KeyKind;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<KeyKind, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = KeyKind;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<KeyKind, E> {
        if let Some(keys) = self.keys {
            keys.push(key.to_string());
        }
        Ok(if key == self.fields.text {
            KeyKind::Text
        } else if key == self.fields.label {
            KeyKind::Label
        } else {
            KeyKind::Other
        })
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let mut text = Cell::Absent;
        let mut label = Cell::Absent;
        let mut keys = Vec::new();
        loop {
            let seed = KeySeed {
                fields: self.fields,
                keys: self.want_keys.then_some(&mut keys),
            };
            match map.next_key_seed(seed)? {
                None => break,
                Some(KeyKind::Text) => text = Cell::from_value(map.next_value()?),
                Some(KeyKind::Label) => label = Cell::from_value(map.next_value()?),
                Some(KeyKind::Other) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Row::Object { text, label, keys })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Row::NotObject("an array".to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Row, E> {
        Ok(Row::NotObject(describe_json(&serde_json::Value::String(
            v.to_string(),
        ))))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Row, E> {
        Ok(Row::NotObject(format!("boolean {v}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Row, E> {
        Ok(Row::NotObject(format!("number {v}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Row, E> {
        Ok(Row::NotObject(format!("number {v}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Row, E> {
        Ok(Row::NotObject(format!("number {v}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Row, E> {
        Ok(Row::NotObject("null".to_string()))
    }
}
