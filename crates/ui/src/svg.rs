//! Inline SVG line charts of per-epoch metrics: one run's series, or several runs' overlaid
//! with a legend (the compare page); axes with the min and max of each, a point per step with
//! its value as a tooltip. No script, no external file.

use std::fmt::Write as _;

use crate::html::Esc;

pub(crate) const W: f64 = 360.0;
pub(crate) const H: f64 = 200.0;
/// Left, right, top and bottom margins of the plot area.
pub(crate) const ML: f64 = 56.0;
pub(crate) const MR: f64 = 12.0;
pub(crate) const MT: f64 = 24.0;
pub(crate) const MB: f64 = 30.0;

/// A compact number for an axis label.
pub(crate) fn tick(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        format!("{v:.2e}")
    } else {
        // At most 6 significant digits, so the label fits the left margin.
        let decimals = match v.abs() {
            a if a >= 1000.0 => 1,
            a if a >= 100.0 => 2,
            a if a >= 10.0 => 3,
            _ => 4,
        };
        let s = format!("{v:.decimals$}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

/// The span `[lo, hi]` of `values`, widened when all are equal so the line sits mid-height.
pub(crate) fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return None;
    }
    if hi > lo {
        Some((lo, hi))
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        Some((lo - pad, hi + pad))
    }
}

/// The opening of a chart `height` tall, with its title (also its accessible name).
pub(crate) fn open(title: &str, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" \
         viewBox=\"0 0 {W} {height}\" role=\"img\" aria-label=\"{t}\">\
         <title>{t}</title><text x=\"{}\" y=\"16\" text-anchor=\"middle\" \
         font-size=\"13\" font-weight=\"bold\">{t}</text>",
        W / 2.0,
        t = Esc(title),
    )
}

/// Closes a chart that has no point to draw, saying so.
pub(crate) fn close_empty(mut svg: String) -> String {
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#777\">no points</text></svg>",
        W / 2.0,
        H / 2.0
    );
    svg
}

/// The axes and their extreme labels for steps `x0..x1` and values `y0..y1`.
fn axes(svg: &mut String, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) {
    axes_labelled(svg, (&tick(x0), &tick(x1)), (y0, y1));
}

/// The axes with the x extremes labelled `xlo` and `xhi` (times, steps) and values `y0..y1`.
pub(crate) fn axes_labelled(svg: &mut String, (xlo, xhi): (&str, &str), (y0, y1): (f64, f64)) {
    let _ = write!(
        svg,
        "<g stroke=\"#888\" stroke-width=\"1\"><line x1=\"{ML}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/>\
         <line x1=\"{ML}\" y1=\"{MT}\" x2=\"{ML}\" y2=\"{b}\"/></g>\
         <g font-size=\"11\" fill=\"#444\">\
         <text x=\"{lx}\" y=\"{b}\" text-anchor=\"end\">{ylo}</text>\
         <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{yhi}</text>\
         <text x=\"{ML}\" y=\"{bx}\" text-anchor=\"start\">{xlo}</text>\
         <text x=\"{r}\" y=\"{bx}\" text-anchor=\"end\">{xhi}</text></g>",
        b = H - MB,
        r = W - MR,
        lx = ML - 4.0,
        ty = MT + 8.0,
        bx = H - MB + 16.0,
        ylo = tick(y0),
        yhi = tick(y1),
        xlo = Esc(xlo),
        xhi = Esc(xhi),
    );
}

