//! HTML building blocks: escaping (every value read from a store goes through [`Esc`] or
//! [`esc`]), URL encoding of query values and path segments, and the page frame (title, nav bar,
//! inline CSS). Markup is written with `format!`; only literals and escaped values go into it.

use std::fmt::{self, Display, Write as _};

/// Displays its text HTML-escaped: `& < > " '` become entities, so the value is safe both
/// between tags and inside a double- or single-quoted attribute.
pub struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `s` HTML-escaped.
pub fn esc(s: &str) -> String {
    Esc(s).to_string()
}

/// Percent-encodes `s` for a query value or a path segment: everything but RFC 3986's
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`. The result still goes through
/// [`Esc`] when written into an attribute (it holds no character that needs it).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A query string (`?k=v&k2=v2`, values encoded) from the pairs whose value is not empty.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The sections of the nav bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Runs,
    Registry,
    Data,
    Monitor,
    None,
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
nav{background:#234;padding:.6em 1em}nav a{color:#dde;margin-right:1.2em;text-decoration:none}\
nav a[aria-current=page]{color:#fff;font-weight:bold;border-bottom:2px solid #fff}\
main{padding:1em 1.5em;max-width:1200px}\
table{border-collapse:collapse;margin:.5em 0 1.2em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}\
form{margin:.5em 0 1em}form label{margin-right:.4em}form select,form input{margin-right:1em}\
.charts{display:flex;flex-wrap:wrap;gap:1em}.muted{color:#777}tr.diff th,tr.diff td{background:#fff3bf}\
.scroll{overflow-x:auto}.scroll td{white-space:nowrap}\
a:focus,select:focus,input:focus,button:focus{outline:2px solid #36c}\
nav form.who{float:right;margin:0;color:#dde}";

/// A whole page: `<title>` "TITLE · taxon", the nav bar with `active` marked, and `body`
/// (markup, already escaped where it holds values). The empty inline icon keeps browsers from
/// requesting `/favicon.ico`, so a page load makes exactly one request.
pub fn page(title: &str, active: Nav, body: &str) -> String {
    let mut nav = String::new();
    for (section, href, label) in [
        (Nav::Overview, "/", "Overview"),
        (Nav::Runs, "/runs", "Runs"),
        (Nav::Registry, "/registry", "Registry"),
        (Nav::Data, "/data", "Data"),
        (Nav::Monitor, "/monitor", "Monitoring"),
    ] {
        let current = if section == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{current}>{label}</a>");
    }
    if let Some(user) = crate::session::rendering_for() {
        let _ = write!(
            nav,
            "<form method=\"post\" action=\"/logout\" class=\"who\"><span>{}</span> \
             <button type=\"submit\">Sign out</button></form>",
            Esc(&user)
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>{} · taxon</title><style>{CSS}{}</style></head>\
         <body><nav aria-label=\"main\">{nav}</nav><main><h1>{}</h1>\n{body}</main></body></html>\n",
        Esc(title),
        // The evaluation sections shared with `taxon eval --report` bring their own (scoped)
        // look.
        taxon_eval::report::html::SECTION_STYLE,
        Esc(title),
    )
}

/// A float for a table cell: whole numbers as integers, others with 4 decimals, `-` when not
/// finite.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// How prominent a metric is in tables: accuracies first, then F1 scores, then losses, then
/// the rest (counts, timings).
pub fn metric_rank(key: &str) -> u8 {
    if key.ends_with("accuracy") {
        0
    } else if key.ends_with("f1") {
        1
    } else if key.contains("loss") {
        2
    } else {
        3
    }
}

/// A byte count in binary units (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A UTC time as `2026-12-07 21:38:32`.
pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The first 8 characters of an id (run ids, data version hashes).
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_replaces_every_special_character() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("plain text, é ✓"), "plain text, é ✓");
        assert_eq!(esc(""), "");
        assert_eq!(esc("&amp;"), "&amp;amp;");
    }

    #[test]
    fn url_encode_keeps_only_unreserved_characters() {
        assert_eq!(url_encode("val_accuracy"), "val_accuracy");
        assert_eq!(url_encode("a b&c=\"<"), "a%20b%26c%3D%22%3C");
        assert_eq!(url_encode("é"), "%C3%A9");
        assert_eq!(
            query(&[("status", "finished"), ("model_type", ""), ("page", "2")]),
            "?status=finished&page=2"
        );
        assert_eq!(query(&[("a", "")]), "");
    }

    #[test]
    fn page_escapes_the_title_and_marks_the_current_section() {
        let p = page("<b>run</b>", Nav::Runs, "<p>x</p>");
        assert!(p.contains("<title>&lt;b&gt;run&lt;/b&gt; · taxon</title>"));
        assert!(p.contains("<a href=\"/runs\" aria-current=\"page\">Runs</a>"));
        assert!(p.contains("<a href=\"/data\">Data</a>"));
        assert!(p.contains("<link rel=\"icon\" href=\"data:,\">"));
        assert!(!p.contains("<b>run"));
    }

    #[test]
    fn numbers_and_sizes_format_for_tables() {
        assert_eq!(num(0.875), "0.8750");
        assert_eq!(num(60.0), "60");
        assert_eq!(num(-2.0), "-2");
        assert_eq!(num(f64::NAN), "-");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(short("0123456789abcdef"), "01234567");
        assert_eq!(short("abc"), "abc");
    }

    #[test]
    fn accuracy_and_f1_rank_before_counts() {
        let mut keys = [
            "train_seconds",
            "loss",
            "eval.test.macro_f1",
            "validation_accuracy",
        ];
        keys.sort_by_key(|k| metric_rank(k));
        assert_eq!(
            keys,
            [
                "validation_accuracy",
                "eval.test.macro_f1",
                "loss",
                "train_seconds"
            ]
        );
    }
}
