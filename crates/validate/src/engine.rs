//! The validation pass: one streaming read of the data (and one of the test split, when an
//! expectation needs it) that gathers everything every expectation needs, then the verdicts.
//!
//! Memory stays bounded by one batch of records plus, only when an expectation asks for them:
//! one 64-bit hash and row number per distinct text (uniqueness, train/test overlap) and a
//! count per distinct value, up to [`MAX_DISTINCT`] values (distinct-set and share checks).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use taxon_dataset::text::{PrehashedState, text_hash64, truncate_chars};
use taxon_dataset::{DatasetReader, OnError, ReadOptions};

use crate::ValidateError;
use crate::report::{ExpectationResult, Statistics, ValidationReport};
use crate::suite::{Expectation, Suite};

/// At most this many distinct values are counted per column; past it, distinct-set and share
/// expectations on that column fail with a note instead of growing without bound.
pub const MAX_DISTINCT: usize = 100_000;

/// How many unexpected values or rows a result lists.
pub const SAMPLE_SIZE: usize = 20;

/// Characters of a text shown in a sample.
const SAMPLE_CHARS: usize = 80;

/// The two columns whose values taxon reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Text = 0,
    Label = 1,
}

/// What the pass keeps for one column.
#[derive(Default)]
struct ColumnState {
    /// Missing values (label absent or null).
    nulls: u64,
    /// Empty or whitespace-only values.
    blanks: u64,
    null_rows: Vec<u64>,
    /// Non-missing values seen.
    present: u64,
    /// Hash of the normalized value -> first row, when uniqueness or overlap needs it.
    seen: Option<HashMap<u64, u64, PrehashedState>>,
    duplicates: u64,
    duplicate_samples: Vec<String>,
    /// Value -> count, when distinct sets or shares need it.
    counts: Option<BTreeMap<String, u64>>,
    counts_overflowed: bool,
}

/// Per-expectation state for checks whose parameters differ between expectations.
enum Check {
    None,
    Lengths {
        col: Col,
        min: Option<u64>,
        max: Option<u64>,
        shortest: Option<u64>,
        longest: Option<u64>,
        unexpected: u64,
        samples: Vec<String>,
    },
    InSet {
        col: Col,
        set: HashSet<String>,
        unexpected: u64,
        values: BTreeMap<String, u64>,
        first_row: Option<u64>,
    },
}

/// Validates `data` (and `test`, or the suite's `test_data`) against `suite`, reading with
/// default options and the suite's field names.
pub fn validate_paths(
    data: &Path,
    test: Option<&Path>,
    suite: &Suite,
) -> Result<ValidationReport, ValidateError> {
    validate_paths_with(data, test, suite, &ReadOptions::default(), &mut |_| {})
}

