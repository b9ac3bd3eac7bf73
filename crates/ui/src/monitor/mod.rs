//! `/monitor`: what a served model's predictions look like over time, from the prediction log
//! `taxon serve --prediction-log DIR` writes and the alert history `taxon serve --alerts`
//! keeps: per window, the predictions by label, latency p50/p95, live accuracy from feedback
//! and each feature's drift against the model's reference profile (threshold drawn, windows
//! past it marked), then the alerts fired and resolved with each channel's outcome.
//!
//! The reference is the model folder given to `taxon ui --model`, else the registry version
//! the log's newest prediction names (`vN`, served with `--alias`), from the registry's local
//! cache. A source that is not configured or not there is said on the page, not an error.

pub mod chart;
pub mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use taxon_alerts::{AlertRow, History};
use taxon_monitor::Profile;
use taxon_monitor::drift::{DriftReport, Thresholds};

use crate::error::UiError;
use crate::html::{Esc, Nav, esc, num, page};
use crate::stores;
use chart::{Series, time_chart};
use window::{Baseline, LogRead, Window};

/// Alerts listed at most (newest first).
pub const MAX_ALERTS: usize = 200;

/// Where the monitoring page reads from (`taxon ui` flags).
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The prediction log folder (`taxon serve --prediction-log DIR`).
    pub prediction_log: Option<PathBuf>,
    /// The model folder whose `profile.json` is the reference; else resolved from the log.
    pub model: Option<PathBuf>,
    /// The alert history; default `.taxon/alerts.db` in the project.
    pub alerts_db: Option<PathBuf>,
    /// Drift thresholds (the YAML `taxon monitor drift --thresholds` reads); else defaults.
    pub thresholds: Option<PathBuf>,
}

impl crate::AppState {
    /// The same with `/monitor` reading `sources`.
    pub fn with_monitor(mut self, sources: Sources) -> Self {
        self.monitor = sources;
        self
    }
}

/// The query parameters of `/monitor`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MonitorQuery {
    /// Window width in seconds; empty: about 24 windows over the log.
    #[serde(default)]
    pub window: String,
}

/// The reference profile and where it came from, or why there is none.
enum Reference {
    Found { profile: Box<Profile>, from: String },
    Missing(String),
}

/// The reference for `read`: `--model`, else the registry's cached folder of the version the
/// newest prediction names.
fn reference(project: &Path, sources: &Sources, read: &LogRead) -> Reference {
    let load = |dir: &Path, from: String| match Profile::read_from_model(dir) {
        Ok(profile) => Reference::Found {
            profile: Box::new(profile),
            from,
        },
        Err(e) => Reference::Missing(format!("reading the reference profile: {e}")),
    };
    if let Some(dir) = &sources.model {
        return load(dir, format!("the model folder {}", dir.display()));
    }
    let Some(newest) = read
        .predictions
        .iter()
        .max_by(|a, b| a.time.total_cmp(&b.time))
    else {
        return Reference::Missing("the log has no predictions".into());
    };
    let Some(n) = taxon_registry::names::parse_version(&newest.version) else {
        return Reference::Missing(format!(
            "the log's model {} (version {}) was served from a folder, not the registry: \
             start `taxon ui --model DIR` with that folder to compare with its reference profile",
            newest.model, newest.version
        ));
    };
    let found = stores::registry(project)
        .ok()
        .flatten()
        .and_then(|r| r.get(&newest.model, n).ok().map(|v| r.cache_folder(&v)));
    match found {
        Some(dir) if dir.is_dir() => load(
            &dir,
            format!("registry {} v{n} ({})", newest.model, dir.display()),
        ),
        _ => Reference::Missing(format!(
            "registry model {} v{n} is not in this project's registry cache: start `taxon ui \
             --model DIR` with its folder",
            newest.model
        )),
    }
}

/// The alert history's newest alerts, `Ok(None)` when there is no history file.
fn alerts(project: &Path, sources: &Sources) -> (PathBuf, Result<Option<Vec<AlertRow>>, String>) {
    let path = sources
        .alerts_db
        .clone()
        .unwrap_or_else(|| project.join(taxon_alerts::config::DEFAULT_DB));
    if !path.is_file() {
        return (path, Ok(None));
    }
    let rows = History::open_existing(&path)
        .and_then(|h| h.list(false, MAX_ALERTS))
        .map(Some)
        .map_err(|e| e.to_string());
    (path, rows)
}

