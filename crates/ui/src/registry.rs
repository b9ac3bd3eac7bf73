//! `/registry`: every model with its versions, their metrics and the aliases on them;
//! `/registry/{name}`: one model's versions, current aliases and the alias history as a
//! timeline (oldest change first).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use taxon_registry::{ModelVersion, Registry};

use crate::error::UiError;
use crate::html::{Esc, Nav, metric_rank, num, page, short, time, url_encode};
use crate::stores;

/// At most this many metric columns (accuracies, then F1 scores) in a versions table.
const METRIC_COLUMNS: usize = 4;

fn reg_err(e: taxon_registry::RegistryError) -> UiError {
    UiError::store("the model registry")(&e)
}

/// The versions table of one model; `aliases` maps each alias to its version.
fn versions_table(versions: &[ModelVersion], aliases: &BTreeMap<String, u64>) -> String {
    let mut metrics: Vec<&str> = versions
        .iter()
        .flat_map(|v| v.metrics.keys().map(String::as_str))
        .filter(|k| metric_rank(k) < 2)
        .collect();
    metrics.sort_by_key(|k| (metric_rank(k), *k));
    metrics.dedup();
    metrics.truncate(METRIC_COLUMNS);
    let mut s = String::from(
        "<div class=\"scroll\"><table class=\"versions\"><thead><tr><th scope=\"col\">Version</th>\
         <th scope=\"col\">Aliases</th><th scope=\"col\">Model type</th><th scope=\"col\">Run</th>\
         <th scope=\"col\">Data version</th><th scope=\"col\">Created (UTC)</th><th scope=\"col\">By</th>",
    );
    for m in &metrics {
        let _ = write!(s, "<th scope=\"col\">{}</th>", Esc(m));
    }
    s.push_str("</tr></thead><tbody>");
    for v in versions.iter().rev() {
        let on: Vec<String> = aliases
            .iter()
            .filter(|(_, n)| **n == v.version)
            .map(|(a, _)| format!("<span class=\"alias\">{}</span>", Esc(a)))
            .collect();
        let _ = write!(
            s,
            "<tr id=\"v{ver}\" data-version=\"{ver}\"><th scope=\"row\">v{ver}</th><td>{}</td><td>{}</td>\
             <td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>",
            on.join(" "),
            Esc(&v.model_type),
            Esc(&url_encode(&v.run_id)),
            Esc(short(&v.run_id)),
            v.data_version.as_deref().map_or("-".into(), |d| format!(
                "<a href=\"/data#v-{}\">{}</a>",
                Esc(&url_encode(d)),
                Esc(short(d))
            )),
            time(v.created_at),
            Esc(&v.created_by),
            ver = v.version,
        );
        for m in &metrics {
            let val = v.metrics.get(*m).map_or("-".into(), |x| num(*x));
            let _ = write!(s, "<td class=\"num\" data-metric=\"{}\">{val}</td>", Esc(m));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    s
}

/// A model's name, its versions (oldest first) and its aliases.
type ModelView = (String, Vec<ModelVersion>, BTreeMap<String, u64>);

fn models(reg: &Registry) -> Result<Vec<ModelView>, UiError> {
    reg.models()
        .map_err(reg_err)?
        .into_iter()
        .map(|name| {
            let versions = reg.list(Some(&name)).map_err(reg_err)?;
            let aliases = reg.aliases(&name).map_err(reg_err)?;
            Ok((name, versions, aliases))
        })
        .collect()
}

/// The `/registry` page.
pub fn list_page(project: &Path) -> Result<String, UiError> {
    let mut body = String::new();
    let all = match stores::registry(project)? {
        Some(reg) => models(&reg)?,
        None => Vec::new(),
    };
    if all.is_empty() {
        body.push_str("<p class=\"muted\">No model is registered yet (<code>taxon registry register</code>).</p>");
    }
    for (name, versions, aliases) in &all {
        let _ = write!(
            body,
            "<section data-model=\"{n}\"><h2><a href=\"/registry/{u}\">{n}</a></h2>\
             <p>{} versions; aliases: {}</p>{}</section>",
            versions.len(),
            alias_list(aliases),
            versions_table(versions, aliases),
            n = Esc(name),
            u = Esc(&url_encode(name)),
        );
    }
    Ok(page("Registry", Nav::Registry, &body))
}

fn alias_list(aliases: &BTreeMap<String, u64>) -> String {
    if aliases.is_empty() {
        return "none".into();
    }
    aliases
        .iter()
        .map(|(a, v)| {
            format!(
                "<span class=\"alias\" data-alias=\"{0}\">{0} → v{v}</span>",
                Esc(a)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ver(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| format!("v{v}"))
}

/// Alias changes per page of `/registry/{name}`.
pub const HISTORY_PAGE: u64 = 100;

/// The query of `/registry/{name}`: the history page, and a "what did ALIAS point at on AT"
/// question.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ModelQuery {
    pub page: Option<u64>,
    #[serde(default)]
    pub alias: String,
    /// A UTC time, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` (what a `datetime-local` input sends) or
    /// RFC 3339.
    #[serde(default)]
    pub at: String,
}

/// `at` as a UTC time: RFC 3339, or a date and time without zone (taken as UTC), or a date
/// (its end: what served on that day, by its last change).
fn parse_at(at: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone as _, Utc};
    let at = at.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(at) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(at, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(at, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// The answer to "what did `q.alias` point at on `q.at`", or the form's hint.
fn alias_at_answer(
    reg: &Registry,
    name: &str,
    aliases: &BTreeMap<String, u64>,
    q: &ModelQuery,
) -> String {
    let mut names: Vec<&String> = aliases.keys().collect();
    if !q.alias.is_empty() && !aliases.contains_key(&q.alias) {
        names.push(&q.alias);
    }
    let mut options = String::new();
    for a in names {
        let sel = if *a == q.alias { " selected" } else { "" };
        let _ = write!(options, "<option value=\"{0}\"{sel}>{0}</option>", Esc(a));
    }
    let mut s = format!(
        "<form method=\"get\" id=\"alias-at\"><label for=\"alias\">Alias</label>\
         <select id=\"alias\" name=\"alias\">{options}</select>\
         <label for=\"at\">at (UTC)</label><input id=\"at\" name=\"at\" type=\"datetime-local\" value=\"{}\">\
         <button type=\"submit\">What served then?</button></form>",
        // The input takes only `YYYY-MM-DDTHH:MM`: the asked time in that form, or nothing.
        parse_at(&q.at).map_or(String::new(), |t| t.format("%Y-%m-%dT%H:%M").to_string())
    );
    if q.alias.is_empty() || q.at.is_empty() {
        return s;
    }
    let answer = match parse_at(&q.at) {
        None => format!(
            "{} is not a time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)",
            Esc(&q.at)
        ),
        Some(t) => match reg.alias_at(name, &q.alias, t) {
            Ok(Some(v)) => format!(
                "On {} UTC, <b>{}</b> pointed at <a href=\"#v{v}\" data-alias-at=\"{v}\">v{v}</a>.",
                time(t),
                Esc(&q.alias)
            ),
            Ok(None) => format!(
                "On {} UTC, <b>{}</b> was not set <span data-alias-at=\"none\"></span>.",
                time(t),
                Esc(&q.alias)
            ),
            Err(e) => Esc(&e.to_string()).to_string(),
        },
    };
    let _ = write!(s, "<p id=\"alias-at-answer\" role=\"status\">{answer}</p>");
    s
}

/// The `/registry/{name}` page.
pub fn model_page(project: &Path, name: &str, q: &ModelQuery) -> Result<String, UiError> {
    let missing = || UiError::not_found(format!("model {name}"));
    let reg = stores::registry(project)?.ok_or_else(missing)?;
    if !reg.models().map_err(reg_err)?.iter().any(|m| m == name) {
        return Err(missing());
    }
    let versions = reg.list(Some(name)).map_err(reg_err)?;
    let aliases = reg.aliases(name).map_err(reg_err)?;
    let (_, total) = reg.history_page(name, 0, 0).map_err(reg_err)?;
    let pages = total.div_ceil(HISTORY_PAGE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let (history, _) = reg
        .history_page(name, (page_no - 1) * HISTORY_PAGE, HISTORY_PAGE)
        .map_err(reg_err)?;
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>{} versions; aliases: {}</p><h2>Versions</h2>{}<h2>Alias history</h2>{}",
        versions.len(),
        alias_list(&aliases),
        versions_table(&versions, &aliases),
        alias_at_answer(&reg, name, &aliases, q),
    );
    let _ = write!(
        body,
        "<p id=\"history-count\">{total} alias changes, newest first; page {page_no} of {pages}</p>"
    );
    body.push_str(
        "<table id=\"alias-history\"><thead><tr><th scope=\"col\">When (UTC)</th>\
         <th scope=\"col\">Alias</th><th scope=\"col\">From</th><th scope=\"col\">To</th>\
         <th scope=\"col\">By</th><th scope=\"col\">Forced</th><th scope=\"col\">Reason</th></tr></thead><tbody>",
    );
    for c in &history {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(c.at),
            Esc(&c.alias),
            ver(c.from_version),
            ver(c.to_version),
            Esc(&c.actor),
            if c.forced { "yes" } else { "no" },
            Esc(c.reason.as_deref().unwrap_or("")),
        );
    }
    if history.is_empty() {
        body.push_str("<tr><td colspan=\"7\" class=\"muted\">no alias was ever set</td></tr>");
    }
    body.push_str("</tbody></table>");
    let link = |n: u64, rel: &str, text: &str| {
        format!(
            "<a rel=\"{rel}\" href=\"/registry/{}?page={n}\">{text}</a> ",
            Esc(&url_encode(name))
        )
    };
    if pages > 1 {
        body.push_str("<nav aria-label=\"alias history pages\">");
        if page_no > 1 {
            body.push_str(&link(page_no - 1, "prev", "← newer"));
        }
        if page_no < pages {
            body.push_str(&link(page_no + 1, "next", "older →"));
        }
        body.push_str("</nav>");
    }
    Ok(page(&format!("Model {name}"), Nav::Registry, &body))
}
