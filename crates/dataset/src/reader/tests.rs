//! Reader tests: each format, each error kind with its exact location, skip counting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};

use super::*;

fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn read_all(path: &Path, opts: &ReadOptions) -> Result<Vec<Record>, ReadError> {
    DatasetReader::open(path, opts)?.collect()
}

fn rec(text: &str, label: &str) -> Record {
    Record {
        text: text.to_string(),
        label: Some(label.to_string()),
    }
}

fn first_error(path: &Path, opts: &ReadOptions) -> String {
    match read_all(path, opts) {
        Ok(rows) => panic!("expected an error, read {} rows", rows.len()),
        Err(e) => e.to_string(),
    }
}

fn skip() -> ReadOptions {
    ReadOptions {
        on_error: OnError::Skip,
        ..ReadOptions::default()
    }
}

#[test]
fn jsonl_reads_records_in_batches_and_skips_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.jsonl",
        b"\xEF\xBB\xBF{\"text\":\"a\",\"label\":\"x\",\"id\":1}\n\n  \r\n{\"label\":7,\"text\":\"b\"}\r\n{\"text\":\"c\",\"label\":\"y\",\"extra\":{\"n\":[1,2]}}",
    );
    let opts = ReadOptions {
        batch_size: 2,
        ..ReadOptions::default()
    };
    let mut r = DatasetReader::open(&p, &opts).unwrap();
    assert_eq!(r.columns(), ["text", "label", "id"]);
    assert_eq!(r.format(), Format::Jsonl);
    let b1 = r.next_batch().unwrap().unwrap();
    assert_eq!(b1, [rec("a", "x"), rec("b", "7")]);
    let b2 = r.next_batch().unwrap().unwrap();
    assert_eq!(b2, [rec("c", "y")]);
    assert!(r.next_batch().unwrap().is_none());
    assert_eq!(r.skipped(), 0);
    assert_eq!(r.bytes_read(), std::fs::metadata(&p).unwrap().len());
}

#[test]
fn jsonl_custom_fields_and_optional_label() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.ndjson",
        b"{\"body\":\"a\",\"cat\":\"x\"}\n{\"body\":\"b\"}\n{\"body\":\"c\",\"cat\":null}\n",
    );
    let opts = ReadOptions {
        text_field: "body".into(),
        label_field: "cat".into(),
        label_required: false,
        ..ReadOptions::default()
    };
    let rows = read_all(&p, &opts).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], rec("a", "x"));
    assert_eq!(rows[1].label, None);
    assert_eq!(rows[2].label, None);
}

#[test]
fn jsonl_errors_name_the_line_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let ok = "{\"text\":\"fine\",\"label\":\"x\"}\n";
    let cases: &[(&[u8], String)] = &[
        (
            b"{\"text\":\"t\",\"label\":3.5}",
            "field \"label\": expected a string or an integer, found number 3.5".into(),
        ),
        (
            b"{\"text\":3,\"label\":\"x\"}",
            "field \"text\": expected a string, found number 3".into(),
        ),
        (
            b"{\"text\":[\"a\"],\"label\":\"x\"}",
            "field \"text\": expected a string, found an array".into(),
        ),
        (
            b"{\"label\":\"x\"}",
            "missing field \"text\": expected a string".into(),
        ),
        (
            b"{\"text\":null,\"label\":\"x\"}",
            "missing field \"text\": expected a string".into(),
        ),
        (
            b"{\"text\":\"t\"}",
            "missing field \"label\": expected a string or an integer".into(),
        ),
        (
            b"{\"text\":\"t\",\"label\":true}",
            "field \"label\": expected a string or an integer, found boolean true".into(),
        ),
        (b"[1,2]", "expected a JSON object, found an array".into()),
        (
            b"\"just text\"",
            "expected a JSON object, found string \"just text\"".into(),
        ),
        (
            b"{\"text\":\"caf\xe9\",\"label\":\"x\"}",
            "invalid UTF-8 at byte 13: expected UTF-8 text".into(),
        ),
    ];
    for (i, (bad, expected)) in cases.iter().enumerate() {
        let mut body = format!("{ok}\n{ok}").into_bytes();
        body.extend_from_slice(bad);
        body.push(b'\n');
        let p = write(dir.path(), &format!("case{i}.jsonl"), &body);
        // Line 4: two good lines and one blank line come first.
        let want = format!("{}:4: {expected}", p.display());
        assert_eq!(first_error(&p, &ReadOptions::default()), want);
    }
}

