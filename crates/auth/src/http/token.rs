//! `POST /token`: the OAuth2 resource owner password credentials grant (RFC 6749 section
//! 4.3), answered as section 5 says: a bearer token, or `{"error", "error_description"}` with
//! status 400, always `Cache-Control: no-store`. Attempts are rate limited per user name and
//! per client address before any password is checked.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::auth::Auth;
use crate::limit::Limited;
use crate::scope::{Scope, parse_scopes};
use crate::sign_in::SignInError;

/// An error answer of the token endpoint.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    /// RFC 6749 error code.
    code: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn bad(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    fn slow_down(limit: Limited) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "slow_down",
            description: SignInError::Limited(limit).to_string(),
            retry_after: Some(limit.retry_after_secs()),
        }
    }

    fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "server_error",
            description: "the user store could not be read; see the server log".into(),
            retry_after: None,
        }
    }
}

/// RFC 6749 section 5.1: token responses must not be cached.
fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({ "error": self.code, "error_description": self.description })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        no_store(response)
    }
}

/// The fields of a password grant request.
struct PasswordGrant {
    username: String,
    password: String,
    /// Requested scopes; `None` when the request names none (all granted scopes).
    scope: Option<Vec<Scope>>,
}

impl PasswordGrant {
    /// Reads the form: each parameter at most once (RFC 6749 section 3.2), `grant_type`
    /// `password` or absent, `username` and `password` present and non-empty.
    fn parse(fields: Vec<(String, String)>) -> Result<Self, OAuthError> {
        let mut grant_type = None;
        let mut username = None;
        let mut password = None;
        let mut scope = None;
        for (key, value) in fields {
            let slot = match key.as_str() {
                "grant_type" => &mut grant_type,
                "username" => &mut username,
                "password" => &mut password,
                "scope" => &mut scope,
                // RFC 6749 section 3.2: unknown parameters are ignored (client_id, ...).
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(OAuthError::bad(
                    "invalid_request",
                    format!("parameter `{key}` is given more than once"),
                ));
            }
        }
        if let Some(g) = grant_type.filter(|g| g != "password") {
            let g: String = g.chars().take(40).collect();
            return Err(OAuthError::bad(
                "unsupported_grant_type",
                format!("grant_type `{g}` is not supported: use `password`"),
            ));
        }
        let required = |v: Option<String>, name: &str| {
            v.filter(|v| !v.is_empty()).ok_or_else(|| {
                OAuthError::bad("invalid_request", format!("missing form field `{name}`"))
            })
        };
        let username = required(username, "username")?;
        let password = required(password, "password")?;
        let scope = match scope {
            None => None,
            Some(s) => Some(
                parse_scopes(&s).map_err(|e| OAuthError::bad("invalid_scope", e.to_string()))?,
            )
            .filter(|s: &Vec<Scope>| !s.is_empty()),
        };
        Ok(Self {
            username,
            password,
            scope,
        })
    }
}

/// What the form extractor's refusal means to a client.
fn describe(rejection: FormRejection) -> String {
    match rejection {
        FormRejection::InvalidFormContentType(_) => {
            "the body must be application/x-www-form-urlencoded with fields grant_type, \
             username, password and optionally scope"
                .into()
        }
        other => format!("could not read the form: {}", other.body_text()),
    }
}

async fn token(
    State(auth): State<Auth>,
    peer: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    match grant(auth, peer.ok().map(|ConnectInfo(a)| a), form).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn grant(
    auth: Auth,
    peer: Option<SocketAddr>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, OAuthError> {
    let client = peer.map(|a| a.ip());
    // Without the peer address (a server not serving with connect info) only the per-user
    // limit applies.
    if let Some(ip) = client {
        auth.check_client(ip).map_err(OAuthError::slow_down)?;
    }
    let Form(fields) = form.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OAuthError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "invalid_request",
                description: format!("the form is larger than {TOKEN_BODY_LIMIT} bytes"),
                retry_after: None,
            }
        } else {
            OAuthError::bad("invalid_request", describe(r))
        }
    })?;
    let PasswordGrant {
        username,
        password,
        scope,
    } = PasswordGrant::parse(fields)?;
    let signed = tokio::task::spawn_blocking(move || {
        auth.sign_in(&username, &password, scope.as_deref(), client)
    })
    .await;
    match signed {
        Ok(Ok(issued)) => Ok(no_store(
            (StatusCode::OK, axum::Json(issued)).into_response(),
        )),
        Ok(Err(e)) => Err(match e {
            SignInError::Limited(l) => OAuthError::slow_down(l),
            SignInError::BadCredentials => OAuthError::bad("invalid_grant", e.to_string()),
            SignInError::MissingScope(_) => OAuthError::bad("invalid_scope", e.to_string()),
            SignInError::Internal(_) => OAuthError::server_error(),
        }),
        Err(e) => {
            tracing::error!(error = %e, "the password check did not finish");
            Err(OAuthError::server_error())
        }
    }
}

/// Largest `/token` form, in bytes (a user name, a password and scopes fit many times over).
pub const TOKEN_BODY_LIMIT: usize = 16 * 1024;

/// The router serving `POST /token` for `auth`; larger forms are answered 413.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(auth: Auth) -> Router<S> {
    Router::new()
        .route("/token", post(token))
        .layer(axum::extract::DefaultBodyLimit::max(TOKEN_BODY_LIMIT))
        .with_state(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse_err(pairs: &[(&str, &str)]) -> OAuthError {
        match PasswordGrant::parse(form(pairs)) {
            Ok(_) => panic!("{pairs:?} must be refused"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_password_grant_with_or_without_grant_type() {
        let g = PasswordGrant::parse(form(&[("username", "a"), ("password", "p")])).unwrap();
        assert_eq!((g.username.as_str(), g.password.as_str()), ("a", "p"));
        assert!(g.scope.is_none());
        let g = PasswordGrant::parse(form(&[
            ("grant_type", "password"),
            ("username", "a"),
            ("password", "p"),
            ("scope", "admin predict"),
            ("client_id", "ignored"),
        ]))
        .unwrap();
        assert_eq!(g.scope, Some(vec![Scope::Predict, Scope::Admin]));
        let g = PasswordGrant::parse(form(&[
            ("username", "a"),
            ("password", "p"),
            ("scope", " "),
        ]))
        .unwrap();
        assert!(g.scope.is_none(), "a blank scope means all granted scopes");
    }

    #[test]
    fn refusals() {
        let e = parse_err(&[("grant_type", "client_credentials"), ("username", "a")]);
        assert_eq!(e.code, "unsupported_grant_type");
        assert!(e.description.contains("client_credentials"));
        let e = parse_err(&[("password", "p")]);
        assert_eq!(e.code, "invalid_request");
        assert!(e.description.contains("`username`"), "{}", e.description);
        let e = parse_err(&[("username", "a"), ("password", "")]);
        assert!(e.description.contains("`password`"), "{}", e.description);
        let e = parse_err(&[("username", "a"), ("username", "b"), ("password", "p")]);
        assert_eq!(e.code, "invalid_request");
        assert!(e.description.contains("more than once"));
        let e = parse_err(&[("username", "a"), ("password", "p"), ("scope", "root")]);
        assert_eq!(e.code, "invalid_scope");
        assert!(e.description.contains("root"));
    }
}
