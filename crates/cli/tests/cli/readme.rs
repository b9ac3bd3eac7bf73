//! The README's set-up block is what CI runs: its two commands (the main job, then the tests)
//! must appear in `.ci/run` as written, and `cargo run` at the workspace root must mean the
//! `taxon` binary, so the newcomer's first command cannot break without a test failing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The commands of the first `sh` block under `## Set up` in README.md: its lines that are
/// neither blank nor comments, in order.
fn setup_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split_once("\n## Set up\n")
        .expect("README.md has no `## Set up` section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the `## Set up` section has no ```sh block")
        .1;
    let block = block
        .split_once("\n```")
        .expect("the set-up ```sh block is not closed")
        .0;
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The lines of a shell script that are neither blank nor comments, trimmed.
fn script_lines(script: &str) -> Vec<String> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn setup_commands_parse_from_a_readme_block() {
    let readme = "# x\n\n## Set up\n\ntext\n\n```sh\n# 1. a\nrun one\n\n# 2. b\nrun two\n```\n";
    assert_eq!(setup_commands(readme), ["run one", "run two"]);
}

#[test]
fn ci_runs_the_readme_setup_commands_as_written() {
    let root = repo_root();
    let commands = setup_commands(&read(&root.join("README.md")));
    assert_eq!(
        commands.len(),
        2,
        "README.md's set-up block must hold exactly two commands (the main job, the tests), found {commands:?}"
    );
    let (main_job, tests) = (&commands[0], &commands[1]);
    let ci = script_lines(&read(&root.join(".ci/run")));

    let test_at = ci.iter().position(|l| l == tests).unwrap_or_else(|| {
        panic!("`.ci/run` does not run the README's test command `{tests}` as written:\n{ci:#?}")
    });
    // The README says `--port 0` may be appended to the quickstart.
    let main_at = ci
        .iter()
        .position(|l| l == main_job || *l == format!("{main_job} --port 0"))
        .unwrap_or_else(|| {
            panic!(
                "`.ci/run` does not run the README's main job `{main_job}` (optionally with `--port 0`):\n{ci:#?}"
            )
        });
    assert!(
        test_at < main_at,
        "`.ci/run` must run the tests before the main job"
    );
    // Every command the README names as a script must exist in the repository.
    let script = tests.split_whitespace().next().unwrap();
    if script.contains('/') {
        assert!(root.join(script).is_file(), "{script} is missing");
    }
}

/// `cargo run` at the root picks the binary of the default members: there must be exactly one,
/// `taxon` (a second binary made the README's `cargo run --release -- quickstart` fail).
#[test]
fn cargo_run_at_the_root_means_the_taxon_binary() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let defaults: Vec<&str> = meta["workspace_default_members"]
        .as_array()
        .expect("workspace_default_members")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let bins: Vec<&str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| defaults.contains(&p["id"].as_str().unwrap()))
        .flat_map(|p| p["targets"].as_array().unwrap())
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        bins,
        ["taxon"],
        "`cargo run` at the workspace root must find exactly one binary"
    );
}
