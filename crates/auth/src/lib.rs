//! Authentication for the inference server: users with argon2id hashes in a SQLite store, the
//! OAuth2 password flow (`POST /token`, RFC 6749 section 4.3), HS256/384/512 JWT bearer
//! tokens (RFC 7519) with the scopes `predict` and `admin`, a route guard answering 401/403
//! with RFC 6750 challenges, and login rate limits per user and per client.
//!
//! The server wires it in three calls:
//!
//! ```no_run
//! # fn wire(predict: axum::Router, admin: axum::Router) -> Result<axum::Router, taxon_auth::AuthError> {
//! use taxon_auth::{Auth, AuthConfig, Scope, UserStore};
//! let users = UserStore::open(std::path::Path::new(taxon_auth::DEFAULT_USERS_DB))?;
//! let auth = Auth::new(AuthConfig::new("a secret of 32 bytes or more....")?, users)?;
//! let app = auth
//!     .guard(predict, Scope::Predict)
//!     .merge(auth.guard(admin, Scope::Admin))
//!     .merge(auth.token_router());
//! # Ok(app) }
//! ```
//!
//! Secrets, passwords and tokens never reach a log line or a `Debug` string.

mod auth;
mod bind;
mod config;
mod error;
mod failure;
mod http;
mod limit;
mod password;
mod scope;
mod secret;
mod sign_in;
mod terminal;
mod token;
mod users;

pub use auth::Auth;
pub use bind::{check_bind, is_loopback, startup_banner};
pub use config::{AuthConfig, DEFAULT_TOKEN_TTL, JWT_SECRET_ENV, MAX_TOKEN_TTL, parse_algorithm};
pub use error::AuthError;
pub use failure::AuthFailure;
pub use http::{REALM, TOKEN_BODY_LIMIT};
pub use limit::Limited;
pub use password::{
    MIN_DISTINCT_CHARS, MIN_PASSWORD_CHARS, PASSWORD_POLICY, check_password_policy,
};
pub use scope::{Scope, format_scopes, parse_scopes};
pub use secret::{JwtSecret, MIN_SECRET_BYTES};
pub use sign_in::SignInError;
pub use terminal::prompt_password;
pub use token::{Claims, IssuedToken, TokenError};
pub use users::{
    DEFAULT_USERS_DB, MAX_USER_NAME, USERS_DB_ENV, UserInfo, UserStore, check_user_name,
};
