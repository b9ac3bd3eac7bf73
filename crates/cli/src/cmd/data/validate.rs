//! `taxon data validate`: check a dataset against an expectation suite (YAML, Great
//! Expectations names); a table or `--json`, exit code 1 when any expectation fails.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use taxon_validate::{Suite, ValidationReport, validate_paths_with};

use super::io::ReadFlags;
use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Dataset file to check (JSONL, CSV/TSV or Parquet).
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// Expectation suite (YAML), e.g. examples/expectations.yaml.
    #[arg(long, short = 'e', value_name = "FILE.yaml")]
    pub expectations: PathBuf,
    /// Test split compared with DATA by expect_train_test_overlap_to_be_at_most
    /// (overrides the suite's `test_data:`).
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// Read options. Rows that cannot be read are always counted (they fail
    /// expect_column_values_to_not_be_null), whatever --on-error says; the suite's
    /// text_field/label_field, when set, win over --text-field/--label-field.
    #[command(flatten)]
    pub read: ReadFlags,
}

pub fn run(args: ValidateArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let suite = Suite::load(&args.expectations)?;
    let mut total = file_len(&args.data);
    let test = args.test.clone().or_else(|| suite.test_data.clone());
    if suite.needs_test_data()
        && let Some(t) = &test
    {
        total += file_len(t);
    }
    let bar = ctx.bytes_bar(total, "validating");
    let report = validate_paths_with(
        &args.data,
        args.test.as_deref(),
        &suite,
        &args.read.to_options(),
        &mut |n| bar.inc(n),
    )
    .with_context(|| format!("validating {}", args.data.display()))?;
    bar.finish_and_clear();

    if ctx.json {
        print_json(&report)?;
    } else {
        print_human(&report);
    }
    Ok(if report.success {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn print_human(report: &ValidationReport) {
    let mut t = table(vec!["#", "expectation", "result", "observed"]);
    for (i, r) in report.results.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            r.expectation_type.clone(),
            if r.success { "PASS" } else { "FAIL" }.to_string(),
            r.summary.clone(),
        ]);
    }
    println!("{t}");
    let s = &report.statistics;
    let test = s
        .test_rows
        .map(|n| format!(", {n} test rows"))
        .unwrap_or_default();
    println!(
        "{}: {} of {} expectations passed ({} rows read, {} unreadable{test})",
        if report.success { "PASSED" } else { "FAILED" },
        s.successful_expectations,
        s.evaluated_expectations,
        s.rows,
        s.skipped_rows,
    );
    for r in report.failures() {
        if let Some(first) = r.details.get("first_unexpected").and_then(|v| v.as_str()) {
            println!("  {}: first unexpected at {first}", r.expectation_type);
        }
    }
}
