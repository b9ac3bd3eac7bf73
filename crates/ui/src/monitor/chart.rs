//! Time-series charts of the monitoring page: one or more series over the log's time windows,
//! an optional threshold drawn as its own dashed line (it may change from window to window),
//! and points past the threshold marked with a red square instead of a dot, so an alarm is
//! told by its shape as well as its colour. Built on the frame of [`crate::svg`].

use std::fmt::Write as _;

use crate::html::Esc;
use crate::svg::{H, MB, ML, MR, MT, PALETTE, W, close_empty, open, span, tick};

/// One line: a name for the legend and `(unix seconds, value, past the threshold)` points.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, bool)>,
}

impl Series {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            points: Vec::new(),
        }
    }
}

/// A time of day for an axis label (UTC); with the date when the span crosses days.
fn clock(t: f64, with_date: bool) -> String {
    let Some(dt) = chrono::DateTime::from_timestamp(t.floor() as i64, 0) else {
        return tick(t);
    };
    if with_date {
        dt.format("%m-%d %H:%M").to_string()
    } else {
        dt.format("%H:%M:%S").to_string()
    }
}

/// A chart titled `title` of `series` over time, sharing one scale with `threshold` (drawn
/// dashed, named in the legend), over `x_range` (unix seconds; else the points' own), so the
/// charts of one page line up. Non-finite points are dropped; with none left it says so.
pub fn time_chart(
    title: &str,
    series: &[Series],
    threshold: Option<&[(f64, f64)]>,
    x_range: Option<(f64, f64)>,
) -> String {
    let series: Vec<Series> = series
        .iter()
        .map(|s| {
            let mut points: Vec<(f64, f64, bool)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y, _)| x.is_finite() && y.is_finite())
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: s.name.clone(),
                points,
            }
        })
        .collect();
    let threshold: Vec<(f64, f64)> = threshold
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let legend = series.len() + usize::from(!threshold.is_empty());
    let legend = if legend > 1 { legend } else { 0 };
    let mut svg = open(title, H + 16.0 * legend as f64);
    let xs = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(threshold.iter().map(|p| p.0))
    };
    let ys = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(threshold.iter().map(|p| p.1))
    };
    if series.iter().all(|s| s.points.is_empty()) {
        return close_empty(svg);
    }
    let x_range = x_range.or_else(|| {
        xs().fold(None, |acc: Option<(f64, f64)>, x| match acc {
            None => Some((x, x)),
            Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
        })
    });
    let (Some((x0, x1)), Some((y0, y1))) = (x_range, span(ys())) else {
        return close_empty(svg);
    };
    // One window alone: half a minute either side.
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 30.0, x1 + 30.0)
    };
    let px = |x: f64| ML + (x - x0) / (x1 - x0) * (W - ML - MR);
    let py = |y: f64| H - MB - (y - y0) / (y1 - y0) * (H - MT - MB);
    let with_date = (x1 - x0) >= 86_400.0;
    crate::svg::axes_labelled(
        &mut svg,
        (
            &clock(x0, with_date),
            &format!("{} UTC", clock(x1, with_date)),
        ),
        (y0, y1),
    );
    let mut entry = 0usize;
    let mut legend_entry = |svg: &mut String, name: &str, colour: &str, dash: &str| {
        if legend > 0 {
            crate::svg::legend_entry(svg, entry, name, colour, dash);
            entry += 1;
        }
    };
    if !threshold.is_empty() {
        let line: Vec<String> = threshold
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline data-threshold=\"\" fill=\"none\" stroke=\"#c92a2a\" stroke-width=\"1.5\" \
             stroke-dasharray=\"5 4\" points=\"{}\"><title>threshold</title></polyline>",
            line.join(" ")
        );
        legend_entry(&mut svg, "threshold", "#c92a2a", "5 4");
    }
    for (i, s) in series.iter().enumerate() {
        let (colour, dash) = PALETTE[i % PALETTE.len()];
        let line: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y, _)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline data-series=\"{n}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" \
             stroke-dasharray=\"{dash}\" points=\"{}\"><title>{n}</title></polyline>",
            line.join(" "),
            n = Esc(&s.name),
        );
        for &(x, y, alarm) in &s.points {
            let tip = format!("{}: {}: {}", s.name, clock(x, with_date), y);
            if alarm {
                let _ = write!(
                    svg,
                    "<rect data-alarm=\"\" x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\" fill=\"#c92a2a\">\
                     <title>{} (past the threshold)</title></rect>",
                    px(x) - 4.0,
                    py(y) - 4.0,
                    Esc(&tip)
                );
            } else {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"><title>{}</title></circle>",
                    px(x),
                    py(y),
                    Esc(&tip)
                );
            }
        }
        legend_entry(&mut svg, &s.name, colour, dash);
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_are_squares_and_the_threshold_is_its_own_line() {
        let mut s = Series::new("tokens");
        s.points = vec![
            (0.0, 0.01, false),
            (60.0, 0.3, true),
            (120.0, f64::NAN, false),
        ];
        let svg = time_chart(
            "drift <tokens>",
            &[s],
            Some(&[(0.0, 0.05), (60.0, 0.05)]),
            None,
        );
        assert_eq!(svg.matches("<circle").count(), 1);
        assert_eq!(svg.matches("data-alarm").count(), 1);
        assert_eq!(svg.matches("data-threshold").count(), 1);
        assert!(svg.contains("(past the threshold)"));
        assert!(svg.contains("00:00:00") && svg.contains("00:01:00 UTC"));
        assert!(svg.contains("&lt;tokens&gt;") && !svg.contains("<tokens>"));
        // The highest value (0.3) at the top of the plot.
        assert!(svg.contains(&format!("y=\"{:.1}\"", MT - 4.0)), "{svg}");
    }

    #[test]
    fn no_points_says_so() {
        let svg = time_chart("x", &[Series::new("a")], Some(&[(0.0, 1.0)]), None);
        assert!(svg.contains("no points") && !svg.contains("polyline"));
    }
}
