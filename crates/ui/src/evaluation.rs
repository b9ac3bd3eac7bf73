//! The evaluations of a run on its page: each `eval/*.json` artifact (written by `taxon eval`)
//! read back as taxon-eval's [`Evaluation`] and drawn by the same code as `taxon eval --report`
//! ([`taxon_eval::report::html::sections`]: headline numbers, confusion matrix, calibration
//! with its reliability diagram, per-class table). A file that is gone or unreadable is named,
//! not fatal.

use std::fmt::Write as _;

use taxon_eval::report::Evaluation;
use taxon_track::Artifact;

use crate::html::Esc;

/// Evaluation files larger than this are not read (a confusion matrix of a few thousand labels).
const MAX_BYTES: u64 = 16 << 20;

fn read(a: &Artifact) -> Result<Evaluation, String> {
    let len = std::fs::metadata(&a.path).map_err(|e| e.to_string())?.len();
    if len > MAX_BYTES {
        return Err(format!("{len} bytes, more than this page reads"));
    }
    let text = std::fs::read_to_string(&a.path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// One evaluation under its name (the data file's stem); section ids start with
/// `eval-NAME-`. The run page draws the training curves itself, so they are left out here.
pub fn render(name: &str, e: &Evaluation) -> String {
    let id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "<section data-eval=\"{n}\"><h3>{n}</h3>{}</section>",
        taxon_eval::report::html::sections(e, &format!("eval-{id}-"), false),
        n = Esc(name),
    )
}

/// The evaluation section of a run page (empty when the run has no evaluation).
pub fn section(artifacts: &[Artifact]) -> String {
    let evals: Vec<&Artifact> = artifacts
        .iter()
        .filter(|a| a.name.starts_with("eval/") && a.name.ends_with(".json"))
        .collect();
    if evals.is_empty() {
        return String::new();
    }
    let mut s = String::from("<h2>Evaluation</h2>");
    for a in evals {
        let name = a.name.trim_start_matches("eval/").trim_end_matches(".json");
        match read(a) {
            Ok(e) => s.push_str(&render(name, &e)),
            Err(e) => {
                let _ = write!(
                    s,
                    "<p class=\"muted\">{}: cannot read {}: {}</p>",
                    Esc(name),
                    Esc(&a.path),
                    Esc(&e)
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation() -> Evaluation {
        // What `taxon eval` records: 4 examples, labels "<a>" and "b".
        serde_json::from_value(serde_json::json!({
            "model": "m", "model_type": "linear", "data": "test.jsonl",
            "examples": 4, "accuracy": 0.75, "macro_f1": 0.7333333333333334,
            "labels": ["<a>", "b"],
            "per_class": [
                {"label": "<a>", "precision": 1.0, "recall": 0.5, "f1": 0.6666666666666666, "support": 2},
                {"label": "b", "precision": 0.6666666666666666, "recall": 1.0, "f1": 0.8, "support": 2}
            ],
            "confusion_matrix": [[1, 1], [0, 2]],
            "unknown_label_examples": 0, "predict_seconds": 0.01, "docs_per_sec": 400.0,
            "threads": 1, "ece": 0.125, "mce": 0.25, "nll": 0.5,
            "reliability": [
                {"lower": 0.5, "upper": 0.75, "confidence": 0.6, "accuracy": 0.5, "count": 2},
                {"lower": 0.75, "upper": 1.0, "confidence": 0.9, "accuracy": 1.0, "count": 2}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_evaluation_is_drawn_as_eval_report_draws_it() {
        let html = render("test", &evaluation());
        // b: precision 2/3, recall 1, F1 0.8, support 2.
        assert!(html.contains(
            "<tr data-label=\"b\"><th scope=\"row\" class=\"label\">b</th><td class=\"num\">0.6667</td>\
             <td class=\"num\">1.0000</td><td class=\"num\">0.8000</td><td class=\"num\">2</td></tr>"
        ), "{html}");
        // Confusion heatmap and reliability diagram, no training section (the page has its own
        // curves); ids made unique per evaluation.
        assert_eq!(html.matches("<svg").count(), 2, "{html}");
        assert!(html.contains("id=\"eval-test-calibration\"") && html.contains("ECE 0.1250"));
        assert!(!html.contains("eval-test-training"));
        assert!(html.contains("data-ece=\"0.125\""));
        assert!(!html.contains("<a>"));
    }

    #[test]
    fn a_missing_file_is_named_not_fatal() {
        let a = Artifact {
            name: "eval/test.json".into(),
            path: "/nonexistent/eval.json".into(),
            md5: String::new(),
            size: 0,
        };
        let html = section(&[a]);
        assert!(html.contains("test: cannot read /nonexistent/eval.json"));
        assert_eq!(section(&[]), "");
    }
}
