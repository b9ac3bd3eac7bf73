//! `taxon data init|add|status|checkout|versions|diff` end to end, and byte-for-byte
//! compatibility with the real `dvc` CLI (`$TAXON_DVC`, else `~/.cache/taxon/venv/bin/dvc`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use serde_json::Value;

/// The real dvc, or `None` (with a notice) when it is not installed. With
/// `TAXON_REQUIRE_TOOLS=1` (CI) a missing dvc fails the test instead.
fn real_dvc() -> Option<PathBuf> {
    let p = std::env::var_os("TAXON_DVC")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/taxon/venv/bin/dvc"))
        })?;
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("dvc not found at {} and TAXON_REQUIRE_TOOLS=1", p.display());
    }
    eprintln!("SKIP: dvc not found at {} (set TAXON_DVC)", p.display());
    None
}

fn taxon(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("taxon").unwrap();
    c.current_dir(dir).arg("-q");
    c
}

fn run_dvc(dvc: &Path, dir: &Path, args: &[&str]) -> String {
    let out = StdCommand::new(dvc)
        .current_dir(dir)
        .args(args)
        .env("DVC_NO_ANALYTICS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dvc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    taxon(dir.path()).args(["data", "init"]).assert().success();
    dir
}

/// A small dataset file and a folder with a sub-folder and a non-ASCII name.
fn make_data(root: &Path) {
    fs::write(
        root.join("data.jsonl"),
        "{\"text\": \"good film\", \"label\": \"pos\"}\n{\"text\": \"bad film\", \"label\": \"neg\"}\n",
    )
    .unwrap();
    let d = root.join("corpus");
    fs::create_dir_all(d.join("sub")).unwrap();
    fs::write(d.join("a.txt"), "alpha\n").unwrap();
    fs::write(d.join("sub/b.txt"), "beta").unwrap();
    fs::write(d.join("é ü.txt"), "gamma\n").unwrap();
    fs::write(d.join("sub/empty"), "").unwrap();
}

/// Every cache file as (relative path, mode, bytes), sorted.
fn cache_listing(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let base = root.join(".dvc/cache");
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                let rel = p
                    .strip_prefix(&base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, mode, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn status_json(dir: &Path) -> Vec<Value> {
    let out = taxon(dir)
        .args(["--json", "data", "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn status_of(dir: &Path, path: &str) -> String {
    status_json(dir)
        .iter()
        .find(|s| s["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in status"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn versions_json(dir: &Path, path: &str) -> Vec<Value> {
    let out = taxon(dir)
        .args(["--json", "data", "versions", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn add_matches_real_dvc_byte_for_byte_and_dvc_reads_it() {
    let Some(dvc) = real_dvc() else { return };
    let ours = repo();
    let theirs = tempfile::tempdir().unwrap();
    run_dvc(&dvc, theirs.path(), &["init", "--no-scm", "-q"]);
    make_data(ours.path());
    make_data(theirs.path());

    taxon(ours.path())
        .args(["data", "add", "data.jsonl", "corpus"])
        .assert()
        .success();
    run_dvc(&dvc, theirs.path(), &["add", "-q", "data.jsonl", "corpus"]);

    for f in ["data.jsonl.dvc", "corpus.dvc", ".dvc/config"] {
        assert_eq!(
            fs::read_to_string(ours.path().join(f)).unwrap(),
            fs::read_to_string(theirs.path().join(f)).unwrap(),
            "{f} differs from dvc's"
        );
    }
    let listing = cache_listing(ours.path());
    assert_eq!(
        listing,
        cache_listing(theirs.path()),
        "cache differs from dvc's"
    );
    assert_eq!(listing.len(), 6, "1 file + 4 folder files + 1 manifest");
    assert!(listing.iter().all(|(_, mode, _)| *mode == 0o444));

    // The real dvc sees taxon's work as up to date, and restores from taxon's cache.
    let st = run_dvc(&dvc, ours.path(), &["status"]);
    assert!(st.contains("up to date"), "dvc status: {st}");
    fs::remove_file(ours.path().join("data.jsonl")).unwrap();
    run_dvc(&dvc, ours.path(), &["checkout", "-q"]);
    assert!(
        fs::read_to_string(ours.path().join("data.jsonl"))
            .unwrap()
            .contains("good film")
    );

    // And taxon reads dvc's work: up to date, and restores a deleted folder member.
    fs::create_dir(theirs.path().join(".taxon")).unwrap();
    assert_eq!(status_of(theirs.path(), "corpus"), "up_to_date");
    fs::remove_file(theirs.path().join("corpus/sub/b.txt")).unwrap();
    assert_eq!(status_of(theirs.path(), "corpus"), "modified");
    taxon(theirs.path())
        .args(["data", "checkout"])
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(theirs.path().join("corpus/sub/b.txt")).unwrap(),
        "beta"
    );
}

#[test]
fn init_creates_what_dvc_init_no_scm_creates() {
    let dir = repo();
    assert_eq!(
        fs::read_to_string(dir.path().join(".dvc/config")).unwrap(),
        "[core]\n    no_scm = True\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join(".dvc/.gitignore")).unwrap(),
        "/config.local\n/tmp\n/cache\n"
    );
    assert!(dir.path().join(".taxon").is_dir());
    if let Some(dvc) = real_dvc() {
        // dvc accepts the repository (run_dvc asserts success).
        let st = run_dvc(&dvc, dir.path(), &["status"]);
        assert!(!st.contains("ERROR"), "{st}");
    }
}

#[test]
fn status_detects_modified_deleted_and_not_in_cache() {
    let dir = repo();
    make_data(dir.path());
    taxon(dir.path())
        .args(["data", "add", "data.jsonl", "corpus"])
        .assert()
        .success();
    assert_eq!(status_of(dir.path(), "data.jsonl"), "up_to_date");
    assert_eq!(status_of(dir.path(), "corpus"), "up_to_date");

    fs::write(
        dir.path().join("data.jsonl"),
        "{\"text\": \"changed\", \"label\": \"pos\"}\n",
    )
    .unwrap();
    fs::write(dir.path().join("corpus/new.txt"), "new").unwrap();
    assert_eq!(status_of(dir.path(), "data.jsonl"), "modified");
    assert_eq!(status_of(dir.path(), "corpus"), "modified");

    fs::remove_file(dir.path().join("data.jsonl")).unwrap();
    assert_eq!(status_of(dir.path(), "data.jsonl"), "deleted");

    fs::remove_file(dir.path().join("corpus/new.txt")).unwrap();
    fs::remove_dir_all(dir.path().join(".dvc/cache")).unwrap();
    assert_eq!(status_of(dir.path(), "corpus"), "not_in_cache");

    // The human table says it in words, and status exits 0 regardless.
    taxon(dir.path())
        .args(["data", "status"])
        .assert()
        .success()
        .stdout(predicates::str::contains("not in cache"))
        .stdout(predicates::str::contains("deleted"));
}

#[test]
fn checkout_restores_deleted_file_and_folder() {
    let dir = repo();
    make_data(dir.path());
    taxon(dir.path())
        .args(["data", "add", "data.jsonl", "corpus"])
        .assert()
        .success();
    let original = fs::read(dir.path().join("data.jsonl")).unwrap();
    fs::remove_file(dir.path().join("data.jsonl")).unwrap();
    fs::remove_file(dir.path().join("corpus/a.txt")).unwrap();
    fs::write(dir.path().join("corpus/stray.txt"), "not tracked").unwrap();
    taxon(dir.path())
        .args(["data", "checkout"])
        .assert()
        .success();
    assert_eq!(fs::read(dir.path().join("data.jsonl")).unwrap(), original);
    assert_eq!(
        fs::read_to_string(dir.path().join("corpus/a.txt")).unwrap(),
        "alpha\n"
    );
    assert!(
        !dir.path().join("corpus/stray.txt").exists(),
        "files not in the manifest are removed"
    );
    assert_eq!(status_of(dir.path(), "corpus"), "up_to_date");
}

#[test]
fn readding_unchanged_data_records_no_new_version() {
    let dir = repo();
    make_data(dir.path());
    taxon(dir.path())
        .args(["data", "add", "data.jsonl"])
        .assert()
        .success();
    taxon(dir.path())
        .args(["data", "add", "data.jsonl"])
        .assert()
        .success();
    assert_eq!(versions_json(dir.path(), "data.jsonl").len(), 1);
}

#[test]
fn checkout_version_restores_an_older_version() {
    let dir = repo();
    make_data(dir.path());
    let p = dir.path().join("data.jsonl");
    let v1_bytes = fs::read(&p).unwrap();
    taxon(dir.path())
        .args(["data", "add", "data.jsonl", "-m", "first"])
        .assert()
        .success();
    fs::write(&p, "{\"text\": \"only one\", \"label\": \"neg\"}\n").unwrap();
    taxon(dir.path())
        .args(["data", "add", "data.jsonl", "-m", "second"])
        .assert()
        .success();
    let versions = versions_json(dir.path(), "data.jsonl");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["message"], "first");
    let v1 = versions[0]["id"].as_str().unwrap().to_string();

    taxon(dir.path())
        .args(["data", "checkout", "data.jsonl", "--version", &v1[..7]])
        .assert()
        .success();
    assert_eq!(fs::read(&p).unwrap(), v1_bytes);
    let dvc = fs::read_to_string(dir.path().join("data.jsonl.dvc")).unwrap();
    assert!(dvc.contains(&format!("md5: {v1}")), "{dvc}");
    assert_eq!(status_of(dir.path(), "data.jsonl"), "up_to_date");

    taxon(dir.path())
        .args(["data", "checkout", "data.jsonl", "--version", "ffffffff"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no recorded version"));
}

#[test]
fn versions_table_shows_statistics_columns() {
    let dir = repo();
    make_data(dir.path());
    taxon(dir.path())
        .args(["data", "add", "data.jsonl", "-m", "hello"])
        .assert()
        .success();
    taxon(dir.path())
        .args(["data", "versions", "data.jsonl"])
        .assert()
        .success()
        .stdout(predicates::str::contains("dup rate"))
        .stdout(predicates::str::contains("hello"));
}

#[test]
fn tampered_cache_object_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = repo();
    make_data(dir.path());
    taxon(dir.path())
        .args(["data", "add", "data.jsonl"])
        .assert()
        .success();
    let dvc = fs::read_to_string(dir.path().join("data.jsonl.dvc")).unwrap();
    let md5 = dvc.split("md5: ").nth(1).unwrap()[..32].to_string();
    let obj = dir
        .path()
        .join(format!(".dvc/cache/files/md5/{}/{}", &md5[..2], &md5[2..]));
    fs::set_permissions(&obj, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&obj, "{\"text\": \"evil\", \"label\": \"pos\"}\n").unwrap();
    fs::remove_file(dir.path().join("data.jsonl")).unwrap();
    taxon(dir.path())
        .args(["data", "checkout", "data.jsonl"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("hash mismatch"));
    assert!(
        !dir.path().join("data.jsonl").exists(),
        "nothing tampered is put in place"
    );
}

#[test]
fn missing_objects_are_listed_before_the_workspace_is_touched() {
    let dir = repo();
    make_data(dir.path());
    taxon(dir.path())
        .args(["data", "add", "corpus"])
        .assert()
        .success();
    // Remove one object, and change another file that a checkout would restore.
    let a_md5 = format!("{:032x}", md5_of(b"alpha\n"));
    fs::remove_file(dir.path().join(format!(
        ".dvc/cache/files/md5/{}/{}",
        &a_md5[..2],
        &a_md5[2..]
    )))
    .unwrap();
    fs::write(dir.path().join("corpus/sub/b.txt"), "edited").unwrap();
    taxon(dir.path())
        .args(["data", "checkout", "corpus"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(a_md5.as_str()))
        .stderr(predicates::str::contains("corpus/a.txt"));
    assert_eq!(
        fs::read_to_string(dir.path().join("corpus/sub/b.txt")).unwrap(),
        "edited"
    );
}

#[test]
fn hostile_manifest_cannot_write_outside_the_folder() {
    let dir = repo();
    let manifest = br#"[{"md5": "b1946ac92492d2347c6235b4d2611184", "relpath": "../escaped.txt"}]"#;
    let h = format!("{:032x}", md5_of(manifest));
    let cache = dir.path().join(".dvc/cache/files/md5");
    fs::create_dir_all(cache.join(&h[..2])).unwrap();
    fs::write(
        cache.join(&h[..2]).join(format!("{}.dir", &h[2..])),
        manifest,
    )
    .unwrap();
    fs::create_dir_all(cache.join("b1")).unwrap();
    fs::write(cache.join("b1/946ac92492d2347c6235b4d2611184"), "hello\n").unwrap();
    fs::write(
        dir.path().join("d.dvc"),
        format!("outs:\n- md5: {h}.dir\n  size: 6\n  nfiles: 1\n  hash: md5\n  path: d\n"),
    )
    .unwrap();
    taxon(dir.path())
        .args(["data", "checkout", "d"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unsafe relpath"));
    assert!(!dir.path().join("escaped.txt").exists());
}

#[test]
fn diff_shows_a_relabelled_row() {
    let dir = repo();
    let p = dir.path().join("data.jsonl");
    fs::write(&p, "{\"text\": \"good film\", \"label\": \"pos\"}\n{\"text\": \"bad film\", \"label\": \"neg\"}\n").unwrap();
    taxon(dir.path())
        .args(["data", "add", "data.jsonl"])
        .assert()
        .success();
    fs::write(&p, "{\"text\": \"good film\", \"label\": \"neg\"}\n{\"text\": \"bad film\", \"label\": \"neg\"}\n").unwrap();
    taxon(dir.path())
        .args(["data", "add", "data.jsonl"])
        .assert()
        .success();
    let versions = versions_json(dir.path(), "data.jsonl");
    let (a, b) = (
        versions[0]["id"].as_str().unwrap(),
        versions[1]["id"].as_str().unwrap(),
    );
    let out = taxon(dir.path())
        .args(["--json", "data", "diff", "data.jsonl", &a[..8], &b[..8]])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["relabelled"], 1, "{d}");
    assert_eq!(d["added"], 0, "{d}");
    assert_eq!(d["removed"], 0, "{d}");
    // The workspace side works too, and the table names the change.
    taxon(dir.path())
        .args(["data", "diff", "data.jsonl", &a[..8], "workspace"])
        .assert()
        .success()
        .stdout(predicates::str::contains("relabelled"));
}

fn md5_of(bytes: &[u8]) -> u128 {
    let out = StdCommand::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    u128::from_str_radix(&String::from_utf8_lossy(&out.stdout)[..32], 16).unwrap()
}
