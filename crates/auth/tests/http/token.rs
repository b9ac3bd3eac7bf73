//! `POST /token`: the password grant's answers, success and every RFC 6749 error.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jsonwebtoken::Algorithm;

use crate::common::{Reply, server, server_with};

fn assert_oauth_error(r: &Reply, code: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.json["error"], code, "{}", r.json);
    assert!(
        !r.json["error_description"].as_str().unwrap().is_empty(),
        "{}",
        r.json
    );
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
}

#[tokio::test]
async fn success_returns_a_bearer_token_that_is_not_cached() {
    let s = server();
    let r = s
        .token(&[
            ("grant_type", "password"),
            ("username", "root"),
            ("password", "root-password"),
        ])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(r.json["token_type"], "bearer");
    assert_eq!(r.json["expires_in"], 1800);
    assert_eq!(r.json["scope"], "predict admin");
    let token = r.json["access_token"].as_str().unwrap();
    let claims = s.auth.verify(token).unwrap();
    assert_eq!(claims.sub, "root");
    assert_eq!(claims.exp - claims.iat, 1800);
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        Algorithm::HS256
    );
}

#[tokio::test]
async fn grant_type_may_be_left_out() {
    let s = server();
    let r = s
        .token(&[("username", "alice"), ("password", "alice-password")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["scope"], "predict");
}

#[tokio::test]
async fn lifetime_and_algorithm_are_configurable() {
    let s = server_with(|c| {
        c.token_ttl = std::time::Duration::from_secs(60);
        c.algorithm = Algorithm::HS512;
    });
    let r = s
        .token(&[("username", "alice"), ("password", "alice-password")])
        .await;
    assert_eq!(r.json["expires_in"], 60);
    let token = r.json["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        Algorithm::HS512
    );
    assert_eq!(s.call("/predict", Some(token)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_token_carries_the_requested_scopes_only() {
    let s = server();
    let r = s
        .token(&[
            ("username", "root"),
            ("password", "root-password"),
            ("scope", "predict"),
        ])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["scope"], "predict");
    let token = r.json["access_token"].as_str().unwrap();
    assert_eq!(s.call("/predict", Some(token)).await.status, StatusCode::OK);
    assert_eq!(
        s.call("/admin/reload", Some(token)).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_invalid_grant() {
    let s = server();
    let wrong = s
        .token(&[("username", "alice"), ("password", "root-password")])
        .await;
    assert_oauth_error(&wrong, "invalid_grant");
    let unknown = s
        .token(&[("username", "mallory"), ("password", "alice-password")])
        .await;
    assert_oauth_error(&unknown, "invalid_grant");
    assert_eq!(wrong.json, unknown.json);
    assert!(wrong.json.get("access_token").is_none());
}

#[tokio::test]
async fn missing_fields_are_invalid_request_naming_the_field() {
    let s = server();
    let r = s.token(&[("password", "alice-password")]).await;
    assert_oauth_error(&r, "invalid_request");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("username")
    );
    let r = s.token(&[("username", "alice")]).await;
    assert_oauth_error(&r, "invalid_request");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("password")
    );
}

#[tokio::test]
async fn a_json_body_is_invalid_request() {
    let s = server();
    let request = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"username":"alice","password":"alice-password"}"#,
        ))
        .unwrap();
    let r = s.send(request).await;
    assert_oauth_error(&r, "invalid_request");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn other_grant_types_are_unsupported() {
    let s = server();
    let r = s
        .token(&[
            ("grant_type", "client_credentials"),
            ("username", "alice"),
            ("password", "alice-password"),
        ])
        .await;
    assert_oauth_error(&r, "unsupported_grant_type");
}

#[tokio::test]
async fn scopes_not_granted_or_unknown_are_invalid_scope() {
    let s = server();
    let r = s
        .token(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("scope", "predict admin"),
        ])
        .await;
    assert_oauth_error(&r, "invalid_scope");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
    let r = s
        .token(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("scope", "superuser"),
        ])
        .await;
    assert_oauth_error(&r, "invalid_scope");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("superuser")
    );
}

#[tokio::test]
async fn only_post_is_served() {
    let s = server();
    let r = s
        .send(Request::get("/token").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn an_oversized_form_is_413() {
    let s = server();
    let big = "x".repeat(taxon_auth::TOKEN_BODY_LIMIT + 1);
    let r = s
        .token(&[("username", "alice"), ("password", big.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.json);
    assert_eq!(r.json["error"], "invalid_request");
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    // A form within the limit is read as before.
    s.login("alice", "alice-password").await;
}