#[test]
fn jsonl_malformed_json_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.jsonl",
        b"{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"a\" \"label\":\"x\"}\n",
    );
    let err = first_error(&p, &ReadOptions::default());
    assert!(
        err.starts_with(&format!(
            "{}:2: malformed JSON: expected `,` or `}}`",
            p.display()
        )),
        "{err}"
    );
    let p = write(
        dir.path(),
        "t.jsonl",
        b"{\"text\":\"a\",\"label\":\"x\"} trailing\n",
    );
    let err = first_error(&p, &ReadOptions::default());
    assert!(
        err.starts_with(&format!("{}:1: malformed JSON", p.display())),
        "{err}"
    );
}

#[test]
fn jsonl_line_over_the_limit_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("{{\"text\":\"{}\",\"label\":\"x\"}}\n", "a".repeat(200));
    let body =
        format!("{{\"text\":\"a\",\"label\":\"x\"}}\n{long}{{\"text\":\"b\",\"label\":\"y\"}}\n");
    let p = write(dir.path(), "long.jsonl", body.as_bytes());
    let open = |on_error| {
        let opts = ReadOptions {
            on_error,
            ..ReadOptions::default()
        };
        DatasetReader::open_with_limit(&p, Format::Jsonl, &opts, 100).unwrap()
    };
    let err = open(OnError::Fail)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err();
    assert!(matches!(err, ReadError::LineTooLong { limit: 100, .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: line longer than the limit of 100 bytes (0 MiB): expected one JSON object per line",
            p.display()
        )
    );
    // Skipping resumes at the next line, with the line count intact.
    let mut r = open(OnError::Skip);
    let rows: Vec<Record> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(rows, [rec("a", "x"), rec("b", "y")]);
    assert_eq!(r.skipped(), 1);
    assert_eq!(r.skipped_samples()[0].location().unwrap().line, 2);
}

#[test]
fn skip_counts_bad_rows_and_keeps_ten_samples() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..30 {
        if i % 2 == 0 {
            body.push_str(&format!("{{\"text\":\"row {i}\",\"label\":\"x\"}}\n"));
        } else {
            body.push_str("{not json}\n");
        }
    }
    let p = write(dir.path(), "s.jsonl", body.as_bytes());
    let mut r = DatasetReader::open(&p, &skip()).unwrap();
    let mut rows = 0;
    while let Some(b) = r.next_batch().unwrap() {
        rows += b.len();
    }
    assert_eq!(rows, 15);
    assert_eq!(r.skipped(), 15);
    assert_eq!(r.skipped_samples().len(), SKIPPED_SAMPLE_LIMIT);
    let lines: Vec<u64> = r
        .skipped_samples()
        .iter()
        .map(|e| e.location().unwrap().line)
        .collect();
    assert_eq!(lines, [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    // Under Fail, the iterator yields the error once and then ends.
    let mut it = DatasetReader::open(&p, &ReadOptions::default()).unwrap();
    assert!(it.next().unwrap().is_ok());
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn csv_and_tsv_pick_columns_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.csv",
        b"id,label,text\n1,sport,\"a, quoted\nmultiline text\"\n2,tech,plain\n",
    );
    let mut r = DatasetReader::open(&p, &ReadOptions::default()).unwrap();
    assert_eq!(r.columns(), ["id", "label", "text"]);
    let rows: Vec<Record> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(
        rows,
        [
            rec("a, quoted\nmultiline text", "sport"),
            rec("plain", "tech")
        ]
    );

    let p = write(dir.path(), "d.tsv", b"text\tlabel\nhello there\tgreet\n");
    let rows = read_all(&p, &ReadOptions::default()).unwrap();
    assert_eq!(rows, [rec("hello there", "greet")]);

    // --format overrides the extension.
    let p = write(dir.path(), "d.txt", b"text,label\nx,y\n");
    let opts = ReadOptions {
        format: Some(Format::Csv),
        ..ReadOptions::default()
    };
    assert_eq!(read_all(&p, &opts).unwrap(), [rec("x", "y")]);
    let err = first_error(&p, &ReadOptions::default());
    assert!(err.contains("cannot tell the format"), "{err}");
}

