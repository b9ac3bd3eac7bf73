//! Nothing secret reaches the log: the whole test binary logs (at trace level) into a buffer,
//! and after a failed and a successful login neither the passwords nor the token are in it.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::StatusCode;
use tracing_subscriber::fmt::MakeWriter;

use crate::common::server;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The process-wide log buffer (a global subscriber, so the blocking password checks on
/// other threads are captured too).
fn captured() -> &'static Buffer {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(buffer.clone())
            .init();
        buffer
    })
}

fn text() -> String {
    String::from_utf8_lossy(&captured().0.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn passwords_and_tokens_never_reach_the_log() {
    captured();
    let s = server();
    let wrong = "hunter2-wrong-password";
    let r = s.token(&[("username", "alice"), ("password", wrong)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A password typed into the user name field.
    let typed_as_name = "Pa55word-in-the-name-field";
    let r = s
        .token(&[("username", typed_as_name), ("password", "x-x-x-x-x")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let token = s.login("alice", "alice-password").await;
    let r = s.call("/predict", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s.call("/predict", Some("forged.token.value")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let log = text();
    // The log did record the logins (so the test can see what it checks).
    assert!(log.contains("login failed"), "{log}");
    assert!(log.contains("issued a token"), "{log}");
    assert!(log.contains("alice"), "{log}");
    for secret in [
        wrong,
        typed_as_name,
        "alice-password",
        token.as_str(),
        "forged.token.value",
        crate::common::SECRET,
    ] {
        assert!(!log.contains(secret), "`{secret}` is in the log:\n{log}");
    }
    // No piece of the token either (its signature is the part that must stay secret).
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature));
}
