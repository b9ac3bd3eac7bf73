//! Each expectation passing and failing on small hand-made data, read through the real readers.

use std::path::{Path, PathBuf};

use serde_json::json;
use taxon_validate::{Suite, ValidateError, ValidationReport, validate_paths};

/// A temp folder with files written from (name, contents) pairs.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// JSONL of (text, label) pairs.
    fn jsonl(&self, name: &str, rows: &[(&str, &str)]) -> PathBuf {
        let body: String = rows
            .iter()
            .map(|(t, l)| format!("{}\n", json!({"text": t, "label": l})))
            .collect();
        self.file(name, &body)
    }

    fn suite(&self, body: &str) -> Suite {
        let p = self.file("suite.yaml", body);
        Suite::load(&p).unwrap()
    }
}

/// A suite with one expectation.
fn one(expectation_type: &str, kwargs: &str) -> String {
    format!("expectations:\n  - expectation_type: {expectation_type}\n    kwargs: {kwargs}\n")
}

fn run_one(fx: &Fixture, data: &Path, expectation_type: &str, kwargs: &str) -> ValidationReport {
    let suite = fx.suite(&one(expectation_type, kwargs));
    let report = validate_paths(data, None, &suite).unwrap();
    assert_eq!(report.results.len(), 1);
    assert_eq!(report.results[0].expectation_type, expectation_type);
    report
}

fn balanced() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Shares rise on strong earnings", "business"),
        ("Markets fall as rates climb", "business"),
        ("Team wins the cup final", "sport"),
        ("Striker signs a new contract", "sport"),
    ]
}

mod table {
    use super::*;

    #[test]
    fn columns_match_set() {
        let fx = Fixture::new();
        let data = fx.jsonl("d.jsonl", &balanced());
        let r = run_one(
            &fx,
            &data,
            "expect_table_columns_to_match_set",
            "{column_set: [label, text]}",
        );
        assert!(r.success);
        let r = run_one(
            &fx,
            &data,
            "expect_table_columns_to_match_set",
            "{column_set: [text, label, id]}",
        );
        assert!(!r.success);
        assert_eq!(r.results[0].details["missing"], json!(["id"]));
        // An extra column fails an exact match but not exact_match: false.
        let extra = fx.file(
            "e.jsonl",
            "{\"text\": \"a\", \"label\": \"x\", \"id\": 1}\n",
        );
        let r = run_one(
            &fx,
            &extra,
            "expect_table_columns_to_match_set",
            "{column_set: [text, label]}",
        );
        assert!(!r.success);
        assert_eq!(r.results[0].details["unexpected"], json!(["id"]));
        let r = run_one(
            &fx,
            &extra,
            "expect_table_columns_to_match_set",
            "{column_set: [text, label], exact_match: false}",
        );
        assert!(r.success);
    }

    #[test]
    fn column_to_exist_on_csv_header() {
        let fx = Fixture::new();
        let data = fx.file("d.csv", "text,label,source\nhello,a,web\n");
        assert!(run_one(&fx, &data, "expect_column_to_exist", "{column: source}").success);
        let r = run_one(&fx, &data, "expect_column_to_exist", "{column: author}");
        assert!(!r.success);
        assert_eq!(
            r.results[0].observed_value,
            json!(["text", "label", "source"])
        );
    }

    #[test]
    fn row_count_between() {
        let fx = Fixture::new();
        let data = fx.jsonl("d.jsonl", &balanced());
        let r = run_one(
            &fx,
            &data,
            "expect_table_row_count_to_be_between",
            "{min_value: 4, max_value: 4}",
        );
        assert!(r.success);
        assert_eq!(r.results[0].observed_value, json!(4));
        assert!(
            !run_one(
                &fx,
                &data,
                "expect_table_row_count_to_be_between",
                "{min_value: 5}"
            )
            .success
        );
        assert!(
            !run_one(
                &fx,
                &data,
                "expect_table_row_count_to_be_between",
                "{max_value: 3}"
            )
            .success
        );
    }
}

mod values {
    use super::*;

    #[test]
    fn not_null_passes_on_clean_data() {
        let fx = Fixture::new();
        let data = fx.jsonl("d.jsonl", &balanced());
        let r = run_one(
            &fx,
            &data,
            "expect_column_values_to_not_be_null",
            "{column: text}",
        );
        assert!(r.success, "{:?}", r.results[0]);
        assert_eq!(r.results[0].observed_value, json!(0));
    }