/// The `/monitor` page.
pub fn page_html(project: &Path, sources: &Sources, q: &MonitorQuery) -> Result<String, UiError> {
    let mut body = String::new();
    let asked = q.window.trim();
    let asked_width = match asked.parse::<u64>() {
        Ok(w) if w > 0 => Some(w),
        _ if asked.is_empty() => None,
        _ => {
            let _ = write!(
                body,
                "<p class=\"muted\" role=\"status\">Window “{}” is not a whole number of seconds \
                 above 0: the default is used.</p>",
                Esc(asked)
            );
            None
        }
    };
    match &sources.prediction_log {
        None => body.push_str(
            "<section id=\"log\"><h2>Prediction log</h2><p data-missing=\"log\">No prediction log \
             is configured. Serve with <code>taxon serve --prediction-log DIR</code> and start \
             <code>taxon ui --prediction-log DIR</code> to see predictions by label, latency, \
             live accuracy and drift over time.</p></section>",
        ),
        Some(dir) => log_sections(&mut body, project, sources, dir, asked_width)?,
    }
    alerts_section(&mut body, project, sources);
    Ok(page("Monitoring", Nav::Monitor, &body))
}

fn log_sections(
    body: &mut String,
    project: &Path,
    sources: &Sources,
    dir: &Path,
    asked: Option<u64>,
) -> Result<(), UiError> {
    let read = match window::read_log(dir, window::MAX_LOG_BYTES) {
        Ok(r) => r,
        Err(e) => {
            let _ = write!(
                body,
                "<section id=\"log\"><h2>Prediction log</h2><p data-missing=\"log\">The \
                 prediction log {} cannot be read: {}</p></section>",
                Esc(&dir.display().to_string()),
                Esc(&e.to_string())
            );
            return Ok(());
        }
    };
    let thresholds = match &sources.thresholds {
        Some(p) => Thresholds::load(p).map_err(|e| UiError::store("the drift thresholds")(&e))?,
        None => Thresholds::default(),
    };
    let (lo, hi) = read.span().unwrap_or((0.0, 0.0));
    let (width, widened) = window::width(hi - lo, asked);
    let reference = reference(project, sources, &read);
    let baseline = match &reference {
        Reference::Found { profile, .. } => Some(Baseline {
            profile,
            thresholds: &thresholds,
        }),
        Reference::Missing(_) => None,
    };
    let (windows, permutations) = window::windows(&read, width, baseline);

    let _ = write!(
        body,
        "<section id=\"log\"><h2>Prediction log</h2><p>{} predictions and {} feedback from <code>{}</code>",
        read.predictions.len(),
        read.feedback.len(),
        Esc(&dir.display().to_string()),
    );
    if let Some((lo, hi)) = read.span() {
        let _ = write!(body, ", {} to {} UTC", clock(lo), clock(hi));
    }
    body.push_str(".</p>");
    if read.capped() {
        let _ = write!(
            body,
            "<p data-capped=\"\" role=\"status\"><strong>Only the newest {} of {} log files were \
             read</strong> ({} of {}): older predictions are not shown.</p>",
            read.files_read,
            read.files_total,
            crate::html::bytes(read.bytes_read),
            crate::html::bytes(read.bytes_total)
        );
    }
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/monitor\"><label for=\"window\">Window (seconds)</label>\
         <input id=\"window\" name=\"window\" type=\"number\" min=\"1\" value=\"{width}\">\
         <button type=\"submit\">Show</button></form>"
    );
    if widened {
        let _ = write!(
            body,
            "<p class=\"muted\" role=\"status\">Widened to {width} s windows: at most {} windows \
             are drawn.</p>",
            window::MAX_WINDOWS
        );
    }
    versions_table(body, &read);
    body.push_str("</section>");
    predictions_section(body, &read, &windows);
    accuracy_section(body, &read, &windows);
    drift_section(body, &read, &windows, &reference, &thresholds, permutations);
    windows_table(body, &windows, width);
    Ok(())
}

/// The span of the windows' starts, shared by the page's charts.
fn x_range(windows: &[Window]) -> Option<(f64, f64)> {
    Some((windows.first()?.start, windows.last()?.start))
}

/// `2026-12-07 21:38:32` from unix seconds.
fn clock(t: f64) -> String {
    chrono::DateTime::from_timestamp(t.floor() as i64, 0).map_or_else(|| num(t), crate::html::time)
}

