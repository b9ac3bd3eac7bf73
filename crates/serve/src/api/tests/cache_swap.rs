//! The prediction cache (normalization, version, TTL) and hot swap (admin reload under load,
//! failed loads, the poller).

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::testing::{BUSINESS, SPORT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalized_text_hits_the_cache() {
    let s = server(ServeConfig::default()).await;
    let first = predict(&s.app, "  The Striker   SCORED\ta goal ")
        .await
        .json();
    assert_eq!(first["cached"], false);
    let second = predict(&s.app, "the striker scored a goal").await.json();
    assert_eq!(second["cached"], true);
    assert_eq!(second["scores"], first["scores"]);
    assert_eq!(second["label"], first["label"]);
    assert_ne!(second["request_id"], first["request_id"]);
    let texts_seen = s.gate.texts.load(Ordering::SeqCst);
    assert_eq!(
        predict(&s.app, "THE STRIKER SCORED A GOAL").await.json()["cached"],
        true
    );
    // A hit does not reach the model.
    assert_eq!(s.gate.texts.load(Ordering::SeqCst), texts_seen);
    let metrics = get(&s.app, "/metrics").await.text();
    assert!(metrics.contains("taxon_cache_hits_total 2"), "{metrics}");
    assert!(metrics.contains("taxon_cache_misses_total 1"), "{metrics}");
    assert!(metrics.contains("taxon_cache_hit_ratio 0.666"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_long_texts_stay_within_the_cache_byte_budget() {
    let budget = 32 * 1024;
    let s = server(ServeConfig {
        cache_max_bytes: budget,
        ..ServeConfig::default()
    })
    .await;
    let long = "the striker scored a goal ".repeat(760);
    assert!(long.len() > 19_000);
    for i in 0..400 {
        let answer = predict(&s.app, &format!("{i} {long}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let metrics = get(&s.app, "/metrics").await.text();
    let value = |name: &str| -> usize {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{metrics}"))
    };
    assert_eq!(value("taxon_cache_max_bytes"), budget);
    let held = value("taxon_cache_bytes");
    assert!(held > 0 && held <= budget, "{held} bytes over {budget}");
    // Kept entries still answer.
    assert_eq!(
        predict(&s.app, &format!("399 {long}")).await.json()["cached"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_model_version_misses_the_cache() {
    let s = server(ServeConfig::default()).await;
    predict(&s.app, BUSINESS).await;
    assert_eq!(predict(&s.app, BUSINESS).await.json()["cached"], true);
    replace_model(&s.model_dir, &["sport", "business", "weather"], 2);
    let outcome = post_json(&s.app, "/v1/admin/reload", "").await.json();
    assert_eq!(outcome["swapped"], true, "{outcome}");
    let after = predict(&s.app, BUSINESS).await.json();
    assert_eq!(after["cached"], false);
    assert_eq!(after["model"]["version"], outcome["current"]["version"]);
    assert_eq!(after["scores"].as_object().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_predictions_expire() {
    let s = server(ServeConfig {
        cache_ttl: Duration::from_millis(50),
        ..ServeConfig::default()
    })
    .await;
    predict(&s.app, SPORT).await;
    // Waiting longer than the TTL can only make the entry older: no flake either way.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(predict(&s.app, SPORT).await.json()["cached"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_capacity_turns_the_cache_off() {
    let s = server(ServeConfig {
        cache_capacity: 0,
        ..ServeConfig::default()
    })
    .await;
    predict(&s.app, SPORT).await;
    assert_eq!(predict(&s.app, SPORT).await.json()["cached"], false);
    assert!(
        get(&s.app, "/metrics")
            .await
            .text()
            .contains("taxon_cache_misses_total 0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_fails_no_request() {
    let s = server(ServeConfig {
        // Every request reaches the model, so both versions really compute.
        cache_capacity: 0,
        ..ServeConfig::default()
    })
    .await;
    let old = s.state.model().version.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let app = s.app.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut versions = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let text = if i % 2 == 0 { SPORT } else { BUSINESS };
                    let a = predict(&app, &format!("{text} {c} {i}")).await;
                    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
                    versions.push(a.json()["model"]["version"].as_str().unwrap().to_string());
                    i += 1;
                }
                versions
            })
        })
        .collect();
    wait_until("requests on the old model", async || {
        s.state.metrics().batches().0 >= 20
    })
    .await;
    replace_model(&s.model_dir, &["sport", "business", "weather"], 3);
    let a = post_json(&s.app, "/v1/admin/reload", "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let outcome = a.json();
    assert_eq!(outcome["swapped"], true);
    assert_eq!(outcome["previous"]["version"], old.as_str());
    let new = outcome["current"]["version"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let served_before = s.state.metrics().batches().0;
    wait_until("requests on the new model", async || {
        s.state.metrics().batches().0 > served_before + 50
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for c in clients {
        seen.extend(c.await.unwrap());
    }
    assert!(
        seen.contains(&old) && seen.contains(&new),
        "both versions answered"
    );
    // Once a client saw the new version, it never saw the old one again.
    assert_eq!(
        get(&s.app, "/v1/models").await.json()["models"][0]["version"],
        new.as_str()
    );
    let metrics = get(&s.app, "/metrics").await.text();
    assert!(metrics.contains("taxon_model_swaps_total 1"), "{metrics}");
    // The served-model series drops the old version (counters such as predictions_total
    // keep their per-version history, as counters do).
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("taxon_model_info") && l.contains(&format!("version=\"{old}\""))),
        "{metrics}"
    );
    // Nothing but 200s on /v1/predict.
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("taxon_requests_total{route=\"/v1/predict\""))
    {
        if !line.contains("status=\"200\"") {
            assert!(line.ends_with(" 0"), "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_new_version_keeps_the_old_model_serving() {
    let s = server(ServeConfig::default()).await;
    let old = s.state.model().version.clone();
    // New description, weights that do not match it.
    replace_model(&s.model_dir, &["sport", "business", "weather"], 4);
    std::fs::write(s.model_dir.join("model.safetensors"), b"not weights").unwrap();
    let a = post_json(&s.app, "/v1/admin/reload", "").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.text());
    let v = a.json();
    assert_eq!(v["error_type"], "model_load_failed");
    assert!(
        v["error"].as_str().unwrap().contains("model.safetensors"),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains(&format!("still serving news@{old}")),
        "{v}"
    );
    let p = predict(&s.app, SPORT).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.json()["model"]["version"], old.as_str());
    assert_eq!(s.state.metrics().load_failures(), 1);
    // Nothing changed: a reload is a no-op.
    std::fs::remove_dir_all(&s.model_dir).unwrap();
    let a = post_json(&s.app, "/v1/admin/reload", "").await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text());
    assert_eq!(a.json()["error_type"], "source_unavailable");
    assert_eq!(predict(&s.app, BUSINESS).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_follows_the_folder() {
    let s = server(ServeConfig {
        poll_interval: Some(Duration::from_millis(100)),
        ..ServeConfig::default()
    })
    .await;
    let old = s.state.model().version.clone();
    let unchanged = post_json(&s.app, "/v1/admin/reload", "").await.json();
    assert_eq!(unchanged["swapped"], false);
    assert_eq!(unchanged["current"]["version"], old.as_str());
    replace_model(&s.model_dir, &["sport", "weather"], 5);
    let state = s.state.clone();
    wait_until("the poller to swap", async || state.model().version != old).await;
    let v = predict(&s.app, SPORT).await.json();
    assert_eq!(v["model"]["version"], s.state.model().version.as_str());
    assert!(v["scores"]["weather"].is_number(), "{v}");
    let _ = &s.dir;
}
