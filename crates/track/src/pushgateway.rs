//! Per-stage time and peak memory pushed to a Prometheus Pushgateway in the text exposition
//! format (version 0.0.4), job `taxon_train`, grouped by run id.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::error::{Result, TrackError};
use crate::record::StageRecord;

/// The Pushgateway job name of training runs.
pub const JOB: &str = "taxon_train";

/// Escapes a label value as the exposition format requires (`\`, `"`, newline).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// A metric name from a free-form key: `[a-zA-Z0-9_]`, other characters become `_`.
pub fn metric_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// The exposition text for a run's stages and final metrics.
pub fn exposition(
    model_type: &str,
    stages: &[StageRecord],
    metrics: &BTreeMap<String, f64>,
) -> String {
    let mut out = String::new();
    let mt = escape_label(model_type);
    out.push_str("# HELP taxon_stage_seconds Wall time of a run's stage.\n");
    out.push_str("# TYPE taxon_stage_seconds gauge\n");
    for s in stages {
        let _ = writeln!(
            out,
            "taxon_stage_seconds{{stage=\"{}\",model_type=\"{mt}\"}} {}",
            escape_label(&s.name),
            s.seconds
        );
    }
    out.push_str("# HELP taxon_stage_peak_rss_bytes Peak resident memory of a run's stage.\n");
    out.push_str("# TYPE taxon_stage_peak_rss_bytes gauge\n");
    for s in stages {
        let _ = writeln!(
            out,
            "taxon_stage_peak_rss_bytes{{stage=\"{}\",model_type=\"{mt}\"}} {}",
            escape_label(&s.name),
            s.peak_rss_bytes
        );
    }
    for (k, v) in metrics {
        if !v.is_finite() {
            continue;
        }
        let name = format!("taxon_run_{}", metric_name(k));
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name}{{model_type=\"{mt}\"}} {v}");
    }
    out
}

/// Replaces the group `job/taxon_train/run_id/<run_id>` on the gateway at `url` with `body`.
pub fn push(url: &str, run_id: &str, body: String) -> Result<()> {
    let base = url.trim_end_matches('/');
    let target = format!("{base}/metrics/job/{JOB}/run_id/{run_id}");
    let err = |message: String| TrackError::Pushgateway {
        url: target.clone(),
        message,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let resp = client
        .put(&target)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(body)
        .send()
        .map_err(|e| err(format!("cannot push: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().unwrap_or_default();
        return Err(err(format!("HTTP {status}: {}", text.trim())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_one_series_per_stage_and_escapes_labels() {
        let stages = vec![
            StageRecord {
                name: "load data".into(),
                seconds: 0.5,
                peak_rss_bytes: 1024,
            },
            StageRecord {
                name: "a\"b".into(),
                seconds: 2.0,
                peak_rss_bytes: 2048,
            },
        ];
        let mut m = BTreeMap::new();
        m.insert("validation.accuracy".to_string(), 0.97);
        let t = exposition("linear", &stages, &m);
        assert!(t.contains("taxon_stage_seconds{stage=\"load data\",model_type=\"linear\"} 0.5\n"));
        assert!(
            t.contains("taxon_stage_peak_rss_bytes{stage=\"a\\\"b\",model_type=\"linear\"} 2048\n")
        );
        assert!(t.contains("taxon_run_validation_accuracy{model_type=\"linear\"} 0.97\n"));
        assert_eq!(t.matches("# TYPE taxon_stage_seconds gauge").count(), 1);
    }
}