fn versions_table(body: &mut String, read: &LogRead) {
    let mut seen: BTreeMap<(&str, &str), (u64, f64, f64)> = BTreeMap::new();
    for p in &read.predictions {
        let e = seen
            .entry((&p.model, &p.version))
            .or_insert((0, p.time, p.time));
        e.0 += 1;
        e.1 = e.1.min(p.time);
        e.2 = e.2.max(p.time);
    }
    if seen.is_empty() {
        return;
    }
    body.push_str(
        "<table id=\"versions\"><caption>Model versions in the log</caption><thead><tr>\
         <th scope=\"col\">Model</th><th scope=\"col\">Version</th><th scope=\"col\">Predictions</th>\
         <th scope=\"col\">First (UTC)</th><th scope=\"col\">Last (UTC)</th></tr></thead><tbody>",
    );
    for ((model, version), (n, first, last)) in seen {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"num\">{n}</td><td>{}</td><td>{}</td></tr>",
            Esc(model),
            Esc(version),
            clock(first),
            clock(last)
        );
    }
    body.push_str("</tbody></table>");
}

fn predictions_section(body: &mut String, read: &LogRead, windows: &[Window]) {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &read.predictions {
        *totals.entry(&p.label).or_insert(0) += 1;
    }
    let total = read.predictions.len() as u64;
    let _ = write!(
        body,
        "<section id=\"predictions\"><h2>Predictions</h2><table id=\"labels\"><thead><tr>\
         <th scope=\"col\">Predicted label</th><th scope=\"col\">Predictions</th><th scope=\"col\">Share</th>\
         </tr></thead><tbody>"
    );
    for (label, n) in &totals {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{l}</th><td class=\"num\" data-label-total=\"{l}\">{n}</td><td class=\"num\">{}</td></tr>",
            num(*n as f64 / total as f64),
            l = Esc(label),
        );
    }
    let _ = write!(
        body,
        "</tbody><tfoot><tr><th scope=\"row\">All</th><td class=\"num\" data-total=\"predictions\">{total}</td><td></td></tr></tfoot></table>"
    );
    let labels: BTreeSet<&str> = totals.keys().copied().collect();
    let by_label: Vec<Series> = labels
        .iter()
        .map(|l| Series {
            name: (*l).to_string(),
            points: windows
                .iter()
                .map(|w| {
                    (
                        w.start,
                        w.by_label.get(*l).copied().unwrap_or(0) as f64,
                        false,
                    )
                })
                .collect(),
        })
        .collect();
    let latency_series = |name: &str, pick: fn(&Window) -> Option<f64>| Series {
        name: name.into(),
        points: windows
            .iter()
            .filter_map(|w| pick(w).map(|v| (w.start, v, false)))
            .collect(),
    };
    let latency = [
        latency_series("p50", |w| w.latency_p50),
        latency_series("p95", |w| w.latency_p95),
    ];
    let _ = write!(
        body,
        "<div class=\"charts\"><figure data-chart=\"predictions-by-label\">{}</figure>\
         <figure data-chart=\"latency\">{}</figure></div></section>",
        time_chart(
            "Predictions by label per window",
            &by_label,
            None,
            x_range(windows)
        ),
        time_chart(
            "Model latency per window (ms)",
            &latency,
            None,
            x_range(windows)
        ),
    );
}

fn accuracy_section(body: &mut String, read: &LogRead, windows: &[Window]) {
    let n = read.feedback.len();
    let correct = read.feedback.iter().filter(|f| f.correct).count();
    body.push_str("<section id=\"accuracy\"><h2>Live accuracy</h2>");
    if n == 0 {
        body.push_str(
            "<p data-missing=\"feedback\">No feedback in the log yet: clients send the true \
             labels to <code>POST /v1/feedback</code>.</p></section>",
        );
        return;
    }
    let _ = write!(
        body,
        "<p>Accuracy <strong data-total=\"accuracy\">{}</strong> over <span data-total=\"feedback\">{n}</span> \
         feedback labels, <span data-total=\"correct\">{correct}</span> of them predicted right.</p>",
        num(correct as f64 / n as f64)
    );
    let series = [Series {
        name: "accuracy".into(),
        points: windows
            .iter()
            .filter_map(|w| w.accuracy().map(|a| (w.start, a, false)))
            .collect(),
    }];
    let _ = write!(
        body,
        "<div class=\"charts\"><figure data-chart=\"accuracy\">{}</figure></div></section>",
        time_chart("Live accuracy per window", &series, None, x_range(windows))
    );
}

