//! Push and pull against a real S3-compatible server (moto, started on a free port and killed
//! when the test ends): round trip, multipart above a (lowered) threshold, and a push killed
//! with SIGKILL half-way that a second push finishes without re-uploading.
//!
//! moto accepts any credentials, so these tests exercise the S3 protocol (LIST, PUT,
//! multipart, GET), not credential checking. Without moto_server the tests print a skip notice,
//! or fail under `TAXON_REQUIRE_TOOLS=1` (CI).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::tools::{Moto, remove_tree, snapshot, taxon, taxon_json, write_tree};

const BUCKET: &str = "taxon-test";

fn s3_repo(moto: &Moto, prefix: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    taxon(&repo).args(["data", "init"]).assert().success();
    taxon(&repo)
        .args(["data", "remote", "add", "-d", "s3"])
        .arg(format!("s3://{BUCKET}/{prefix}"))
        .assert()
        .success();
    taxon(&repo)
        .args(["data", "remote", "modify", "s3", "endpointurl"])
        .arg(moto.endpoint())
        .assert()
        .success();
    (tmp, repo)
}

fn forget(repo: &Path, paths: &[&str]) {
    for p in paths {
        let p = repo.join(p);
        if p.is_dir() {
            remove_tree(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
    remove_tree(&repo.join(".dvc/cache"));
}

#[test]
fn s3_push_pull_round_trip() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket(BUCKET);
    let (_tmp, repo) = s3_repo(&moto, "round/trip");
    write_tree(&repo.join("data"), 40, 3);
    taxon(&repo)
        .args(["data", "add", "data"])
        .assert()
        .success();
    let before = snapshot(&repo.join("data"));

    let pushed = taxon_json(&repo, &["data", "push"]);
    assert_eq!(pushed["uploaded"], 41, "{pushed}");
    let keys = moto.keys(BUCKET);
    assert_eq!(keys.len(), 41);
    assert!(
        keys.iter().all(|k| k.starts_with("round/trip/files/md5/")),
        "{keys:?}"
    );
    let again = taxon_json(&repo, &["data", "push"]);
    assert_eq!(again["uploaded"], 0);
    assert_eq!(again["already_there"], 41);

    forget(&repo, &["data"]);
    let pulled = taxon_json(&repo, &["data", "pull"]);
    assert_eq!(pulled["downloaded"], 41, "{pulled}");
    assert_eq!(snapshot(&repo.join("data")), before);
}

#[test]
fn s3_large_file_goes_up_in_parts_and_comes_back_whole() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket(BUCKET);
    let (_tmp, repo) = s3_repo(&moto, "mp");
    for (k, v) in [("multipart_threshold", "1048576"), ("part_size", "5242880")] {
        taxon(&repo)
            .args(["data", "remote", "modify", "s3", k, v])
            .assert()
            .success();
    }
    // 12 MiB of non-repeating bytes: three parts of 5 MiB, 5 MiB and 2 MiB.
    let mut x: u64 = 42;
    let data: Vec<u8> = (0..12 * 1024 * 1024)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(repo.join("big.bin"), &data).unwrap();
    taxon(&repo)
        .args(["data", "add", "big.bin"])
        .assert()
        .success();
    let pushed = taxon_json(&repo, &["data", "push"]);
    assert_eq!(pushed["uploaded"], 1);
    assert_eq!(pushed["bytes"], data.len() as u64);
    let key = moto.keys(BUCKET).pop().expect("one object");
    let etag = moto.etag(BUCKET, &key).expect("etag");
    assert!(etag.ends_with("-3"), "not a 3-part upload: etag {etag}");

    forget(&repo, &["big.bin"]);
    taxon_json(&repo, &["data", "pull"]);
    assert!(
        std::fs::read(repo.join("big.bin")).unwrap() == data,
        "bytes differ"
    );
}

#[test]
fn s3_push_killed_half_way_is_finished_by_the_next_push() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket(BUCKET);
    let (_tmp, repo) = s3_repo(&moto, "kill");
    write_tree(&repo.join("data"), 600, 11);
    taxon(&repo)
        .args(["data", "add", "data"])
        .assert()
        .success();
    let total = 601u64;

    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("taxon"))
        .current_dir(&repo)
        .args(["--quiet", "data", "push", "-j", "1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while Instant::now() < deadline {
        seen = moto.keys(BUCKET).len();
        if seen >= 20 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let after_kill = moto.keys(BUCKET);
    assert!(seen >= 1, "the killed push uploaded nothing");
    if (after_kill.len() as u64) < total {
        assert!(
            !after_kill.iter().any(|k| k.ends_with(".dir")),
            "manifest uploaded before its files"
        );
    }

    let again = taxon_json(&repo, &["data", "push"]);
    assert_eq!(again["already_there"], after_kill.len() as u64, "{again}");
    assert_eq!(
        again["uploaded"].as_u64().unwrap() + again["already_there"].as_u64().unwrap(),
        total
    );
    assert_eq!(moto.keys(BUCKET).len() as u64, total);

    let before = snapshot(&repo.join("data"));
    forget(&repo, &["data"]);
    taxon_json(&repo, &["data", "pull"]);
    assert_eq!(snapshot(&repo.join("data")), before);
}
