//! The validation result, shaped like a Great Expectations validation result:
//! `{success, results: [...], statistics}`.

use serde::Serialize;
use serde_json::Value;

use crate::suite::Suite;

/// The outcome of one expectation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpectationResult {
    pub expectation_type: String,
    pub kwargs: Value,
    pub success: bool,
    /// The measured value (a count, a share, a list of columns, {min, max}...).
    pub observed_value: Value,
    /// Counts, samples of unexpected values and the first offending location.
    pub details: Value,
    /// One line for people (the table's "observed" cell).
    #[serde(skip)]
    pub summary: String,
}

/// GE's statistics block, plus what was read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Statistics {
    pub evaluated_expectations: usize,
    pub successful_expectations: usize,
    pub unsuccessful_expectations: usize,
    pub success_percent: f64,
    /// Records read from the data.
    pub rows: u64,
    /// Rows the reader could not read and skipped.
    pub skipped_rows: u64,
    /// Records read from the test split, when one was compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_rows: Option<u64>,
}

impl Statistics {
    /// The data counts; the expectation counts are filled by [`ValidationReport::new`].
    pub(crate) fn partial(rows: u64, skipped_rows: u64, test_rows: Option<u64>) -> Self {
        Self {
            evaluated_expectations: 0,
            successful_expectations: 0,
            unsuccessful_expectations: 0,
            success_percent: 100.0,
            rows,
            skipped_rows,
            test_rows,
        }
    }
}

/// The whole validation result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValidationReport {
    /// True when every expectation succeeded.
    pub success: bool,
    /// The suite's `expectation_suite_name`, or its file name.
    pub suite: String,
    pub results: Vec<ExpectationResult>,
    pub statistics: Statistics,
}

impl ValidationReport {
    pub(crate) fn new(
        suite: &Suite,
        results: Vec<ExpectationResult>,
        mut stats: Statistics,
    ) -> Self {
        let ok = results.iter().filter(|r| r.success).count();
        stats.evaluated_expectations = results.len();
        stats.successful_expectations = ok;
        stats.unsuccessful_expectations = results.len() - ok;
        stats.success_percent = if results.is_empty() {
            100.0
        } else {
            100.0 * ok as f64 / results.len() as f64
        };
        Self {
            success: ok == results.len(),
            suite: suite
                .name
                .clone()
                .unwrap_or_else(|| suite.path.display().to_string()),
            results,
            statistics: stats,
        }
    }

    /// The expectations that failed.
    pub fn failures(&self) -> impl Iterator<Item = &ExpectationResult> {
        self.results.iter().filter(|r| !r.success)
    }
}