    #[test]
    fn not_null_catches_missing_null_unreadable_and_blank_text() {
        let fx = Fixture::new();
        let data = fx.file(
            "d.jsonl",
            concat!(
                "{\"text\": \"fine\", \"label\": \"a\"}\n",
                "{\"label\": \"a\"}\n",
                "{\"text\": null, \"label\": \"a\"}\n",
                "{\"text\": \"   \\t \", \"label\": \"a\"}\n",
                "{\"text\": \"\", \"label\": \"a\"}\n",
                "not json at all\n",
                "{\"text\": \"also fine\", \"label\": \"b\"}\n",
            ),
        );
        let r = run_one(
            &fx,
            &data,
            "expect_column_values_to_not_be_null",
            "{column: text}",
        );
        assert!(!r.success);
        let d = &r.results[0].details;
        assert_eq!(d["unexpected_count"], json!(5));
        assert_eq!(d["element_count"], json!(7));
        assert_eq!(d["empty_or_whitespace"], json!(2));
        assert_eq!(d["unreadable_rows"], json!(3));
        assert!(
            d["unreadable_samples"][0]
                .as_str()
                .unwrap()
                .contains("d.jsonl:2"),
            "{d}"
        );
        assert_eq!(r.statistics.skipped_rows, 3);
        // mostly: 5 bad of 7 is 28.6% good.
        assert!(
            run_one(
                &fx,
                &data,
                "expect_column_values_to_not_be_null",
                "{column: text, mostly: 0.25}"
            )
            .success
        );
    }

    #[test]
    fn not_null_on_labels_counts_missing_labels() {
        let fx = Fixture::new();
        let data = fx.file(
            "d.jsonl",
            "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\"}\n{\"text\": \"c\", \"label\": \" \"}\n",
        );
        let r = run_one(
            &fx,
            &data,
            "expect_column_values_to_not_be_null",
            "{column: label}",
        );
        assert!(!r.success);
        assert_eq!(r.results[0].details["missing_or_null"], json!(1));
        assert_eq!(r.results[0].details["empty_or_whitespace"], json!(1));
        assert!(
            r.results[0].details["first_unexpected"]
                .as_str()
                .unwrap()
                .ends_with("record 2")
        );
    }

    #[test]
    fn lengths_between_in_chars() {
        let fx = Fixture::new();
        // "héllo" is 5 chars but 6 bytes.
        let data = fx.jsonl(
            "d.jsonl",
            &[("héllo", "a"), ("hi", "a"), ("a longer text", "b")],
        );
        let r = run_one(
            &fx,
            &data,
            "expect_column_value_lengths_to_be_between",
            "{column: text, min_value: 2, max_value: 13}",
        );
        assert!(r.success);
        assert_eq!(r.results[0].observed_value, json!({"min": 2, "max": 13}));
        let r = run_one(
            &fx,
            &data,
            "expect_column_value_lengths_to_be_between",
            "{column: text, min_value: 3, max_value: 5}",
        );
        assert!(!r.success);
        assert_eq!(r.results[0].details["unexpected_count"], json!(2));
        assert_eq!(
            r.results[0].details["partial_unexpected_list"][0],
            json!("record 2: 2 chars")
        );
        assert!(
            run_one(
                &fx,
                &data,
                "expect_column_value_lengths_to_be_between",
                "{column: text, max_value: 5, mostly: 0.6}"
            )
            .success
        );
    }

    #[test]
    fn values_in_set() {
        let fx = Fixture::new();
        let data = fx.jsonl(
            "d.jsonl",
            &[
                ("a", "sport"),
                ("b", "tech"),
                ("c", "Sport"),
                ("d", "sport"),
            ],
        );
        let r = run_one(
            &fx,
            &data,
            "expect_column_values_to_be_in_set",
            "{column: label, value_set: [sport, tech]}",
        );
        assert!(!r.success);
        let d = &r.results[0].details;
        assert_eq!(d["unexpected_count"], json!(1));
        assert_eq!(d["partial_unexpected_counts"], json!({"Sport": 1}));
        assert!(
            d["first_unexpected"]
                .as_str()
                .unwrap()
                .ends_with("d.jsonl: record 3")
        );
        assert!(
            run_one(
                &fx,
                &data,
                "expect_column_values_to_be_in_set",
                "{column: label, value_set: [sport, tech, Sport]}"
            )
            .success
        );
        assert!(
            run_one(
                &fx,
                &data,
                "expect_column_values_to_be_in_set",
                "{column: label, value_set: [sport, tech], mostly: 0.75}"
            )
            .success
        );
    }

