//! The evaluations of a run on its page: each `eval/*.json` artifact (written by `taxon eval`)
//! read back as taxon-eval's [`Metrics`] and shown as a per-class table and a confusion matrix.
//! A file that is gone or unreadable is named, not fatal.

use std::fmt::Write as _;

use taxon_eval::Metrics;
use taxon_track::Artifact;

use crate::html::{Esc, num};

/// Evaluation files larger than this are not read (a confusion matrix of a few thousand labels).
const MAX_BYTES: u64 = 16 << 20;

fn read(a: &Artifact) -> Result<Metrics, String> {
    let len = std::fs::metadata(&a.path).map_err(|e| e.to_string())?.len();
    if len > MAX_BYTES {
        return Err(format!("{len} bytes, more than this page reads"));
    }
    let text = std::fs::read_to_string(&a.path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// One evaluation: headline numbers, per-class precision/recall/F1, the confusion matrix.
pub fn render(name: &str, m: &Metrics) -> String {
    let mut s = format!(
        "<section data-eval=\"{n}\"><h3>{n}</h3><p>{} examples, accuracy {}, macro-F1 {}</p>\
         <table class=\"per-class\"><thead><tr><th scope=\"col\">Label</th>\
         <th scope=\"col\">Precision</th><th scope=\"col\">Recall</th><th scope=\"col\">F1</th>\
         <th scope=\"col\">Support</th></tr></thead><tbody>",
        m.examples,
        num(m.accuracy),
        num(m.macro_f1),
        n = Esc(name),
    );
    for c in &m.per_class {
        let _ = write!(
            s,
            "<tr data-label=\"{l}\"><th scope=\"row\">{l}</th><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            num(c.precision),
            num(c.recall),
            num(c.f1),
            c.support,
            l = Esc(&c.label),
        );
    }
    s.push_str(
        "</tbody></table><table class=\"confusion\"><caption>Confusion matrix \
         (rows: true label, columns: predicted)</caption><thead><tr><td></td>",
    );
    for l in &m.labels {
        let _ = write!(s, "<th scope=\"col\">{}</th>", Esc(l));
    }
    s.push_str("</tr></thead><tbody>");
    for (l, row) in m.labels.iter().zip(&m.confusion_matrix) {
        let _ = write!(s, "<tr><th scope=\"row\">{}</th>", Esc(l));
        for n in row {
            let _ = write!(s, "<td class=\"num\">{n}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></section>");
    s
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
            Ok(m) => s.push_str(&render(name, &m)),
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

    fn metrics() -> Metrics {
        let labels = vec!["<a>".to_string(), "b".to_string()];
        Metrics::compute(&labels, &[0, 0, 1, 1], &[0, 1, 1, 1])
    }

    #[test]
    fn per_class_and_confusion_tables_show_the_metrics() {
        let html = render("test", &metrics());
        assert!(html.contains("4 examples, accuracy 0.7500"));
        // b: precision 2/3, recall 1, support 2.
        assert!(html.contains(
            "<tr data-label=\"b\"><th scope=\"row\">b</th><td class=\"num\">0.6667</td>\
             <td class=\"num\">1</td><td class=\"num\">0.8000</td><td class=\"num\">2</td></tr>"
        ));
        // Row "<a>": one right, one predicted b.
        assert!(html.contains(
            "<tr><th scope=\"row\">&lt;a&gt;</th><td class=\"num\">1</td><td class=\"num\">1</td></tr>"
        ));
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
