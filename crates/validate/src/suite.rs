//! The expectation suite: a YAML file in the shape of a Great Expectations suite, parsed
//! strictly (unknown keys, types or kwargs are errors naming the file and the expectation).
//!
//! ```yaml
//! expectation_suite_name: bbc_news   # optional
//! text_field: text                   # optional; the reader's text field otherwise
//! label_field: label                 # optional; the reader's label field otherwise
//! test_data: test.jsonl              # optional, relative to this file; --test wins
//! expectations:
//!   - expectation_type: expect_column_values_to_be_in_set
//!     kwargs: {column: label, value_set: [business, sport]}
//!     meta: {notes: "free-form, ignored"}
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use crate::ValidateError;

/// A parsed expectation suite.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suite {
    /// The file it was loaded from (used in error messages).
    pub path: PathBuf,
    /// `expectation_suite_name`, if given.
    pub name: Option<String>,
    /// The field holding the text; `None`: the reader's default (`text`).
    pub text_field: Option<String>,
    /// The field holding the label; `None`: the reader's default (`label`).
    pub label_field: Option<String>,
    /// Test split for leakage checks, resolved against the suite's folder.
    pub test_data: Option<PathBuf>,
    pub expectations: Vec<Expectation>,
}

/// One expectation with its kwargs. Serialized as GE does:
/// `{"expectation_type": "...", "kwargs": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "expectation_type",
    content = "kwargs",
    rename_all = "snake_case"
)]
pub enum Expectation {
    /// The table's columns equal `column_set` (or contain it when `exact_match: false`).
    ExpectTableColumnsToMatchSet(ColumnsMatchSet),
    /// The table has the column.
    ExpectColumnToExist(ColumnOnly),
    /// No value is missing, null, unreadable or (for strings) empty/whitespace-only.
    ExpectColumnValuesToNotBeNull(ColumnMostly),
    /// Every value's length in characters is within the bounds.
    ExpectColumnValueLengthsToBeBetween(LengthsBetween),
    /// Every value is in `value_set`.
    ExpectColumnValuesToBeInSet(ValueSet),
    /// The distinct values are exactly `value_set`.
    ExpectColumnDistinctValuesToEqualSet(DistinctSet),
    /// The number of rows read is within the bounds.
    ExpectTableRowCountToBeBetween(CountBetween),
    /// Values do not repeat (compared after whitespace normalization, as taxon's duplicate rate).
    ExpectColumnValuesToBeUnique(ColumnMostly),
    /// taxon: the share of every distinct value (class balance) is within the bounds.
    ExpectColumnValueSharesToBeBetween(SharesBetween),
    /// taxon: the share of test rows whose text also appears in the data is at most `max_share`.
    ExpectTrainTestOverlapToBeAtMost(OverlapAtMost),
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnsMatchSet {
    pub column_set: Vec<String>,
    /// GE's default: true (no other columns allowed).
    #[serde(default = "yes")]
    pub exact_match: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnOnly {
    pub column: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMostly {
    pub column: String,
    /// GE's `mostly`: the share of values that must meet the expectation (default 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mostly: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthsBetween {
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mostly: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSet {
    pub column: String,
    pub value_set: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mostly: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistinctSet {
    pub column: String,
    pub value_set: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountBetween {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharesBetween {
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlapAtMost {
    pub max_share: f64,
}

impl Expectation {
    /// The GE-style type name, e.g. `expect_column_values_to_be_in_set`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ExpectTableColumnsToMatchSet(_) => "expect_table_columns_to_match_set",
            Self::ExpectColumnToExist(_) => "expect_column_to_exist",
            Self::ExpectColumnValuesToNotBeNull(_) => "expect_column_values_to_not_be_null",
            Self::ExpectColumnValueLengthsToBeBetween(_) => {
                "expect_column_value_lengths_to_be_between"
            }
            Self::ExpectColumnValuesToBeInSet(_) => "expect_column_values_to_be_in_set",
            Self::ExpectColumnDistinctValuesToEqualSet(_) => {
                "expect_column_distinct_values_to_equal_set"
            }
            Self::ExpectTableRowCountToBeBetween(_) => "expect_table_row_count_to_be_between",
            Self::ExpectColumnValuesToBeUnique(_) => "expect_column_values_to_be_unique",
            Self::ExpectColumnValueSharesToBeBetween(_) => {
                "expect_column_value_shares_to_be_between"
            }
            Self::ExpectTrainTestOverlapToBeAtMost(_) => "expect_train_test_overlap_to_be_at_most",
        }
    }

    /// The kwargs as JSON (for reports).
    pub fn kwargs_json(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.remove("kwargs").unwrap_or(serde_json::Value::Null)
            }
            _ => serde_json::Value::Null,
        }
    }

    /// The column this expectation reads values of, if any.
    pub fn value_column(&self) -> Option<&str> {
        match self {
            Self::ExpectColumnValuesToNotBeNull(k) | Self::ExpectColumnValuesToBeUnique(k) => {
                Some(&k.column)
            }
            Self::ExpectColumnValueLengthsToBeBetween(k) => Some(&k.column),
            Self::ExpectColumnValuesToBeInSet(k) => Some(&k.column),
            Self::ExpectColumnDistinctValuesToEqualSet(k) => Some(&k.column),
            Self::ExpectColumnValueSharesToBeBetween(k) => Some(&k.column),
            Self::ExpectTableColumnsToMatchSet(_)
            | Self::ExpectColumnToExist(_)
            | Self::ExpectTableRowCountToBeBetween(_)
            | Self::ExpectTrainTestOverlapToBeAtMost(_) => None,
        }
    }

    /// Range checks on kwargs that serde cannot express.
    fn check(&self) -> Result<(), String> {
        fn share(name: &str, v: Option<f64>) -> Result<(), String> {
            match v {
                Some(x) if !(0.0..=1.0).contains(&x) => {
                    Err(format!("{name} must be between 0 and 1, got {x}"))
                }
                _ => Ok(()),
            }
        }
        fn bounds<T: PartialOrd + std::fmt::Display>(
            min: Option<T>,
            max: Option<T>,
        ) -> Result<(), String> {
            match (min, max) {
                (None, None) => Err("give min_value, max_value or both".into()),
                (Some(lo), Some(hi)) if lo > hi => {
                    Err(format!("min_value {lo} is greater than max_value {hi}"))
                }
                _ => Ok(()),
            }
        }
        match self {
            Self::ExpectColumnValuesToNotBeNull(k) | Self::ExpectColumnValuesToBeUnique(k) => {
                share("mostly", k.mostly)
            }
            Self::ExpectColumnValueLengthsToBeBetween(k) => {
                share("mostly", k.mostly)?;
                bounds(k.min_value, k.max_value)
            }
            Self::ExpectColumnValuesToBeInSet(k) => {
                share("mostly", k.mostly)?;
                if k.value_set.is_empty() {
                    return Err("value_set is empty".into());
                }
                Ok(())
            }
            Self::ExpectTableRowCountToBeBetween(k) => bounds(k.min_value, k.max_value),
            Self::ExpectColumnValueSharesToBeBetween(k) => {
                share("min_value", k.min_value)?;
                share("max_value", k.max_value)?;
                bounds(k.min_value, k.max_value)
            }
            Self::ExpectTrainTestOverlapToBeAtMost(k) => share("max_share", Some(k.max_share)),
            Self::ExpectTableColumnsToMatchSet(k) if k.column_set.is_empty() => {
                Err("column_set is empty".into())
            }
            Self::ExpectTableColumnsToMatchSet(_)
            | Self::ExpectColumnToExist(_)
            | Self::ExpectColumnDistinctValuesToEqualSet(_) => Ok(()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    #[serde(default)]
    expectation_suite_name: Option<String>,
    #[serde(default)]
    text_field: Option<String>,
    #[serde(default)]
    label_field: Option<String>,
    #[serde(default)]
    test_data: Option<PathBuf>,
    #[serde(default)]
    #[allow(dead_code)]
    meta: Option<Value>,
    expectations: Vec<RawExpectation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectation {
    expectation_type: String,
    #[serde(default)]
    kwargs: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    meta: Option<Value>,
}

impl Suite {
    /// Reads and checks a suite file.
    pub fn load(path: &Path) -> Result<Suite, ValidateError> {
        let text = std::fs::read_to_string(path).map_err(|source| ValidateError::SuiteIo {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses suite text; `path` names it in errors and anchors a relative `test_data`.
    pub fn parse(text: &str, path: &Path) -> Result<Suite, ValidateError> {
        let raw: RawSuite =
            serde_yaml_ng::from_str(text).map_err(|e| ValidateError::SuiteSyntax {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut expectations = Vec::with_capacity(raw.expectations.len());
        for (i, item) in raw.expectations.into_iter().enumerate() {
            let err = |message: String| ValidateError::Expectation {
                path: path.to_path_buf(),
                index: i + 1,
                expectation_type: item.expectation_type.clone(),
                message,
            };
            let mut tagged = Mapping::new();
            tagged.insert(
                Value::from("expectation_type"),
                Value::from(item.expectation_type.clone()),
            );
            let kwargs = item
                .kwargs
                .clone()
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| Value::Mapping(Mapping::new()));
            tagged.insert(Value::from("kwargs"), kwargs);
            let exp: Expectation = serde_yaml_ng::from_value(Value::Mapping(tagged))
                .map_err(|e| err(e.to_string()))?;
            exp.check().map_err(err)?;
            expectations.push(exp);
        }
        let test_data = raw.test_data.map(|p| match path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        });
        Ok(Suite {
            path: path.to_path_buf(),
            name: raw.expectation_suite_name,
            text_field: raw.text_field,
            label_field: raw.label_field,
            test_data,
            expectations,
        })
    }

    /// True when some expectation compares the data with a test split.
    pub fn needs_test_data(&self) -> bool {
        self.expectations
            .iter()
            .any(|e| matches!(e, Expectation::ExpectTrainTestOverlapToBeAtMost(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite, ValidateError> {
        Suite::parse(text, Path::new("suites/s.yaml"))
    }

    #[test]
    fn parses_every_type_and_resolves_test_data() {
        let s = parse(
            r#"
expectation_suite_name: demo
test_data: test.jsonl
expectations:
  - expectation_type: expect_table_columns_to_match_set
    kwargs: {column_set: [text, label]}
  - expectation_type: expect_column_to_exist
    kwargs: {column: text}
  - expectation_type: expect_column_values_to_not_be_null
    kwargs: {column: text}
    meta: {notes: ignored}
  - expectation_type: expect_column_value_lengths_to_be_between
    kwargs: {column: text, min_value: 1}
  - expectation_type: expect_column_values_to_be_in_set
    kwargs: {column: label, value_set: [a, b], mostly: 0.9}
  - expectation_type: expect_column_distinct_values_to_equal_set
    kwargs: {column: label, value_set: [a, b]}
  - expectation_type: expect_table_row_count_to_be_between
    kwargs: {max_value: 10}
  - expectation_type: expect_column_values_to_be_unique
    kwargs: {column: text}
  - expectation_type: expect_column_value_shares_to_be_between
    kwargs: {column: label, min_value: 0.1, max_value: 0.9}
  - expectation_type: expect_train_test_overlap_to_be_at_most
    kwargs: {max_share: 0.0}
"#,
        )
        .unwrap();
        assert_eq!(s.expectations.len(), 10);
        assert_eq!(s.name.as_deref(), Some("demo"));
        assert_eq!(s.test_data.as_deref(), Some(Path::new("suites/test.jsonl")));
        assert!(s.needs_test_data());
        match &s.expectations[0] {
            Expectation::ExpectTableColumnsToMatchSet(k) => assert!(k.exact_match),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.expectations[4].kwargs_json(),
            serde_json::json!({"column": "label", "value_set": ["a", "b"], "mostly": 0.9})
        );
        assert_eq!(
            s.expectations[4].type_name(),
            "expect_column_values_to_be_in_set"
        );
    }

    fn expectation_error(text: &str) -> (usize, String, String) {
        match parse(text).unwrap_err() {
            ValidateError::Expectation {
                index,
                expectation_type,
                message,
                ..
            } => (index, expectation_type, message),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn unknown_type_is_named_with_its_index() {
        let (i, t, m) = expectation_error(
            "expectations:\n  - {expectation_type: expect_column_to_exist, kwargs: {column: a}}\n  - {expectation_type: expect_magic, kwargs: {}}\n",
        );
        assert_eq!((i, t.as_str()), (2, "expect_magic"));
        assert!(m.contains("unknown variant"), "{m}");
    }

    #[test]
    fn unknown_or_missing_kwargs_are_errors() {
        let (i, _, m) = expectation_error(
            "expectations:\n  - {expectation_type: expect_column_to_exist, kwargs: {column: a, colour: red}}\n",
        );
        assert_eq!(i, 1);
        assert!(m.contains("colour"), "{m}");
        let (_, _, m) = expectation_error(
            "expectations:\n  - {expectation_type: expect_column_values_to_be_in_set, kwargs: {column: label}}\n",
        );
        assert!(m.contains("value_set"), "{m}");
    }

    #[test]
    fn out_of_range_kwargs_are_errors() {
        for (kwargs, needle) in [
            ("{column: t, mostly: 1.5}", "mostly must be between 0 and 1"),
            ("{column: t, min_value: 5, max_value: 2}", "greater than"),
            ("{column: t}", "give min_value"),
        ] {
            let t = if kwargs.contains("mostly") {
                "expect_column_values_to_be_unique"
            } else {
                "expect_column_value_lengths_to_be_between"
            };
            let (_, _, m) = expectation_error(&format!(
                "expectations:\n  - {{expectation_type: {t}, kwargs: {kwargs}}}\n"
            ));
            assert!(m.contains(needle), "{kwargs}: {m}");
        }
    }

    #[test]
    fn unknown_top_level_key_is_a_syntax_error_naming_the_file() {
        let err = parse("expectations: []\nextra: 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("suites/s.yaml: invalid expectation suite"),
            "{err}"
        );
        assert!(err.contains("extra"), "{err}");
    }
}
