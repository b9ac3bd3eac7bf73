//! `taxon users add | remove | list | passwd` through the binary: the store round trip, scopes,
//! where passwords come from, `--json`, and exit codes (0 done, 1 no such user, 2 refused).

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;
use taxon_auth::{Scope, UserStore};

/// `taxon` in `dir` with no password or store coming from the caller's environment and an
/// empty, non-terminal stdin.
fn users(dir: &Path) -> Command {
    let mut c = crate::common::tools::taxon(dir);
    c.env_remove("TAXON_PASSWORD")
        .env_remove("TAXON_USERS_DB")
        .write_stdin("")
        .arg("users");
    c
}

/// `taxon users add NAME ARGS` with `password` on stdin; asserts success.
fn add(dir: &Path, name: &str, password: &str, args: &[&str]) {
    users(dir)
        .args(["add", name, "--password-stdin"])
        .args(args)
        .write_stdin(format!("{password}\n"))
        .assert()
        .success();
}

fn list_json(dir: &Path) -> Vec<Value> {
    let out = users(dir).args(["list", "--json"]).output().unwrap();
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

fn store(dir: &Path) -> UserStore {
    UserStore::open(&dir.join(".taxon/users.db")).unwrap()
}

#[test]
fn add_list_remove_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add(d, "alice", "alice-password", &[]);
    add(d, "ops", "ops-password", &["--scope", "admin"]);
    add(
        d,
        "root",
        "root-password",
        &["--scope", "admin", "--scope", "predict"],
    );
    add(d, "both", "both-password", &["--scope", "predict,admin"]);

    let listed = list_json(d);
    let names: Vec<&str> = listed.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "both", "ops", "root"]);
    let scopes = |i: usize| listed[i]["scopes"].clone();
    assert_eq!(scopes(0), serde_json::json!(["predict"]), "default scope");
    assert_eq!(scopes(1), serde_json::json!(["predict", "admin"]));
    assert_eq!(scopes(2), serde_json::json!(["admin"]));
    assert_eq!(scopes(3), serde_json::json!(["predict", "admin"]));
    assert!(listed[0]["created_at"].is_string());
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains("argon2") && !text.contains("hash"), "{text}");

    // The human table.
    users(d).arg("list").assert().success().stdout(
        contains("alice")
            .and(contains("predict admin"))
            .and(contains("created")),
    );

    // The stored hash checks the password, which is nowhere in the file.
    let s = store(d);
    assert_eq!(
        s.verify("ops", "ops-password").unwrap().unwrap().scopes,
        vec![Scope::Admin]
    );
    assert!(s.verify("ops", "alice-password").unwrap().is_none());
    let bytes = std::fs::read(d.join(".taxon/users.db")).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("ops-password"));

    users(d)
        .args(["remove", "ops"])
        .assert()
        .success()
        .stdout(contains("removed user ops"));
    let names: Vec<String> = list_json(d)
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alice", "both", "root"]);
}

#[test]
fn json_output_of_add_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let out = users(dir.path())
        .args(["add", "alice", "--password-stdin", "--json"])
        .write_stdin("alice-password\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "alice");
    assert_eq!(v["scopes"], serde_json::json!(["predict"]));

    let out = users(dir.path())
        .args(["--json", "remove", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({ "name": "alice", "removed": true }));
    assert_eq!(list_json(dir.path()), Vec::<Value>::new());
}

#[test]
fn removing_an_unknown_user_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    add(dir.path(), "alice", "alice-password", &[]);
    users(dir.path())
        .args(["remove", "bob"])
        .assert()
        .code(1)
        .stderr(contains("no user `bob`"));
    assert_eq!(list_json(dir.path()).len(), 1);
}

#[test]
fn a_duplicate_user_is_refused_and_keeps_its_password() {
    let dir = tempfile::tempdir().unwrap();
    add(dir.path(), "alice", "alice-password", &[]);
    users(dir.path())
        .args(["add", "alice", "--password-stdin", "--scope", "admin"])
        .write_stdin("other-password\n")
        .assert()
        .code(2)
        .stderr(contains("already exists").and(contains("passwd")));
    let s = store(dir.path());
    let alice = s.verify("alice", "alice-password").unwrap().unwrap();
    assert_eq!(alice.scopes, vec![Scope::Predict]);
}

