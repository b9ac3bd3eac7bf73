//! Inline SVG plots for the HTML report, drawn from numbers without any script or external
//! resource: a confusion-matrix heatmap, line charts (training curves) and the reliability
//! diagram. Every piece of text goes through [`escape`].

use std::fmt::Write;

use crate::calibration::ReliabilityBin;

/// Escapes text for HTML/SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `s` cut to `max` characters with an ellipsis, for axis labels (the full text goes into a
/// `<title>` tooltip).
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A colour between a light and a dark blue for a share in [0, 1].
fn blue(share: f64) -> String {
    let s = share.clamp(0.0, 1.0);
    let (a, b) = ((247.0, 251.0, 255.0), (8.0, 48.0, 107.0));
    let mix = |x: f64, y: f64| (x + (y - x) * s).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// About `target` round tick values covering [lo, hi].
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    // Round each tick to the step's decimals so that 3 * 0.2 prints as 0.6.
    let scale = 10f64.powi((-step.log10().floor()).max(0.0) as i32 + 1);
    let first = (lo / step).ceil() as i64;
    let mut ticks = Vec::new();
    for n in first.. {
        let v = ((n as f64 * step) * scale).round() / scale;
        if v > hi + step * 1e-9 || ticks.len() >= 50 {
            break;
        }
        ticks.push(v);
    }
    ticks
}

fn tick_label(v: f64) -> String {
    if v == v.round() && v.abs() < 1e6 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The confusion matrix as a heatmap: rows true labels, columns predicted labels, each cell
/// shaded by its share of the row (the recall of that row's class) and showing its count.
pub fn confusion_heatmap(labels: &[String], cm: &[Vec<u64>]) -> String {
    let k = labels.len().max(1);
    let cell = (560 / k).clamp(26, 84) as f64;
    let longest = labels
        .iter()
        .map(|l| shorten(l, 22).chars().count())
        .max()
        .unwrap_or(1) as f64;
    let label_w = (longest * 7.2 + 16.0).clamp(40.0, 180.0);
    let (left, top) = (label_w + 28.0, 16.0);
    let bottom = label_w * 0.75 + 40.0;
    let (w, h) = (
        left + cell * k as f64 + 16.0,
        top + cell * k as f64 + bottom,
    );
    let font = if cell < 40.0 { 11 } else { 13 };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="plot heatmap" xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="confusion matrix">"#
    );
    for (i, row) in cm.iter().enumerate().take(k) {
        let total: u64 = row.iter().sum();
        for (j, &count) in row.iter().enumerate().take(k) {
            let share = if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            };
            let (x, y) = (left + j as f64 * cell, top + i as f64 * cell);
            let tl = escape(&labels[i]);
            let pl = escape(&labels[j]);
            let _ = write!(
                s,
                r##"<g><title>true {tl}, predicted {pl}: {count} ({pct:.1}% of {tl})</title><rect x="{x:.1}" y="{y:.1}" width="{cell:.1}" height="{cell:.1}" fill="{fill}" stroke="#fff"/><text x="{cx:.1}" y="{cy:.1}" font-size="{font}" text-anchor="middle" dominant-baseline="central" fill="{ink}">{count}</text></g>"##,
                pct = share * 100.0,
                fill = blue(share),
                cx = x + cell / 2.0,
                cy = y + cell / 2.0,
                ink = if share > 0.5 { "#fff" } else { "#1b1f24" },
            );
        }
    }
    for (i, label) in labels.iter().enumerate() {
        let y = top + (i as f64 + 0.5) * cell;
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="12" text-anchor="end" dominant-baseline="central"><title>{full}</title>{short}</text>"#,
            x = left - 6.0,
            full = escape(label),
            short = escape(&shorten(label, 22)),
        );
        let x = left + (i as f64 + 0.5) * cell;
        let ly = top + k as f64 * cell + 8.0;
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{ly:.1}" font-size="12" text-anchor="end" dominant-baseline="central" transform="rotate(-40 {x:.1} {ly:.1})"><title>{full}</title>{short}</text>"#,
            full = escape(label),
            short = escape(&shorten(label, 22)),
        );
    }
    let _ = write!(
        s,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="12" font-weight="600" text-anchor="middle">predicted label</text>"#,
        x = left + k as f64 * cell / 2.0,
        y = h - 8.0,
    );
    let _ = write!(
        s,
        r#"<text x="14" y="{y:.1}" font-size="12" font-weight="600" text-anchor="middle" transform="rotate(-90 14 {y:.1})">true label</text>"#,
        y = top + k as f64 * cell / 2.0,
    );
    s.push_str("</svg>");
    s
}

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// Plot-area geometry shared by the charts.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0) * self.width
    }
    fn py(&self, y: f64) -> f64 {
        self.top + self.height - (y - self.y.0) / (self.y.1 - self.y.0) * self.height
    }

    /// Grid, tick labels, axis titles.
    fn axes(&self, s: &mut String, x_title: &str, y_title: &str, x_ticks: &[f64], y_ticks: &[f64]) {
        for &t in y_ticks {
            let y = self.py(t);
            let _ = write!(
                s,
                r##"<line x1="{l:.1}" x2="{r:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e6ea"/><text x="{tx:.1}" y="{y:.1}" font-size="11" text-anchor="end" dominant-baseline="central" fill="#57606a">{lab}</text>"##,
                l = self.left,
                r = self.left + self.width,
                tx = self.left - 6.0,
                lab = tick_label(t),
            );
        }
        for &t in x_ticks {
            let x = self.px(t);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{b:.1}" y2="{b2:.1}" stroke="#57606a"/><text x="{x:.1}" y="{ty:.1}" font-size="11" text-anchor="middle" fill="#57606a">{lab}</text>"##,
                b = self.top + self.height,
                b2 = self.top + self.height + 4.0,
                ty = self.top + self.height + 17.0,
                lab = tick_label(t),
            );
        }
        let _ = write!(
            s,
            r##"<rect x="{l:.1}" y="{t:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#8c959f"/>"##,
            l = self.left,
            t = self.top,
            w = self.width,
            h = self.height,
        );
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="12" text-anchor="middle">{xt}</text><text x="13" y="{cy:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 13 {cy:.1})">{yt}</text>"#,
            x = self.left + self.width / 2.0,
            y = self.top + self.height + 34.0,
            xt = escape(x_title),
            cy = self.top + self.height / 2.0,
            yt = escape(y_title),
        );
    }
}

