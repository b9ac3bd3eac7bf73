//! `/runs`: the recorded runs as a table, filtered by model type and status, sorted by start
//! time or a final metric, 50 to a page, with checkboxes to compare; `/runs/{id}`: one run
//! (params, final metrics, curves, stages, artifacts, lineage); `/compare?run=A&run=B`: runs
//! side by side (curves overlaid, metrics and params with the differing rows marked).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use taxon_track::{RunRecord, RunSummary, TrackError};

use crate::error::UiError;
use crate::html::{Esc, Nav, bytes, metric_rank, num, page, query, short, time, url_encode};
use crate::{evaluation, stores, svg};

/// Rows per page of `/runs`.
pub const PAGE_SIZE: usize = 50;

/// At most this many metric columns in the table (the most common keys first).
const METRIC_COLUMNS: usize = 6;

/// The query parameters of `/runs`; empty values mean "any" / the default.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunsQuery {
    #[serde(default)]
    pub model_type: String,
    #[serde(default)]
    pub status: String,
    /// A data version id (the hash `taxon data add` recorded).
    #[serde(default)]
    pub data_version: String,
    /// `start` (default) or the name of a final metric.
    #[serde(default)]
    pub sort: String,
    /// `desc` (default) or `asc`.
    #[serde(default)]
    pub order: String,
    /// 1-based.
    #[serde(default)]
    pub page: Option<usize>,
}

impl RunsQuery {
    fn ascending(&self) -> bool {
        self.order == "asc"
    }

    fn sort_key(&self) -> &str {
        if self.sort.is_empty() {
            "start"
        } else {
            &self.sort
        }
    }

    /// The query string of this view on page `page`.
    fn link(&self, page: usize) -> String {
        let page = page.to_string();
        format!(
            "/runs{}",
            query(&[
                ("model_type", &self.model_type),
                ("status", &self.status),
                ("data_version", &self.data_version),
                ("sort", &self.sort),
                ("order", &self.order),
                ("page", if page == "1" { "" } else { &page }),
            ])
        )
    }
}

