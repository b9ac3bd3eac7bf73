//! Signing in to the UI when authentication is on (`taxon ui --jwt-secret`, the same secret and
//! users database as `taxon serve`): `GET /login` shows the form, `POST /login` checks the
//! password through [`taxon_auth::Auth::sign_in`] (the same rate limits and failure counts as
//! `POST /token`) and keeps the signed token in an `HttpOnly`, `SameSite=Strict` cookie;
//! `POST /logout` drops it. Every other page needs a valid, unrevoked token with a scope
//! (`predict` or `admin`: the UI only reads); without one the browser is sent to the login
//! form, which brings it back to the page it asked for.

use std::cell::RefCell;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use taxon_auth::{SignInError, TokenError};

use crate::AppState;
use crate::html::{Esc, Nav, page, url_encode};

/// The session cookie: the JWT `taxon serve` would issue for the same login.
pub const COOKIE: &str = "taxon_ui_session";

tokio::task_local! {
    /// The signed-in user while a request is handled (async side).
    static VIEWER: Option<String>;
}

thread_local! {
    /// The signed-in user while a page renders on a blocking thread (read by the nav bar).
    static RENDERING_FOR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The user the current request is handled for (`None` when auth is off).
pub(crate) fn current_viewer() -> Option<String> {
    VIEWER.try_with(Clone::clone).ok().flatten()
}

/// Runs `f` with `viewer` visible to [`rendering_for`] on this thread.
pub(crate) fn render_as<T>(viewer: Option<String>, f: impl FnOnce() -> T) -> T {
    RENDERING_FOR.with(|v| *v.borrow_mut() = viewer);
    let out = f();
    RENDERING_FOR.with(|v| v.borrow_mut().take());
    out
}

/// The signed-in user of the page being rendered on this thread.
pub(crate) fn rendering_for() -> Option<String> {
    RENDERING_FOR.with(|v| v.borrow().clone())
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A path on this site to go back to after signing in: local (`/...`, not `//host` or
/// `/\host`, which browsers treat as another site) and free of control characters; anything
/// else goes to the overview.
fn local_target(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Whether the browser reached us over HTTPS (directly never: `taxon ui` speaks plain HTTP,
/// so only through a proxy that says so), in which case the cookie is marked `Secure`.
fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The middleware in front of every page when auth is on: a valid session goes through (its
/// user visible to the nav bar), anything else is sent to `/login?next=<the page>`.
pub(crate) async fn require(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let Some(auth) = &s.auth else {
        return VIEWER.scope(None, next.run(request)).await;
    };
    let why = match cookie(request.headers(), COOKIE).map(|t| auth.verify(t)) {
        Some(Ok(claims)) if !claims.scopes().is_empty() => {
            return VIEWER.scope(Some(claims.sub), next.run(request)).await;
        }
        Some(Ok(_)) => "your account has no scope",
        Some(Err(TokenError::Expired)) => "your session expired",
        Some(Err(TokenError::Revoked)) => "your session was revoked",
        Some(Err(_)) => "your session is not valid here",
        None => "",
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut location = format!("/login?next={}", url_encode(&target));
    if !why.is_empty() {
        location.push_str("&why=");
        location.push_str(&url_encode(why));
    }
    see_other(&location)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    why: Option<String>,
}

/// The login form; `message` (already plain text) is shown above it.
fn form_page(next: &str, username: &str, message: &str) -> String {
    let note = if message.is_empty() {
        String::new()
    } else {
        format!(
            "<p role=\"alert\" id=\"login-message\">{}</p>",
            Esc(message)
        )
    };
    let body = format!(
        "{note}<form method=\"post\" action=\"/login\" id=\"login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <p><label for=\"username\">User name</label> \
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{}\"></p>\
         <p><label for=\"password\">Password</label> \
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p>\
         <p><button type=\"submit\">Sign in</button></p></form>\
         <p class=\"muted\">Accounts are those of <code>taxon users</code>, the same as \
         <code>taxon serve</code>'s.</p>",
        Esc(next),
        Esc(username),
    );
    page("Sign in", Nav::None, &body)
}

/// `GET /login`: the form (or the overview when auth is off).
pub(crate) async fn login_form(State(s): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    if s.auth.is_none() {
        return see_other("/");
    }
    let next = local_target(q.next.as_deref());
    // `why` is one of the middleware's fixed phrases; anything else is not echoed.
    let why = q.why.as_deref().filter(|w| {
        [
            "your account has no scope",
            "your session expired",
            "your session was revoked",
            "your session is not valid here",
        ]
        .contains(w)
    });
    let message = why.map_or(String::new(), |w| format!("Please sign in again: {w}."));
    no_store(Html(form_page(&next, "", &message)).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /login`: checks the password; on success sets the cookie and goes back to `next`.
pub(crate) async fn login(
    State(s): State<AppState>,
    peer: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let Some(auth) = s.auth.clone() else {
        return see_other("/");
    };
    let next = local_target(f.next.as_deref());
    let client = peer.ok().map(|ConnectInfo(a)| a.ip());
    let refuse = |status: StatusCode, message: &str, username: &str| {
        let mut res = (status, Html(form_page(&next, username, message))).into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    };
    if f.username.is_empty() || f.password.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Enter a user name and a password.",
            &f.username,
        );
    }
    if let Some(ip) = client
        && let Err(l) = auth.check_client(ip)
    {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &SignInError::Limited(l).to_string(),
            &f.username,
        );
    }
    let ttl = auth.config().token_ttl.as_secs();
    let LoginForm {
        username, password, ..
    } = f;
    let name = username.clone();
    let signed =
        tokio::task::spawn_blocking(move || auth.sign_in(&name, &password, None, client)).await;
    match signed {
        Ok(Ok(token)) => {
            let secure = if behind_https(&headers) {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{secure}",
                token.access_token
            );
            let mut res = see_other(&next);
            match HeaderValue::from_str(&cookie) {
                Ok(v) => {
                    res.headers_mut().insert(header::SET_COOKIE, v);
                    res
                }
                Err(_) => refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The session could not be set.",
                    &username,
                ),
            }
        }
        Ok(Err(e)) => {
            let status = match e {
                SignInError::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
                SignInError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNAUTHORIZED,
            };
            refuse(status, &format!("Not signed in: {e}."), &username)
        }
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not signed in: the login could not be checked.",
            &username,
        ),
    }
}

/// `POST /logout`: drops the cookie and shows the login form.
pub(crate) async fn logout() -> Response {
    let mut res = see_other("/login");
    res.headers_mut().insert(
        header::SET_COOKIE,
        // COOKIE's name, emptied and expired.
        HeaderValue::from_static("taxon_ui_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_target(Some("/runs?page=2")), "/runs?page=2");
        assert_eq!(local_target(Some("//evil.example/")), "/");
        assert_eq!(local_target(Some("/\\evil.example")), "/");
        assert_eq!(local_target(Some("https://evil.example/")), "/");
        assert_eq!(local_target(Some("/a\r\nSet-Cookie: x")), "/");
        assert_eq!(local_target(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; taxon_ui_session=tok.en"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("tok.en"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