/// A line chart of `series` against a shared x axis; `y_range` fixes the y axis (otherwise it
/// fits the data); `marker` draws a labelled vertical line at an x value (the epoch the model
/// kept). Series without points are left out of the legend.
pub fn line_chart(
    title: &str,
    x_title: &str,
    y_title: &str,
    series: &[Series<'_>],
    y_range: Option<(f64, f64)>,
    marker: Option<(f64, &str)>,
) -> String {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (w, h) = (460.0, 320.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="plot chart" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><text x="{cx}" y="16" font-size="13" font-weight="600" text-anchor="middle">{t}</text>"#,
        t = escape(title),
        cx = w / 2.0,
    );
    if all.is_empty() {
        s.push_str(r##"<text x="230" y="150" font-size="12" text-anchor="middle" fill="#57606a">no data</text></svg>"##);
        return s;
    }
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if x1 <= x0 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let (y0, y1) = y_range.unwrap_or_else(|| {
        let (a, b) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let pad = ((b - a) * 0.08).max(1e-3);
        (
            (a - pad).max(if a >= 0.0 { 0.0 } else { f64::MIN }),
            b + pad,
        )
    });
    let frame = Frame {
        left: 58.0,
        top: 50.0,
        width: w - 58.0 - 14.0,
        height: h - 50.0 - 52.0,
        x: (x0, x1),
        y: (y0, y1),
    };
    let x_ticks: Vec<f64> = nice_ticks(x0, x1, 6)
        .into_iter()
        .filter(|t| (t - t.round()).abs() < 1e-9)
        .collect();
    frame.axes(&mut s, x_title, y_title, &x_ticks, &nice_ticks(y0, y1, 5));
    if let Some((x, label)) = marker.filter(|(x, _)| (x0..=x1).contains(x)) {
        let px = frame.px(x);
        let _ = write!(
            s,
            r##"<line class="marker" x1="{px:.1}" x2="{px:.1}" y1="{t:.1}" y2="{b:.1}" stroke="#8c959f" stroke-dasharray="2 3"/><text x="{tx:.1}" y="{ty:.1}" font-size="10" text-anchor="end" fill="#57606a">{l}</text>"##,
            t = frame.top,
            b = frame.top + frame.height,
            tx = px - 3.0,
            ty = frame.top + frame.height - 6.0,
            l = escape(label),
        );
    }
    let mut legend_x = frame.left;
    for line in series.iter().filter(|l| !l.points.is_empty()) {
        let pts: Vec<String> = line
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", frame.px(x), frame.py(y.clamp(y0, y1))))
            .collect();
        let dash = if line.dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="{p}"><title>{name}</title></polyline>"#,
            c = escape(line.color),
            p = pts.join(" "),
            name = escape(line.name),
        );
        if line.points.len() <= 60 {
            for &(x, y) in &line.points {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"><title>{}: epoch {}, {:.4}</title></circle>"#,
                    frame.px(x),
                    frame.py(y.clamp(y0, y1)),
                    escape(line.color),
                    escape(line.name),
                    tick_label(x),
                    y
                );
            }
        }
        // Legend entries in a row between the title and the plot.
        let (lx, ly) = (legend_x, 34.0);
        legend_x += 34.0 + 6.5 * line.name.chars().count() as f64;
        let _ = write!(
            s,
            r##"<line x1="{lx:.1}" x2="{lx2:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="2"{dash}/><text x="{tx:.1}" y="{ly:.1}" font-size="11" dominant-baseline="central" fill="#1b1f24">{name}</text>"##,
            lx2 = lx + 18.0,
            tx = lx + 24.0,
            c = escape(line.color),
            name = escape(line.name),
        );
    }
    s.push_str("</svg>");
    s
}