/// An SVG line chart titled `title` of the `(step, value)` points (non-finite ones are
/// dropped), in step order. With no point left it says so instead of drawing.
pub fn line_chart(title: &str, points: &[(f64, f64)]) -> String {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut svg = open(title, H);
    let (Some((x0, x1)), Some((y0, y1))) =
        (span(pts.iter().map(|p| p.0)), span(pts.iter().map(|p| p.1)))
    else {
        return close_empty(svg);
    };
    let px = |x: f64| ML + (x - x0) / (x1 - x0) * (W - ML - MR);
    let py = |y: f64| H - MB - (y - y0) / (y1 - y0) * (H - MT - MB);
    axes(&mut svg, (x0, x1), (y0, y1));
    let line: Vec<String> = pts
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
        .collect();
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"#2a6fdb\" stroke-width=\"2\" points=\"{}\"/>",
        line.join(" ")
    );
    for &(x, y) in &pts {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#2a6fdb\"><title>step {}: {}</title></circle>",
            px(x),
            py(y),
            tick(x),
            y
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Line colours of overlaid series, told apart without relying on colour alone: each series
/// also has its own dash pattern, and the legend names it.
pub(crate) const PALETTE: [(&str, &str); 6] = [
    ("#2a6fdb", ""),
    ("#d9480f", "6 3"),
    ("#2b8a3e", "2 3"),
    ("#862e9c", "8 3 2 3"),
    ("#e67700", "4 4"),
    ("#495057", "1 2"),
];

/// One chart titled `title` with every `(name, points)` series overlaid (non-finite points
/// dropped), a shared scale, and a legend under the plot naming each series.
pub fn overlay_chart(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| {
            let mut pts: Vec<(f64, f64)> = pts
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name.as_str(), pts)
        })
        .collect();
    let mut svg = open(title, H + 16.0 * series.len() as f64);
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let (Some((x0, x1)), Some((y0, y1))) = (span(all().map(|p| p.0)), span(all().map(|p| p.1)))
    else {
        return close_empty(svg);
    };
    let px = |x: f64| ML + (x - x0) / (x1 - x0) * (W - ML - MR);
    let py = |y: f64| H - MB - (y - y0) / (y1 - y0) * (H - MT - MB);
    axes(&mut svg, (x0, x1), (y0, y1));
    for (i, (name, pts)) in series.iter().enumerate() {
        let (colour, dash) = PALETTE[i % PALETTE.len()];
        let line: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline data-series=\"{n}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" \
             stroke-dasharray=\"{dash}\" points=\"{}\"><title>{n}</title></polyline>",
            line.join(" "),
            n = Esc(name),
        );
        for &(x, y) in pts {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"><title>{}: step {}: {}</title></circle>",
                px(x),
                py(y),
                Esc(name),
                tick(x),
                y
            );
        }
        legend_entry(&mut svg, i, name, colour, dash);
    }
    svg.push_str("</svg>");
    svg
}

/// Legend line `i` under the plot: a sample of the series' stroke and its name.
pub(crate) fn legend_entry(svg: &mut String, i: usize, name: &str, colour: &str, dash: &str) {
    let ly = H + 12.0 + 16.0 * i as f64;
    let _ = write!(
        svg,
        "<line x1=\"{ML}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"2\" \
         stroke-dasharray=\"{dash}\"/><text x=\"{tx}\" y=\"{ty}\" font-size=\"11\" fill=\"#222\">{}</text>",
        Esc(name),
        y = ly - 4.0,
        x2 = ML + 28.0,
        tx = ML + 34.0,
        ty = ly,
    );
}

