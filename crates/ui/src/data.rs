//! `/data`: the data version records of `.taxon/versions.jsonl`, newest first, with size, row
//! count and label distribution; `/data/diff?a=ID&b=ID`: the content diff of two versions, as
//! `taxon data diff` computes it (rows added, removed, relabelled, label shift, examples).

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use taxon_core::VersionRecord;
use taxon_dataset::diff::ContentDiff;
use taxon_dataset::{OnError, ReadOptions};

use crate::error::UiError;
use crate::html::{Esc, Nav, bytes, page, query, short, time, url_encode};
use crate::stores;

/// The `/data` page.
pub fn list_page(project: &Path) -> Result<String, UiError> {
    let records = stores::data_versions(project)?;
    let mut body = format!(
        "<p id=\"version-count\">{} data versions</p>",
        records.len()
    );
    if records.len() >= 2 {
        body.push_str(&diff_form(&records, "", ""));
    }
    body.push_str(
        "<table id=\"versions\"><thead><tr><th scope=\"col\">Version</th><th scope=\"col\">Path</th>\
         <th scope=\"col\">Created (UTC)</th><th scope=\"col\">Size</th><th scope=\"col\">Files</th>\
         <th scope=\"col\">Rows</th><th scope=\"col\">Labels</th><th scope=\"col\">Message</th>\
         <th scope=\"col\">Change</th></tr></thead><tbody>",
    );
    for (i, r) in records.iter().enumerate().rev() {
        let id = r.id.to_string();
        // The version of the same path recorded before this one, to diff against.
        let previous = records[..i].iter().rev().find(|p| p.path == r.path);
        let change = previous.map_or_else(
            || "<span class=\"muted\">first</span>".to_string(),
            |p| {
                format!(
                    "<a href=\"/data/diff{}\">diff with {}</a>",
                    Esc(&query(&[("a", p.id.as_str()), ("b", &id)])),
                    Esc(short(p.id.as_str()))
                )
            },
        );
        let (rows, labels) = match &r.stats {
            Some(st) => {
                let total: u64 = st.label_counts.values().sum();
                let labels: Vec<String> = st
                    .label_counts
                    .iter()
                    .map(|(l, n)| {
                        let share = if total == 0 {
                            0.0
                        } else {
                            *n as f64 * 100.0 / total as f64
                        };
                        format!(
                            "<span data-label=\"{0}\">{0}: {n} ({share:.1}%)</span>",
                            Esc(l)
                        )
                    })
                    .collect();
                (st.rows.to_string(), labels.join("<br>"))
            }
            None => ("-".into(), "-".into()),
        };
        let _ = write!(
            body,
            "<tr id=\"v-{}\"><td><code title=\"{id}\">{}</code></td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\" data-rows>{rows}</td>\
             <td>{labels}</td><td>{}</td><td>{change}</td></tr>",
            Esc(&url_encode(&id)),
            Esc(short(&id)),
            Esc(&r.path),
            time(r.created_at),
            bytes(r.size),
            r.nfiles,
            Esc(r.message.as_deref().unwrap_or("")),
            id = Esc(&id),
        );
    }
    if records.is_empty() {
        body.push_str("<tr><td colspan=\"9\" class=\"muted\">no data version yet (<code>taxon data add</code>)</td></tr>");
    }
    body.push_str("</tbody></table>");
    Ok(page("Data versions", Nav::Data, &body))
}

/// The two selects (old, new) that open `/data/diff`, with `a` and `b` preselected.
fn diff_form(records: &[VersionRecord], a: &str, b: &str) -> String {
    let options = |selected: &str| {
        let mut o = String::new();
        for r in records.iter().rev() {
            let id = r.id.as_str();
            let sel = if id == selected { " selected" } else { "" };
            let _ = write!(
                o,
                "<option value=\"{}\"{sel}>{} {} ({})</option>",
                Esc(id),
                Esc(&r.path),
                Esc(short(id)),
                time(r.created_at)
            );
        }
        o
    };
    format!(
        "<form method=\"get\" action=\"/data/diff\" id=\"diff-form\">\
         <label for=\"diff-a\">Old</label><select id=\"diff-a\" name=\"a\">{}</select>\
         <label for=\"diff-b\">New</label><select id=\"diff-b\" name=\"b\">{}</select>\
         <button type=\"submit\">Compare contents</button></form>",
        options(a),
        options(b)
    )
}

/// The query of `/data/diff`.
#[derive(Debug, Default, Deserialize)]
pub struct DiffQuery {
    #[serde(default)]
    pub a: String,
    #[serde(default)]
    pub b: String,
    /// Fields holding the text and the label (`text`, `label` by default).
    pub text_field: Option<String>,
    pub label_field: Option<String>,
}

/// The one record whose id is `id` or starts with it.
fn find<'a>(records: &'a [VersionRecord], id: &str) -> Result<&'a VersionRecord, UiError> {
    let mut hits = records
        .iter()
        .filter(|r| !id.is_empty() && r.id.as_str().starts_with(id));
    match (hits.next(), hits.next()) {
        (Some(r), None) => Ok(r),
        (Some(r), Some(o)) if r.id == o.id => Ok(r),
        _ => Err(UiError::not_found(format!("data version {id}"))),
    }
}

/// The readable files of `record` in the cache, or why they cannot be read.
fn files_of(
    repo: &taxon_version::Repo,
    record: &VersionRecord,
) -> Result<Vec<(std::path::PathBuf, taxon_dataset::Format)>, String> {
    let cache = taxon_version::cache::Cache::new(repo);
    let files =
        taxon_version::cache::data_files_of(&cache, &record.id, &repo.root.join(&record.path))
            .map_err(|e| e.to_string())?;
    if let Some((missing, _)) = files.iter().find(|(p, _)| !p.is_file()) {
        return Err(format!(
            "{} is not in the cache; run `taxon data pull` first",
            missing.display()
        ));
    }
    if files.is_empty() {
        return Err("it holds no data file taxon reads (jsonl, csv, tsv, parquet)".into());
    }
    Ok(files)
}

