//! `taxon data keygen | encrypt | decrypt` end to end: round trips, key sources, and the
//! errors that leave no output file behind.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;

fn taxon() -> Command {
    let mut c = Command::cargo_bin("taxon").unwrap();
    c.env_remove("TAXON_FERNET_KEY")
        .env_remove("TAXON_JSON")
        .env_remove("TAXON_QUIET");
    c
}

fn keygen(path: &Path) {
    taxon()
        .args(["data", "keygen", "--output"])
        .arg(path)
        .assert()
        .code(0);
}

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn keygen_prints_a_44_char_key_and_writes_private_key_files() {
    let out = taxon()
        .args(["data", "keygen"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let key = String::from_utf8(out).unwrap();
    assert_eq!(key.trim().len(), 44);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    keygen(&path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // An existing key file is never replaced silently.
    let before = fs::read(&path).unwrap();
    taxon()
        .args(["data", "keygen", "--output"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(contains("already exists"));
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn encrypt_then_decrypt_with_a_key_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    keygen(&key);
    let src = dir.path().join("data.bin");
    let plain = bytes(2_500_000);
    fs::write(&src, &plain).unwrap();
    taxon()
        .args(["data", "encrypt"])
        .arg(&src)
        .arg("--key-file")
        .arg(&key)
        .assert()
        .code(0);
    let enc = dir.path().join("data.bin.fernet");
    let sealed = fs::read_to_string(&enc).unwrap();
    // 1 MiB chunks: two full tokens and a short one, each on its own line.
    assert_eq!(sealed.lines().count(), 3);
    assert!(sealed.lines().all(|l| l.starts_with("gAAAAA")));
    fs::remove_file(&src).unwrap();
    taxon()
        .args(["data", "decrypt"])
        .arg(&enc)
        .arg("--key-file")
        .arg(&key)
        .assert()
        .code(0);
    assert_eq!(fs::read(&src).unwrap(), plain);
}

#[test]
fn key_from_the_environment_and_chunk_size() {
    let dir = tempfile::tempdir().unwrap();
    let key = String::from_utf8(
        taxon()
            .args(["data", "keygen"])
            .assert()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    let src = dir.path().join("a.txt");
    fs::write(&src, "hello, fernet\n".repeat(100)).unwrap();
    let enc = dir.path().join("a.enc");
    taxon()
        .env("TAXON_FERNET_KEY", key.trim())
        .args(["data", "encrypt", "--chunk-size", "100", "-o"])
        .arg(&enc)
        .arg(&src)
        .assert()
        .code(0);
    // 1400 bytes in 100-byte chunks: 14 full tokens and the closing empty one.
    assert_eq!(fs::read_to_string(&enc).unwrap().lines().count(), 15);
    let out = dir.path().join("a.out");
    taxon()
        .env("TAXON_FERNET_KEY", key.trim())
        .args(["data", "decrypt", "-o"])
        .arg(&out)
        .arg(&enc)
        .assert()
        .code(0);
    assert_eq!(fs::read(&out).unwrap(), fs::read(&src).unwrap());
}

#[test]
fn no_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.txt");
    fs::write(&src, "x").unwrap();
    taxon()
        .args(["data", "encrypt"])
        .arg(&src)
        .assert()
        .code(2)
        .stderr(contains("TAXON_FERNET_KEY"))
        .stderr(contains("keygen"));
    assert!(!dir.path().join("a.txt.fernet").exists());
}

#[test]
fn wrong_key_and_tampering_leave_no_output_and_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (dir.path().join("k1.key"), dir.path().join("k2.key"));
    keygen(&k1);
    keygen(&k2);
    let src = dir.path().join("secret.csv");
    fs::write(&src, bytes(1_200_000)).unwrap();
    taxon()
        .args(["data", "encrypt"])
        .arg(&src)
        .arg("--key-file")
        .arg(&k1)
        .assert()
        .code(0);
    fs::remove_file(&src).unwrap();
    let enc = dir.path().join("secret.csv.fernet");

    taxon()
        .args(["data", "decrypt"])
        .arg(&enc)
        .arg("--key-file")
        .arg(&k2)
        .assert()
        .code(2)
        .stderr(contains("secret.csv.fernet:1"))
        .stderr(contains("wrong key"));
    assert!(!src.exists());

    // Flip one character in the second token.
    let mut sealed = fs::read(&enc).unwrap();
    let second = sealed.iter().position(|b| *b == b'\n').unwrap() + 1;
    sealed[second + 100] = if sealed[second + 100] == b'Q' {
        b'R'
    } else {
        b'Q'
    };
    fs::write(&enc, &sealed).unwrap();
    taxon()
        .args(["data", "decrypt"])
        .arg(&enc)
        .arg("--key-file")
        .arg(&k1)
        .assert()
        .code(2)
        .stderr(contains("secret.csv.fernet:2"));
    assert!(!src.exists());
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn decrypt_without_suffix_or_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    keygen(&key);
    let enc = dir.path().join("blob.bin");
    fs::write(&enc, "whatever\n").unwrap();
    taxon()
        .args(["data", "decrypt"])
        .arg(&enc)
        .arg("--key-file")
        .arg(&key)
        .assert()
        .code(2)
        .stderr(contains("--output"));
}

#[test]
fn stdin_to_stdout_streams() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    keygen(&key);
    let sealed = taxon()
        .args(["-q", "data", "encrypt", "-", "--key-file"])
        .arg(&key)
        .write_stdin("piped plaintext")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(sealed.iter().filter(|b| **b == b'\n').count(), 1);
    taxon()
        .args(["-q", "data", "decrypt", "-", "--key-file"])
        .arg(&key)
        .write_stdin(sealed)
        .assert()
        .code(0)
        .stdout("piped plaintext");
}