#[test]
fn csv_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "cols.csv", b"body,label\nx,y\n");
    assert_eq!(
        first_error(&p, &ReadOptions::default()),
        format!(
            "{}: no text column \"text\"; columns found: body, label",
            p.display()
        )
    );
    let p = write(dir.path(), "nolabel.csv", b"text,cat\nx,y\n");
    assert_eq!(
        first_error(&p, &ReadOptions::default()),
        format!(
            "{}: no label column \"label\"; columns found: text, cat",
            p.display()
        )
    );
    // A multi-line quoted field moves the line count: the bad record starts on line 5.
    let p = write(
        dir.path(),
        "short.csv",
        b"text,label\n\"two\nlines\",a\nok,b\nonly-one-field\n",
    );
    assert_eq!(
        first_error(&p, &ReadOptions::default()),
        format!(
            "{}:5: expected 2 fields as in the header row, found 1",
            p.display()
        )
    );
    let p = write(dir.path(), "utf.csv", b"text,label\nok,a\ncaf\xe9,b\n");
    assert_eq!(
        first_error(&p, &ReadOptions::default()),
        format!(
            "{}:3: field \"text\": invalid UTF-8 at byte 4: expected UTF-8 text",
            p.display()
        )
    );
    let p = write(dir.path(), "empty.csv", b"text,label\nok,a\nno label,\n");
    assert_eq!(
        first_error(&p, &ReadOptions::default()),
        format!(
            "{}:3: missing field \"label\": expected a non-empty label",
            p.display()
        )
    );
    // Skip keeps going past both kinds of bad row.
    let p = write(
        dir.path(),
        "mixed.csv",
        b"text,label\nok,a\ntoo,many,fields\n\xff,b\nfine,c\n",
    );
    let mut r = DatasetReader::open(&p, &skip()).unwrap();
    let rows: Vec<Record> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(rows, [rec("ok", "a"), rec("fine", "c")]);
    assert_eq!(r.skipped(), 2);
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_reads_string_and_integer_labels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.parquet");
    write_parquet(
        &p,
        vec![
            (
                "text",
                Arc::new(StringArray::from(vec!["a", "b", "c", "d", "e"])) as ArrayRef,
            ),
            (
                "label",
                Arc::new(Int64Array::from(vec![0, 1, 0, 2, 1])) as ArrayRef,
            ),
            (
                "id",
                Arc::new(Int64Array::from(vec![10, 11, 12, 13, 14])) as ArrayRef,
            ),
        ],
    );
    let opts = ReadOptions {
        batch_size: 2,
        ..ReadOptions::default()
    };
    let mut r = DatasetReader::open(&p, &opts).unwrap();
    assert_eq!(r.columns(), ["text", "label", "id"]);
    assert_eq!(
        r.next_batch().unwrap().unwrap(),
        [rec("a", "0"), rec("b", "1")]
    );
    let rest: Vec<Record> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(rest, [rec("c", "0"), rec("d", "2"), rec("e", "1")]);
}

#[test]
fn parquet_reads_large_view_and_dictionary_strings() {
    use arrow_array::types::Int32Type;
    use arrow_array::{DictionaryArray, LargeStringArray, StringViewArray};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.parquet");
    let labels: DictionaryArray<Int32Type> = vec![Some("sport"), None, Some("tech")]
        .into_iter()
        .collect();
    write_parquet(
        &p,
        vec![
            (
                "text",
                Arc::new(LargeStringArray::from(vec!["a", "b", "c"])) as ArrayRef,
            ),
            ("label", Arc::new(labels) as ArrayRef),
            (
                "alt",
                Arc::new(StringViewArray::from(vec!["x", "y", "z"])) as ArrayRef,
            ),
        ],
    );
    let opts = ReadOptions {
        label_required: false,
        ..ReadOptions::default()
    };
    let rows = read_all(&p, &opts).unwrap();
    assert_eq!(rows[0], rec("a", "sport"));
    assert_eq!(rows[1].label, None);
    assert_eq!(rows[2], rec("c", "tech"));
    // A null label is a missing field when labels are required.
    assert_eq!(
        first_error(&p, &ReadOptions::default()),
        format!(
            "{}: row 2: missing field \"label\": expected a string or an integer (found null)",
            p.display()
        )
    );
    let opts = ReadOptions {
        text_field: "alt".into(),
        label_field: "text".into(),
        ..ReadOptions::default()
    };
    let rows = read_all(&p, &opts).unwrap();
    assert_eq!(rows, [rec("x", "a"), rec("y", "b"), rec("z", "c")]);
}