fn drift_section(
    body: &mut String,
    read: &LogRead,
    windows: &[Window],
    reference: &Reference,
    thresholds: &Thresholds,
    permutations: usize,
) {
    body.push_str("<section id=\"drift\"><h2>Drift</h2>");
    let profile = match reference {
        Reference::Missing(why) => {
            let _ = write!(
                body,
                "<p data-missing=\"reference\">No drift: {}.</p></section>",
                Esc(why)
            );
            return;
        }
        Reference::Found { profile, from } => {
            let _ = write!(
                body,
                "<p>Against the reference profile of {} ({} rows of {}).</p>",
                Esc(from),
                profile.rows,
                Esc(&profile.source)
            );
            profile
        }
    };
    let (current, skipped) = window::profile_of(profile, read.predictions.iter(), "log");
    if skipped > 0 {
        let _ = write!(
            body,
            "<p class=\"muted\">{skipped} predictions of another label set are left out.</p>"
        );
    }
    match (current.rows > 0).then(|| taxon_monitor::drift::compare(profile, &current, thresholds)) {
        Some(Ok(report)) => whole_log_table(body, &report),
        Some(Err(e)) => {
            let _ = write!(body, "<p>{}</p>", Esc(&e.to_string()));
        }
        None => body.push_str("<p>No prediction of the reference's label set to compare.</p>"),
    }
    // One chart per feature, in the reports' order.
    let mut names: Vec<&str> = Vec::new();
    for w in windows {
        for f in w.drift.iter().flat_map(|d| &d.features) {
            if !names.contains(&f.name.as_str()) {
                names.push(&f.name);
            }
        }
    }
    body.push_str("<div class=\"charts\">");
    for name in names {
        let mut series = Series::new(name);
        let mut threshold = Vec::new();
        let mut statistic = "";
        for w in windows {
            if let Some(f) = w
                .drift
                .as_ref()
                .and_then(|d| d.features.iter().find(|f| f.name == name))
            {
                series.points.push((w.start, f.value, f.drift));
                threshold.push((w.start, f.threshold));
                statistic = &f.statistic;
            }
        }
        let title = format!("{name}: {statistic}");
        let _ = write!(
            body,
            "<figure data-drift=\"{}\">{}</figure>",
            Esc(name),
            time_chart(&title, &[series], Some(&threshold), x_range(windows))
        );
    }
    body.push_str(
        "</div><p class=\"muted\">Numeric features: normalized Wasserstein distance, drifting \
         above the threshold (the larger of the configured one and the window's chance level). \
         Predicted labels: chi-square p-value, drifting below it. Marked squares drifted.</p>",
    );
    if permutations < thresholds.permutations {
        let _ = write!(
            body,
            "<p class=\"muted\" data-permutations=\"{permutations}\">The windows' chance levels \
             are estimated from {permutations} permutations each (the whole log's from {}), to \
             keep the page's work bounded.</p>",
            thresholds.permutations
        );
    }
    body.push_str("</section>");
}

fn whole_log_table(body: &mut String, report: &DriftReport) {
    let _ = write!(
        body,
        "<table id=\"drift-all\"><caption>The whole log read ({} predictions) against the reference: {}</caption>\
         <thead><tr><th scope=\"col\">Feature</th><th scope=\"col\">Statistic</th><th scope=\"col\">Value</th>\
         <th scope=\"col\">Threshold</th><th scope=\"col\">Drift</th></tr></thead><tbody>",
        report.rows,
        if report.drift { "drift" } else { "no drift" }
    );
    for f in &report.features {
        let _ = write!(
            body,
            "<tr data-feature=\"{n}\"><th scope=\"row\">{n}</th><td>{}</td><td class=\"num\" data-value=\"\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            Esc(&f.statistic),
            num(f.value),
            num(f.threshold),
            if f.drift {
                "<strong>DRIFT</strong>"
            } else {
                "no"
            },
            n = Esc(&f.name),
        );
    }
    body.push_str("</tbody></table>");
}

