//! The library API: counts add up and every outcome is classified as the server answered.

use std::sync::Arc;
use std::time::Duration;

use taxon_loadgen::{Config, FieldPath, Target, Texts};

use crate::server::{self, Served};

fn texts(n: usize) -> Arc<Texts> {
    let lines: Vec<String> = (0..n)
        .map(|i| format!("text number {i} about \"sport\""))
        .collect();
    Arc::new(Texts::from_lines(lines.iter().map(String::as_str)))
}

async fn config(url: &str, lines: usize) -> Config {
    Config {
        target: Target::resolve(url).await.unwrap(),
        texts: texts(lines),
        concurrency: 4,
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        rate: None,
        headers: Vec::new(),
        timeout: Duration::from_secs(10),
        server_pid: None,
        track: None,
        timeline: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_match_what_the_server_answered() {
    let (addr, served) = server::start().await;
    let mut cfg = config(&format!("http://{addr}/v1/predict"), 1_000_000).await;
    cfg.track = Some(FieldPath::parse("model.version").unwrap());
    cfg.server_pid = Some(std::process::id());
    let report = taxon_loadgen::run(cfg).await.unwrap();
    let c = &report.counts;

    let total = Served::get(&served.total);
    assert!(
        total > 50,
        "too few requests to exercise every answer: {total}"
    );
    assert_eq!(c.requests, total);
    assert_eq!(c.ok + c.rejected + c.failed, c.requests);
    assert_eq!(
        c.ok,
        Served::get(&served.ok_v1) + Served::get(&served.ok_v2)
    );
    assert_eq!(c.rejected, Served::get(&served.unavailable));
    assert_eq!(c.rejected_without_retry_after, 0);
    assert_eq!((c.failed, c.failed_status), (1, 1));
    assert_eq!(Served::get(&served.bad_body), 0);
    assert_eq!(report.statuses.get(&500), Some(&1));
    assert_eq!(report.statuses.get(&503), Some(&c.rejected));
    assert_eq!(report.latency_ok.count, c.ok);
    assert_eq!(report.latency_all.count, c.requests);
    assert!(report.latency_ok.p50_us <= report.latency_ok.p99_us);
    assert!(report.latency_ok.p99_us <= report.latency_ok.max_us);

    // Every text distinct, as the server saw them.
    assert_eq!(report.texts.sent, total);
    assert_eq!(report.texts.distinct_sent as u64, total);
    assert!(!report.texts.repeated);
    assert_eq!(served.texts.lock().unwrap().len() as u64, total);
    assert_eq!(report.connections_opened, 4);

    // The tracked field: version 1 then version 2, counted as served.
    let versions: Vec<(&str, u64)> = report
        .tracked
        .iter()
        .map(|v| (v.value.as_str(), v.count))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("1", Served::get(&served.ok_v1)),
            ("2", Served::get(&served.ok_v2))
        ]
    );
    assert!(report.tracked[0].first_s <= report.tracked[1].first_s);

    let rss = report.server.as_ref().unwrap().rss.as_ref().unwrap();
    assert!(rss.samples >= 1 && rss.first_kib > 0 && rss.max_kib >= rss.last_kib);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_what_is_due_and_fills_the_timeline() {
    let (addr, served) = server::start().await;
    let mut cfg = config(&format!("http://{addr}/v1/predict"), 50).await;
    cfg.rate = Some(200.0);
    cfg.duration = Duration::from_secs(2);
    cfg.warmup = Duration::from_millis(500);
    cfg.timeline = true;
    let report = taxon_loadgen::run(cfg).await.unwrap();
    let c = &report.counts;

    assert_eq!(report.mode, "open");
    // 400 requests are due in the 2 s window: each was recorded or reported unsent.
    assert_eq!(c.requests + report.unsent.unwrap(), 400);
    // Warmup requests reached the server but are not in the counts.
    assert_eq!(report.texts.sent, Served::get(&served.total));
    assert!(report.texts.sent > c.requests);
    // Fewer texts than requests: the repeat is reported.
    assert_eq!(report.texts.distinct_sent, 50);
    assert!(report.texts.repeated);

    // Service time (from send) never exceeds latency from the scheduled time.
    assert_eq!(report.latency_ok_service.count, c.ok);
    assert!(report.latency_ok_service.max_us <= report.latency_ok.max_us);

    let rows = report.timeline.as_ref().unwrap();
    assert!(!rows.is_empty() && rows.len() <= 2, "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.ok).sum::<u64>(), c.ok);
    assert_eq!(rows.iter().map(|r| r.rejected).sum::<u64>(), c.rejected);
    assert_eq!(rows.iter().map(|r| r.failed).sum::<u64>(), c.failed);
}

#[tokio::test]
async fn refused_connections_count_as_connect_failures() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut cfg = config(&format!("http://{addr}/v1/predict"), 10).await;
    cfg.duration = Duration::from_millis(300);
    cfg.concurrency = 2;
    let report = taxon_loadgen::run(cfg).await.unwrap();
    let c = &report.counts;
    assert!(c.requests >= 2);
    assert_eq!((c.ok, c.rejected), (0, 0));
    assert_eq!(c.failed_connect, c.requests);
    assert_eq!(report.connections_opened, 0);
}

#[tokio::test]
async fn slow_responses_fail_at_the_timeout() {
    let (addr, _served) = server::start().await;
    let mut cfg = config(&format!("http://{addr}/slow"), 10).await;
    cfg.duration = Duration::from_millis(300);
    cfg.timeout = Duration::from_millis(100);
    cfg.concurrency = 2;
    let report = taxon_loadgen::run(cfg).await.unwrap();
    let c = &report.counts;
    assert!(c.requests >= 2);
    assert_eq!(c.ok, 0);
    assert_eq!(c.failed_timeout, c.requests);
    // A timed-out connection is not reused: each retry dials again.
    assert_eq!(report.connections_opened, c.requests);
}
