//! Push and pull against a local-folder remote, through the `taxon` binary: round trip,
//! idempotent re-push, a corrupt remote object that leaves the workspace untouched, an
//! encrypted remote, and `taxon data remote` writing DVC's config files.

use std::path::{Path, PathBuf};

use crate::common::tools::{objects_under, remove_tree, snapshot, taxon, taxon_json, write_tree};

/// A repository with `data/` (30 files) and `labels.tsv` tracked, and a default local remote.
fn repo_with_data() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let remote = tmp.path().join("remote");
    std::fs::create_dir_all(&repo).unwrap();
    taxon(&repo).args(["data", "init"]).assert().success();
    write_tree(&repo.join("data"), 30, 7);
    std::fs::write(repo.join("labels.tsv"), "text\tlabel\nhello\tgreeting\n").unwrap();
    taxon(&repo)
        .args(["data", "add", "data", "labels.tsv"])
        .assert()
        .success();
    taxon(&repo)
        .args(["data", "remote", "add", "-d", "store"])
        .arg(&remote)
        .assert()
        .success();
    (tmp, repo, remote)
}

/// Removes the tracked data and the cache, as on a fresh clone.
fn forget_local(repo: &Path) {
    remove_tree(&repo.join("data"));
    let _ = std::fs::remove_file(repo.join("labels.tsv"));
    remove_tree(&repo.join(".dvc/cache"));
}

#[test]
fn push_pull_round_trip_restores_bytes_and_repush_uploads_nothing() {
    let (_tmp, repo, remote) = repo_with_data();
    let before = snapshot(&repo.join("data"));
    let pushed = taxon_json(&repo, &["data", "push"]);
    // 30 files + 1 manifest + labels.tsv.
    assert_eq!(pushed["uploaded"], 32, "{pushed}");
    assert_eq!(pushed["already_there"], 0);
    assert_eq!(objects_under(&remote).len(), 32);

    let again = taxon_json(&repo, &["data", "push"]);
    assert_eq!(again["uploaded"], 0, "{again}");
    assert_eq!(again["already_there"], 32);
    assert_eq!(again["bytes"], 0);

    forget_local(&repo);
    let pulled = taxon_json(&repo, &["data", "pull", "-j", "3"]);
    assert_eq!(pulled["downloaded"], 32, "{pulled}");
    assert_eq!(snapshot(&repo.join("data")), before);
    assert_eq!(
        std::fs::read_to_string(repo.join("labels.tsv")).unwrap(),
        "text\tlabel\nhello\tgreeting\n"
    );
}

#[test]
fn push_after_partial_upload_sends_only_the_rest() {
    let (_tmp, repo, remote) = repo_with_data();
    taxon_json(&repo, &["data", "push"]);
    // Simulate a push killed half-way: drop 10 objects (and the manifest) from the remote.
    let objs = objects_under(&remote);
    let mut removed = 0;
    for p in objs
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".dir"))
    {
        std::fs::remove_file(p).unwrap();
        removed += 1;
    }
    for p in objs
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(".dir"))
        .take(10)
    {
        std::fs::remove_file(p).unwrap();
        removed += 1;
    }
    let dry = taxon_json(&repo, &["data", "push", "--dry-run"]);
    assert_eq!(dry["missing_on_remote"].as_array().unwrap().len(), removed);
    let again = taxon_json(&repo, &["data", "push"]);
    assert_eq!(again["uploaded"], removed as u64, "{again}");
    assert_eq!(again["already_there"], 32 - removed as u64);
}

#[test]
fn corrupt_remote_object_fails_pull_and_leaves_workspace_untouched() {
    let (_tmp, repo, remote) = repo_with_data();
    taxon_json(&repo, &["data", "push"]);
    forget_local(&repo);
    // Truncate one data object on the remote.
    let victim = objects_under(&remote)
        .into_iter()
        .find(|p| !p.to_string_lossy().ends_with(".dir"))
        .unwrap();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let name = format!(
        "{}{}",
        victim
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy(),
        victim.file_name().unwrap().to_string_lossy()
    );

    let out = taxon(&repo).args(["data", "pull"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&name), "error names the object: {err}");
    assert!(err.contains("expected") && err.contains("got"), "{err}");
    assert!(!repo.join("data").exists(), "workspace was touched");
    assert!(!repo.join("labels.tsv").exists(), "workspace was touched");
    let cached = repo
        .join(".dvc/cache")
        .join(format!("files/md5/{}/{}", &name[..2], &name[2..]));
    assert!(!cached.exists(), "corrupt object entered the cache");
}

