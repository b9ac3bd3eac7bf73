//! Parquet rows through `parquet`'s arrow reader: only the text and label columns are decoded,
//! one record batch (of the configured size) at a time. Rows are 1-based in errors.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use taxon_core::{Location, Record};

use super::Fields;
use crate::ReadError;

const TEXT_TYPES: &str = "a string column (Utf8, LargeUtf8 or Utf8View)";
const LABEL_TYPES: &str = "a string or integer column";

pub(crate) struct ParquetSource {
    path: Arc<PathBuf>,
    reader: ParquetRecordBatchReader,
    columns: Vec<String>,
    fields: Fields,
    has_label: bool,
    texts: Vec<Option<String>>,
    labels: Vec<Option<String>>,
    /// Next index into `texts`/`labels`.
    cursor: usize,
    /// Rows in batches before the current one.
    rows_before: u64,
    total_rows: u64,
    file_size: u64,
}

impl ParquetSource {
    pub fn open(path: Arc<PathBuf>, fields: Fields, batch_size: usize) -> Result<Self, ReadError> {
        let file = File::open(path.as_ref()).map_err(|e| ReadError::io(path.as_ref(), e))?;
        let file_size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(&path, e))?;
        let schema = builder.schema().clone();
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let find = |name: &str| columns.iter().position(|c| c == name);
        let text_idx = find(&fields.text).ok_or_else(|| ReadError::MissingColumn {
            path: path.to_path_buf(),
            role: "text",
            column: fields.text.clone(),
            found: columns.clone(),
        })?;
        check_type(
            &path,
            &fields.text,
            schema.field(text_idx).data_type(),
            false,
        )?;
        let label_idx = find(&fields.label);
        match label_idx {
            Some(idx) => check_type(&path, &fields.label, schema.field(idx).data_type(), true)?,
            None if fields.label_required => {
                return Err(ReadError::MissingColumn {
                    path: path.to_path_buf(),
                    role: "label",
                    column: fields.label.clone(),
                    found: columns,
                });
            }
            None => {}
        }
        let total_rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let mask = ProjectionMask::roots(
            builder.parquet_schema(),
            std::iter::once(text_idx).chain(label_idx),
        );
        let reader = builder
            .with_projection(mask)
            .with_batch_size(batch_size)
            .build()
            .map_err(|e| parquet_error(&path, e))?;
        Ok(Self {
            path,
            reader,
            columns,
            fields,
            has_label: label_idx.is_some(),
            texts: Vec::new(),
            labels: Vec::new(),
            cursor: 0,
            rows_before: 0,
            total_rows,
            file_size,
        })
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn bytes_read(&self) -> u64 {
        if self.total_rows == 0 {
            return 0;
        }
        let done = self.rows_before + self.cursor as u64;
        (self.file_size as f64 * done as f64 / self.total_rows as f64) as u64
    }

    fn load_batch(&mut self) -> Result<bool, ReadError> {
        let batch: RecordBatch = match self.reader.next() {
            None => return Ok(false),
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                return Err(ReadError::Parquet {
                    path: self.path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        self.rows_before += self.texts.len() as u64;
        self.cursor = 0;
        let column = |name: &str| batch.column_by_name(name).cloned();
        let text_col = column(&self.fields.text).ok_or_else(|| ReadError::Parquet {
            path: self.path.to_path_buf(),
            message: format!("column {:?} missing from a record batch", self.fields.text),
        })?;
        self.texts = strings(text_col.as_ref()).ok_or_else(|| self.type_error(&text_col, false))?;
        self.labels = match (self.has_label, column(&self.fields.label)) {
            (true, Some(label_col)) => {
                labels(label_col.as_ref()).ok_or_else(|| self.type_error(&label_col, true))?
            }
            _ => vec![None; self.texts.len()],
        };
        Ok(true)
    }

    fn type_error(&self, col: &Arc<dyn Array>, label: bool) -> ReadError {
        ReadError::UnsupportedColumnType {
            path: self.path.to_path_buf(),
            column: if label {
                self.fields.label.clone()
            } else {
                self.fields.text.clone()
            },
            expected: if label { LABEL_TYPES } else { TEXT_TYPES },
            found: col.data_type().to_string(),
        }
    }

    fn at(&self) -> Location {
        Location {
            path: self.path.clone(),
            line: self.rows_before + self.cursor as u64,
            is_row: true,
        }
    }

    pub fn next_row(&mut self) -> Result<Option<Record>, ReadError> {
        while self.cursor >= self.texts.len() {
            if !self.load_batch()? {
                return Ok(None);
            }
        }
        let i = self.cursor;
        self.cursor += 1;
        let text = self.texts[i].take();
        let label = self.labels[i].take();
        let Some(text) = text else {
            return Err(ReadError::MissingField {
                at: self.at(),
                field: self.fields.text.clone(),
                expected: "a string (found null)",
            });
        };
        if label.is_none() && self.fields.label_required {
            return Err(ReadError::MissingField {
                at: self.at(),
                field: self.fields.label.clone(),
                expected: "a string or an integer (found null)",
            });
        }
        Ok(Some(Record { text, label }))
    }
}

fn parquet_error(path: &Arc<PathBuf>, err: parquet::errors::ParquetError) -> ReadError {
    ReadError::Parquet {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

fn is_string_type(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_string_type(values),
        _ => false,
    }
}

fn is_int_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

fn check_type(
    path: &Arc<PathBuf>,
    column: &str,
    dt: &DataType,
    label: bool,
) -> Result<(), ReadError> {
    if is_string_type(dt) || (label && is_int_type(dt)) {
        Ok(())
    } else {
        Err(ReadError::UnsupportedColumnType {
            path: path.to_path_buf(),
            column: column.to_string(),
            expected: if label { LABEL_TYPES } else { TEXT_TYPES },
            found: dt.to_string(),
        })
    }
}

/// The values of a string column (plain, large, view or dictionary-encoded); `None` for other
/// types.
fn strings(array: &dyn Array) -> Option<Vec<Option<String>>> {
    fn collect<'a>(it: impl Iterator<Item = Option<&'a str>>) -> Vec<Option<String>> {
        it.map(|v| v.map(str::to_string)).collect()
    }
    match array.data_type() {
        DataType::Utf8 => Some(collect(array.as_string::<i32>().iter())),
        DataType::LargeUtf8 => Some(collect(array.as_string::<i64>().iter())),
        DataType::Utf8View => Some(collect(array.as_string_view().iter())),
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary_opt()?;
            let values = strings(dict.values().as_ref())?;
            let keys = dict.normalized_keys();
            Some(
                keys.iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        if array.is_null(i) {
                            None
                        } else {
                            values.get(k).cloned().flatten()
                        }
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// The values of a label column: strings, or integers formatted in decimal.
fn labels(array: &dyn Array) -> Option<Vec<Option<String>>> {
    macro_rules! ints {
        ($t:ty) => {
            Some(
                array
                    .as_primitive::<$t>()
                    .iter()
                    .map(|v| v.map(|n| n.to_string()))
                    .collect(),
            )
        };
    }
    match array.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        _ => strings(array),
    }
}