/// The reliability diagram of Guo et al. (2017, fig. 1): per confidence bin, a bar of the
/// bin's accuracy, the gap to its mean confidence shaded, and the diagonal of perfect
/// calibration; below it, the share of predictions per bin.
pub fn reliability_diagram(title: &str, bins: &[ReliabilityBin], ece: f64) -> String {
    let (w, h) = (380.0, 452.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="plot reliability" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><text x="{cx}" y="16" font-size="13" font-weight="600" text-anchor="middle">{t}</text>"#,
        t = escape(title),
        cx = w / 2.0,
    );
    let frame = Frame {
        left: 52.0,
        top: 50.0,
        width: w - 52.0 - 14.0,
        height: 270.0,
        x: (0.0, 1.0),
        y: (0.0, 1.0),
    };
    let ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
    // Grid first, so the bars cover it.
    frame.axes(&mut s, "", "accuracy", &ticks, &ticks);
    for b in bins.iter().filter(|b| b.count > 0) {
        let (x, x2) = (frame.px(b.lower), frame.px(b.upper));
        let (ya, yc) = (frame.py(b.accuracy), frame.py(b.confidence));
        let _ = write!(
            s,
            r##"<g><title>confidence ({:.3}, {:.3}]: {} predictions, accuracy {:.3}, mean confidence {:.3}</title><rect x="{x:.1}" y="{ya:.1}" width="{bw:.1}" height="{bh:.1}" fill="#2f6fb3" stroke="#17406b"/><rect x="{x:.1}" y="{gy:.1}" width="{bw:.1}" height="{gh:.1}" fill="#e5534b" fill-opacity="0.35" stroke="#c93c37" stroke-opacity="0.8"/></g>"##,
            b.lower,
            b.upper,
            b.count,
            b.accuracy,
            b.confidence,
            bw = x2 - x,
            bh = frame.py(0.0) - ya,
            gy = ya.min(yc),
            gh = (ya - yc).abs(),
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#57606a" stroke-dasharray="4 3"/>"##,
        frame.px(0.0),
        frame.py(0.0),
        frame.px(1.0),
        frame.py(1.0)
    );
    let _ = write!(
        s,
        r##"<rect x="{x:.1}" y="{y:.1}" width="12" height="10" fill="#2f6fb3"/><text x="{tx1:.1}" y="{ty:.1}" font-size="11" dominant-baseline="central">accuracy</text><rect x="{x2:.1}" y="{y:.1}" width="12" height="10" fill="#e5534b" fill-opacity="0.35" stroke="#c93c37"/><text x="{tx2:.1}" y="{ty:.1}" font-size="11" dominant-baseline="central">gap to confidence</text><text x="{ex:.1}" y="{ty:.1}" font-size="12" text-anchor="end" font-weight="600">ECE {ece:.4}</text>"##,
        x = frame.left,
        y = 29.0,
        tx1 = frame.left + 17.0,
        x2 = frame.left + 80.0,
        tx2 = frame.left + 97.0,
        ty = 34.0,
        ex = frame.left + frame.width,
    );
    // Count histogram below the diagram.
    let total: u64 = bins.iter().map(|b| b.count).sum();
    let (hist_top, hist_h) = (frame.top + frame.height + 44.0, 56.0);
    let max_share = bins
        .iter()
        .map(|b| b.count as f64 / total.max(1) as f64)
        .fold(0.0, f64::max)
        .max(1e-9);
    for b in bins.iter().filter(|b| b.count > 0) {
        let share = b.count as f64 / total.max(1) as f64;
        let bh = share / max_share * hist_h;
        let (x, x2) = (frame.px(b.lower), frame.px(b.upper));
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" fill="#8c959f"><title>{} predictions ({:.1}%)</title></rect>"##,
            b.count,
            share * 100.0,
            y = hist_top + hist_h - bh,
            bw = x2 - x,
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{l:.1}" x2="{r:.1}" y1="{b:.1}" y2="{b:.1}" stroke="#57606a"/><text x="{l:.1}" y="{lt:.1}" font-size="11" fill="#57606a">share of predictions per bin</text><text x="{cx:.1}" y="{xy:.1}" font-size="12" text-anchor="middle">confidence (top probability)</text>"##,
        l = frame.left,
        r = frame.left + frame.width,
        b = hist_top + hist_h,
        lt = hist_top - 6.0,
        cx = frame.left + frame.width / 2.0,
        xy = hist_top + hist_h + 18.0,
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let t = nice_ticks(1.0, 25.0, 6);
        assert_eq!(t, vec![5.0, 10.0, 15.0, 20.0, 25.0]);
        assert_eq!(nice_ticks(3.0, 3.0, 5), vec![3.0]);
    }

    #[test]
    fn heatmap_shows_every_count_and_escapes_labels() {
        let labels = vec!["<b>".to_string(), "ok".to_string()];
        let svg = confusion_heatmap(&labels, &[vec![7, 1], vec![0, 12]]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        for n in [">7<", ">1<", ">0<", ">12<"] {
            assert!(svg.contains(n), "{n} missing");
        }
        assert!(svg.contains("&lt;b&gt;"));
        assert!(!svg.contains("<b>"));
        assert_eq!(svg.matches("<rect").count(), 4);
    }

    #[test]
    fn long_labels_are_shortened_with_the_full_text_in_a_tooltip() {
        let long = "a".repeat(40);
        let svg = confusion_heatmap(std::slice::from_ref(&long), &[vec![1]]);
        assert!(svg.contains(&format!("<title>{long}</title>")));
        assert!(svg.contains(&format!("{}…", "a".repeat(21))));
    }
}