#[test]
fn parquet_null_text_is_a_missing_field_at_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.parquet");
    write_parquet(
        &p,
        vec![
            (
                "text",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("d"),
                ])) as ArrayRef,
            ),
            (
                "label",
                Arc::new(StringArray::from(vec!["x", "y", "x", "y"])) as ArrayRef,
            ),
        ],
    );
    let opts = ReadOptions {
        batch_size: 2,
        ..ReadOptions::default()
    };
    assert_eq!(
        first_error(&p, &opts),
        format!(
            "{}: row 3: missing field \"text\": expected a string (found null)",
            p.display()
        )
    );
    let mut r = DatasetReader::open(
        &p,
        &ReadOptions {
            on_error: OnError::Skip,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(r.by_ref().count(), 3);
    assert_eq!(r.skipped(), 1);
}

#[test]
fn parquet_wrong_column_type_and_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.parquet");
    write_parquet(
        &p,
        vec![
            ("text", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            (
                "label",
                Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef,
            ),
        ],
    );
    assert_eq!(
        first_error(&p, &ReadOptions::default()),
        format!(
            "{}: column \"text\" has type Int64: expected a string column (Utf8, LargeUtf8 or Utf8View)",
            p.display()
        )
    );
    let opts = ReadOptions {
        text_field: "body".into(),
        ..ReadOptions::default()
    };
    assert_eq!(
        first_error(&p, &opts),
        format!(
            "{}: no text column \"body\"; columns found: text, label",
            p.display()
        )
    );
    let junk = write(dir.path(), "junk.parquet", b"not parquet at all");
    let err = first_error(&junk, &ReadOptions::default());
    assert!(
        err.starts_with(&format!("{}: invalid Parquet data", junk.display())),
        "{err}"
    );
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("absent.jsonl");
    let err = first_error(&p, &ReadOptions::default());
    assert!(err.starts_with(&format!("{}: ", p.display())), "{err}");
    assert!(matches!(
        DatasetReader::open(&p, &ReadOptions::default()),
        Err(ReadError::Io { .. })
    ));
}

#[test]
fn a_hashing_read_gives_the_files_md5_once_it_reaches_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let hashing = ReadOptions {
        hash: true,
        batch_size: 1,
        ..ReadOptions::default()
    };
    let jsonl: &[u8] = b"{\"text\":\"a\",\"label\":\"x\"}\n\n{\"text\":\"b\",\"label\":\"y\"}";
    let csv: &[u8] = b"text,label\na,x\n\"b, c\",y\n";
    for (name, body) in [("d.jsonl", jsonl), ("d.csv", csv)] {
        let p = write(dir.path(), name, body);
        let mut r = DatasetReader::open(&p, &hashing).unwrap();
        r.next_batch().unwrap().unwrap();
        assert_eq!(r.content_md5(), None, "{name}: not read to its end yet");
        while r.next_batch().unwrap().is_some() {}
        assert_eq!(r.content_md5(), Some(Md5Hex::of_bytes(body)), "{name}");
        let mut plain = DatasetReader::open(&p, &ReadOptions::default()).unwrap();
        while plain.next_batch().unwrap().is_some() {}
        assert_eq!(
            plain.content_md5(),
            None,
            "{name}: hashing was not asked for"
        );
    }
    let p = dir.path().join("d.parquet");
    write_parquet(
        &p,
        vec![
            ("text", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
            ("label", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
        ],
    );
    let mut r = DatasetReader::open(&p, &hashing).unwrap();
    while r.next_batch().unwrap().is_some() {}
    assert_eq!(r.content_md5(), None, "parquet is not read as a stream");
}