/// [`validate_paths`] with reader options (format, field names, batch size) and a progress
/// callback receiving the bytes read since its last call. The suite's `text_field` /
/// `label_field`, when set, win over the options'; the error policy is always skip-and-count,
/// because unreadable rows are what `expect_column_values_to_not_be_null` reports.
pub fn validate_paths_with(
    data: &Path,
    test: Option<&Path>,
    suite: &Suite,
    opts: &ReadOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ValidationReport, ValidateError> {
    let mut opts = opts.clone();
    if let Some(f) = &suite.text_field {
        opts.text_field = f.clone();
    }
    if let Some(f) = &suite.label_field {
        opts.label_field = f.clone();
    }
    opts.on_error = OnError::Skip;
    opts.label_required = false;

    let test_path: Option<PathBuf> = test
        .map(Path::to_path_buf)
        .or_else(|| suite.test_data.clone());
    let cols = resolve_columns(suite, &opts)?;
    if test_path.is_none()
        && let Some((i, e)) = suite
            .expectations
            .iter()
            .enumerate()
            .find(|(_, e)| matches!(e, Expectation::ExpectTrainTestOverlapToBeAtMost(_)))
    {
        return Err(ValidateError::MissingTestData {
            path: suite.path.clone(),
            index: i + 1,
            expectation_type: e.type_name().to_string(),
        });
    }

    // Decide what the pass must keep.
    let mut columns = [ColumnState::default(), ColumnState::default()];
    let mut checks = Vec::with_capacity(suite.expectations.len());
    for (exp, col) in suite.expectations.iter().zip(&cols) {
        let check = match exp {
            Expectation::ExpectColumnValuesToBeUnique(_) => {
                columns[col_of(col) as usize]
                    .seen
                    .get_or_insert_with(Default::default);
                Check::None
            }
            Expectation::ExpectTrainTestOverlapToBeAtMost(_) => {
                columns[Col::Text as usize]
                    .seen
                    .get_or_insert_with(Default::default);
                Check::None
            }
            Expectation::ExpectColumnDistinctValuesToEqualSet(_)
            | Expectation::ExpectColumnValueSharesToBeBetween(_) => {
                columns[col_of(col) as usize]
                    .counts
                    .get_or_insert_with(Default::default);
                Check::None
            }
            Expectation::ExpectColumnValueLengthsToBeBetween(k) => Check::Lengths {
                col: col_of(col),
                min: k.min_value,
                max: k.max_value,
                shortest: None,
                longest: None,
                unexpected: 0,
                samples: Vec::new(),
            },
            Expectation::ExpectColumnValuesToBeInSet(k) => Check::InSet {
                col: col_of(col),
                set: k.value_set.iter().cloned().collect(),
                unexpected: 0,
                values: BTreeMap::new(),
                first_row: None,
            },
            _ => Check::None,
        };
        checks.push(check);
    }

    // The pass over the data.
    let mut reader = DatasetReader::open(data, &opts).map_err(|source| ValidateError::Read {
        role: "data",
        path: data.to_path_buf(),
        source: Box::new(source),
    })?;
    let header = reader.columns().to_vec();
    let mut rows = 0u64;
    let mut scratch = String::new();
    let mut last_bytes = 0;
    loop {
        let batch = reader.next_batch().map_err(|source| ValidateError::Read {
            role: "data",
            path: data.to_path_buf(),
            source: Box::new(source),
        })?;
        let Some(batch) = batch else { break };
        for record in &batch {
            rows += 1;
            let values = [Some(record.text.as_str()), record.label.as_deref()];
            for (c, state) in columns.iter_mut().enumerate() {
                observe_column(state, rows, values[c], &mut scratch);
            }
            for check in &mut checks {
                observe_check(check, rows, &values);
            }
        }
        let now = reader.bytes_read();
        progress(now.saturating_sub(last_bytes));
        last_bytes = now;
    }
    let skipped = reader.skipped();
    let skipped_samples: Vec<String> = reader
        .skipped_samples()
        .iter()
        .map(ToString::to_string)
        .collect();

    // The pass over the test split, when needed.
    let overlap = match (&test_path, suite.needs_test_data()) {
        (Some(path), true) => Some(test_overlap(
            path,
            &opts,
            columns[Col::Text as usize].seen.as_ref(),
            progress,
        )?),
        _ => None,
    };

    let ctx = Finished {
        data,
        header: &header,
        rows,
        skipped,
        skipped_samples: &skipped_samples,
        columns: &columns,
        overlap: overlap.as_ref(),
        text_field: &opts.text_field,
    };
    let results: Vec<ExpectationResult> = suite
        .expectations
        .iter()
        .zip(&cols)
        .zip(&checks)
        .map(|((exp, col), check)| ctx.evaluate(exp, *col, check))
        .collect();
    Ok(ValidationReport::new(
        suite,
        results,
        Statistics::partial(rows, skipped, overlap.as_ref().map(|o| o.test_rows)),
    ))
}

fn col_of(c: &Option<Col>) -> Col {
    c.unwrap_or(Col::Text)
}

/// Maps each expectation's value column to text or label, or errors naming the expectation.
fn resolve_columns(suite: &Suite, opts: &ReadOptions) -> Result<Vec<Option<Col>>, ValidateError> {
    suite
        .expectations
        .iter()
        .enumerate()
        .map(|(i, exp)| match exp.value_column() {
            None => Ok(None),
            Some(c) if c == opts.text_field => Ok(Some(Col::Text)),
            Some(c) if c == opts.label_field => Ok(Some(Col::Label)),
            Some(c) => Err(ValidateError::Expectation {
                path: suite.path.clone(),
                index: i + 1,
                expectation_type: exp.type_name().to_string(),
                message: format!(
                    "column {c:?} is neither the text field {:?} nor the label field {:?}; \
                     set text_field/label_field in the suite (or pass --text-field/--label-field)",
                    opts.text_field, opts.label_field
                ),
            }),
        })
        .collect()
}

fn observe_column(state: &mut ColumnState, row: u64, value: Option<&str>, scratch: &mut String) {
    let Some(v) = value else {
        state.nulls += 1;
        if state.null_rows.len() < SAMPLE_SIZE {
            state.null_rows.push(row);
        }
        return;
    };
    state.present += 1;
    if v.trim().is_empty() {
        state.blanks += 1;
        if state.null_rows.len() < SAMPLE_SIZE {
            state.null_rows.push(row);
        }
    }
    if let Some(seen) = &mut state.seen {
        let h = text_hash64(v, scratch);
        match seen.get(&h) {
            Some(first) => {
                state.duplicates += 1;
                if state.duplicate_samples.len() < SAMPLE_SIZE {
                    state.duplicate_samples.push(format!(
                        "record {row} repeats record {first}: {:?}",
                        truncate_chars(v, SAMPLE_CHARS)
                    ));
                }
            }
            None => {
                seen.insert(h, row);
            }
        }
    }
    if let Some(counts) = &mut state.counts {
        if let Some(n) = counts.get_mut(v) {
            *n += 1;
        } else if counts.len() < MAX_DISTINCT {
            counts.insert(v.to_string(), 1);
        } else {
            state.counts_overflowed = true;
        }
    }
}

fn observe_check(check: &mut Check, row: u64, values: &[Option<&str>; 2]) {
    match check {
        Check::None => {}
        Check::Lengths {
            col,
            min,
            max,
            shortest,
            longest,
            unexpected,
            samples,
        } => {
            let Some(v) = values[*col as usize] else {
                return;
            };
            let len = v.chars().count() as u64;
            *shortest = Some(shortest.map_or(len, |s| s.min(len)));
            *longest = Some(longest.map_or(len, |l| l.max(len)));
            if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
                *unexpected += 1;
                if samples.len() < SAMPLE_SIZE {
                    samples.push(format!("record {row}: {len} chars"));
                }
            }
        }
        Check::InSet {
            col,
            set,
            unexpected,
            values: bad,
            first_row,
        } => {
            let Some(v) = values[*col as usize] else {
                return;
            };
            if !set.contains(v) {
                *unexpected += 1;
                first_row.get_or_insert(row);
                if let Some(n) = bad.get_mut(v) {
                    *n += 1;
                } else if bad.len() < SAMPLE_SIZE {
                    bad.insert(v.to_string(), 1);
                }
            }
        }
    }
}