#[test]
fn encrypted_remote_holds_ciphertext_and_needs_the_right_key() {
    let (tmp, repo, remote) = repo_with_data();
    let key = tmp.path().join("fernet.key");
    std::fs::write(&key, taxon_fernet::Key::generate().to_base64()).unwrap();
    taxon(&repo)
        .args(["data", "remote", "modify", "store", "encrypt", "true"])
        .assert()
        .success();
    taxon(&repo)
        .args(["data", "remote", "modify", "store", "key_file"])
        .arg(&key)
        .assert()
        .success();
    let before = snapshot(&repo.join("data"));
    taxon_json(&repo, &["data", "push"]);
    for obj in objects_under(&remote) {
        let raw = std::fs::read(&obj).unwrap();
        assert!(
            raw.starts_with(b"gAAAAA"),
            "{} is not Fernet",
            obj.display()
        );
        assert!(
            !raw.windows(5).any(|w| w == b"hello"),
            "plaintext on remote"
        );
    }

    forget_local(&repo);
    // A wrong key: clear error, nothing written.
    let wrong = tmp.path().join("wrong.key");
    std::fs::write(&wrong, taxon_fernet::Key::generate().to_base64()).unwrap();
    taxon(&repo)
        .args(["data", "remote", "modify", "store", "key_file"])
        .arg(&wrong)
        .assert()
        .success();
    let out = taxon(&repo).args(["data", "pull"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong key"), "{err}");
    assert!(!repo.join("data").exists() && !repo.join("labels.tsv").exists());
    assert!(objects_under(&repo.join(".dvc/cache")).is_empty());

    taxon(&repo)
        .args(["data", "remote", "modify", "store", "key_file"])
        .arg(&key)
        .assert()
        .success();
    taxon_json(&repo, &["data", "pull"]);
    assert_eq!(snapshot(&repo.join("data")), before);
}

#[test]
fn remote_commands_write_dvc_config_and_hide_credentials() {
    let (_tmp, repo, _remote) = repo_with_data();
    taxon(&repo)
        .args(["data", "remote", "add", "s3r", "s3://bucket/prefix"])
        .assert()
        .success();
    taxon(&repo)
        .args([
            "data",
            "remote",
            "modify",
            "s3r",
            "endpointurl",
            "http://127.0.0.1:9",
        ])
        .assert()
        .success();
    taxon(&repo)
        .args([
            "data",
            "remote",
            "modify",
            "s3r",
            "secret_access_key",
            "hunter2",
        ])
        .assert()
        .success();
    let config = std::fs::read_to_string(repo.join(".dvc/config")).unwrap();
    assert!(config.contains("['remote \"s3r\"']\n    url = s3://bucket/prefix\n    endpointurl = http://127.0.0.1:9\n"), "{config}");
    assert!(
        !config.contains("hunter2"),
        "credential in the shared config"
    );
    let local = std::fs::read_to_string(repo.join(".dvc/config.local")).unwrap();
    assert!(local.contains("secret_access_key = hunter2"), "{local}");

    let out = taxon(&repo)
        .args(["data", "remote", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("s3r") && text.contains("***"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let listed = taxon_json(&repo, &["data", "remote", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("hunter2"));

    // An unknown option is refused before anything is written.
    let out = taxon(&repo)
        .args(["data", "remote", "modify", "s3r", "endpoint", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown remote option"));

    taxon(&repo)
        .args(["data", "remote", "remove", "s3r"])
        .assert()
        .success();
    let local = std::fs::read_to_string(repo.join(".dvc/config.local")).unwrap();
    assert!(!local.contains("s3r"), "{local}");
    let listed = taxon_json(&repo, &["data", "remote", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn status_cloud_reports_what_push_and_pull_would_move() {
    let (_tmp, repo, _remote) = repo_with_data();
    let before = taxon_json(&repo, &["data", "status", "-c"]);
    assert_eq!(before["remote"]["remote"], "store", "{before}");
    // 30 files + 1 manifest + labels.tsv, none pushed yet.
    assert_eq!(
        before["remote"]["missing_on_remote"]
            .as_array()
            .map(Vec::len),
        Some(32),
        "{before}"
    );
    assert_eq!(before["workspace"][0]["status"], "up_to_date", "{before}");

    taxon_json(&repo, &["data", "push"]);
    let after = taxon_json(&repo, &["data", "status", "--remote", "store"]);
    assert_eq!(
        after["remote"]["missing_on_remote"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "{after}"
    );

    forget_local(&repo);
    let gone = taxon_json(&repo, &["data", "status", "-c"]);
    assert_eq!(
        gone["remote"]["missing_locally"].as_array().map(Vec::len),
        Some(2),
        "only the manifest and labels.tsv are known without the manifest in cache: {gone}"
    );
}