/// Horizontal bars, two per row: each `(label, old, new)` share in `[0, 1]` as an old bar (blue,
/// solid) above a new bar (orange, hatched by a lighter fill and named in the legend, so colour
/// is not the only cue), with the percentage at the end of each bar.
pub fn paired_bars(title: &str, rows: &[(String, f64, f64)]) -> String {
    const ROW: f64 = 26.0;
    const LABEL_W: f64 = 110.0;
    let width = W * 1.5;
    let height = MT + 18.0 + ROW * rows.len().max(1) as f64 + 8.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{t}\">\
         <title>{t}</title><text x=\"{}\" y=\"16\" text-anchor=\"middle\" \
         font-size=\"13\" font-weight=\"bold\">{t}</text>\
         <g font-size=\"11\"><rect x=\"{LABEL_W}\" y=\"{ly}\" width=\"10\" height=\"8\" fill=\"#2a6fdb\"/>\
         <text x=\"{}\" y=\"{ty}\">old</text>\
         <rect x=\"{}\" y=\"{ly}\" width=\"10\" height=\"8\" fill=\"#f59f00\" stroke=\"#d9480f\"/>\
         <text x=\"{}\" y=\"{ty}\">new</text></g>",
        width / 2.0,
        LABEL_W + 14.0,
        LABEL_W + 50.0,
        LABEL_W + 64.0,
        t = Esc(title),
        ly = MT - 4.0,
        ty = MT + 4.0,
    );
    if rows.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#777\">no labels</text></svg>",
            width / 2.0,
            MT + 30.0
        );
        return svg;
    }
    let max = rows
        .iter()
        .flat_map(|r| [r.1, r.2])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let span = width - LABEL_W - 60.0;
    for (i, (label, old, new)) in rows.iter().enumerate() {
        let y = MT + 18.0 + ROW * i as f64;
        let shown: String = label.chars().take(16).collect();
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\">{}<title>{}</title></text>",
            LABEL_W - 6.0,
            y + 14.0,
            Esc(&shown),
            Esc(label)
        );
        for (j, (v, fill, stroke)) in [(old, "#2a6fdb", "none"), (new, "#f59f00", "#d9480f")]
            .into_iter()
            .enumerate()
        {
            let v = if v.is_finite() { *v } else { 0.0 };
            let w = v / max * span;
            let by = y + 2.0 + 11.0 * j as f64;
            let _ = write!(
                svg,
                "<rect x=\"{LABEL_W}\" y=\"{by}\" width=\"{w:.1}\" height=\"9\" fill=\"{fill}\" stroke=\"{stroke}\">\
                 <title>{} {}: {:.1}%</title></rect>\
                 <text x=\"{:.1}\" y=\"{}\" font-size=\"10\" fill=\"#444\">{:.1}%</text>",
                Esc(label),
                if j == 0 { "old" } else { "new" },
                v * 100.0,
                LABEL_W + w + 4.0,
                by + 8.0,
                v * 100.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polyline(svg: &str) -> Vec<(f64, f64)> {
        let start = svg.find("points=\"").unwrap() + 8;
        let end = start + svg[start..].find('"').unwrap();
        svg[start..end]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn points_fill_the_plot_area_in_step_order() {
        let svg = line_chart("loss", &[(2.0, 0.5), (1.0, 1.0), (3.0, 0.25)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let p = polyline(&svg);
        assert_eq!(p.len(), 3);
        // Step 1 at the left edge and highest loss at the top; step 3 at the right, lowest.
        assert_eq!(p[0], (ML, MT));
        assert_eq!(p[2], (W - MR, H - MB));
        assert!(p[1].0 > p[0].0 && p[1].0 < p[2].0);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("<title>step 2: 0.5</title>"));
        assert!(svg.contains(">0.25</text>") && svg.contains(">1</text>"));
    }

    #[test]
    fn a_constant_or_single_point_series_draws_mid_height() {
        let p = polyline(&line_chart("lr", &[(1.0, 0.01)]));
        assert_eq!(p.len(), 1);
        assert!((p[0].1 - (MT + (H - MT - MB) / 2.0)).abs() < 0.1);
        let p = polyline(&line_chart("zero", &[(1.0, 0.0), (2.0, 0.0)]));
        assert!(
            p.iter()
                .all(|&(_, y)| (y - (MT + (H - MT - MB) / 2.0)).abs() < 0.1)
        );
    }

    #[test]
    fn non_finite_values_are_dropped_and_an_empty_series_says_so() {
        let p = polyline(&line_chart("x", &[(1.0, f64::NAN), (2.0, 1.0), (3.0, 2.0)]));
        assert_eq!(p.len(), 2);
        let svg = line_chart("x", &[(1.0, f64::INFINITY)]);
        assert!(svg.contains("no points") && !svg.contains("polyline"));
    }

    #[test]
    fn the_title_is_escaped() {
        let svg = line_chart("<a&b>", &[(1.0, 1.0)]);
        assert!(svg.contains("<title>&lt;a&amp;b&gt;</title>"));
        assert!(svg.contains("aria-label=\"&lt;a&amp;b&gt;\""));
        assert!(!svg.contains("<a&b>"));
    }

    #[test]
    fn overlaid_series_share_one_scale_and_each_has_a_legend_entry() {
        let svg = overlay_chart(
            "loss",
            &[
                ("run <a>".to_string(), vec![(1.0, 1.0), (2.0, 0.5)]),
                ("run b".to_string(), vec![(1.0, 0.8), (2.0, 0.25)]),
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        // One scale: the highest value of either run at the top, the lowest at the bottom.
        assert!(svg.contains(&format!("points=\"{ML:.1},{MT:.1} ")), "{svg}");
        assert!(
            svg.contains(&format!("{:.1},{:.1}\"", W - MR, H - MB)),
            "{svg}"
        );
        assert!(svg.contains(">run &lt;a&gt;</text>") && svg.contains(">run b</text>"));
        assert!(!svg.contains("run <a>"));
        let empty = overlay_chart("x", &[("a".to_string(), vec![(1.0, f64::NAN)])]);
        assert!(empty.contains("no points"));
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.00001), "1.00e-5");
    }
}