    #[test]
    fn distinct_values_equal_set() {
        let fx = Fixture::new();
        let data = fx.jsonl("d.jsonl", &balanced());
        let r = run_one(
            &fx,
            &data,
            "expect_column_distinct_values_to_equal_set",
            "{column: label, value_set: [sport, business]}",
        );
        assert!(r.success);
        assert_eq!(r.results[0].observed_value, json!(["business", "sport"]));
        let r = run_one(
            &fx,
            &data,
            "expect_column_distinct_values_to_equal_set",
            "{column: label, value_set: [sport, business, tech]}",
        );
        assert!(!r.success);
        assert_eq!(r.results[0].details["missing"], json!(["tech"]));
        let r = run_one(
            &fx,
            &data,
            "expect_column_distinct_values_to_equal_set",
            "{column: label, value_set: [sport]}",
        );
        assert_eq!(r.results[0].details["unexpected"], json!(["business"]));
    }

    #[test]
    fn unique_counts_repeats_after_whitespace_normalization() {
        let fx = Fixture::new();
        let data = fx.jsonl(
            "d.jsonl",
            &[
                ("same  text", "a"),
                ("other", "a"),
                ("same text ", "b"),
                ("third", "b"),
            ],
        );
        let r = run_one(
            &fx,
            &data,
            "expect_column_values_to_be_unique",
            "{column: text}",
        );
        assert!(!r.success);
        assert_eq!(r.results[0].observed_value, json!(1));
        assert!(
            r.results[0].details["partial_unexpected_list"][0]
                .as_str()
                .unwrap()
                .starts_with("record 3 repeats record 1")
        );
        assert!(
            run_one(
                &fx,
                &data,
                "expect_column_values_to_be_unique",
                "{column: text, mostly: 0.75}"
            )
            .success
        );
        assert!(
            !run_one(
                &fx,
                &data,
                "expect_column_values_to_be_unique",
                "{column: text, mostly: 0.8}"
            )
            .success
        );
        let clean = fx.jsonl("c.jsonl", &balanced());
        assert!(
            run_one(
                &fx,
                &clean,
                "expect_column_values_to_be_unique",
                "{column: text}"
            )
            .success
        );
    }

    #[test]
    fn value_shares_between() {
        let fx = Fixture::new();
        let data = fx.jsonl("d.jsonl", &[("a", "x"), ("b", "x"), ("c", "x"), ("d", "y")]);
        let r = run_one(
            &fx,
            &data,
            "expect_column_value_shares_to_be_between",
            "{column: label, min_value: 0.2, max_value: 0.8}",
        );
        assert!(r.success);
        assert_eq!(r.results[0].observed_value, json!({"x": 0.75, "y": 0.25}));
        let r = run_one(
            &fx,
            &data,
            "expect_column_value_shares_to_be_between",
            "{column: label, min_value: 0.3}",
        );
        assert!(!r.success);
        assert_eq!(r.results[0].details["out_of_range"], json!({"y": 0.25}));
    }
}

mod overlap {
    use super::*;

    const SUITE: &str = "expectations:\n  - expectation_type: expect_train_test_overlap_to_be_at_most\n    kwargs: {max_share: 0.25}\n";

    #[test]
    fn overlap_within_and_beyond_the_limit() {
        let fx = Fixture::new();
        let train = fx.jsonl("train.jsonl", &balanced());
        let suite = fx.suite(SUITE);
        let test_ok = fx.jsonl(
            "ok.jsonl",
            &[
                ("Team wins the cup  final", "sport"),
                ("new 1", "a"),
                ("new 2", "a"),
                ("new 3", "a"),
            ],
        );
        let r = validate_paths(&train, Some(&test_ok), &suite).unwrap();
        assert!(r.success);
        assert_eq!(r.results[0].observed_value, json!(0.25));
        assert_eq!(r.statistics.test_rows, Some(4));

        let test_bad = fx.jsonl(
            "bad.jsonl",
            &[
                ("Team wins the cup final", "sport"),
                ("Markets fall as rates climb", "b"),
            ],
        );
        let r = validate_paths(&train, Some(&test_bad), &suite).unwrap();
        assert!(!r.success);
        assert_eq!(r.results[0].details["overlapping_rows"], json!(2));
        assert!(
            r.results[0].details["partial_unexpected_list"][0]
                .as_str()
                .unwrap()
                .starts_with("test record 1 = data record 3")
        );
    }

