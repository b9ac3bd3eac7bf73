//! A small server to test against: a store with three users, a predict route, an admin
//! route and a public route, and helpers that read like the requests they send.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use taxon_auth::{Auth, AuthConfig, Claims, Scope, UserStore};
use tower::ServiceExt;

pub const SECRET: &str = "test secret: 0123456789abcdef0123456789abcdef";

/// `alice`: predict. `ops`: admin only. `root`: predict and admin.
pub const USERS: [(&str, &str, &[Scope]); 3] = [
    ("alice", "alice-password", &[Scope::Predict]),
    ("ops", "ops-password", &[Scope::Admin]),
    ("root", "root-password", &[Scope::Predict, Scope::Admin]),
];

pub struct Server {
    pub dir: tempfile::TempDir,
    pub auth: Auth,
    pub app: Router,
}

/// A server with the default settings changed by `f`.
pub fn server_with(f: impl FnOnce(&mut AuthConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = UserStore::open(&dir.path().join("users.db")).unwrap();
    for (name, password, scopes) in USERS {
        store.add(name, password, scopes).unwrap();
    }
    let mut config = AuthConfig::new(SECRET).unwrap();
    f(&mut config);
    let auth = Auth::new(config, store).unwrap();
    let predict = Router::new().route(
        "/predict",
        post(|Extension(c): Extension<Claims>| async move { Json(json!({ "user": c.sub })) }),
    );
    let admin = Router::new().route(
        "/admin/reload",
        post(|Extension(c): Extension<Claims>| async move { Json(json!({ "by": c.sub })) }),
    );
    let app = auth
        .guard(predict, Scope::Predict)
        .merge(auth.guard(admin, Scope::Admin))
        .merge(auth.token_router())
        .route("/health", get(|| async { "ok" }));
    Server { dir, auth, app }
}

pub fn server() -> Server {
    server_with(|_| {})
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }
}

impl Server {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }

    /// `POST /token` with a form body from `client`.
    pub async fn token_from(&self, client: &str, fields: &[(&str, &str)]) -> Reply {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let mut request = Request::post("/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.join("&")))
            .unwrap();
        let addr: SocketAddr = format!("{client}:40000").parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        self.send(request).await
    }

    /// `POST /token` from 10.0.0.1.
    pub async fn token(&self, fields: &[(&str, &str)]) -> Reply {
        self.token_from("10.0.0.1", fields).await
    }

    /// A token for `user` through `/token`.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let r = self
            .token(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json["access_token"].as_str().unwrap().to_string()
    }

    /// `POST path` with `Authorization: Bearer token` (none when `token` is `None`).
    pub async fn call(&self, path: &str, token: Option<&str>) -> Reply {
        let mut b = Request::post(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }
}

/// Form-urlencodes one value (enough for the test inputs).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
