//! The drift report as one self-contained HTML page: the verdict table, and for every feature
//! the reference and current distributions overlaid in inline SVG (no external scripts or
//! styles).

use std::fmt::Write;

use crate::drift::DriftReport;
use crate::profile::{PREDICTED_LABEL, Profile};
use crate::sketch::Histogram;

const W: f64 = 520.0;
const H: f64 = 160.0;
const PAD: f64 = 30.0;
const DISPLAY_BINS: usize = 40;
const REF_COLOR: &str = "#4c78a8";
const CUR_COLOR: &str = "#f58518";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Shares of each histogram in `DISPLAY_BINS` equal bins over the range both cover.
fn shares(r: &Histogram, c: &Histogram) -> Option<(f64, f64, Vec<f64>, Vec<f64>)> {
    let lo = r
        .points()
        .chain(c.points())
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min);
    let hi = r
        .points()
        .chain(c.points())
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let width = ((hi - lo) / DISPLAY_BINS as f64).max(1e-12);
    let bucket = |h: &Histogram| {
        let mut v = vec![0.0; DISPLAY_BINS];
        let n = h.count.max(1) as f64;
        for (x, k) in h.points() {
            let i = (((x - lo) / width) as usize).min(DISPLAY_BINS - 1);
            v[i] += k as f64 / n;
        }
        v
    };
    Some((lo, hi, bucket(r), bucket(c)))
}

/// Two step outlines (reference, current) of shares over [lo, hi].
fn numeric_svg(r: &Histogram, c: &Histogram) -> String {
    let Some((lo, hi, a, b)) = shares(r, c) else {
        return "<p>no values</p>".into();
    };
    let top = a.iter().chain(&b).copied().fold(0.0, f64::max).max(1e-12);
    let bw = (W - 2.0 * PAD) / DISPLAY_BINS as f64;
    let mut s =
        format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">"#);
    for (vals, color, opacity) in [(&a, REF_COLOR, "0.45"), (&b, CUR_COLOR, "0.45")] {
        for (i, v) in vals.iter().enumerate() {
            if *v <= 0.0 {
                continue;
            }
            let h = v / top * (H - 2.0 * PAD);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="{opacity}"/>"#,
                PAD + i as f64 * bw,
                H - PAD - h,
                bw,
                h
            );
        }
    }
    let _ = write!(
        s,
        r#"<line x1="{PAD}" y1="{y}" x2="{x2}" y2="{y}" stroke="black"/><text x="{PAD}" y="{ty}" font-size="11">{lo:.3}</text><text x="{x2}" y="{ty}" font-size="11" text-anchor="end">{hi:.3}</text></svg>"#,
        y = H - PAD,
        x2 = W - PAD,
        ty = H - PAD + 14.0,
    );
    s
}

/// Paired bars of each label's share.
fn categorical_svg(reference: &Profile, current: &Profile) -> String {
    let labels = &reference.labels;
    let n = labels.len().max(1) as f64;
    let slot = (W - 2.0 * PAD) / n;
    let mut s =
        format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">"#);
    for (i, l) in labels.iter().enumerate() {
        for (k, (p, color)) in [
            (&reference.predicted_label, REF_COLOR),
            (&current.predicted_label, CUR_COLOR),
        ]
        .into_iter()
        .enumerate()
        {
            let h = p.share(l) * (H - 2.0 * PAD);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
                PAD + i as f64 * slot + 4.0 + k as f64 * (slot - 8.0) / 2.0,
                H - PAD - h,
                (slot - 8.0) / 2.0,
                h
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            PAD + (i as f64 + 0.5) * slot,
            H - PAD + 14.0,
            esc(l)
        );
    }
    s.push_str("</svg>");
    s
}

/// The whole page.
pub fn html(reference: &Profile, current: &Profile, report: &DriftReport) -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>taxon drift report</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}\
         .drift{color:#b00;font-weight:bold}</style></head><body>",
    );
    let _ = write!(
        s,
        "<h1>Drift: {}</h1><p>reference: {} ({} rows) &mdash; current: {} ({} rows). \
         <span style=\"color:{REF_COLOR}\">&#9632; reference</span> \
         <span style=\"color:{CUR_COLOR}\">&#9632; current</span></p>",
        if report.drift {
            "<span class=\"drift\">yes</span>"
        } else {
            "no"
        },
        esc(&reference.source),
        reference.rows,
        esc(&current.source),
        current.rows
    );
    s.push_str("<table><tr><th>feature</th><th>statistic</th><th>value</th><th>threshold</th><th>drift</th></tr>");
    for f in &report.features {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td{}>{}</td></tr>",
            esc(&f.name),
            esc(&f.statistic),
            f.value,
            f.threshold,
            if f.drift { " class=\"drift\"" } else { "" },
            if f.drift { "yes" } else { "no" }
        );
    }
    s.push_str("</table>");
    for f in &report.features {
        let _ = write!(s, "<h2 id=\"{0}\">{0}</h2>", esc(&f.name));
        if f.name == PREDICTED_LABEL {
            s.push_str(&categorical_svg(reference, current));
        } else if let (Some(r), Some(c)) =
            (reference.numeric.get(&f.name), current.numeric.get(&f.name))
        {
            let _ = write!(
                s,
                "<p>mean {:.4} &rarr; {:.4}, std {:.4} &rarr; {:.4}</p>",
                r.mean(),
                c.mean(),
                r.std(),
                c.std()
            );
            s.push_str(&numeric_svg(r, c));
        }
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{Thresholds, compare};
    use crate::profile::Observation;

    #[test]
    fn page_is_self_contained_and_draws_every_feature() {
        let labels = vec!["a<b".to_string(), "c".to_string()];
        let mut r = Profile::new("linear", &labels, "ref");
        let mut c = Profile::new("linear", &labels, "cur");
        for i in 0..100 {
            let p = 0.5 + f32::from(i as u8 % 50) / 100.0;
            r.observe(&Observation {
                tokens: 10 + i % 5,
                unknown_share: Some(0.0),
                scores: &[p, 1.0 - p],
                embedding: None,
            });
            c.observe(&Observation {
                tokens: 40 + i % 5,
                unknown_share: Some(0.1),
                scores: &[1.0 - p, p],
                embedding: None,
            });
        }
        let d = compare(&r, &c, &Thresholds::default()).unwrap();
        let page = html(&r, &c, &d);
        assert!(!page.contains("<script"));
        assert_eq!(page.matches("<svg").count(), d.features.len());
        assert!(page.contains("a&lt;b") && !page.contains("a<b"));
        assert!(page.contains("class=\"drift\""));
    }
}