    #[test]
    fn test_data_from_the_suite_is_relative_to_it() {
        let fx = Fixture::new();
        let train = fx.jsonl("train.jsonl", &balanced());
        fx.jsonl("held_out.jsonl", &[("Team wins the cup final", "sport")]);
        let suite = fx.suite(&format!("test_data: held_out.jsonl\n{SUITE}"));
        let r = validate_paths(&train, None, &suite).unwrap();
        assert!(!r.success);
        assert_eq!(r.results[0].observed_value, json!(1.0));
    }

    #[test]
    fn missing_test_data_is_an_error_naming_the_expectation() {
        let fx = Fixture::new();
        let train = fx.jsonl("train.jsonl", &balanced());
        let suite = fx.suite(SUITE);
        let err = validate_paths(&train, None, &suite).unwrap_err();
        assert!(
            matches!(err, ValidateError::MissingTestData { index: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("--test"), "{err}");
    }
}

mod suite_and_data_errors {
    use super::*;

    #[test]
    fn a_column_that_is_neither_text_nor_label_is_an_error() {
        let fx = Fixture::new();
        let data = fx.jsonl("d.jsonl", &balanced());
        let suite = fx.suite(&one("expect_column_values_to_be_unique", "{column: body}"));
        let err = validate_paths(&data, None, &suite).unwrap_err().to_string();
        assert!(
            err.contains("suite.yaml: expectation #1 (expect_column_values_to_be_unique)"),
            "{err}"
        );
        assert!(err.contains("\"body\""), "{err}");
    }

    #[test]
    fn suite_field_names_select_the_columns() {
        let fx = Fixture::new();
        let data = fx.file("d.csv", "body,topic\nhello there,news\nhi,news\n");
        let suite = fx.suite(
            "text_field: body\nlabel_field: topic\nexpectations:\n  - {expectation_type: expect_column_values_to_be_in_set, kwargs: {column: topic, value_set: [news]}}\n  - {expectation_type: expect_column_value_lengths_to_be_between, kwargs: {column: body, min_value: 3}}\n",
        );
        let r = validate_paths(&data, None, &suite).unwrap();
        assert!(r.results[0].success);
        assert!(!r.results[1].success);
        assert!(!r.success);
        assert_eq!(r.statistics.successful_expectations, 1);
        assert_eq!(r.statistics.unsuccessful_expectations, 1);
        assert_eq!(r.statistics.success_percent, 50.0);
    }

    #[test]
    fn unreadable_data_is_an_error() {
        let fx = Fixture::new();
        let suite = fx.suite(&one(
            "expect_table_row_count_to_be_between",
            "{min_value: 1}",
        ));
        let err = validate_paths(&fx.dir.path().join("absent.jsonl"), None, &suite).unwrap_err();
        assert!(
            matches!(err, ValidateError::Read { role: "data", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("absent.jsonl"));
    }

    #[test]
    fn missing_suite_file_is_an_error_naming_it() {
        let err = Suite::load(Path::new("/nonexistent/suite.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/suite.yaml"), "{err}");
    }

    #[test]
    fn report_serializes_like_ge() {
        let fx = Fixture::new();
        let data = fx.jsonl("d.jsonl", &balanced());
        let r = run_one(
            &fx,
            &data,
            "expect_table_row_count_to_be_between",
            "{min_value: 1}",
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["success"], json!(true));
        assert_eq!(
            v["results"][0]["expectation_type"],
            json!("expect_table_row_count_to_be_between")
        );
        assert_eq!(v["results"][0]["kwargs"], json!({"min_value": 1}));
        assert_eq!(v["statistics"]["evaluated_expectations"], json!(1));
        assert_eq!(v["statistics"]["rows"], json!(4));
        assert!(v["results"][0].get("summary").is_none());
    }
}