fn windows_table(body: &mut String, windows: &[Window], width: u64) {
    if windows.is_empty() {
        return;
    }
    let labels: BTreeSet<&str> = windows
        .iter()
        .flat_map(|w| w.by_label.keys().map(String::as_str))
        .collect();
    let _ = write!(
        body,
        "<section id=\"windows\"><h2>Windows of {width} s</h2><div class=\"scroll\"><table id=\"window-table\"><thead><tr>\
         <th scope=\"col\">Start (UTC)</th><th scope=\"col\">Predictions</th>"
    );
    for l in &labels {
        let _ = write!(body, "<th scope=\"col\">{}</th>", Esc(l));
    }
    body.push_str(
        "<th scope=\"col\">p50 ms</th><th scope=\"col\">p95 ms</th><th scope=\"col\">Feedback</th>\
         <th scope=\"col\">Accuracy</th><th scope=\"col\">Drifting features</th></tr></thead><tbody>",
    );
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), num);
    for w in windows {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td>",
            clock(w.start),
            w.predictions
        );
        for l in &labels {
            let _ = write!(
                body,
                "<td class=\"num\">{}</td>",
                w.by_label.get(*l).copied().unwrap_or(0)
            );
        }
        let drifting = match &w.drift {
            None => "-".to_string(),
            Some(d) => {
                let names: Vec<String> = d
                    .features
                    .iter()
                    .filter(|f| f.drift)
                    .map(|f| esc(&f.name))
                    .collect();
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            }
        };
        let _ = write!(
            body,
            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{drifting}</td></tr>",
            opt(w.latency_p50),
            opt(w.latency_p95),
            w.feedback,
            opt(w.accuracy()),
        );
    }
    body.push_str("</tbody></table></div></section>");
}

fn alerts_section(body: &mut String, project: &Path, sources: &Sources) {
    body.push_str("<section id=\"alerts\"><h2>Alerts</h2>");
    let (path, rows) = alerts(project, sources);
    let shown = Esc(&path.display().to_string()).to_string();
    let rows = match rows {
        Ok(None) => {
            let _ = write!(
                body,
                "<p data-missing=\"alerts\">No alert history at <code>{shown}</code>: it is written \
                 by <code>taxon serve --alerts alerts.yaml</code> (<code>settings.db</code>); \
                 start <code>taxon ui --alerts-db PATH</code> to read another.</p></section>"
            );
            return;
        }
        Err(e) => {
            let _ = write!(
                body,
                "<p data-missing=\"alerts\">The alert history <code>{shown}</code> cannot be read: {}</p></section>",
                Esc(&e)
            );
            return;
        }
        Ok(Some(rows)) => rows,
    };
    let firing = rows.iter().filter(|r| r.resolved_at.is_none()).count();
    let _ = write!(
        body,
        "<p>From <code>{shown}</code>: <span data-total=\"alerts\">{}</span> alerts, \
         <span data-total=\"firing\">{firing}</span> firing now{}.</p>",
        rows.len(),
        if rows.len() == MAX_ALERTS {
            format!(" (the newest {MAX_ALERTS} shown)")
        } else {
            String::new()
        }
    );
    if rows.is_empty() {
        body.push_str("</section>");
        return;
    }
    body.push_str(
        "<div class=\"scroll\"><table id=\"alert-table\"><thead><tr><th scope=\"col\">Rule</th>\
         <th scope=\"col\">Severity</th><th scope=\"col\">Model version</th><th scope=\"col\">Value</th>\
         <th scope=\"col\">Threshold</th><th scope=\"col\">Fired (UTC)</th><th scope=\"col\">Resolved (UTC)</th>\
         <th scope=\"col\">Notices</th></tr></thead><tbody>",
    );
    for r in &rows {
        let resolved = match (&r.resolved_at, r.ended.as_deref()) {
            (None, _) => "<strong>still firing</strong>".to_string(),
            (Some(at), Some("server_stopped")) => format!("{} (server stopped)", Esc(at)),
            (Some(at), _) => esc(at),
        };
        let notices: Vec<String> = r
            .deliveries
            .iter()
            .map(|d| {
                let mut s = format!(
                    "{} → {}: {}",
                    Esc(&d.kind),
                    Esc(&d.channel),
                    Esc(&d.outcome)
                );
                if d.attempts > 1 {
                    let _ = write!(s, " after {} tries", d.attempts);
                }
                if let Some(e) = &d.error {
                    let _ = write!(s, " ({})", Esc(e));
                }
                s
            })
            .collect();
        let _ = write!(
            body,
            "<tr data-alert=\"{}\"><th scope=\"row\" title=\"{}\">{}</th><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{resolved}</td><td>{}</td></tr>",
            r.id,
            Esc(&r.summary),
            Esc(&r.rule),
            Esc(&r.severity),
            Esc(&r.model_version),
            num(r.value),
            num(r.threshold),
            Esc(&r.started_at),
            if notices.is_empty() {
                "-".into()
            } else {
                notices.join("<br>")
            },
        );
    }
    body.push_str("</tbody></table></div></section>");
}

#[cfg(test)]
mod tests;
