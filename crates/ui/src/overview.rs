//! `/`: counts of what the project's stores hold, with links to each page and the latest runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::UiError;
use crate::html::{Esc, Nav, num, page, short, time, url_encode};
use crate::stores;

/// How many of the newest runs the overview lists.
const LATEST: usize = 5;

/// The `/` page.
pub fn page_html(project: &Path) -> Result<String, UiError> {
    let runs = match stores::runs(project)? {
        Some(store) => store
            .list(usize::MAX)
            .map_err(|e| UiError::store("the run store")(&e))?,
        None => Vec::new(),
    };
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &runs {
        *by_status.entry(r.status.as_str()).or_default() += 1;
    }
    let (models, versions, aliases) = match stores::registry(project)? {
        Some(reg) => {
            let e = |e: taxon_registry::RegistryError| UiError::store("the model registry")(&e);
            let models = reg.models().map_err(e)?;
            let versions = reg.list(None).map_err(e)?.len();
            let mut aliases = 0;
            for m in &models {
                aliases += reg.aliases(m).map_err(e)?.len();
            }
            (models.len(), versions, aliases)
        }
        None => (0, 0, 0),
    };
    let data = stores::data_versions(project)?.len();
    let status_text: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let mut body = format!(
        "<table id=\"counts\"><tbody>\
         <tr><th scope=\"row\"><a href=\"/runs\">Runs</a></th><td class=\"num\" data-count=\"runs\">{}</td><td>{}</td></tr>\
         <tr><th scope=\"row\"><a href=\"/registry\">Registered models</a></th><td class=\"num\" data-count=\"models\">{models}</td><td></td></tr>\
         <tr><th scope=\"row\"><a href=\"/registry\">Model versions</a></th><td class=\"num\" data-count=\"versions\">{versions}</td><td>{aliases} aliases</td></tr>\
         <tr><th scope=\"row\"><a href=\"/data\">Data versions</a></th><td class=\"num\" data-count=\"data\">{data}</td><td></td></tr>\
         </tbody></table>",
        runs.len(),
        Esc(&status_text.join(", ")),
    );
    body.push_str("<h2>Latest runs</h2><ul id=\"latest\">");
    for r in runs.iter().take(LATEST) {
        // The validation accuracy when recorded, else the first accuracy of the run.
        let acc = r
            .metrics
            .get_key_value("validation_accuracy")
            .or_else(|| r.metrics.iter().find(|(k, _)| k.ends_with("accuracy")))
            .map_or(String::new(), |(k, a)| format!(", {} {}", Esc(k), num(*a)));
        let _ = write!(
            body,
            "<li><a href=\"/runs/{}\">{}</a> {} ({}, {}, {}{acc})</li>",
            Esc(&url_encode(&r.id)),
            Esc(short(&r.id)),
            Esc(&r.name),
            Esc(&r.kind),
            Esc(r.status.as_str()),
            time(r.start_time),
        );
    }
    if runs.is_empty() {
        body.push_str("<li class=\"muted\">no run yet (<code>taxon train</code>)</li>");
    }
    body.push_str("</ul>");
    Ok(page("Overview", Nav::Overview, &body))
}