/// The runs `q` selects, in its order. Sorting by a metric puts runs without it last.
pub fn select(mut runs: Vec<RunSummary>, q: &RunsQuery) -> Vec<RunSummary> {
    runs.retain(|r| {
        (q.model_type.is_empty() || r.model_type.as_deref() == Some(q.model_type.as_str()))
            && (q.status.is_empty() || r.status.as_str() == q.status)
            && (q.data_version.is_empty()
                || r.data_version.as_deref() == Some(q.data_version.as_str()))
    });
    let asc = q.ascending();
    match q.sort_key() {
        "start" => runs.sort_by(|a, b| {
            let o = a.start_time.cmp(&b.start_time).then(a.id.cmp(&b.id));
            if asc { o } else { o.reverse() }
        }),
        metric => runs.sort_by(|a, b| {
            match (a.metrics.get(metric), b.metrics.get(metric)) {
                (Some(x), Some(y)) => {
                    let o = x.total_cmp(y);
                    if asc { o } else { o.reverse() }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then(b.start_time.cmp(&a.start_time))
        }),
    }
    runs
}

/// Every run in the store, newest first (none when the project has no store yet).
fn all_runs(project: &Path) -> Result<Vec<RunSummary>, UiError> {
    match stores::runs(project)? {
        Some(store) => store
            .list(usize::MAX)
            .map_err(|e| UiError::store("the run store")(&e)),
        None => Ok(Vec::new()),
    }
}

/// `<option>`s: "any" (the empty value), then each (value, label).
fn options(selected: &str, values: &[(String, String)], any: &str) -> String {
    let mut s = format!("<option value=\"\">{any}</option>");
    for (v, label) in values {
        let sel = if v == selected { " selected" } else { "" };
        let _ = write!(
            s,
            "<option value=\"{}\"{sel}>{}</option>",
            Esc(v),
            Esc(label)
        );
    }
    s
}

/// The distinct (value, label) pairs of `values`, sorted.
fn distinct(values: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = values.collect();
    v.sort();
    v.dedup();
    v
}

/// The `/runs` page.
pub fn list_page(project: &Path, q: &RunsQuery) -> Result<String, UiError> {
    let runs = all_runs(project)?;
    let model_types = distinct(
        runs.iter()
            .filter_map(|r| r.model_type.clone())
            .map(|m| (m.clone(), m)),
    );
    let statuses = distinct(
        runs.iter()
            .map(|r| (r.status.to_string(), r.status.to_string())),
    );
    let data_versions = distinct(runs.iter().filter_map(|r| {
        let v = r.data_version.clone()?;
        let label = format!("{} {}", r.data_path.as_deref().unwrap_or(""), short(&v));
        Some((v, label.trim().to_string()))
    }));
    // Metric columns: accuracies and F1 first, then the keys most runs have, then by name.
    let mut key_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &runs {
        for k in r.metrics.keys() {
            *key_counts.entry(k).or_default() += 1;
        }
    }
    let mut keys: Vec<(&str, usize)> = key_counts.into_iter().collect();
    keys.sort_by(|a, b| (metric_rank(a.0), b.1, a.0).cmp(&(metric_rank(b.0), a.1, b.0)));
    let mut sort_keys = vec!["start".to_string()];
    sort_keys.extend(keys.iter().map(|(k, _)| k.to_string()));
    let columns: Vec<String> = keys
        .iter()
        .take(METRIC_COLUMNS)
        .map(|(k, _)| k.to_string())
        .collect();
    let total_runs = runs.len();

    let selected = select(runs, q);
    let pages = selected.len().div_ceil(PAGE_SIZE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let rows = selected
        .iter()
        .skip((page_no - 1) * PAGE_SIZE)
        .take(PAGE_SIZE);

    let mut body = String::new();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/runs\">\
         <label for=\"model_type\">Model type</label><select id=\"model_type\" name=\"model_type\">{}</select>\
         <label for=\"status\">Status</label><select id=\"status\" name=\"status\">{}</select>\
         <label for=\"data_version\">Data version</label><select id=\"data_version\" name=\"data_version\">{}</select>\
         <label for=\"sort\">Sort by</label><select id=\"sort\" name=\"sort\">{}</select>\
         <label for=\"order\">Order</label><select id=\"order\" name=\"order\">\
         <option value=\"desc\"{}>descending</option><option value=\"asc\"{}>ascending</option></select>\
         <button type=\"submit\">Apply</button></form>",
        options(&q.model_type, &model_types, "any"),
        options(&q.status, &statuses, "any"),
        options(&q.data_version, &data_versions, "any"),
        {
            let mut s = String::new();
            for k in &sort_keys {
                let sel = if k == q.sort_key() { " selected" } else { "" };
                let label = if k == "start" { "start time" } else { k };
                let _ = write!(
                    s,
                    "<option value=\"{}\"{sel}>{}</option>",
                    Esc(k),
                    Esc(label)
                );
            }
            s
        },
        if q.ascending() { "" } else { " selected" },
        if q.ascending() { " selected" } else { "" },
    );
    let _ = write!(
        body,
        "<p id=\"run-count\">{} of {total_runs} runs; page {page_no} of {pages}</p>",
        selected.len()
    );
    body.push_str(
        "<form method=\"get\" action=\"/compare\" id=\"compare-form\">\
         <div class=\"scroll\"><table id=\"runs\"><thead><tr><th scope=\"col\">Compare</th><th scope=\"col\">Run</th><th scope=\"col\">Name</th>\
         <th scope=\"col\">Kind</th><th scope=\"col\">Status</th><th scope=\"col\">Model type</th>\
         <th scope=\"col\">Data version</th><th scope=\"col\">Started (UTC)</th>\
         <th scope=\"col\">Duration (s)</th>",
    );
    for c in &columns {
        let _ = write!(body, "<th scope=\"col\">{}</th>", Esc(c));
    }
    body.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            body,
            "<tr data-run=\"{id}\"><td><input type=\"checkbox\" name=\"run\" value=\"{id}\" \
             aria-label=\"compare run {short}\"></td><td><a href=\"/runs/{id}\">{short}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>",
            Esc(&r.name),
            Esc(&r.kind),
            Esc(r.status.as_str()),
            Esc(r.model_type.as_deref().unwrap_or("-")),
            Esc(r.data_version.as_deref().map_or("-", short)),
            time(r.start_time),
            r.duration_seconds.map_or("-".into(), |d| format!("{d:.2}")),
            id = Esc(&url_encode(&r.id)),
            short = Esc(short(&r.id)),
        );
        for c in &columns {
            let v = r.metrics.get(c).map_or("-".into(), |v| num(*v));
            let _ = write!(
                body,
                "<td class=\"num\" data-metric=\"{}\">{v}</td>",
                Esc(c)
            );
        }
        body.push_str("</tr>");
    }
    body.push_str(
        "</tbody></table></div><button type=\"submit\">Compare the selected runs</button></form>",
    );
    if pages > 1 {
        body.push_str("<nav aria-label=\"pages\">");
        if page_no > 1 {
            let _ = write!(
                body,
                "<a rel=\"prev\" href=\"{}\">previous</a> ",
                Esc(&q.link(page_no - 1))
            );
        }
        if page_no < pages {
            let _ = write!(
                body,
                "<a rel=\"next\" href=\"{}\">next</a>",
                Esc(&q.link(page_no + 1))
            );
        }
        body.push_str("</nav>");
    }
    Ok(page("Runs", Nav::Runs, &body))
}

