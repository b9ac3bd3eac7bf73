//! The bearer-token guard (RFC 6750): a `route_layer` that checks `Authorization: Bearer`,
//! answers 401 or 403 with a `WWW-Authenticate` challenge, and hands the token's claims to
//! the handler through the request extensions.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::REALM;
use crate::auth::Auth;
use crate::failure::AuthFailure;
use crate::scope::Scope;
use crate::token::TokenError;

/// What a guarded route requires.
#[derive(Clone)]
struct Guard {
    auth: Auth,
    scope: Scope,
}

/// Why the guard refused a request.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that does not verify.
    Invalid(TokenError),
    /// A valid token without the route's scope.
    Scope(Scope),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, challenge, message, error_type) = match self {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{REALM}\""),
                "missing bearer token: send `Authorization: Bearer <token>` with a token from \
                 POST /token"
                    .to_string(),
                "unauthorized",
            ),
            Refusal::Invalid(e) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{e}\""
                ),
                e.to_string(),
                "unauthorized",
            ),
            Refusal::Scope(s) => (
                StatusCode::FORBIDDEN,
                format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{s}\""),
                format!("this route needs scope `{s}`, which the token does not carry"),
                "forbidden",
            ),
        };
        let mut response = (
            status,
            axum::Json(json!({ "error": message, "error_type": error_type })),
        )
            .into_response();
        // The challenge is built from fixed text and enum messages: always a valid value.
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn check(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let Some(token) = bearer(request.headers()) else {
        guard.auth.failed(AuthFailure::MissingToken);
        return Refusal::Missing.into_response();
    };
    let claims = match guard.auth.verify(token) {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!(reason = %e, "refused a bearer token");
            guard.auth.failed(AuthFailure::from(&e));
            return Refusal::Invalid(e).into_response();
        }
    };
    if !claims.has(guard.scope) {
        tracing::debug!(user = %claims.sub, scope = %guard.scope, "token lacks the route's scope");
        guard.auth.failed(AuthFailure::MissingScope);
        return Refusal::Scope(guard.scope).into_response();
    }
    request.extensions_mut().insert(claims);
    next.run(request).await
}

/// `routes` with the guard as a route layer.
pub(crate) fn protect<S: Clone + Send + Sync + 'static>(
    auth: Auth,
    routes: Router<S>,
    scope: Scope,
) -> Router<S> {
    routes.route_layer(middleware::from_fn_with_state(Guard { auth, scope }, check))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&headers("Bearer abc.def.ghi")), Some("abc.def.ghi"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("BEARER abc")), Some("abc"));
        assert_eq!(bearer(&headers("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer(&headers("Bearer")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn challenges() {
        let r = Refusal::Missing.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"taxon\""
        );
        let r = Refusal::Invalid(TokenError::Expired).into_response();
        let h = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            h.starts_with("Bearer realm=\"taxon\", error=\"invalid_token\""),
            "{h}"
        );
        assert!(h.contains("expired"), "{h}");
        let r = Refusal::Scope(Scope::Admin).into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"taxon\", error=\"insufficient_scope\", scope=\"admin\""
        );
    }
}
