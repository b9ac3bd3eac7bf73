//! The engine's rules: pending then firing after `for`, resolved, deduplicated per (rule,
//! model version) and repeated after `repeat_interval`, grouped per channel; the outbox's
//! retries with backoff, per-channel isolation and overflow.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use taxon_alerts::{Engine, History};

use crate::common::{Counted, Sink, auth_failures, config};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_fires_only_after_holding_for_its_duration_then_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let c = config(
        &format!(
            "channels:\n  hook: {{type: webhook, url: '{}'}}\nrules:\n  - name: brute-force\n    condition: auth_failures_above\n    threshold: 10\n    for: 30s\n    severity: critical\n    channels: [hook]\nsettings:\n  retry_initial: 50ms\n  retry: 100ms",
            sink.url
        ),
        &dir.path().join("alerts.db"),
    );
    let metrics = Arc::new(Counted::default());
    let mut engine = Engine::start(c, metrics.clone()).unwrap();
    // 30 failures in 60 s: 30 per minute, above 10.
    assert!(
        engine.tick(&auth_failures("v1", 30, 60), at(0)).is_empty(),
        "pending"
    );
    assert!(
        engine.tick(&auth_failures("v1", 30, 60), at(20)).is_empty(),
        "still pending"
    );
    assert!(!metrics.firing.lock().unwrap()["brute-force"]);
    let due = engine.tick(&auth_failures("v1", 30, 60), at(30));
    assert_eq!(due["hook"].notices.len(), 1, "fires once it held 30 s");
    assert!(metrics.firing.lock().unwrap()["brute-force"]);
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let b = &got[0];
    assert_eq!(b["status"], "firing");
    assert_eq!(b["alert"], "brute-force");
    assert_eq!(b["severity"], "critical");
    assert_eq!(b["value"], 30.0);
    assert_eq!(b["threshold"], 10.0);
    assert_eq!(b["model_version"], "v1");
    assert_eq!(
        b["started_at"], "2027-01-15T08:00:00Z",
        "started when it began to hold"
    );
    assert_eq!(b["resolved_at"], serde_json::Value::Null);
    assert_eq!(b["labels"]["condition"], "auth_failures_above");
    assert!(
        b["description"]
            .as_str()
            .unwrap()
            .contains("30.0 authentication failures per minute")
    );

    // Below the threshold: resolved.
    let due = engine.tick(&auth_failures("v1", 2, 60), at(40));
    assert_eq!(
        due["hook"].notices[0].status,
        taxon_alerts::Status::Resolved
    );
    let got = sink.wait_for(2, WAIT).await;
    assert_eq!(got[1]["status"], "resolved");
    assert_eq!(got[1]["resolved_at"], "2027-01-15T08:00:40Z");
    assert!(!metrics.firing.lock().unwrap()["brute-force"]);

    // A blip shorter than `for` never fires.
    assert!(engine.tick(&auth_failures("v1", 30, 60), at(50)).is_empty());
    assert!(engine.tick(&auth_failures("v1", 0, 60), at(60)).is_empty());
    assert!(
        engine.tick(&auth_failures("v1", 30, 60), at(70)).is_empty(),
        "pending restarts"
    );

    let history = History::open(&dir.path().join("alerts.db")).unwrap();
    let rows = history.list(false, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].ended.as_deref(), Some("resolved"));
    assert_eq!(rows[0].value, 30.0);
    // Both notices were delivered and recorded.
    for _ in 0..100 {
        if history.list(false, 10).unwrap()[0]
            .deliveries
            .iter()
            .all(|d| d.outcome == "sent")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = &history.list(false, 10).unwrap()[0].deliveries;
    assert_eq!(
        d.iter()
            .map(|d| (d.kind.as_str(), d.outcome.as_str()))
            .collect::<Vec<_>>(),
        [("firing", "sent"), ("resolved", "sent")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_notice_per_rule_and_version_repeated_after_the_repeat_interval() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let c = config(
        &format!(
            "channels:\n  hook: {{type: webhook, url: '{}'}}\nrules:\n  - name: brute-force\n    condition: auth_failures_above\n    threshold: 10\n    severity: warning\n    channels: [hook]\nsettings:\n  repeat_interval: 1h\n  retry_initial: 50ms\n  retry: 100ms",
            sink.url
        ),
        &dir.path().join("alerts.db"),
    );
    let mut engine = Engine::start(c, Arc::new(Counted::default())).unwrap();
    let mut sent = 0;
    for minute in 0..60 {
        sent += engine
            .tick(&auth_failures("v1", 100, 60), at(minute * 60))
            .len();
    }
    assert_eq!(sent, 1, "one notice for an hour of firing");
    let due = engine.tick(&auth_failures("v1", 100, 60), at(3600));
    assert_eq!(due.len(), 1, "repeated after repeat_interval");
    assert!(
        engine
            .tick(&auth_failures("v1", 100, 60), at(3660))
            .is_empty()
    );
    // Another model version: the old version's alert resolves and the new one fires.
    let due = engine.tick(&auth_failures("v2", 100, 60), at(3720));
    let notices = &due["hook"].notices;
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert_eq!(
        (notices[0].status, notices[0].model_version.as_str()),
        (taxon_alerts::Status::Resolved, "v1")
    );
    assert_eq!(
        (notices[1].status, notices[1].model_version.as_str()),
        (taxon_alerts::Status::Firing, "v2")
    );
    let got = sink.wait_for(3, WAIT).await;
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[2]["count"], 2,
        "the swap's two notices go as one message"
    );
    let history = History::open(&dir.path().join("alerts.db")).unwrap();
    let rows = history.list(false, 10).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].model_version.as_str(), rows[0].ended.as_deref()),
        ("v2", None)
    );
    assert_eq!(rows[1].deliveries.len(), 3, "firing, repeat, resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_due_together_for_a_channel_are_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let c = config(
        &format!(
            "channels:\n  hook: {{type: webhook, url: '{}'}}\nrules:\n  - name: failures\n    condition: auth_failures_above\n    threshold: 10\n    severity: warning\n    channels: [hook]\n  - name: many-failures\n    condition: auth_failures_above\n    threshold: 50\n    severity: critical\n    channels: [hook]\nsettings:\n  retry_initial: 50ms\n  retry: 100ms",
            sink.url
        ),
        &dir.path().join("alerts.db"),
    );
    let mut engine = Engine::start(c, Arc::new(Counted::default())).unwrap();
    engine.tick(&auth_failures("v1", 100, 60), at(0));
    let got = sink.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.bodies().len(), 1, "one message");
    assert_eq!(got[0]["status"], "firing");
    assert_eq!(got[0]["count"], 2);
    let rules: Vec<&str> = got[0]["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["alert"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["failures", "many-failures"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_channel_is_retried_with_backoff_while_another_delivers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let up = Sink::start().await;
    let down = Sink::refusing(3).await;
    let c = config(
        &format!(
            "channels:\n  up: {{type: webhook, url: '{}'}}\n  down: {{type: webhook, url: '{}'}}\nrules:\n  - name: brute-force\n    condition: auth_failures_above\n    threshold: 10\n    severity: critical\n    channels: [down, up]\nsettings:\n  retry_initial: 200ms\n  retry: 400ms",
            up.url, down.url
        ),
        &dir.path().join("alerts.db"),
    );
    let metrics = Arc::new(Counted::default());
    let mut engine = Engine::start(c, metrics.clone()).unwrap();
    let start = std::time::Instant::now();
    engine.tick(&auth_failures("v1", 100, 60), at(0));
    assert_eq!(up.wait_for(1, WAIT).await.len(), 1);
    let up_took = up.arrivals()[0] - start;
    // Not held up by the other channel's retries (at least 1 s before its fourth try).
    assert!(
        up_took < Duration::from_millis(800),
        "up waited {up_took:?}"
    );
    assert_eq!(
        down.wait_for(1, WAIT).await.len(),
        1,
        "delivered in the end"
    );
    let down_took = down.arrivals()[0] - start;
    assert!(up.arrivals()[0] < down.arrivals()[0]);
    // Three refusals: waits of 200, 400 (doubled) and 400 ms (capped) before the fourth try.
    assert!(
        down_took >= Duration::from_millis(1000),
        "down delivered after {down_took:?}"
    );
    assert_eq!(down.refused(), 3);
    // The sink keeps a body before its answer reaches the outbox: wait for the count.
    for _ in 0..250 {
        if Counted::get(&metrics.sent, "down") + Counted::get(&metrics.sent, "up") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(Counted::get(&metrics.failed, "down"), 3);
    assert_eq!(Counted::get(&metrics.sent, "down"), 1);
    assert_eq!(Counted::get(&metrics.sent, "up"), 1);
    assert_eq!(Counted::get(&metrics.failed, "up"), 0);
    let history = History::open(&dir.path().join("alerts.db")).unwrap();
    let mut rows = history.list(false, 1).unwrap();
    for _ in 0..100 {
        if rows[0].deliveries.iter().all(|d| d.outcome == "sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        rows = history.list(false, 1).unwrap();
    }
    let by_channel: Vec<(&str, &str, i64)> = rows[0]
        .deliveries
        .iter()
        .map(|d| (d.channel.as_str(), d.outcome.as_str(), d.attempts))
        .collect();
    assert_eq!(by_channel, [("down", "sent", 4), ("up", "sent", 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    // A port with nothing listening: every try fails, the first message stays in flight.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let c = config(
        &format!(
            "channels:\n  dead: {{type: webhook, url: 'http://127.0.0.1:{port}/hook'}}\nrules:\n  - name: brute-force\n    condition: auth_failures_above\n    threshold: 10\n    severity: critical\n    channels: [dead]\nsettings:\n  outbox_capacity: 1\n  retry_initial: 10s\n  retry: 10s"
        ),
        &dir.path().join("alerts.db"),
    );
    let metrics = Arc::new(Counted::default());
    let mut engine = Engine::start(c, metrics.clone()).unwrap();
    // Each version swap makes a message: the first is taken by the channel's task and
    // retried, the second waits in the queue, the others find it full.
    engine.tick(&auth_failures("v1", 100, 60), at(0));
    for _ in 0..100 {
        if Counted::get(&metrics.failed, "dead") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(Counted::get(&metrics.failed, "dead"), 1);
    for (i, v) in ["v2", "v3", "v4"].iter().enumerate() {
        engine.tick(&auth_failures(v, 100, 60), at(60 * (i as i64 + 1)));
    }
    assert_eq!(Counted::get(&metrics.dropped, "dead"), 2);
    let history = History::open(&dir.path().join("alerts.db")).unwrap();
    let dropped = history
        .list(false, 10)
        .unwrap()
        .iter()
        .flat_map(|r| r.deliveries.clone())
        .filter(|d| d.outcome == "dropped")
        .count();
    // Two messages of two notices each (the old version resolved, the new one firing).
    assert_eq!(dropped, 4);
}
