//! `taxon data validate` end to end: exit codes (0 pass, 1 a failed expectation, 2 a bad suite
//! or unreadable data), the table, the JSON result, and the shipped BBC example suite.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;

fn taxon() -> Command {
    let mut c = Command::cargo_bin("taxon").unwrap();
    c.env_remove("TAXON_JSON").env_remove("TAXON_QUIET");
    c
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    p
}

const DATA: &str = r#"{"text": "Shares rise on strong earnings", "label": "business"}
{"text": "Team wins the cup final", "label": "sport"}
{"text": "Markets fall as rates climb", "label": "business"}
{"text": "Striker signs a new contract", "label": "sport"}
"#;

const PASSING: &str = "expectations:
  - {expectation_type: expect_column_values_to_not_be_null, kwargs: {column: text}}
  - {expectation_type: expect_column_values_to_be_in_set, kwargs: {column: label, value_set: [business, sport]}}
  - {expectation_type: expect_table_row_count_to_be_between, kwargs: {min_value: 4}}
";

#[test]
fn all_passing_exits_0_with_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "d.jsonl", DATA);
    let suite = write(dir.path(), "s.yaml", PASSING);
    taxon()
        .args(["data", "validate"])
        .arg(&data)
        .arg("--expectations")
        .arg(&suite)
        .assert()
        .code(0)
        .stdout(contains("expect_column_values_to_be_in_set"))
        .stdout(contains("PASS"))
        .stdout(contains("PASSED: 3 of 3"));
}

#[test]
fn a_failed_expectation_exits_1_and_json_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "d.jsonl", DATA);
    let suite = write(
        dir.path(),
        "s.yaml",
        "expectations:
  - {expectation_type: expect_column_values_to_be_in_set, kwargs: {column: label, value_set: [business]}}
  - {expectation_type: expect_table_row_count_to_be_between, kwargs: {max_value: 10}}
",
    );
    let out = taxon()
        .args(["--json", "data", "validate"])
        .arg(&data)
        .arg("-e")
        .arg(&suite)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["success"], Value::Bool(false));
    assert_eq!(v["results"][0]["success"], Value::Bool(false));
    assert_eq!(v["results"][0]["details"]["unexpected_count"], 2);
    assert_eq!(v["results"][1]["success"], Value::Bool(true));
    assert_eq!(v["statistics"]["unsuccessful_expectations"], 1);

    taxon()
        .args(["data", "validate"])
        .arg(&data)
        .arg("-e")
        .arg(&suite)
        .assert()
        .code(1)
        .stdout(contains("FAIL"))
        .stdout(contains("first unexpected at"));
}

#[test]
fn an_unknown_expectation_exits_2_naming_file_index_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "d.jsonl", DATA);
    let suite = write(
        dir.path(),
        "bad.yaml",
        "expectations:
  - {expectation_type: expect_table_row_count_to_be_between, kwargs: {min_value: 1}}
  - {expectation_type: expect_column_values_to_be_spicy, kwargs: {column: text}}
",
    );
    taxon()
        .args(["data", "validate"])
        .arg(&data)
        .arg("-e")
        .arg(&suite)
        .assert()
        .code(2)
        .stderr(contains(
            "bad.yaml: expectation #2 (expect_column_values_to_be_spicy)",
        ));
}

#[test]
fn an_unknown_kwarg_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "d.jsonl", DATA);
    let suite = write(
        dir.path(),
        "bad.yaml",
        "expectations:\n  - {expectation_type: expect_column_to_exist, kwargs: {column: text, strict: true}}\n",
    );
    taxon()
        .args(["data", "validate"])
        .arg(&data)
        .arg("-e")
        .arg(&suite)
        .assert()
        .code(2)
        .stderr(contains("expectation #1 (expect_column_to_exist)"))
        .stderr(contains("strict"));
}

#[test]
fn unreadable_data_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write(dir.path(), "s.yaml", PASSING);
    taxon()
        .args(["data", "validate"])
        .arg(dir.path().join("missing.jsonl"))
        .arg("-e")
        .arg(&suite)
        .assert()
        .code(2)
        .stderr(contains("missing.jsonl"));
}

#[test]
fn leakage_needs_test_data_and_fails_on_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "train.jsonl", DATA);
    let test = write(
        dir.path(),
        "test.jsonl",
        "{\"text\": \"Team wins the cup final\", \"label\": \"sport\"}\n{\"text\": \"fresh\", \"label\": \"sport\"}\n",
    );
    let suite = write(
        dir.path(),
        "s.yaml",
        "expectations:\n  - {expectation_type: expect_train_test_overlap_to_be_at_most, kwargs: {max_share: 0.1}}\n",
    );
    taxon()
        .args(["data", "validate"])
        .arg(&data)
        .arg("-e")
        .arg(&suite)
        .assert()
        .code(2)
        .stderr(contains("--test"));
    taxon()
        .args(["data", "validate"])
        .arg(&data)
        .arg("--test")
        .arg(&test)
        .arg("-e")
        .arg(&suite)
        .assert()
        .code(1)
        .stdout(contains("1 of 2 test rows also in data"));
}

#[test]
fn csv_with_other_field_names_via_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "d.csv", "body,topic\nhello there,news\n,news\n");
    let suite = write(
        dir.path(),
        "s.yaml",
        "expectations:\n  - {expectation_type: expect_column_values_to_not_be_null, kwargs: {column: body}}\n",
    );
    taxon()
        .args(["data", "validate"])
        .arg(&data)
        .arg("-e")
        .arg(&suite)
        .args(["--text-field", "body", "--label-field", "topic"])
        .assert()
        .code(1)
        .stdout(contains("1 of 2 null/empty/unreadable"));
}

/// The shipped suite parses, and a small stand-in for the BBC split (right labels, lengths,
/// shares) passes every expectation except the row count, which is sized for the real split.
#[test]
fn shipped_bbc_suite_loads_and_checks_a_bbc_like_split() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/expectations.yaml");
    let dir = tempfile::tempdir().unwrap();
    let labels = ["business", "entertainment", "politics", "sports", "tech"];
    let mut train = String::new();
    for i in 0..50 {
        let text = format!(
            "Article {i} about {}. {}",
            labels[i % 5],
            "word ".repeat(40 + i)
        );
        train.push_str(&serde_json::json!({"text": text, "label": labels[i % 5]}).to_string());
        train.push('\n');
    }
    let data = write(dir.path(), "train.jsonl", &train);
    let test = write(
        dir.path(),
        "test.jsonl",
        &serde_json::json!({"text": format!("A held-out article. {}", "text ".repeat(50)), "label": "tech"})
            .to_string(),
    );
    let out = taxon()
        .args(["--json", "data", "validate"])
        .arg(&data)
        .arg("--test")
        .arg(&test)
        .arg("-e")
        .arg(&suite)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let failed: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["success"] == Value::Bool(false))
        .map(|r| r["expectation_type"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["expect_table_row_count_to_be_between"]);
    // Every expectation type taxon knows appears in the example.
    assert_eq!(v["statistics"]["evaluated_expectations"], 11);
}