/// A two-column table of `rows`.
fn kv_table(
    id: &str,
    head: (&str, &str),
    rows: impl IntoIterator<Item = (String, String)>,
) -> String {
    let mut s = format!(
        "<table id=\"{id}\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        head.0, head.1
    );
    let mut any = false;
    for (k, v) in rows {
        any = true;
        let _ = write!(
            s,
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            Esc(&k),
            Esc(&v)
        );
    }
    if !any {
        s.push_str("<tr><td colspan=\"2\" class=\"muted\">none</td></tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// The order of a run's charts: losses, then accuracies and F1, then the learning rate, then
/// the rest (timings, throughput).
fn curve_rank(key: &str) -> u8 {
    if key.contains("loss") {
        0
    } else if key.ends_with("accuracy") || key.ends_with("f1") {
        1
    } else if key.contains("learning_rate") || key == "lr" {
        2
    } else {
        3
    }
}

/// The per-epoch series of a run, by metric key.
pub fn curves(record: &RunRecord) -> BTreeMap<&str, Vec<(f64, f64)>> {
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in &record.history {
        series
            .entry(p.key.as_str())
            .or_default()
            .push((p.step as f64, p.value));
    }
    series
}

/// At most this many runs on one compare page.
pub const COMPARE_MAX: usize = 6;

/// The run ids of a `/compare` query (`run=A&run=B`, repeated): ids are hex, so anything
/// else is dropped rather than decoded.
pub fn compare_ids(raw_query: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for pair in raw_query.unwrap_or("").split('&') {
        if let Some(("run", v)) = pair.split_once('=') {
            if !v.is_empty()
                && v.chars().all(|c| c.is_ascii_alphanumeric())
                && !ids.iter().any(|i| i == v)
            {
                ids.push(v.to_string());
            }
        }
    }
    ids
}

/// A row of a side-by-side table: its cells, and whether they differ (marked for the eye
/// with a class and for screen readers with text).
fn compare_row(body: &mut String, label: &str, cells: &[String]) {
    let differs = cells.windows(2).any(|w| w[0] != w[1]);
    let _ = write!(
        body,
        "<tr{}><th scope=\"row\">{}{}</th>",
        if differs { " class=\"diff\"" } else { "" },
        Esc(label),
        if differs {
            " <span class=\"muted\">(differs)</span>"
        } else {
            ""
        }
    );
    for c in cells {
        let _ = write!(body, "<td>{}</td>", Esc(c));
    }
    body.push_str("</tr>");
}

/// The `/compare` page: the runs `ids` (full ids or unique prefixes) side by side.
pub fn compare_page(project: &Path, ids: &[String]) -> Result<String, UiError> {
    if ids.len() < 2 {
        let body = "<p>Select two or more runs on the <a href=\"/runs\">runs page</a> to compare them.</p>";
        return Ok(page("Compare runs", Nav::Runs, body));
    }
    let Some(store) = stores::runs(project)? else {
        return Err(UiError::not_found(format!("run {}", ids[0])));
    };
    let mut runs: Vec<RunRecord> = Vec::new();
    for id in ids.iter().take(COMPARE_MAX) {
        match store.get(id) {
            Ok(r) => runs.push(r),
            Err(TrackError::UnknownRun { .. } | TrackError::AmbiguousRun { .. }) => {
                return Err(UiError::not_found(format!("run {id}")));
            }
            Err(e) => return Err(UiError::store("the run store")(&e)),
        }
    }
    let names: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}", short(&r.summary.id), r.summary.name))
        .collect();
    let mut body = String::new();
    if ids.len() > COMPARE_MAX {
        let _ = write!(
            body,
            "<p class=\"muted\">Showing the first {COMPARE_MAX} of {} selected runs.</p>",
            ids.len()
        );
    }
    body.push_str(
        "<div class=\"scroll\"><table id=\"compare\"><thead><tr><th scope=\"col\">Run</th>",
    );
    for r in &runs {
        let _ = write!(
            body,
            "<th scope=\"col\"><a href=\"/runs/{id}\">{}</a></th>",
            Esc(short(&r.summary.id)),
            id = Esc(&url_encode(&r.summary.id)),
        );
    }
    body.push_str("</tr></thead><tbody>");
    let col = |f: &dyn Fn(&RunRecord) -> String| runs.iter().map(f).collect::<Vec<_>>();
    compare_row(&mut body, "name", &col(&|r| r.summary.name.clone()));
    compare_row(&mut body, "status", &col(&|r| r.summary.status.to_string()));
    compare_row(
        &mut body,
        "model type",
        &col(&|r| r.summary.model_type.clone().unwrap_or("-".into())),
    );
    compare_row(
        &mut body,
        "data version",
        &col(&|r| {
            r.summary
                .data_version
                .as_deref()
                .map_or("-".into(), |v| short(v).to_string())
        }),
    );
    compare_row(
        &mut body,
        "duration (s)",
        &col(&|r| {
            r.summary
                .duration_seconds
                .map_or("-".into(), |d| format!("{d:.2}"))
        }),
    );
    body.push_str("</tbody></table></div>");

    body.push_str("<h2>Curves</h2>");
    let curves_of: Vec<BTreeMap<&str, Vec<(f64, f64)>>> = runs.iter().map(curves).collect();
    let mut keys: Vec<&str> = curves_of.iter().flat_map(|c| c.keys().copied()).collect();
    keys.sort_by_key(|k| (curve_rank(k), *k));
    keys.dedup();
    if keys.is_empty() {
        body.push_str("<p class=\"muted\">No per-epoch metrics were recorded.</p>");
    } else {
        body.push_str("<div class=\"charts\">");
        for key in keys {
            let series: Vec<(String, Vec<(f64, f64)>)> = names
                .iter()
                .zip(&curves_of)
                .filter_map(|(n, c)| c.get(key).map(|p| (n.clone(), p.clone())))
                .collect();
            let _ = write!(
                body,
                "<figure data-chart=\"{}\">{}</figure>",
                Esc(key),
                svg::overlay_chart(key, &series)
            );
        }
        body.push_str("</div>");
    }

    let metric_table = |body: &mut String,
                        id: &str,
                        title: &str,
                        keys: Vec<String>,
                        get: &dyn Fn(&RunRecord, &str) -> String| {
        let _ = write!(
            body,
            "<h2>{title}</h2><div class=\"scroll\"><table id=\"{id}\"><thead><tr><th scope=\"col\">Key</th>"
        );
        for n in &names {
            let _ = write!(body, "<th scope=\"col\">{}</th>", Esc(n));
        }
        body.push_str("</tr></thead><tbody>");
        for k in keys {
            let cells: Vec<String> = runs.iter().map(|r| get(r, &k)).collect();
            compare_row(body, &k, &cells);
        }
        body.push_str("</tbody></table></div>");
    };
    let mut metric_keys: Vec<String> = runs
        .iter()
        .flat_map(|r| r.summary.metrics.keys().cloned())
        .collect();
    metric_keys.sort_by(|a, b| (metric_rank(a), a).cmp(&(metric_rank(b), b)));
    metric_keys.dedup();
    metric_table(
        &mut body,
        "metrics",
        "Final metrics",
        metric_keys,
        &|r, k| r.summary.metrics.get(k).map_or("-".into(), |v| num(*v)),
    );
    let mut param_keys: Vec<String> = runs.iter().flat_map(|r| r.params.keys().cloned()).collect();
    param_keys.sort();
    param_keys.dedup();
    metric_table(&mut body, "params", "Params", param_keys, &|r, k| {
        r.params.get(k).cloned().unwrap_or_else(|| "-".into())
    });
    Ok(page("Compare runs", Nav::Runs, &body))
}

/// The `/runs/{id}` page (`id` may be a unique prefix).
pub fn run_page(project: &Path, id: &str) -> Result<String, UiError> {
    let Some(store) = stores::runs(project)? else {
        return Err(UiError::not_found(format!("run {id}")));
    };
    let r = match store.get(id) {
        Ok(r) => r,
        Err(TrackError::UnknownRun { .. } | TrackError::AmbiguousRun { .. }) => {
            return Err(UiError::not_found(format!("run {id}")));
        }
        Err(e) => return Err(UiError::store("the run store")(&e)),
    };
    let s = &r.summary;
    let mut body = String::new();
    body.push_str(&kv_table(
        "summary",
        ("Field", "Value"),
        [
            ("id".to_string(), s.id.clone()),
            ("name".into(), s.name.clone()),
            ("kind".into(), s.kind.clone()),
            ("status".into(), s.status.to_string()),
            (
                "model type".into(),
                s.model_type.clone().unwrap_or("-".into()),
            ),
            ("started (UTC)".into(), time(s.start_time)),
            ("ended (UTC)".into(), s.end_time.map_or("-".into(), time)),
            (
                "duration (s)".into(),
                s.duration_seconds.map_or("-".into(), |d| format!("{d:.2}")),
            ),
        ]
        .into_iter()
        .chain(r.error.clone().map(|e| ("error".to_string(), e))),
    ));

    body.push_str("<h2>Curves</h2>");
    let series = curves(&r);
    if series.is_empty() {
        body.push_str("<p class=\"muted\">No per-epoch metrics were recorded.</p>");
    } else {
        let mut series: Vec<_> = series.iter().collect();
        series.sort_by_key(|(k, _)| (curve_rank(k), **k));
        // A key with one point (a one-pass solver's only "epoch") is a value, not a curve.
        let (curves, single): (Vec<_>, Vec<_>) =
            series.into_iter().partition(|(_, points)| points.len() > 1);
        if !curves.is_empty() {
            body.push_str("<div class=\"charts\">");
            for (key, points) in curves {
                let _ = write!(
                    body,
                    "<figure data-curve=\"{}\">{}</figure>",
                    Esc(key),
                    svg::line_chart(key, points)
                );
            }
            body.push_str("</div>");
        }
        if !single.is_empty() {
            body.push_str("<p class=\"muted\">Recorded at one step only (no curve to draw):</p>");
            body.push_str(&kv_table(
                "single-step",
                ("Metric", "Value"),
                single
                    .iter()
                    .map(|(k, p)| (k.to_string(), p.first().map_or("-".into(), |p| num(p.1)))),
            ));
        }
    }

    body.push_str("<h2>Final metrics</h2>");
    body.push_str(&kv_table(
        "metrics",
        ("Metric", "Value"),
        s.metrics.iter().map(|(k, v)| (k.clone(), num(*v))),
    ));

    body.push_str(&evaluation::section(&r.artifacts));

    body.push_str("<h2>Params</h2>");
    body.push_str(&kv_table(
        "params",
        ("Param", "Value"),
        r.params.iter().map(|(k, v)| (k.clone(), v.clone())),
    ));

    body.push_str(
        "<h2>Stages</h2><table id=\"stages\"><thead><tr><th scope=\"col\">Stage</th>\
         <th scope=\"col\">Time (s)</th><th scope=\"col\">Peak memory</th></tr></thead><tbody>",
    );
    for st in &r.stages {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{:.3}</td><td class=\"num\">{}</td></tr>",
            Esc(&st.name),
            st.seconds,
            bytes(st.peak_rss_bytes)
        );
    }
    if r.stages.is_empty() {
        body.push_str("<tr><td colspan=\"3\" class=\"muted\">none</td></tr>");
    }
    body.push_str("</tbody></table>");

    body.push_str(
        "<h2>Artifacts</h2><table id=\"artifacts\"><thead><tr><th scope=\"col\">Name</th>\
         <th scope=\"col\">Path</th><th scope=\"col\">md5</th><th scope=\"col\">Size</th></tr></thead><tbody>",
    );
    for a in &r.artifacts {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
            Esc(&a.name),
            Esc(&a.path),
            Esc(&a.md5),
            bytes(a.size)
        );
    }
    if r.artifacts.is_empty() {
        body.push_str("<tr><td colspan=\"4\" class=\"muted\">none</td></tr>");
    }
    body.push_str("</tbody></table>");

    body.push_str("<h2>Lineage</h2><table id=\"lineage\"><tbody>");
    let _ = write!(
        body,
        "<tr><th scope=\"row\">data</th><td>{}</td></tr>",
        Esc(s.data_path.as_deref().unwrap_or("-"))
    );
    match &s.data_version {
        Some(v) => {
            let _ = write!(
                body,
                "<tr><th scope=\"row\">data version</th><td><a href=\"/data#v-{0}\"><code>{1}</code></a></td></tr>",
                Esc(&url_encode(v)),
                Esc(v)
            );
        }
        None => body.push_str("<tr><th scope=\"row\">data version</th><td>-</td></tr>"),
    }
    let code = match (&r.code.git_commit, r.code.git_dirty) {
        (Some(c), Some(true)) => format!("{c} (dirty)"),
        (Some(c), _) => c.clone(),
        (None, _) => "-".into(),
    };
    let _ = write!(
        body,
        "<tr><th scope=\"row\">code version</th><td><code>{}</code></td></tr>\
         <tr><th scope=\"row\">taxon</th><td>{}</td></tr>\
         <tr><th scope=\"row\">machine</th><td>{} ({} cores, {})</td></tr>",
        Esc(&code),
        Esc(&r.code.taxon_version),
        Esc(&r.machine.hostname),
        r.machine.cores,
        bytes(r.machine.memory_bytes)
    );
    body.push_str("<tr><th scope=\"row\">registry versions</th><td>");
    let made: Vec<String> = match stores::registry(project)? {
        Some(reg) => reg
            .list(None)
            .map_err(|e| UiError::store("the model registry")(&e))?
            .into_iter()
            .filter(|v| v.run_id == s.id)
            .map(|v| {
                format!(
                    "<a href=\"/registry/{}\">{} v{}</a>",
                    Esc(&url_encode(&v.name)),
                    Esc(&v.name),
                    v.version
                )
            })
            .collect(),
        None => Vec::new(),
    };
    if made.is_empty() {
        body.push('-');
    } else {
        body.push_str(&made.join(", "));
    }
    body.push_str("</td></tr></tbody></table>");
    Ok(page(&format!("Run {}", short(&s.id)), Nav::Runs, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use taxon_track::RunStatus;

    fn run(id: &str, minute: u32, model: &str, status: RunStatus, acc: Option<f64>) -> RunSummary {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap();
        RunSummary {
            id: id.into(),
            name: id.into(),
            kind: "train".into(),
            status,
            start_time: t,
            end_time: None,
            heartbeat: t,
            duration_seconds: None,
            model_type: Some(model.into()),
            data_path: None,
            data_version: None,
            metrics: acc
                .map(|a| ("accuracy".to_string(), a))
                .into_iter()
                .collect(),
        }
    }

    fn ids(runs: &[RunSummary]) -> Vec<&str> {
        runs.iter().map(|r| r.id.as_str()).collect()
    }

    fn runs() -> Vec<RunSummary> {
        vec![
            run("a", 1, "linear", RunStatus::Finished, Some(0.7)),
            run("b", 2, "bert", RunStatus::Finished, Some(0.9)),
            run("c", 3, "linear", RunStatus::Failed, None),
            run("d", 4, "linear", RunStatus::Finished, Some(0.8)),
        ]
    }

    #[test]
    fn default_order_is_newest_first() {
        assert_eq!(
            ids(&select(runs(), &RunsQuery::default())),
            ["d", "c", "b", "a"]
        );
        let q = RunsQuery {
            order: "asc".into(),
            ..Default::default()
        };
        assert_eq!(ids(&select(runs(), &q)), ["a", "b", "c", "d"]);
    }

    #[test]
    fn filters_by_model_type_and_status() {
        let q = RunsQuery {
            model_type: "linear".into(),
            status: "finished".into(),
            ..Default::default()
        };
        assert_eq!(ids(&select(runs(), &q)), ["d", "a"]);
    }

    #[test]
    fn filters_by_data_version() {
        let mut all = runs();
        all[1].data_version = Some("5fc3b710".into());
        let q = RunsQuery {
            data_version: "5fc3b710".into(),
            ..Default::default()
        };
        assert_eq!(ids(&select(all, &q)), ["b"]);
    }

    #[test]
    fn sorting_by_a_metric_puts_runs_without_it_last() {
        let q = RunsQuery {
            sort: "accuracy".into(),
            ..Default::default()
        };
        assert_eq!(ids(&select(runs(), &q)), ["b", "d", "a", "c"]);
        let q = RunsQuery {
            sort: "accuracy".into(),
            order: "asc".into(),
            ..Default::default()
        };
        assert_eq!(ids(&select(runs(), &q)), ["a", "d", "b", "c"]);
    }

    #[test]
    fn charts_go_losses_then_accuracies_then_learning_rate_then_timings() {
        let mut keys = [
            "epoch_seconds",
            "learning_rate",
            "validation_accuracy",
            "train_loss",
            "validation_loss",
        ];
        keys.sort_by_key(|k| (curve_rank(k), *k));
        assert_eq!(
            keys,
            [
                "train_loss",
                "validation_loss",
                "validation_accuracy",
                "learning_rate",
                "epoch_seconds"
            ]
        );
    }

    #[test]
    fn page_links_keep_the_view_and_encode_values() {
        let q = RunsQuery {
            model_type: "a&b".into(),
            sort: "accuracy".into(),
            ..Default::default()
        };
        assert_eq!(q.link(2), "/runs?model_type=a%26b&sort=accuracy&page=2");
        assert_eq!(q.link(1), "/runs?model_type=a%26b&sort=accuracy");
    }
}
