//! Integration tests of taxon-fernet: files on disk, interoperability with Python's
//! `cryptography` package, and streaming in bounded memory.

use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use taxon_fernet::{
    FernetError, Key, decrypt_file, decrypt_stream, encrypt_file, encrypt_file_with_progress,
    encrypt_stream,
};

/// Deterministic, incompressible-looking bytes.
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

mod files {
    use super::*;

    #[test]
    fn round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let (src, enc, dec) = (
            dir.path().join("a.bin"),
            dir.path().join("a.bin.fernet"),
            dir.path().join("a.out"),
        );
        let plain = data(3 * 1024 * 1024 + 17);
        std::fs::write(&src, &plain).unwrap();
        let key = Key::generate();
        assert_eq!(encrypt_file(&key, &src, &enc).unwrap(), plain.len() as u64);
        let sealed = std::fs::read(&enc).unwrap();
        // 3 full 1 MiB tokens and a short one.
        assert_eq!(sealed.iter().filter(|b| **b == b'\n').count(), 4);
        assert_eq!(decrypt_file(&key, &enc, &dec).unwrap(), plain.len() as u64);
        assert_eq!(std::fs::read(&dec).unwrap(), plain);
    }

    #[test]
    fn wrong_key_leaves_no_output_file() {
        let dir = tempfile::tempdir().unwrap();
        let (src, enc) = (dir.path().join("a.txt"), dir.path().join("a.enc"));
        std::fs::write(&src, b"top secret").unwrap();
        encrypt_file(&Key::generate(), &src, &enc).unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let dst = out_dir.path().join("a.txt");
        let err = decrypt_file(&Key::generate(), &enc, &dst).unwrap_err();
        assert!(
            matches!(err, FernetError::InvalidToken { line: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("a.enc:1"), "{err}");
        assert!(!dst.exists());
        assert!(entries(out_dir.path()).is_empty(), "temp file left");
    }

    #[test]
    fn failed_decrypt_keeps_an_existing_destination() {
        let dir = tempfile::tempdir().unwrap();
        let enc = dir.path().join("junk.enc");
        std::fs::write(&enc, b"not a token\n").unwrap();
        let dst = dir.path().join("keep.txt");
        std::fs::write(&dst, b"old").unwrap();
        assert!(decrypt_file(&Key::generate(), &enc, &dst).is_err());
        assert_eq!(std::fs::read(&dst).unwrap(), b"old");
    }

    #[test]
    fn flipped_byte_in_second_token_names_the_line_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("big.bin");
        std::fs::write(&src, data(2 * 1024 * 1024 + 5)).unwrap();
        let key = Key::generate();
        let enc = dir.path().join("big.enc");
        encrypt_file(&key, &src, &enc).unwrap();
        let mut sealed = std::fs::read(&enc).unwrap();
        let second = sealed.iter().position(|b| *b == b'\n').unwrap() + 1;
        let pos = second + 1000;
        sealed[pos] = if sealed[pos] == b'x' { b'y' } else { b'x' };
        std::fs::write(&enc, &sealed).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dst = out.path().join("big.bin");
        let err = decrypt_file(&key, &enc, &dst).unwrap_err();
        assert!(
            matches!(err, FernetError::InvalidToken { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("big.enc:2"), "{err}");
        assert!(!dst.exists());
    }

    #[test]
    fn truncated_file_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("t.bin");
        std::fs::write(&src, data(2 * 1024 * 1024 + 100)).unwrap();
        let key = Key::generate();
        let enc = dir.path().join("t.enc");
        encrypt_file(&key, &src, &enc).unwrap();
        let sealed = std::fs::read(&enc).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dst = out.path().join("t.bin");

        // Cut inside a token.
        std::fs::write(&enc, &sealed[..sealed.len() / 2]).unwrap();
        let err = decrypt_file(&key, &enc, &dst).unwrap_err();
        assert!(
            matches!(err, FernetError::InvalidToken { line: 2, .. }),
            "{err}"
        );
        assert!(!dst.exists());

        // Cut on a token boundary: the file ends with a full token.
        let two = sealed
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0;
        std::fs::write(&enc, &sealed[..=two]).unwrap();
        let err = decrypt_file(&key, &enc, &dst).unwrap_err();
        assert!(
            matches!(err, FernetError::Truncated { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("t.enc:2"), "{err}");
        assert!(!dst.exists());
        assert!(entries(out.path()).is_empty());
    }

    #[test]
    fn missing_source_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = encrypt_file(
            &Key::generate(),
            &dir.path().join("absent.txt"),
            &dir.path().join("out"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("absent.txt"), "{err}");
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn progress_reports_every_byte_read() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("p.bin");
        std::fs::write(&src, data(300_000)).unwrap();
        let mut seen = 0u64;
        encrypt_file_with_progress(
            &Key::generate(),
            &src,
            &dir.path().join("p.enc"),
            65_536,
            |n| seen += n,
        )
        .unwrap();
        assert_eq!(seen, 300_000);
    }
}

mod streaming {
    use super::*;

    /// An endless-looking source that counts what it has handed out.
    struct Source {
        left: u64,
        produced: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (buf.len() as u64).min(self.left).min(8192) as usize;
            buf[..n].fill(b'z');
            self.left -= n as u64;
            self.produced.set(self.produced.get() + n as u64);
            Ok(n)
        }
    }

    /// A sink that keeps nothing but counts, and records how far the source was when each
    /// write arrived and the largest single write.
    struct Sink {
        produced: std::rc::Rc<std::cell::Cell<u64>>,
        bytes: u64,
        newlines: u64,
        first_write_at: Option<u64>,
        largest_write: usize,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.first_write_at.get_or_insert(self.produced.get());
            self.largest_write = self.largest_write.max(buf.len());
            self.bytes += buf.len() as u64;
            self.newlines += buf.iter().filter(|b| **b == b'\n').count() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn five_megabytes_stream_through_in_bounded_memory() {
        const LEN: u64 = 5 * 1024 * 1024 + 123;
        const CHUNK: usize = 256 * 1024;
        let key = Key::generate();
        let produced = std::rc::Rc::new(std::cell::Cell::new(0));
        let source = Source {
            left: LEN,
            produced: produced.clone(),
        };
        let mut sink = Sink {
            produced: produced.clone(),
            bytes: 0,
            newlines: 0,
            first_write_at: None,
            largest_write: 0,
        };
        assert_eq!(encrypt_stream(&key, source, &mut sink, CHUNK).unwrap(), LEN);
        // 20 full tokens + a short one: several tokens, each written as soon as its chunk was read.
        assert_eq!(sink.newlines, 21);
        assert_eq!(sink.first_write_at, Some(CHUNK as u64));
        // Nothing larger than one token (about 4/3 of a chunk plus overhead) was ever held.
        assert!(
            sink.largest_write < CHUNK * 4 / 3 + 200,
            "{}",
            sink.largest_write
        );

        // Decrypt the same amount from a file: output arrives token by token.
        let dir = tempfile::tempdir().unwrap();
        let enc = dir.path().join("five.enc");
        let file = std::fs::File::create(&enc).unwrap();
        let produced2 = std::rc::Rc::new(std::cell::Cell::new(0));
        encrypt_stream(
            &key,
            Source {
                left: LEN,
                produced: produced2.clone(),
            },
            io::BufWriter::new(file),
            CHUNK,
        )
        .unwrap();
        let mut out = Sink {
            produced: produced2,
            bytes: 0,
            newlines: 0,
            first_write_at: None,
            largest_write: 0,
        };
        let reader = BufReader::new(std::fs::File::open(&enc).unwrap());
        assert_eq!(decrypt_stream(&key, reader, &mut out).unwrap(), LEN);
        assert_eq!(out.bytes, LEN);
        assert!(out.largest_write <= CHUNK, "{}", out.largest_write);
    }
}

mod python_interop {
    use super::*;

    /// A python3 that can import `cryptography.fernet` (installing it with pip once if needed),
    /// or None with a printed notice.
    fn python() -> Option<&'static str> {
        static PY: OnceLock<Option<&'static str>> = OnceLock::new();
        *PY.get_or_init(|| {
            let has = || {
                Command::new("python3")
                    .args(["-c", "from cryptography.fernet import Fernet"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            };
            if has() {
                return Some("python3");
            }
            let _ = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "cryptography"])
                .status();
            if has() {
                Some("python3")
            } else {
                eprintln!("SKIPPED: python3 with the `cryptography` package is not available");
                None
            }
        })
    }

    fn run_py(py: &str, script: &str, args: &[&str]) -> std::process::Output {
        let out = Command::new(py)
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    #[test]
    fn python_decrypts_a_taxon_file_line_by_line() {
        let Some(py) = python() else { return };
        let dir = tempfile::tempdir().unwrap();
        let (src, enc, back) = (
            dir.path().join("in.bin"),
            dir.path().join("in.enc"),
            dir.path().join("py.out"),
        );
        let plain = data(2 * 1024 * 1024 + 999);
        std::fs::write(&src, &plain).unwrap();
        let key = Key::generate();
        encrypt_file(&key, &src, &enc).unwrap();
        let script = r#"
import sys
from cryptography.fernet import Fernet
f = Fernet(sys.argv[1].encode())
with open(sys.argv[2], "rb") as src, open(sys.argv[3], "wb") as dst:
    n = 0
    for line in src:
        dst.write(f.decrypt(line.strip()))
        n += 1
print(n)
"#;
        let out = run_py(
            py,
            script,
            &[
                &key.to_base64(),
                enc.to_str().unwrap(),
                back.to_str().unwrap(),
            ],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
        assert_eq!(std::fs::read(&back).unwrap(), plain);
    }

    #[test]
    fn taxon_decrypts_a_python_token_and_python_key() {
        let Some(py) = python() else { return };
        let dir = tempfile::tempdir().unwrap();
        let (enc, dst) = (dir.path().join("py.enc"), dir.path().join("py.txt"));
        let script = r#"
import sys
from cryptography.fernet import Fernet
key = Fernet.generate_key()
with open(sys.argv[1], "wb") as out:
    out.write(Fernet(key).encrypt("héllo from python\n".encode()) + b"\n")
print(key.decode())
"#;
        let out = run_py(py, script, &[enc.to_str().unwrap()]);
        let key = Key::from_base64(&String::from_utf8_lossy(&out.stdout)).unwrap();
        decrypt_file(&key, &enc, &dst).unwrap();
        assert_eq!(
            std::fs::read_to_string(&dst).unwrap(),
            "héllo from python\n"
        );
        // And a wrong key is refused for the Python token too.
        let err = decrypt_file(&Key::generate(), &enc, &dst).unwrap_err();
        assert!(matches!(err, FernetError::InvalidToken { line: 1, .. }));
    }

    #[test]
    fn python_decrypts_the_empty_file_token() {
        let Some(py) = python() else { return };
        let key = Key::generate();
        let mut sealed = Vec::new();
        encrypt_stream(&key, io::empty(), &mut sealed, 1024).unwrap();
        let token = String::from_utf8(sealed).unwrap();
        let script = r#"
import sys
from cryptography.fernet import Fernet
assert Fernet(sys.argv[1].encode()).decrypt(sys.argv[2].strip().encode()) == b""
"#;
        run_py(py, script, &[&key.to_base64(), &token]);
    }
}
