//! The evaluation report as one self-contained HTML file: inline CSS and inline SVG, no
//! script, font or other external resource, so it opens anywhere and can be archived as a run
//! artifact. Every label, path and message it embeds is escaped.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::svg::{self, Series, escape};
use super::{EvalError, Evaluation};

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #1b1f24; background: #f6f8fa; margin: 0; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 12px; }
.sub { color: #57606a; margin: 0 0 18px; font-size: 14px; word-break: break-all; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 16px 20px;
  margin: 0 0 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; background: none; border: none; padding: 0; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 16px;
  flex: 1 1 110px; }
.card .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { font-size: 12px; color: #57606a; text-transform: uppercase; letter-spacing: .04em; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
svg.plot { font-family: inherit; background: #fff; max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 12px; text-align: right; border-bottom: 1px solid #eaeef2; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #d0d7de; }
td.label { max-width: 360px; overflow-wrap: anywhere; }
.note { color: #57606a; font-size: 13px; }
.warn { color: #9a6700; font-size: 13px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0;
  font-size: 13px; }
dl.meta dt { color: #57606a; } dl.meta dd { margin: 0; word-break: break-all; }
footer { color: #57606a; font-size: 12px; margin-top: 8px; }
"#;

/// Renders `eval` as a complete HTML document.
pub fn render(eval: &Evaluation) -> String {
    let m = &eval.metrics;
    let mut h = String::with_capacity(64 * 1024);
    let title = format!(
        "taxon evaluation: {} on {}",
        file_name(&eval.model),
        file_name(&eval.data)
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    );
    let _ = write!(
        h,
        "<h1>Evaluation report</h1>\n<p class=\"sub\">model <b>{}</b> ({}) on <b>{}</b></p>\n",
        escape(&eval.model.display().to_string()),
        escape(&eval.model_type),
        escape(&eval.data.display().to_string()),
    );

    // Headline numbers.
    h.push_str("<section class=\"cards\">\n");
    let mut card = |k: &str, v: String| {
        let _ = writeln!(
            h,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>",
            escape(k),
            escape(&v)
        );
    };
    card("accuracy", format!("{:.2}%", m.accuracy * 100.0));
    card("macro-F1", format!("{:.4}", m.macro_f1));
    card("ECE", format!("{:.4}", eval.ece));
    if let (Some(t), Some(c)) = (eval.temperature, &eval.calibrated) {
        card("ECE after T", format!("{:.4}", c.ece));
        card("temperature", format!("{t:.3}"));
    }
    card("examples", m.examples.to_string());
    card("classes", m.labels.len().to_string());
    h.push_str("</section>\n");

    for w in &eval.warnings {
        let _ = writeln!(h, "<p class=\"warn\">warning: {}</p>", escape(w));
    }

    // Confusion matrix.
    h.push_str("<section id=\"confusion\">\n<h2>Confusion matrix</h2>\n");
    h.push_str(
        "<p class=\"note\">Rows: true label; columns: predicted label. Cells show counts, \
         shaded by their share of the row.</p>\n",
    );
    h.push_str(&svg::confusion_heatmap(&m.labels, &m.confusion_matrix));
    h.push_str("\n</section>\n");

    // Training curves.
    h.push_str("<section id=\"training\">\n<h2>Training curves</h2>\n");
    match &eval.history {
        Some(hist) if !hist.epochs.is_empty() => {
            let pick = |f: fn(&super::EpochPoint) -> Option<f64>| -> Vec<(f64, f64)> {
                hist.epochs
                    .iter()
                    .filter_map(|e| f(e).map(|v| (e.epoch, v)))
                    .collect()
            };
            let loss = [
                Series {
                    name: "train loss",
                    color: "#2f6fb3",
                    dashed: false,
                    points: pick(|e| e.train_loss),
                },
                Series {
                    name: "validation loss",
                    color: "#e36209",
                    dashed: true,
                    points: pick(|e| e.validation_loss),
                },
            ];
            let quality = [
                Series {
                    name: "validation accuracy",
                    color: "#1a7f37",
                    dashed: false,
                    points: pick(|e| e.validation_accuracy),
                },
                Series {
                    name: "validation macro-F1",
                    color: "#8250df",
                    dashed: true,
                    points: pick(|e| e.validation_macro_f1),
                },
            ];
            let (lo, _) = quality
                .iter()
                .flat_map(|s| s.points.iter())
                .fold((1.0f64, 0.0f64), |(a, b), p| (a.min(p.1), b.max(p.1)));
            let y_lo = ((lo - 0.05) * 10.0).floor() / 10.0;
            // Mark the kept epoch when it is not the last one (early stopping kept the best).
            let last = hist.epochs.last().map(|e| e.epoch);
            let marker = hist
                .model_epoch
                .filter(|m| Some(*m) != last)
                .map(|m| (m, "model epoch"));
            h.push_str("<div class=\"plots\">\n");
            h.push_str(&svg::line_chart(
                "Loss", "epoch", "loss", &loss, None, marker,
            ));
            h.push_str(&svg::line_chart(
                "Validation",
                "epoch",
                "score",
                &quality,
                Some((y_lo.clamp(0.0, 0.9), 1.0)),
                marker,
            ));
            let _ = write!(
                h,
                "\n</div>\n<p class=\"note\">From {} ({} epochs).</p>\n",
                escape(&hist.source.display().to_string()),
                hist.epochs.len()
            );
        }
        _ => h.push_str(
            "<p class=\"note\">No per-epoch history: the model folder has no metrics.json \
             with epochs.</p>\n",
        ),
    }
    h.push_str("</section>\n");

    // Calibration.
    h.push_str("<section id=\"calibration\">\n<h2>Calibration</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">Expected calibration error over {} equal-width confidence bins \
         (Guo et al., \"On Calibration of Modern Neural Networks\", ICML 2017): the \
         count-weighted gap between each bin's accuracy and mean confidence. ECE {:.4}, \
         MCE {:.4}, NLL {:.4}.</p>",
        eval.reliability.len(),
        eval.ece,
        eval.mce,
        eval.nll
    );
    h.push_str("<div class=\"plots\">\n");
    h.push_str(&svg::reliability_diagram(
        "Model probabilities",
        &eval.reliability,
        eval.ece,
    ));
    if let (Some(t), Some(c)) = (eval.temperature, &eval.calibrated) {
        h.push_str(&svg::reliability_diagram(
            &format!("After temperature scaling (T = {t:.3})"),
            &c.reliability,
            c.ece,
        ));
    }
    h.push_str("\n</div>\n");
    if let (Some(t), Some(c)) = (eval.temperature, &eval.calibrated) {
        let fit = c.fit.as_ref().map_or(String::new(), |f| {
            format!(
                " Fitted on {} examples: NLL {:.4} -> {:.4}.",
                f.examples, f.nll_before, f.nll_after
            )
        });
        let _ = writeln!(
            h,
            "<p class=\"note\">Temperature T = {t:.4} from {}.{} On this data: ECE {:.4} -> {:.4}, \
             NLL {:.4} -> {:.4}; accuracy is unchanged (scaling keeps the arg-max).</p>",
            escape(&c.source),
            escape(&fit),
            eval.ece,
            c.ece,
            eval.nll,
            c.nll
        );
    }
    h.push_str(
        "<details><summary>Reliability table</summary>\n<table>\n<thead><tr><th>bin</th>\
         <th>mean confidence</th><th>accuracy</th><th>count</th></tr></thead>\n<tbody>\n",
    );
    for b in &eval.reliability {
        let _ = writeln!(
            h,
            "<tr><td>({:.3}, {:.3}]</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
            b.lower, b.upper, b.confidence, b.accuracy, b.count
        );
    }
    h.push_str("</tbody>\n</table>\n</details>\n</section>\n");

    // Per-class table.
    h.push_str(
        "<section id=\"per-class\">\n<h2>Per-class metrics</h2>\n<table>\n<thead><tr>\
         <th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>\
         </thead>\n<tbody>\n",
    );
    for c in &m.per_class {
        let _ = writeln!(
            h,
            "<tr><td class=\"label\">{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
            escape(&c.label),
            c.precision,
            c.recall,
            c.f1,
            c.support
        );
    }
    let _ = writeln!(
        h,
        "<tr><th>macro average</th><th>{:.4}</th><th>{:.4}</th><th>{:.4}</th><th>{}</th></tr>",
        mean(m.per_class.iter().map(|c| c.precision)),
        mean(m.per_class.iter().map(|c| c.recall)),
        m.macro_f1,
        m.examples
    );
    h.push_str("</tbody>\n</table>\n</section>\n");

    // Run details.
    if let Some(o) = &eval.optimization {
        optimization_section(&mut h, o);
    }
    h.push_str("<section id=\"details\">\n<h2>Details</h2>\n<dl class=\"meta\">\n");
    let mut meta = |k: &str, v: String| {
        let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    };
    meta("model", eval.model.display().to_string());
    meta("model type", eval.model_type.clone());
    meta("data", eval.data.display().to_string());
    meta(
        "prediction",
        format!(
            "{:.0} docs/s on {} threads ({:.3} s)",
            eval.docs_per_sec, eval.threads, eval.predict_seconds
        ),
    );
    if eval.unknown_label_examples > 0 {
        meta(
            "unknown labels",
            format!(
                "{} examples have a label the model does not know (counted as errors)",
                eval.unknown_label_examples
            ),
        );
    }
    h.push_str("</dl>\n</section>\n");
    let _ = write!(
        h,
        "<footer>Generated by taxon {}.</footer>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// The "Optimization" section: the numbers of the folder's `optimize.json`, before and after.
fn optimization_section(h: &mut String, o: &taxon_models::bert::OptimizeReport) {
    let what = match (o.int8, o.prune > 0.0) {
        (true, true) => format!("int8 + pruned {}", o.prune),
        (true, false) => "int8".to_string(),
        _ => format!("pruned {}", o.prune),
    };
    let _ = write!(
        h,
        "<section id=\"optimization\">\n<h2>Optimization</h2>\n<p class=\"note\">{} from \
         <b>{}</b> (kernel {}, dense-weight sparsity {:.1}%){}</p>\n<table>\n<thead><tr><th></th>\
         <th>before</th><th>after</th></tr></thead>\n<tbody>\n",
        escape(&what),
        escape(&o.source.display().to_string()),
        escape(&o.kernel),
        o.sparsity * 100.0,
        o.data.as_ref().map_or(String::new(), |d| format!(
            "; measured on {} with {} thread(s)",
            escape(&d.display().to_string()),
            o.threads
        )),
    );
    let (b, a) = (&o.before, &o.after);
    let mib = |v: u64| Some(format!("{:.2}", v as f64 / 1048576.0));
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}"));
    let pct = |v: Option<f64>| v.map(|v| format!("{:.2}%", v * 100.0));
    let f4 = |v: Option<f64>| v.map(|v| format!("{v:.4}"));
    let rows = [
        ("size (MiB)", mib(b.size_bytes), mib(a.size_bytes)),
        (
            "weights file (MiB)",
            mib(b.weights_bytes),
            mib(a.weights_bytes),
        ),
        (
            "latency batch 1 (ms)",
            ms(b.latency_ms_batch1),
            ms(a.latency_ms_batch1),
        ),
        (
            "ms per text, batch 32",
            ms(b.ms_per_seq_batch32),
            ms(a.ms_per_seq_batch32),
        ),
        ("accuracy", pct(b.accuracy), pct(a.accuracy)),
        ("macro-F1", f4(b.macro_f1), f4(a.macro_f1)),
    ];
    for (k, x, y) in rows {
        if let (Some(x), Some(y)) = (x, y) {
            let _ = writeln!(h, "<tr><td>{k}</td><td>{x}</td><td>{y}</td></tr>");
        }
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// Renders `eval` and writes it to `path` through a temporary file renamed into place.
pub fn write(eval: &Evaluation, path: &Path) -> Result<(), EvalError> {
    let html = render(eval);
    let tmp = tmp_path(path);
    std::fs::write(&tmp, html).map_err(|source| EvalError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(
        || "report.html".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    path.with_file_name(format!(".{name}.tmp"))
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::super::{EpochPoint, EvalOptions, TrainingHistory, evaluate_model};
    use super::*;
    use std::collections::HashMap;
    use taxon_core::model::{Encoded, InputLimits, ModelDescription, ModelError, TextClassifier};

    const EVIL: &str = "<script>alert(\"x\")</script>";

    struct Fixed {
        labels: Vec<String>,
    }

    impl TextClassifier for Fixed {
        fn labels(&self) -> &[String] {
            &self.labels
        }
        fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
            Ok(Encoded::new(1, text.starts_with('s')))
        }
        fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError> {
            inputs
                .iter()
                .map(|e| {
                    Ok(if *e.input::<bool>("fixed")? {
                        vec![0.95, 0.05]
                    } else {
                        vec![0.3, 0.7]
                    })
                })
                .collect()
        }
        fn save(&self, _dir: &Path) -> Result<(), ModelError> {
            Ok(())
        }
        fn describe(&self) -> ModelDescription {
            ModelDescription {
                format_version: 1,
                model_type: "fixed".into(),
                labels: self.labels.clone(),
                params: serde_json::Value::Null,
                input: InputLimits::default(),
                files: vec![],
                created_by: "test".into(),
            }
        }
    }

    fn evaluation() -> Evaluation {
        let model = Fixed {
            labels: vec![EVIL.to_string(), "sport & co".to_string()],
        };
        let rows: Vec<(String, String)> = [
            ("s1", EVIL),
            ("s2", EVIL),
            ("s3", "sport & co"),
            ("b1", "sport & co"),
            ("b2", "sport & co"),
        ]
        .iter()
        .map(|(t, l)| (t.to_string(), l.to_string()))
        .collect();
        let mut e =
            evaluate_model(&model, Path::new("m<1>"), &rows, &EvalOptions::default()).unwrap();
        e.model_type = "fixed".into();
        e.data = PathBuf::from("test.jsonl");
        e.history = Some(TrainingHistory {
            source: PathBuf::from("m/metrics.json"),
            epochs: (1..=4)
                .map(|i| EpochPoint {
                    epoch: i as f64,
                    train_loss: Some(1.0 / i as f64),
                    validation_loss: None,
                    validation_accuracy: Some(0.5 + 0.1 * i as f64),
                    validation_macro_f1: None,
                })
                .collect(),
            model_epoch: Some(3.0),
        });
        e
    }

    #[test]
    fn report_has_a_plot_per_section_and_the_counts() {
        let mut e = evaluation();
        let html = render(&e);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        // heatmap + loss chart + validation chart + reliability diagram
        assert_eq!(html.matches("<svg").count(), 4, "{html}");
        for id in ["confusion", "training", "calibration", "per-class"] {
            assert!(html.contains(&format!("<section id=\"{id}\"")), "{id}");
        }
        // confusion = [[2, 0], [1, 2]]: every count is drawn in a heatmap cell.
        assert_eq!(e.metrics.confusion_matrix, vec![vec![2, 0], vec![1, 2]]);
        for n in [
            "dominant-baseline=\"central\" fill=\"#fff\">2<",
            ">1<",
            ">0<",
        ] {
            assert!(html.contains(n), "{n}");
        }
        assert!(html.contains("train loss") && html.contains("validation accuracy"));
        // Epoch 3 of 4 was kept: both charts mark it.
        assert_eq!(html.matches("class=\"marker\"").count(), 2);
        // A temperature adds the second reliability diagram.
        e.apply_temperature(1.7, "val.jsonl".into(), None, 15)
            .unwrap();
        let html = render(&e);
        assert_eq!(html.matches("<svg").count(), 5);
        assert!(html.contains("T = 1.700"));
    }

    #[test]
    fn report_is_self_contained() {
        let html = render(&evaluation());
        for banned in [
            "<script", "<link", "src=", "@import", "url(", "http://", "https://",
        ] {
            let hits: Vec<_> = html.match_indices(banned).collect();
            // The SVG namespace is an identifier, not a fetched resource.
            let real = hits
                .iter()
                .filter(|(i, _)| !html[*i..].starts_with("http://www.w3.org/2000/svg"))
                .count();
            assert_eq!(real, 0, "{banned} found");
        }
    }

    #[test]
    fn labels_and_paths_are_escaped() {
        let html = render(&evaluation());
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(html.contains("sport &amp; co"));
        assert!(!html.contains("sport & co"));
        assert!(html.contains("m&lt;1&gt;"));
    }

    #[test]
    fn missing_history_is_a_note_not_a_plot() {
        let mut e = evaluation();
        e.history = None;
        let html = render(&e);
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("No per-epoch history"));
    }

    #[test]
    fn write_puts_the_file_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.html");
        write(&evaluation(), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("<svg"));
        let leftovers: HashMap<_, _> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| (e.unwrap().file_name(), ()))
            .collect();
        assert_eq!(leftovers.len(), 1);
        let err = write(&evaluation(), &dir.path().join("no/such/dir/r.html")).unwrap_err();
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }
}
