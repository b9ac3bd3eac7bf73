//! The connection guard over real sockets on 127.0.0.1: slow and idle clients are cut off at
//! their (short, configured) deadlines, and `/health` answers while every slot is held.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::ServeConfig;
use crate::metrics::ConnClose;
use crate::source::DirSource;
use crate::state::AppState;
use crate::testing::{Gate, gated_loader, train_model};

struct Running {
    addr: SocketAddr,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server drains")
            .unwrap();
    }
}

async fn start(config: ServeConfig) -> Running {
    start_gated(config, Gate::new(true)).await
}

/// A server whose model waits for `gate` before it predicts.
async fn start_gated(config: ServeConfig, gate: Arc<Gate>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("news");
    train_model(&model, &["sport", "business"], 1);
    let source = Arc::new(DirSource::new(&model).unwrap());
    let state = AppState::start_with_loader(source, config, gated_loader(gate))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = state.clone();
    let task = tokio::spawn(async move {
        crate::server::run(listener, serving, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        addr,
        state,
        stop: Some(tx),
        task,
        _dir: dir,
    }
}

/// Whether the server closed `stream` within `within`, writing `trickle` every 100 ms meanwhile.
async fn closed_within(
    stream: &mut TcpStream,
    within: Duration,
    trickle: &[u8],
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        if !trickle.is_empty() && stream.write_all(trickle).await.is_err() {
            return Some(start.elapsed());
        }
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return Some(start.elapsed());
        }
    }
    None
}

/// `GET path` on a new connection: the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn short(config: ServeConfig) -> ServeConfig {
    ServeConfig {
        cache_capacity: 0,
        ..config
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_after_the_header_read_timeout() {
    let server = start(short(ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    }))
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(8), b"x-slow: 1\r\n").await;
    assert!(
        closed.is_some(),
        "a trickling client was still connected after 8 s"
    );
    assert_eq!(
        server
            .state
            .metrics()
            .connections_closed(ConnClose::HeaderTimeout),
        1
    );
    assert!(
        get(server.addr, "/health")
            .await
            .starts_with("HTTP/1.1 200")
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout_and_a_keep_alive_one_first_answered() {
    let server = start(short(ServeConfig {
        idle_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    }))
    .await;
    // Never sends a byte.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Sends one request and keeps the connection.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(8), b"")
            .await
            .is_some()
    );
    assert!(
        closed_within(&mut kept, Duration::from_secs(8), b"")
            .await
            .is_some()
    );
    assert_eq!(
        server
            .state
            .metrics()
            .connections_closed(ConnClose::IdleTimeout),
        2
    );
    server.stop().await;
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_at_the_body_read_timeout() {
    let server = start(short(ServeConfig {
        body_read_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    }))
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"text\": \"",
        )
        .await
        .unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(8) && !answer.ends_with(b"}") {
        if stream.write_all(b"a").await.is_err() {
            break;
        }
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"error_type\":\"request_timeout\""),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn health_answers_while_an_attacker_holds_every_connection() {
    let server = start(short(ServeConfig {
        max_connections: 8,
        ..ServeConfig::default()
    }))
    .await;
    let mut held = Vec::new();
    for i in 0..8 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        if i % 2 == 0 {
            // Half of them start a request head and stop there.
            s.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        }
        held.push(s);
    }
    let metrics = server.state.metrics();
    let open = || {
        let text = metrics.render(0);
        text.lines()
            .find_map(|l| l.strip_prefix("taxon_connections_open "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while open() < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open(), 8, "the attacker's connections are open");
    for path in ["/health", "/ready", "/health"] {
        let answer = get(server.addr, path).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    }
    // The first made room; the next ones found the slot it left.
    assert_eq!(metrics.connections_closed(ConnClose::Evicted), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while open() > 7 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open(), 7, "the evicted connection is closed");
    assert!(metrics.render(0).contains("taxon_connections_max 8"));
    drop(held);
    server.stop().await;
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_one_is_closed_at_once() {
    let gate = Gate::new(true);
    let server = start_gated(
        short(ServeConfig {
            max_connections: 2,
            ..ServeConfig::default()
        }),
        Arc::clone(&gate),
    )
    .await;
    gate.set(false);
    let body = br#"{"text": "the striker scored"}"#;
    let request = format!(
        "POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        busy.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server
        .state
        .metrics()
        .render(0)
        .contains("taxon_inflight_requests 2\n")
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    let _ = refused
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut refused, Duration::from_secs(5), b"")
            .await
            .is_some()
    );
    assert_eq!(
        server
            .state
            .metrics()
            .connections_closed(ConnClose::Refused),
        1
    );
    gate.set(true);
    for mut s in busy {
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    server.stop().await;
}
