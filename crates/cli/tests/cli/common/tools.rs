//! Generic helpers for integration tests that need external tools (moto_server, dvc) and a
//! scratch repository driven through the `taxon` binary.
//!
//! Tools come from `$TAXON_VENV/bin` (default `$HOME/.cache/taxon/venv/bin`). When one is
//! missing a test prints a skip notice and returns, unless `TAXON_REQUIRE_TOOLS=1` (CI), where
//! it fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// The venv that holds dvc and moto.
pub fn venv() -> PathBuf {
    std::env::var_os("TAXON_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/taxon/venv")))
        .unwrap_or_else(|| PathBuf::from(".venv"))
}

/// `venv/bin/NAME` when it exists; otherwise a skip notice (or a panic under
/// `TAXON_REQUIRE_TOOLS=1`) and `None`.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let path = venv().join("bin").join(name);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!(
            "{} not found (TAXON_REQUIRE_TOOLS=1): install it into {} (scripts/setup-tools.sh)",
            path.display(),
            venv().display()
        );
    }
    eprintln!("skipping: {} not found", path.display());
    None
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// One HTTP/1.1 request without a body to 127.0.0.1:port; returns the status code.
pub fn http_status(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))
}

/// The raw response (head and body) of one HTTP/1.1 request without a body.
pub fn http_raw(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(dechunk(&String::from_utf8_lossy(&buf)))
}

/// A raw HTTP/1.1 response with a chunked body (Go servers chunk long ones) rejoined into one
/// body, so no chunk-size line lands inside the text a test searches; other responses as they
/// are.
fn dechunk(response: &str) -> String {
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return response.to_string();
    };
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return response.to_string();
    }
    let mut out = format!("{head}\r\n\r\n");
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let (Some(chunk), Some(next)) = (after.get(..n), after.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        rest = next.trim_start_matches("\r\n");
    }
    out
}

/// A moto S3 server on a free port, stopped (with its process group) on drop. moto accepts any credentials, so tests
/// against it check the S3 protocol (listing, multipart, atomicity), not authentication.
pub struct Moto {
    _service: super::service::Service,
    pub port: u16,
}

impl Moto {
    /// Starts moto_server, or `None` (skip) when it is not installed.
    pub fn start() -> Option<Self> {
        let bin = require_tool("moto_server")?;
        let port = free_port();
        let service = super::service::Service::spawn(
            "moto_server",
            StdCommand::new(bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let moto = Moto {
            _service: service,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http_status(port, "GET", "/").is_ok() {
                return Some(moto);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not answer on port {port} within 30 s");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto needs no signature).
    /// The keys in `bucket` (first 1000), by an unsigned ListObjectsV2.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let body =
            http_raw(self.port, "GET", &format!("/{bucket}?list-type=2")).unwrap_or_default();
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The ETag of an object (a multipart upload's ETag ends in `-<parts>`).
    pub fn etag(&self, bucket: &str, key: &str) -> Option<String> {
        let head = http_raw(self.port, "HEAD", &format!("/{bucket}/{key}")).ok()?;
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("etag:"))
            .map(|l| l[5..].trim().trim_matches('"').to_string())
    }

    /// Stores `body` as `bucket/key` with an unsigned PUT (moto needs no signature).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf);
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "PUT {bucket}/{key}: {head}"
        );
    }

    /// The body of `bucket/key` (a text object), read with boto3 (which comes with moto) and
    /// the test credentials: an object that taxon uploaded is private, so an unsigned GET gets
    /// 403. `None` when the read fails (no such object).
    pub fn get_object(&self, bucket: &str, key: &str) -> Option<String> {
        const GET: &str = "import sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
                aws_access_key_id='testing', aws_secret_access_key='testing')\n\
            body = s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])['Body'].read()\n\
            sys.stdout.write(body.decode())\n";
        let out = StdCommand::new(venv().join("bin/python"))
            .args(["-c", GET, &self.endpoint(), bucket, key])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn create_bucket(&self, name: &str) {
        let code = http_status(self.port, "PUT", &format!("/{name}")).expect("create bucket");
        assert!(code == 200, "create bucket {name}: HTTP {code}");
    }
}

/// The `taxon` binary, run in `dir`, quiet, with a fixed environment for S3 credentials.
pub fn taxon(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("taxon").expect("taxon binary");
    c.current_dir(dir)
        .env("TAXON_QUIET", "true")
        .env_remove("TAXON_JSON")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("TAXON_FERNET_KEY");
    c
}

/// Runs `taxon --json ARGS` in `dir`, asserts success, returns the parsed JSON.
pub fn taxon_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = taxon(dir)
        .arg("--json")
        .args(args)
        .output()
        .expect("run taxon");
    assert!(
        out.status.success(),
        "taxon {args:?} failed ({}): {}\nstdout: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "taxon {args:?}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A small deterministic file tree: `n` files of 100..2100 bytes under `dir`.
pub fn write_tree(dir: &Path, n: usize, seed: u64) {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in 0..n {
        let sub = dir.join(format!("part{}", i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 100 + (x >> 33) as usize % 2000;
        let body: String = (0..len)
            .map(|j| (b'a' + ((x as usize >> 7) + j * 31 + i) as u8 % 26) as char)
            .collect();
        std::fs::write(sub.join(format!("f{i:04}.txt")), format!("{i}\t{body}\n")).unwrap();
    }
}

/// Every file under `dir` with its bytes, relative paths sorted.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Makes every file under `dir` writable, then removes it (cache objects are 0444).
pub fn remove_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    fn chmod(d: &Path) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
                if p.is_dir() {
                    chmod(&p);
                }
            }
        }
    }
    chmod(dir);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Object files stored under a local remote or cache root (`files/md5/xx/yyyy`).
pub fn objects_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = root.join("files/md5");
    if let Ok(rd) = std::fs::read_dir(&base) {
        for d in rd.flatten() {
            if let Ok(rd2) = std::fs::read_dir(d.path()) {
                out.extend(rd2.flatten().map(|e| e.path()));
            }
        }
    }
    out.sort();
    out
}
