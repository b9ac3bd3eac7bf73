//! Login rate limits: per user name and per client address, every attempt counted, 429
//! `slow_down` with `Retry-After` once over.

use axum::http::{StatusCode, header};

use crate::common::{Reply, server_with};

fn assert_slowed_down(r: &Reply) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
    assert_eq!(r.json["error"], "slow_down");
    let secs: u64 = r.header(header::RETRY_AFTER).parse().unwrap();
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
}

#[tokio::test]
async fn per_user_limit_counts_failures_and_then_refuses_even_the_right_password() {
    let s = server_with(|c| {
        c.user_attempts_per_minute = 2;
        c.client_attempts_per_minute = 100;
    });
    for _ in 0..2 {
        let r = s
            .token(&[("username", "alice"), ("password", "guess-guess")])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = s
        .token(&[("username", "alice"), ("password", "alice-password")])
        .await;
    assert_slowed_down(&r);
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("user")
    );
    // Another user, from the same client, is not affected.
    let r = s
        .token(&[("username", "root"), ("password", "root-password")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn successful_logins_count_too() {
    let s = server_with(|c| c.user_attempts_per_minute = 2);
    for _ in 0..2 {
        let _ = s.login("alice", "alice-password").await;
    }
    let r = s
        .token(&[("username", "alice"), ("password", "alice-password")])
        .await;
    assert_slowed_down(&r);
}

#[tokio::test]
async fn unknown_names_are_limited_like_known_ones() {
    let s = server_with(|c| c.user_attempts_per_minute = 1);
    let _ = s
        .token(&[("username", "nobody"), ("password", "whatever-1")])
        .await;
    let r = s
        .token(&[("username", "nobody"), ("password", "whatever-2")])
        .await;
    assert_slowed_down(&r);
}

#[tokio::test]
async fn per_client_limit_spans_user_names_and_spares_other_clients() {
    let s = server_with(|c| {
        c.user_attempts_per_minute = 100;
        c.client_attempts_per_minute = 3;
    });
    for user in ["alice", "ops", "root"] {
        let r = s
            .token_from(
                "192.0.2.7",
                &[("username", user), ("password", "wrong-password")],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = s
        .token_from(
            "192.0.2.7",
            &[("username", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_slowed_down(&r);
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("address")
    );
    let r = s
        .token_from(
            "192.0.2.8",
            &[("username", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn malformed_requests_count_against_the_client() {
    let s = server_with(|c| c.client_attempts_per_minute = 2);
    for _ in 0..2 {
        let r = s.token_from("192.0.2.9", &[("username", "alice")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = s
        .token_from(
            "192.0.2.9",
            &[("username", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_slowed_down(&r);
}

#[tokio::test]
async fn bad_tries_from_one_address_do_not_lock_the_user_out_from_another() {
    let s = server_with(|c| c.client_attempts_per_minute = 100);
    for _ in 0..5 {
        let r = s
            .token_from(
                "203.0.113.5",
                &[("username", "alice"), ("password", "guess-guess")],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = s
        .token_from(
            "203.0.113.5",
            &[("username", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_slowed_down(&r);
    let r = s
        .token_from(
            "198.51.100.20",
            &[("username", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn past_the_failure_budget_failing_addresses_back_off_and_a_new_one_with_the_password_passes()
{
    let s = server_with(|c| {
        c.client_attempts_per_minute = 100;
        c.user_failures_per_minute = 4;
    });
    let limited = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&limited);
    s.auth
        .on_limited(move |l| seen.lock().unwrap().push(l.label()));
    // A distributed guesser: two tries from each of three addresses.
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        for _ in 0..2 {
            let _ = s
                .token_from(ip, &[("username", "alice"), ("password", "guess-guess")])
                .await;
        }
    }
    let r = s
        .token_from(
            "203.0.113.1",
            &[("username", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_slowed_down(&r);
    // The real user, from an address that never failed, gets in.
    let r = s
        .token_from(
            "198.51.100.20",
            &[("username", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let labels = limited.lock().unwrap().clone();
    assert!(labels.contains(&"user_backoff"), "{labels:?}");
}