#[test]
fn short_and_empty_passwords_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    users(dir.path())
        .args(["add", "alice", "--password-stdin"])
        .write_stdin("1234567\n")
        .assert()
        .code(2)
        .stderr(contains("at least 8 characters"));
    users(dir.path())
        .args(["add", "alice", "--password-stdin"])
        .write_stdin("\n")
        .assert()
        .code(2)
        .stderr(contains("empty"));
    users(dir.path())
        .args(["add", "alice"])
        .env("TAXON_PASSWORD", "short")
        .assert()
        .code(2)
        .stderr(contains("at least 8 characters"));
    // Eight characters of one letter, or one run, are not a password either.
    for weak in ["aaaaaaaa", "12345678"] {
        users(dir.path())
            .args(["add", "alice"])
            .env("TAXON_PASSWORD", weak)
            .assert()
            .code(2)
            .stderr(contains("too weak"))
            .stderr(contains("at least 5 of them different"));
    }
    assert!(list_json(dir.path()).is_empty());
}

#[test]
fn the_password_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    users(dir.path())
        .args(["add", "alice"])
        .env("TAXON_PASSWORD", "from the env 1")
        .assert()
        .success();
    assert!(
        store(dir.path())
            .verify("alice", "from the env 1")
            .unwrap()
            .is_some()
    );
}

#[test]
fn without_a_password_source_or_terminal_nothing_is_added() {
    let dir = tempfile::tempdir().unwrap();
    users(dir.path())
        .args(["add", "alice"])
        .assert()
        .code(2)
        .stderr(contains("--password-stdin").and(contains("TAXON_PASSWORD")));
    assert!(list_json(dir.path()).is_empty());
}

#[test]
fn only_the_first_stdin_line_is_the_password() {
    let dir = tempfile::tempdir().unwrap();
    users(dir.path())
        .args(["add", "alice", "--password-stdin"])
        .write_stdin("with spaces ok\r\nsecond line\n")
        .assert()
        .success();
    let s = store(dir.path());
    assert!(s.verify("alice", "with spaces ok").unwrap().is_some());
    assert!(s.verify("alice", "second line").unwrap().is_none());
}

#[test]
fn passwd_changes_the_password() {
    let dir = tempfile::tempdir().unwrap();
    add(dir.path(), "alice", "first-password", &[]);
    users(dir.path())
        .args(["passwd", "alice", "--password-stdin"])
        .write_stdin("second-password\n")
        .assert()
        .success()
        .stdout(contains("changed the password of alice"));
    let s = store(dir.path());
    assert!(s.verify("alice", "first-password").unwrap().is_none());
    assert!(s.verify("alice", "second-password").unwrap().is_some());

    users(dir.path())
        .args(["passwd", "alice", "--password-stdin"])
        .write_stdin("short\n")
        .assert()
        .code(2);
    assert!(s.verify("alice", "second-password").unwrap().is_some());

    users(dir.path())
        .args(["passwd", "nobody", "--password-stdin"])
        .write_stdin("whatever-password\n")
        .assert()
        .code(1)
        .stderr(contains("no user `nobody`"));
}

#[test]
fn unknown_scopes_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    users(dir.path())
        .args(["add", "alice", "--password-stdin", "--scope", "root"])
        .write_stdin("alice-password\n")
        .assert()
        .code(2)
        .stderr(contains("unknown scope `root`").and(contains("predict, admin")));
    users(dir.path())
        .args(["add", "a b", "--password-stdin"])
        .write_stdin("alice-password\n")
        .assert()
        .code(2)
        .stderr(contains("invalid user name"));
    assert!(list_json(dir.path()).is_empty());
}

#[test]
fn the_store_location_follows_the_flag_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    users(d)
        .args([
            "add",
            "alice",
            "--password-stdin",
            "--users-db",
            "flag/users.db",
        ])
        .write_stdin("alice-password\n")
        .assert()
        .success();
    users(d)
        .args(["add", "bob", "--password-stdin"])
        .env("TAXON_USERS_DB", d.join("env.db"))
        .write_stdin("bob-password\n")
        .assert()
        .success();
    let flag = UserStore::open(&d.join("flag/users.db")).unwrap();
    let env = UserStore::open(&d.join("env.db")).unwrap();
    assert_eq!(flag.list().unwrap()[0].name, "alice");
    assert_eq!(env.list().unwrap()[0].name, "bob");
    assert!(!d.join(".taxon/users.db").exists());
}

#[test]
fn listing_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    assert!(list_json(dir.path()).is_empty());
    users(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout(contains("name"));
}
