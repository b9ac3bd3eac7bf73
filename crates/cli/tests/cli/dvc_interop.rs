//! Interoperability with the real `dvc` 3 CLI (with dvc-s3), in `dvc init --no-scm`
//! repositories, against an S3 remote on moto and a local-folder remote:
//! data added and pushed by taxon is in sync for `dvc status -c` and restored by `dvc pull`;
//! data added and pushed by dvc is restored by `taxon data pull` byte for byte.
//! Remotes are configured with `taxon data remote`, and `dvc remote list` must read them.
//!
//! moto accepts any credentials (credential checking is not tested here). Without dvc or
//! moto_server the tests print a skip notice, or fail under `TAXON_REQUIRE_TOOLS=1` (CI).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::tools::{
    Moto, remove_tree, require_tool, snapshot, taxon, taxon_json, write_tree,
};

fn dvc(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(bin)
        .current_dir(dir)
        .args(args)
        .env("DVC_NO_ANALYTICS", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("run dvc")
}

fn dvc_ok(bin: &Path, dir: &Path, args: &[&str]) -> String {
    let out = dvc(bin, dir, args);
    assert!(
        out.status.success(),
        "dvc {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `dvc init --no-scm` repo with an S3 remote `s3` (default, credentials in config.local,
/// written by taxon) and a local remote `folder`.
fn dvc_repo(dvc_bin: &Path, moto: &Moto, prefix: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let folder = tmp.path().join("folder-remote");
    std::fs::create_dir_all(&repo).unwrap();
    dvc_ok(dvc_bin, &repo, &["init", "--no-scm", "-q"]);
    let url = format!("s3://interop/{prefix}");
    taxon(&repo)
        .args(["data", "remote", "add", "-d", "s3", &url])
        .assert()
        .success();
    for (k, v) in [
        ("endpointurl", moto.endpoint()),
        ("access_key_id", "testing".to_string()),
        ("secret_access_key", "testing".to_string()),
    ] {
        taxon(&repo)
            .args(["data", "remote", "modify", "s3", k, &v])
            .assert()
            .success();
    }
    taxon(&repo)
        .args(["data", "remote", "add", "folder"])
        .arg(&folder)
        .assert()
        .success();
    let listed = dvc_ok(dvc_bin, &repo, &["remote", "list"]);
    assert!(listed.contains("s3") && listed.contains(&url), "{listed}");
    assert!(listed.contains("folder"), "{listed}");
    (tmp, repo, folder)
}

fn forget(repo: &Path) {
    remove_tree(&repo.join("data"));
    let _ = std::fs::remove_file(repo.join("notes.txt"));
    remove_tree(&repo.join(".dvc/cache"));
}

fn make_data(repo: &Path) -> Vec<(String, Vec<u8>)> {
    write_tree(&repo.join("data"), 25, 5);
    std::fs::write(repo.join("notes.txt"), "a note, tracked as a single file\n").unwrap();
    let mut snap = snapshot(&repo.join("data"));
    snap.push((
        "notes".into(),
        std::fs::read(repo.join("notes.txt")).unwrap(),
    ));
    snap
}

fn current(repo: &Path) -> Vec<(String, Vec<u8>)> {
    let mut snap = snapshot(&repo.join("data"));
    snap.push((
        "notes".into(),
        std::fs::read(repo.join("notes.txt")).unwrap(),
    ));
    snap
}

#[test]
fn taxon_push_is_in_sync_for_dvc_and_dvc_pull_restores() {
    let Some(dvc_bin) = require_tool("dvc") else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("interop");
    let (_tmp, repo, _folder) = dvc_repo(&dvc_bin, &moto, "from-taxon");
    let before = make_data(&repo);
    taxon(&repo)
        .args(["data", "add", "data", "notes.txt"])
        .assert()
        .success();
    taxon_json(&repo, &["data", "push"]);
    taxon_json(&repo, &["data", "push", "-r", "folder"]);

    let status = dvc_ok(&dvc_bin, &repo, &["status", "-c"]);
    assert!(status.contains("in sync"), "dvc status -c: {status}");
    let status = dvc_ok(&dvc_bin, &repo, &["status", "-c", "-r", "folder"]);
    assert!(
        status.contains("in sync"),
        "dvc status -c -r folder: {status}"
    );

    forget(&repo);
    dvc_ok(&dvc_bin, &repo, &["pull", "-q"]);
    assert_eq!(current(&repo), before, "dvc pull from S3");

    forget(&repo);
    dvc_ok(&dvc_bin, &repo, &["pull", "-q", "-r", "folder"]);
    assert_eq!(current(&repo), before, "dvc pull from the folder remote");
}

#[test]
fn dvc_push_is_restored_by_taxon_pull() {
    let Some(dvc_bin) = require_tool("dvc") else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("interop");
    let (_tmp, repo, _folder) = dvc_repo(&dvc_bin, &moto, "from-dvc");
    let before = make_data(&repo);
    dvc_ok(&dvc_bin, &repo, &["add", "-q", "data", "notes.txt"]);
    dvc_ok(&dvc_bin, &repo, &["push", "-q"]);
    dvc_ok(&dvc_bin, &repo, &["push", "-q", "-r", "folder"]);

    // taxon sees dvc's push as complete.
    let dry = taxon_json(&repo, &["data", "push", "--dry-run"]);
    assert_eq!(
        dry["missing_on_remote"].as_array().unwrap().len(),
        0,
        "{dry}"
    );

    forget(&repo);
    let pulled = taxon_json(&repo, &["data", "pull"]);
    assert_eq!(pulled["downloaded"], 27, "{pulled}");
    assert_eq!(current(&repo), before, "taxon pull from S3");

    forget(&repo);
    taxon_json(&repo, &["data", "pull", "-r", "folder"]);
    assert_eq!(current(&repo), before, "taxon pull from the folder remote");
    let status = dvc_ok(&dvc_bin, &repo, &["status"]);
    assert!(
        status.contains("up to date") || status.trim().is_empty(),
        "dvc status after taxon pull: {status}"
    );
}
