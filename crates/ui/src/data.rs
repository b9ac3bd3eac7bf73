//! `/data`: the data version records of `.taxon/versions.jsonl`, newest first, with size, row
//! count and label distribution.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::UiError;
use crate::html::{Esc, Nav, bytes, page, short, time, url_encode};
use crate::stores;

/// The `/data` page.
pub fn list_page(project: &Path) -> Result<String, UiError> {
    let records = stores::data_versions(project)?;
    let mut body = format!(
        "<p id=\"version-count\">{} data versions</p>",
        records.len()
    );
    body.push_str(
        "<table id=\"versions\"><thead><tr><th scope=\"col\">Version</th><th scope=\"col\">Path</th>\
         <th scope=\"col\">Created (UTC)</th><th scope=\"col\">Size</th><th scope=\"col\">Files</th>\
         <th scope=\"col\">Rows</th><th scope=\"col\">Labels</th><th scope=\"col\">Message</th></tr></thead><tbody>",
    );
    for r in records.iter().rev() {
        let id = r.id.to_string();
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
             <td>{labels}</td><td>{}</td></tr>",
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
        body.push_str("<tr><td colspan=\"8\" class=\"muted\">no data version yet (<code>taxon data add</code>)</td></tr>");
    }
    body.push_str("</tbody></table>");
    Ok(page("Data versions", Nav::Data, &body))
}