/// The `/data/diff` page.
pub fn diff_page(project: &Path, q: &DiffQuery) -> Result<String, UiError> {
    let records = stores::data_versions(project)?;
    let (a, b) = (find(&records, &q.a)?, find(&records, &q.b)?);
    let repo = taxon_version::Repo::discover(project)
        .map_err(|e| UiError::store("the data versions")(&e))?;
    let title = format!(
        "Data diff {} → {}",
        short(a.id.as_str()),
        short(b.id.as_str())
    );
    let mut body = diff_form(&records, a.id.as_str(), b.id.as_str());
    let _ = write!(
        body,
        "<p>Old: <code>{}</code> {} ({}) · New: <code>{}</code> {} ({})</p>",
        Esc(a.id.as_str()),
        Esc(&a.path),
        time(a.created_at),
        Esc(b.id.as_str()),
        Esc(&b.path),
        time(b.created_at)
    );
    let opts = ReadOptions {
        text_field: q.text_field.clone().unwrap_or_else(|| "text".into()),
        label_field: q.label_field.clone().unwrap_or_else(|| "label".into()),
        label_required: false,
        on_error: OnError::Skip,
        ..Default::default()
    };
    let diff = files_of(&repo, a)
        .and_then(|fa| Ok((fa, files_of(&repo, b)?)))
        .and_then(|(fa, fb)| taxon_dataset::diff::diff(&fa, &fb, &opts).map_err(|e| e.to_string()));
    match diff {
        Ok(d) => body.push_str(&render_diff(&d)),
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"muted\" id=\"diff-error\">The contents cannot be compared: {}</p>",
                Esc(&e)
            );
        }
    }
    Ok(page(&title, Nav::Data, &body))
}

/// The numbers, the label shift (table and chart) and the examples of a content diff.
pub fn render_diff(d: &ContentDiff) -> String {
    let mut s = String::from(
        "<h2>Rows</h2><table id=\"diff-rows\"><thead><tr><th scope=\"col\"></th>\
         <th scope=\"col\">Rows</th></tr></thead><tbody>",
    );
    for (k, v) in [
        ("old", d.rows_a),
        ("new", d.rows_b),
        ("added", d.added),
        ("removed", d.removed),
        ("relabelled", d.relabelled),
        ("unchanged", d.unchanged),
        ("skipped (old)", d.skipped_a),
        ("skipped (new)", d.skipped_b),
    ] {
        let _ = write!(
            s,
            "<tr><th scope=\"row\">{k}</th><td class=\"num\" data-diff=\"{}\">{v}</td></tr>",
            k.replace([' ', '(', ')'], "")
        );
    }
    s.push_str(
        "</tbody></table><h2>Label shift</h2><table id=\"label-shift\"><thead><tr>\
         <th scope=\"col\">Label</th><th scope=\"col\">Old rows</th><th scope=\"col\">New rows</th>\
         <th scope=\"col\">Old share</th><th scope=\"col\">New share</th>\
         <th scope=\"col\">Change (points)</th></tr></thead><tbody>",
    );
    for (label, l) in &d.label_shift {
        let _ = write!(
            s,
            "<tr data-label=\"{0}\"><th scope=\"row\">{0}</th><td class=\"num\">{1}</td>\
             <td class=\"num\">{2}</td><td class=\"num\">{3:.1}%</td><td class=\"num\">{4:.1}%</td>\
             <td class=\"num\">{5:+.1}</td></tr>",
            Esc(label),
            l.count_a,
            l.count_b,
            l.share_a * 100.0,
            l.share_b * 100.0,
            l.share_change * 100.0,
        );
    }
    s.push_str("</tbody></table>");
    let bars: Vec<(String, f64, f64)> = d
        .label_shift
        .iter()
        .map(|(l, x)| (l.clone(), x.share_a, x.share_b))
        .collect();
    s.push_str(&crate::svg::paired_bars("Label shares, old and new", &bars));

    let examples = |title: &str, id: &str, rows: Vec<(String, String)>| {
        let mut t = format!(
            "<h3>{title}</h3><table id=\"{id}\"><thead><tr><th scope=\"col\">Text</th>\
             <th scope=\"col\">Label</th></tr></thead><tbody>"
        );
        for (text, label) in &rows {
            let _ = write!(t, "<tr><td>{}</td><td>{}</td></tr>", Esc(text), Esc(label));
        }
        if rows.is_empty() {
            t.push_str("<tr><td colspan=\"2\" class=\"muted\">none</td></tr>");
        }
        t.push_str("</tbody></table>");
        t
    };
    let label = |l: &Option<String>| l.clone().unwrap_or_else(|| "(none)".into());
    s.push_str("<h2>Examples</h2>");
    s.push_str(&examples(
        "Added",
        "examples-added",
        d.examples
            .added
            .iter()
            .map(|r| (r.text.clone(), label(&r.label)))
            .collect(),
    ));
    s.push_str(&examples(
        "Removed",
        "examples-removed",
        d.examples
            .removed
            .iter()
            .map(|r| (r.text.clone(), label(&r.label)))
            .collect(),
    ));
    s.push_str(&examples(
        "Relabelled",
        "examples-relabelled",
        d.examples
            .relabelled
            .iter()
            .map(|r| {
                (
                    r.text.clone(),
                    format!("{} → {}", label(&r.label_a), label(&r.label_b)),
                )
            })
            .collect(),
    ));
    s
}