/// What the test pass found.
struct Overlap {
    test_path: PathBuf,
    test_rows: u64,
    test_skipped: u64,
    overlapping: u64,
    samples: Vec<String>,
}

fn test_overlap(
    path: &Path,
    opts: &ReadOptions,
    train: Option<&HashMap<u64, u64, PrehashedState>>,
    progress: &mut dyn FnMut(u64),
) -> Result<Overlap, ValidateError> {
    let read_err = |source| ValidateError::Read {
        role: "test data",
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let mut reader = DatasetReader::open(path, opts).map_err(read_err)?;
    let mut out = Overlap {
        test_path: path.to_path_buf(),
        test_rows: 0,
        test_skipped: 0,
        overlapping: 0,
        samples: Vec::new(),
    };
    let mut scratch = String::new();
    let mut last_bytes = 0;
    while let Some(batch) = reader.next_batch().map_err(read_err)? {
        for record in batch {
            out.test_rows += 1;
            let h = text_hash64(&record.text, &mut scratch);
            if let Some(train_row) = train.and_then(|t| t.get(&h)) {
                out.overlapping += 1;
                if out.samples.len() < SAMPLE_SIZE {
                    out.samples.push(format!(
                        "test record {} = data record {train_row}: {:?}",
                        out.test_rows,
                        truncate_chars(&record.text, SAMPLE_CHARS)
                    ));
                }
            }
        }
        let now = reader.bytes_read();
        progress(now.saturating_sub(last_bytes));
        last_bytes = now;
    }
    out.test_skipped = reader.skipped();
    Ok(out)
}

/// Everything the pass gathered, from which each expectation gets its verdict.
struct Finished<'a> {
    data: &'a Path,
    header: &'a [String],
    rows: u64,
    skipped: u64,
    skipped_samples: &'a [String],
    columns: &'a [ColumnState; 2],
    overlap: Option<&'a Overlap>,
    text_field: &'a str,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// GE's `mostly`: success when the share of conforming elements reaches it (vacuously true
/// with no elements).
fn meets_mostly(unexpected: u64, elements: u64, mostly: Option<f64>) -> bool {
    let need = mostly.unwrap_or(1.0);
    elements == 0 || 1.0 - share(unexpected, elements) >= need - 1e-12
}

/// GE's map-expectation details.
fn map_details(elements: u64, unexpected: u64, extra: Value) -> Value {
    let mut d = json!({
        "element_count": elements,
        "unexpected_count": unexpected,
        "unexpected_percent": round4(100.0 * share(unexpected, elements)),
    });
    if let (Value::Object(d), Value::Object(extra)) = (&mut d, extra) {
        d.extend(extra);
    }
    d
}

impl Finished<'_> {
    fn at(&self, row: u64) -> String {
        format!("{}: record {row}", self.data.display())
    }

    fn evaluate(&self, exp: &Expectation, col: Option<Col>, check: &Check) -> ExpectationResult {
        let (success, observed, details, summary) = self.verdict(exp, col, check);
        ExpectationResult {
            expectation_type: exp.type_name().to_string(),
            kwargs: exp.kwargs_json(),
            success,
            observed_value: observed,
            details,
            summary,
        }
    }

    fn verdict(
        &self,
        exp: &Expectation,
        col: Option<Col>,
        check: &Check,
    ) -> (bool, Value, Value, String) {
        let state = col.map(|c| &self.columns[c as usize]);
        match exp {
            Expectation::ExpectTableColumnsToMatchSet(k) => {
                let have: BTreeSet<&str> = self.header.iter().map(String::as_str).collect();
                let want: BTreeSet<&str> = k.column_set.iter().map(String::as_str).collect();
                let missing: Vec<&str> = want.difference(&have).copied().collect();
                let extra: Vec<&str> = have.difference(&want).copied().collect();
                let ok = missing.is_empty() && (!k.exact_match || extra.is_empty());
                let summary = if ok {
                    self.header.join(", ")
                } else {
                    format!(
                        "missing [{}], unexpected [{}]",
                        missing.join(", "),
                        extra.join(", ")
                    )
                };
                (
                    ok,
                    json!(self.header),
                    json!({"missing": missing, "unexpected": extra}),
                    summary,
                )
            }
            Expectation::ExpectColumnToExist(k) => {
                let ok = self.header.contains(&k.column);
                (
                    ok,
                    json!(self.header),
                    json!({}),
                    if ok {
                        format!("{:?} present", k.column)
                    } else {
                        format!("{:?} absent; columns: {}", k.column, self.header.join(", "))
                    },
                )
            }
            Expectation::ExpectColumnValuesToNotBeNull(k) => {
                let s = state.unwrap_or(&self.columns[0]);
                // Rows the reader could not read count as null in every column.
                let unexpected = s.nulls + s.blanks + self.skipped;
                let elements = self.rows + self.skipped;
                let ok = meets_mostly(unexpected, elements, k.mostly);
                let first = s
                    .null_rows
                    .first()
                    .map(|r| self.at(*r))
                    .or_else(|| self.skipped_samples.first().cloned());
                let details = map_details(
                    elements,
                    unexpected,
                    json!({
                        "missing_or_null": s.nulls,
                        "empty_or_whitespace": s.blanks,
                        "unreadable_rows": self.skipped,
                        "unreadable_samples": self.skipped_samples,
                        "partial_unexpected_list": s.null_rows.iter().map(|r| format!("record {r}")).collect::<Vec<_>>(),
                        "first_unexpected": first,
                    }),
                );
                let summary = format!(
                    "{unexpected} of {elements} null/empty/unreadable ({} missing, {} blank, {} unreadable)",
                    s.nulls, s.blanks, self.skipped
                );
                (ok, json!(unexpected), details, summary)
            }
            Expectation::ExpectColumnValueLengthsToBeBetween(k) => {
                let Check::Lengths {
                    shortest,
                    longest,
                    unexpected,
                    samples,
                    ..
                } = check
                else {
                    return internal(exp);
                };
                let elements = state.map_or(0, |s| s.present);
                let ok = meets_mostly(*unexpected, elements, k.mostly);
                let details = map_details(
                    elements,
                    *unexpected,
                    json!({"partial_unexpected_list": samples}),
                );
                let summary = format!(
                    "lengths {}..{} chars; {unexpected} out of range",
                    shortest.map_or("-".into(), |v| v.to_string()),
                    longest.map_or("-".into(), |v| v.to_string())
                );
                (
                    ok,
                    json!({"min": shortest, "max": longest}),
                    details,
                    summary,
                )
            }
            Expectation::ExpectColumnValuesToBeInSet(k) => {
                let Check::InSet {
                    unexpected,
                    values,
                    first_row,
                    ..
                } = check
                else {
                    return internal(exp);
                };
                let elements = state.map_or(0, |s| s.present);
                let ok = meets_mostly(*unexpected, elements, k.mostly);
                let details = map_details(
                    elements,
                    *unexpected,
                    json!({
                        "partial_unexpected_counts": values,
                        "first_unexpected": first_row.map(|r| self.at(r)),
                    }),
                );
                let summary = if *unexpected == 0 {
                    "all in set".to_string()
                } else {
                    let shown: Vec<String> =
                        values.iter().map(|(v, n)| format!("{v:?} x{n}")).collect();
                    format!("{unexpected} not in set: {}", shown.join(", "))
                };
                (ok, json!(unexpected), details, summary)
            }
            Expectation::ExpectColumnDistinctValuesToEqualSet(k) => {
                let s = state.unwrap_or(&self.columns[0]);
                let seen: BTreeSet<&str> = s
                    .counts
                    .as_ref()
                    .map(|c| c.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let want: BTreeSet<&str> = k.value_set.iter().map(String::as_str).collect();
                let missing: Vec<&str> = want.difference(&seen).copied().collect();
                let extra: Vec<&str> = seen.difference(&want).take(SAMPLE_SIZE).copied().collect();
                let ok = !s.counts_overflowed && missing.is_empty() && extra.is_empty();
                let observed: Vec<&str> = seen.iter().take(SAMPLE_SIZE * 5).copied().collect();
                let mut details = json!({"missing": missing, "unexpected": extra});
                if s.counts_overflowed {
                    details["note"] = json!(format!("more than {MAX_DISTINCT} distinct values"));
                }
                let summary = if ok {
                    observed.join(", ")
                } else {
                    format!(
                        "missing [{}], unexpected [{}]",
                        missing.join(", "),
                        extra.join(", ")
                    )
                };
                (ok, json!(observed), details, summary)
            }
            Expectation::ExpectTableRowCountToBeBetween(k) => {
                let ok = k.min_value.is_none_or(|m| self.rows >= m)
                    && k.max_value.is_none_or(|m| self.rows <= m);
                (
                    ok,
                    json!(self.rows),
                    json!({"skipped_rows": self.skipped}),
                    format!("{} rows", self.rows),
                )
            }
            Expectation::ExpectColumnValuesToBeUnique(k) => {
                let s = state.unwrap_or(&self.columns[0]);
                let ok = meets_mostly(s.duplicates, s.present, k.mostly);
                let details = map_details(
                    s.present,
                    s.duplicates,
                    json!({
                        "counted_as": "repeats of a value seen earlier (whitespace-normalized)",
                        "partial_unexpected_list": s.duplicate_samples,
                    }),
                );
                let summary = format!(
                    "{} repeats of {} ({:.2}%)",
                    s.duplicates,
                    s.present,
                    100.0 * share(s.duplicates, s.present)
                );
                (ok, json!(s.duplicates), details, summary)
            }
            Expectation::ExpectColumnValueSharesToBeBetween(k) => {
                let s = state.unwrap_or(&self.columns[0]);
                let counts = s.counts.clone().unwrap_or_default();
                let total: u64 = counts.values().sum();
                let shares: BTreeMap<&str, f64> = counts
                    .iter()
                    .map(|(v, n)| (v.as_str(), round4(share(*n, total))))
                    .collect();
                let offending: BTreeMap<&str, f64> = counts
                    .iter()
                    .map(|(v, n)| (v.as_str(), share(*n, total)))
                    .filter(|(_, sh)| {
                        k.min_value.is_some_and(|m| *sh < m - 1e-12)
                            || k.max_value.is_some_and(|m| *sh > m + 1e-12)
                    })
                    .map(|(v, sh)| (v, round4(sh)))
                    .collect();
                let ok = !s.counts_overflowed && offending.is_empty();
                let mut details = json!({"counts": counts, "out_of_range": offending});
                if s.counts_overflowed {
                    details["note"] = json!(format!("more than {MAX_DISTINCT} distinct values"));
                }
                let (lo, hi) = shares
                    .values()
                    .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
                let summary = if shares.is_empty() {
                    "no values".to_string()
                } else if ok {
                    format!("shares {lo:.3}..{hi:.3}")
                } else {
                    let shown: Vec<String> = offending
                        .iter()
                        .map(|(v, s)| format!("{v}={s:.3}"))
                        .collect();
                    format!("out of range: {}", shown.join(", "))
                };
                (ok, json!(shares), details, summary)
            }
            Expectation::ExpectTrainTestOverlapToBeAtMost(k) => {
                let Some(o) = self.overlap else {
                    return internal(exp);
                };
                let sh = share(o.overlapping, o.test_rows);
                let ok = sh <= k.max_share + 1e-12;
                let details = json!({
                    "test_data": o.test_path.display().to_string(),
                    "test_rows": o.test_rows,
                    "test_skipped_rows": o.test_skipped,
                    "overlapping_rows": o.overlapping,
                    "compared_on": self.text_field,
                    "partial_unexpected_list": o.samples,
                });
                let summary = format!(
                    "{} of {} test rows also in data ({:.2}%)",
                    o.overlapping,
                    o.test_rows,
                    100.0 * sh
                );
                (ok, json!(round4(sh)), details, summary)
            }
        }
    }
}

/// A state mismatch that the construction above rules out; reported, never a panic.
fn internal(exp: &Expectation) -> (bool, Value, Value, String) {
    (
        false,
        Value::Null,
        json!({"note": format!("internal: no state gathered for {}", exp.type_name())}),
        "internal error: no state".to_string(),
    )
}
