//! taxon's drift statistics against SciPy's independent implementations, on the same values:
//! `scipy.stats.wasserstein_distance` (samples, and weighted bin centres as the histograms
//! hold them) to 1e-9 relative, and `scipy.stats.chi2.sf` for the chi-square p-value. Needs
//! SciPy in the test venv (`TAXON_VENV`, default `~/.cache/taxon/venv`); skipped with a notice
//! without it, unless `TAXON_REQUIRE_TOOLS=1` (CI), which fails.

use std::path::PathBuf;
use std::process::Command;

use taxon_monitor::chisq::chi2_sf;
use taxon_monitor::sketch::{Binning, Histogram};
use taxon_monitor::wasserstein::{wasserstein_1, wasserstein_1_hist};

fn python_with_scipy() -> Option<PathBuf> {
    let venv = std::env::var_os("TAXON_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/taxon/venv")))?;
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import scipy.stats"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!(
            "scipy not importable by {} (TAXON_REQUIRE_TOOLS=1): run scripts/setup-tools.sh",
            python.display()
        );
    }
    eprintln!("skipping: scipy not installed in {}", venv.display());
    None
}

/// Runs `script` (which reads a JSON document from stdin) and parses its stdout as JSON.
fn scipy(python: &PathBuf, script: &str, input: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Deterministic pseudo-random values (xorshift) in several shapes: uniform, skewed, with
/// ties, on very different scales.
fn samples(seed: u64, n: usize, shape: u32) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            match shape {
                0 => u,
                1 => -u.ln() * 40.0,     // exponential, long tail
                2 => (u * 12.0).floor(), // integers: many ties
                _ => 1e6 + u * u * 3e5,  // large offset
            }
        })
        .collect()
}

fn assert_rel(a: f64, b: f64, what: &str) {
    let rel = (a - b).abs() / b.abs().max(f64::MIN_POSITIVE);
    assert!(
        rel <= 1e-9,
        "{what}: taxon {a} vs scipy {b} (relative {rel:e})"
    );
}

#[test]
fn wasserstein_matches_scipy_to_1e9_relative() {
    let Some(py) = python_with_scipy() else {
        return;
    };
    let mut cases = Vec::new();
    for shape in 0..4u32 {
        for (n, m) in [(1, 1), (7, 3), (200, 178), (5000, 444)] {
            let u = samples(u64::from(shape) * 1000 + n as u64, n, shape);
            let v = samples(u64::from(shape) * 7777 + m as u64 + 1, m, (shape + 1) % 4);
            cases.push((u, v));
        }
    }
    let input = serde_json::json!(cases);
    let script = "import json, sys\nfrom scipy.stats import wasserstein_distance as w\n\
                  print(json.dumps([w(u, v) for u, v in json.load(sys.stdin)]))";
    let want = scipy(&py, script, &input);
    for (i, (u, v)) in cases.iter().enumerate() {
        let got = wasserstein_1(u, v).unwrap();
        assert_rel(
            got,
            want[i].as_f64().unwrap(),
            &format!("case {i} ({} vs {})", u.len(), v.len()),
        );
    }
}

#[test]
fn histogram_wasserstein_matches_scipy_on_weighted_bin_centres() {
    let Some(py) = python_with_scipy() else {
        return;
    };
    let mut cases = Vec::new();
    let mut got = Vec::new();
    for (binning, shape) in [
        (Binning::Unit, 0u32),
        (Binning::Count, 1),
        (Binning::Count, 3),
    ] {
        let (mut a, mut b) = (Histogram::new(binning), Histogram::new(binning));
        samples(11, 3000, shape).into_iter().for_each(|x| a.add(x));
        samples(12, 500, shape)
            .into_iter()
            .for_each(|x| b.add(x * 1.1));
        let pts = |h: &Histogram| {
            let (x, w): (Vec<f64>, Vec<f64>) = h.points().map(|(x, c)| (x, c as f64)).unzip();
            serde_json::json!([x, w])
        };
        cases.push(serde_json::json!([pts(&a), pts(&b)]));
        got.push(wasserstein_1_hist(&a, &b).unwrap());
    }
    let script = "import json, sys\nfrom scipy.stats import wasserstein_distance as w\n\
                  print(json.dumps([w(a[0], b[0], a[1], b[1]) for a, b in json.load(sys.stdin)]))";
    let want = scipy(&py, script, &serde_json::json!(cases));
    for (i, g) in got.iter().enumerate() {
        assert_rel(
            *g,
            want[i].as_f64().unwrap(),
            &format!("histogram case {i}"),
        );
    }
}

#[test]
fn chi_square_p_value_matches_scipy() {
    let Some(py) = python_with_scipy() else {
        return;
    };
    let cases: Vec<(f64, f64)> = [0.01, 0.5, 1.0, 3.84, 9.49, 20.0, 45.0, 120.0]
        .iter()
        .flat_map(|&x| [1.0, 2.0, 4.0, 9.0, 19.0].map(|df| (x, df)))
        .collect();
    let script = "import json, sys\nfrom scipy.stats import chi2\n\
                  print(json.dumps([chi2.sf(x, df) for x, df in json.load(sys.stdin)]))";
    let want = scipy(&py, script, &serde_json::json!(cases));
    for (i, &(x, df)) in cases.iter().enumerate() {
        let w = want[i].as_f64().unwrap();
        let g = chi2_sf(x, df);
        // Relative where the p-value is not vanishing; absolute below.
        assert!(
            (g - w).abs() <= 1e-9 * w.max(1e-6),
            "chi2.sf({x}, {df}): taxon {g} vs scipy {w}"
        );
    }
}
