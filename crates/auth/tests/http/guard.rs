//! The bearer guard: which tokens pass, and the 401/403 answers with their challenges.

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use jsonwebtoken::{EncodingKey, Header};
use taxon_auth::{Claims, Scope};

use crate::common::{SECRET, server, server_with};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token signed with `secret` carrying `claims`.
fn sign(claims: &Claims, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims(user: &str, scope: &str, iat: i64, exp: i64) -> Claims {
    Claims {
        sub: user.into(),
        scope: scope.into(),
        iat,
        exp,
        iss: "taxon".into(),
        jti: "0123456789abcdef0123456789abcdef".into(),
        iat_ms: None,
    }
}

#[tokio::test]
async fn a_valid_token_passes_and_its_claims_reach_the_handler() {
    let s = server();
    let token = s.login("alice", "alice-password").await;
    let r = s.call("/predict", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["user"], "alice");
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_challenge() {
    let s = server();
    for path in ["/predict", "/admin/reload"] {
        let r = s.call(path, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.header(header::WWW_AUTHENTICATE), "Bearer realm=\"taxon\"");
        assert_eq!(r.json["error_type"], "unauthorized");
        assert!(r.json["error"].as_str().unwrap().contains("Bearer"));
    }
}

#[tokio::test]
async fn another_scheme_counts_as_no_token() {
    let s = server();
    let request = axum::http::Request::post("/predict")
        .header(header::AUTHORIZATION, "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = s.send(request).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header(header::WWW_AUTHENTICATE), "Bearer realm=\"taxon\"");
}

#[tokio::test]
async fn a_garbage_token_is_401_invalid_token() {
    let s = server();
    let r = s.call("/predict", Some("not.a.jwt")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let h = r.header(header::WWW_AUTHENTICATE);
    assert!(
        h.starts_with("Bearer realm=\"taxon\", error=\"invalid_token\", error_description=\""),
        "{h}"
    );
    assert!(h.contains("malformed"), "{h}");
    assert_eq!(r.json["error_type"], "unauthorized");
}

#[tokio::test]
async fn an_expired_token_is_401_and_says_expired() {
    let s = server();
    let t = sign(
        &claims("alice", "predict", now() - 3600, now() - 1800),
        SECRET,
    );
    let r = s.call("/predict", Some(&t)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let h = r.header(header::WWW_AUTHENTICATE);
    assert!(
        h.contains("error=\"invalid_token\"") && h.contains("expired"),
        "{h}"
    );
    assert!(r.json["error"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_401() {
    let s = server();
    let other = "another secret, also long enough to be accepted";
    let t = sign(&claims("alice", "predict admin", now(), now() + 600), other);
    let r = s.call("/admin/reload", Some(&t)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header(header::WWW_AUTHENTICATE).contains("signature"));
}

#[tokio::test]
async fn a_token_from_another_issuer_is_401() {
    let s = server();
    let mut c = claims("alice", "predict", now(), now() + 600);
    c.iss = "someone-else".into();
    let r = s.call("/predict", Some(&sign(&c, SECRET))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header(header::WWW_AUTHENTICATE).contains("issuer"));
}

#[tokio::test]
async fn a_missing_scope_is_403_insufficient_scope() {
    let s = server();
    let token = s.login("alice", "alice-password").await;
    let r = s.call("/admin/reload", Some(&token)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.header(header::WWW_AUTHENTICATE),
        "Bearer realm=\"taxon\", error=\"insufficient_scope\", scope=\"admin\""
    );
    assert_eq!(r.json["error_type"], "forbidden");
    assert!(r.json["error"].as_str().unwrap().contains("admin"));
}

#[tokio::test]
async fn admin_tokens_open_admin_routes_and_admin_does_not_imply_predict() {
    let s = server();
    let ops = s.login("ops", "ops-password").await;
    let r = s.call("/admin/reload", Some(&ops)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["by"], "ops");
    let r = s.call("/predict", Some(&ops)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.header(header::WWW_AUTHENTICATE)
            .contains("scope=\"predict\"")
    );

    let root = s.login("root", "root-password").await;
    assert_eq!(
        s.call("/admin/reload", Some(&root)).await.status,
        StatusCode::OK
    );
    assert_eq!(s.call("/predict", Some(&root)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn public_routes_stay_public() {
    let s = server();
    let r = s
        .send(
            axum::http::Request::get("/health")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn issue_makes_tokens_the_guard_accepts() {
    let s = server();
    let t = s.auth.issue("robot", &[Scope::Predict]).unwrap();
    assert_eq!(t.expires_in, 1800);
    assert_eq!(
        s.call("/predict", Some(&t.access_token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.call("/admin/reload", Some(&t.access_token)).await.status,
        StatusCode::FORBIDDEN
    );
}

/// A token issued before its user's account was (re)created is refused once the guard has
/// re-read the store in the background, without any call to refresh it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_rereads_revocations_by_itself() {
    let s = server_with(|c| c.revocation_refresh = Duration::from_secs(1));
    let old = sign(&claims("carol", "predict", now() - 10, now() + 600), SECRET);
    assert_eq!(s.call("/predict", Some(&old)).await.status, StatusCode::OK);
    taxon_auth::UserStore::open(&s.dir.path().join("users.db"))
        .unwrap()
        .add("carol", "carol-password", &[Scope::Predict])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.call("/predict", Some(&old)).await;
        if r.status == StatusCode::UNAUTHORIZED {
            assert!(r.header(header::WWW_AUTHENTICATE).contains("revoked"));
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
        assert!(Instant::now() < deadline, "the token was never refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `/token` re-reads revocations too: a token older than its user's account is refused
/// right after anyone logs in.
#[tokio::test]
async fn a_login_refreshes_revocations() {
    let s = server();
    let old = sign(&claims("dave", "predict", now() - 10, now() + 600), SECRET);
    assert_eq!(s.call("/predict", Some(&old)).await.status, StatusCode::OK);
    taxon_auth::UserStore::open(&s.dir.path().join("users.db"))
        .unwrap()
        .add("dave", "dave-password", &[Scope::Predict])
        .unwrap();
    let _ = s.login("root", "root-password").await;
    let r = s.call("/predict", Some(&old)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header(header::WWW_AUTHENTICATE).contains("revoked"));
}
