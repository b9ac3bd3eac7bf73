//! Each channel type against a real receiver: Slack and webhook POSTs to the local sink,
//! e-mail through aiosmtpd (a real SMTP server, started from the test venv in its own
//! process group on 127.0.0.1 and killed at the end).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use taxon_alerts::config::Secret;
use taxon_alerts::{Channel, EmailChannel, Message, Notice, Sender, Status, Tls, test_notice};

use crate::common::Sink;

fn notice(status: Status) -> Notice {
    Notice {
        status,
        alert: "brute-force".into(),
        severity: "critical".into(),
        summary: "too many authentication failures".into(),
        description: "42.0 authentication failures per minute".into(),
        value: 42.0,
        threshold: 10.0,
        model_version: "v7".into(),
        started_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        resolved_at: None,
        labels: BTreeMap::from([("model".to_string(), "news".to_string())]),
        alert_id: 0,
    }
}

fn message(notices: Vec<Notice>) -> Message {
    Message {
        notices,
        deliveries: Vec::new(),
    }
}

#[tokio::test]
async fn slack_gets_text_and_blocks() {
    let sink = Sink::start().await;
    let slack = Channel::Slack {
        url: Secret::new(&sink.url),
    };
    Sender::new()
        .unwrap()
        .send(&slack, &message(vec![notice(Status::Firing)]))
        .await
        .unwrap();
    let b = &sink.bodies()[0];
    assert_eq!(b["text"], "[taxon] FIRING critical: brute-force — news v7");
    let blocks = b["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("*FIRING* `brute-force`"),
        "{b}"
    );
}

#[tokio::test]
async fn a_webhook_gets_taxons_json_and_a_refusal_is_an_error() {
    let sink = Sink::refusing(1).await;
    let hook = Channel::Webhook {
        url: Secret::new(&sink.url),
    };
    let sender = Sender::new().unwrap();
    let m = message(vec![notice(Status::Firing)]);
    let err = sender.send(&hook, &m).await.unwrap_err();
    assert!(err.contains("503"), "{err}");
    sender.send(&hook, &m).await.unwrap();
    let b = &sink.bodies()[0];
    for key in [
        "status",
        "alert",
        "severity",
        "summary",
        "description",
        "value",
        "threshold",
        "model_version",
        "started_at",
        "resolved_at",
        "labels",
    ] {
        assert!(b.get(key).is_some(), "{key} missing from {b}");
    }
    assert_eq!(b["value"], 42.0);
}

#[tokio::test]
async fn an_unreachable_webhook_is_an_error_without_its_url() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let hook = Channel::Webhook {
        url: Secret::new(format!("http://127.0.0.1:{port}/secret-token-path")),
    };
    let err = Sender::new()
        .unwrap()
        .send(&hook, &test_notice("hook"))
        .await
        .unwrap_err();
    assert!(err.contains("connect"), "{err}");
    assert!(!err.contains("secret-token-path"), "{err}");
}

/// The venv python with aiosmtpd, or a skip notice (a panic under TAXON_REQUIRE_TOOLS=1).
fn aiosmtpd_python() -> Option<PathBuf> {
    let venv = std::env::var_os("TAXON_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/taxon/venv")))?;
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let required = ["TAXON_REQUIRE_TOOLS", "TAXON_REQUIRE_SERVICES"]
        .iter()
        .any(|v| std::env::var(v).as_deref() == Ok("1"));
    if required {
        panic!(
            "aiosmtpd is not importable by {} (required): scripts/setup-tools.sh installs it",
            python.display()
        );
    }
    eprintln!(
        "SKIPPED: aiosmtpd is not importable by {}; run scripts/setup-tools.sh",
        python.display()
    );
    None
}

/// aiosmtpd on 127.0.0.1, writing each mail into a Maildir; killed (its process group) on
/// drop.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(python: &Path, dir: &Path) -> Smtp {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let maildir = dir.join("maildir");
        let child = Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp {
            child,
            port,
            maildir,
        }
    }

    /// The mails received, decoded by Python's `email` package: `Subject: ...`, `To: ...`,
    /// a blank line and the text body.
    fn mails(&self, python: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        const DECODE: &str = "import email, email.policy, sys\n\
            m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
            print('Subject: ' + str(m['subject']))\n\
            print('To: ' + str(m['to']))\n\
            print()\n\
            print(m.get_content())";
        entries
            .map(|e| {
                let out = Command::new(python)
                    .args(["-c", DECODE])
                    .arg(e.unwrap().path())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let pgid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pgid) = pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_server() {
    let Some(python) = aiosmtpd_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&python, dir.path());
    let email = Channel::Email(EmailChannel {
        smtp_host: "127.0.0.1".into(),
        smtp_port: smtp.port,
        tls: Tls::None,
        username: None,
        password: None,
        from: "taxon <taxon@example.org>".into(),
        to: vec!["ops@example.org".into(), "oncall@example.org".into()],
    });
    let sender = Sender::new().unwrap();
    sender
        .send(&email, &message(vec![notice(Status::Firing)]))
        .await
        .unwrap();
    let mut resolved = notice(Status::Resolved);
    resolved.resolved_at = Some(chrono::DateTime::from_timestamp(1_800_000_600, 0).unwrap());
    sender
        .send(&email, &message(vec![resolved, notice(Status::Firing)]))
        .await
        .unwrap();
    let mails = smtp.mails(&python);
    assert_eq!(mails.len(), 2, "{mails:?}");
    let firing = mails
        .iter()
        .find(|m| m.starts_with("Subject: [taxon] FIRING critical: brute-force — news v7\n"))
        .unwrap_or_else(|| panic!("no firing mail in {mails:?}"));
    assert!(
        firing.contains("ops@example.org") && firing.contains("oncall@example.org"),
        "{firing}"
    );
    assert!(firing.contains("value 42 (threshold 10)"), "{firing}");
    assert!(
        firing.contains("too many authentication failures"),
        "{firing}"
    );
    let group = mails
        .iter()
        .find(|m| m.starts_with("Subject: [taxon] 2 alerts: 1 firing, 1 resolved\n"))
        .unwrap_or_else(|| panic!("no grouped mail in {mails:?}"));
    assert!(group.contains("RESOLVED critical: brute-force"), "{group}");
    assert!(group.contains("resolved 2027-01-15T08:10:00Z"), "{group}");

    // STARTTLS is required when configured: a server without it is an error, never a
    // plain-text fallback.
    let Channel::Email(mut plain) = email.clone() else {
        unreachable!()
    };
    plain.tls = Tls::Starttls;
    let err = sender
        .send(&Channel::Email(plain), &test_notice("mail"))
        .await
        .unwrap_err();
    assert!(err.contains(&smtp.port.to_string()), "{err}");
    assert_eq!(smtp.mails(&python).len(), 2, "nothing sent in the clear");

    // A server that is gone: an error naming host and port.
    drop(smtp);
    let err = sender.send(&email, &test_notice("mail")).await.unwrap_err();
    assert!(err.contains("127.0.0.1"), "{err}");
}
