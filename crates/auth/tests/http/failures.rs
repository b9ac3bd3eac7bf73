//! Every refusal reaches `Auth::on_failure` with its reason, once: the guard's (missing,
//! bad, expired and revoked tokens, a missing scope) and the login's (wrong password,
//! unknown user, a scope the user lacks). Successes and rate limits report none.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use jsonwebtoken::{EncodingKey, Header};
use taxon_auth::{AuthFailure, Claims, UserStore};

use crate::common::{SECRET, Server, server};

/// A server whose refusals are collected by their label.
fn counted() -> (Server, Arc<Mutex<Vec<&'static str>>>) {
    let s = server();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    s.auth
        .on_failure(move |f: AuthFailure| sink.lock().unwrap().push(f.label()));
    (s, seen)
}

fn take(seen: &Mutex<Vec<&'static str>>) -> Vec<&'static str> {
    std::mem::take(&mut *seen.lock().unwrap())
}

#[tokio::test]
async fn each_guard_refusal_is_reported_with_its_reason() {
    let (s, seen) = counted();
    let alice = s.login("alice", "alice-password").await;
    assert_eq!(
        s.call("/predict", Some(&alice)).await.status,
        StatusCode::OK
    );
    assert!(take(&seen).is_empty(), "a login and a pass report nothing");

    assert_eq!(
        s.call("/predict", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(take(&seen), ["missing_token"]);

    assert_eq!(
        s.call("/predict", Some("not.a.jwt")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let forged = jsonwebtoken::encode(
        &Header::default(),
        &Claims {
            sub: "alice".into(),
            scope: "predict".into(),
            iat: chrono::Utc::now().timestamp(),
            exp: chrono::Utc::now().timestamp() + 60,
            iss: "taxon".into(),
            jti: "0123456789abcdef0123456789abcdef".into(),
            iat_ms: None,
        },
        &EncodingKey::from_secret(b"another secret of at least 32 bytes......"),
    )
    .unwrap();
    assert_eq!(
        s.call("/predict", Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(take(&seen), ["bad_token", "bad_token"]);

    let now = chrono::Utc::now().timestamp();
    let expired = jsonwebtoken::encode(
        &Header::default(),
        &Claims {
            sub: "alice".into(),
            scope: "predict".into(),
            iat: now - 7200,
            exp: now - 3600,
            iss: "taxon".into(),
            jti: "0123456789abcdef0123456789abcdef".into(),
            iat_ms: None,
        },
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        s.call("/predict", Some(&expired)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(take(&seen), ["expired"]);

    assert_eq!(
        s.call("/admin/reload", Some(&alice)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(take(&seen), ["missing_scope"]);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let store = UserStore::open(&s.dir.path().join("users.db")).unwrap();
    assert!(store.remove("alice").unwrap());
    s.auth.refresh_revocations().unwrap();
    assert_eq!(
        s.call("/predict", Some(&alice)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(take(&seen), ["revoked"]);
}

#[tokio::test]
async fn each_login_refusal_is_reported_with_its_reason() {
    let (s, seen) = counted();
    let wrong = s
        .token(&[("username", "alice"), ("password", "not-her-password")])
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(take(&seen), ["bad_password"]);

    let unknown = s
        .token(&[("username", "nobody"), ("password", "alice-password")])
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(take(&seen), ["unknown_user"]);

    let scope = s
        .token(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("scope", "admin"),
        ])
        .await;
    assert_eq!(scope.status, StatusCode::BAD_REQUEST);
    assert_eq!(scope.json["error"], "invalid_scope");
    assert_eq!(take(&seen), ["missing_scope"]);

    // A malformed form is neither a password nor a token failure.
    let malformed = s.token(&[("username", "alice")]).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(take(&seen).is_empty());
}
