//! [`Auth::sign_in`]: one password login from start to token, shared by `POST /token` and the
//! web UI's login form, so both count attempts against the same limits, report the same
//! failures and issue the same tokens.

use std::fmt;
use std::net::IpAddr;

use crate::auth::{Auth, Login};
use crate::failure::AuthFailure;
use crate::limit::Limited;
use crate::scope::Scope;
use crate::token::IssuedToken;

/// Why a sign-in got no token.
#[derive(Debug)]
pub enum SignInError {
    /// A login rate limit refused the attempt before any password was checked.
    Limited(Limited),
    /// Wrong password, or no such user (the caller is not told which).
    BadCredentials,
    /// The user lacks a requested scope.
    MissingScope(Scope),
    /// The store could not be read or the token could not be signed (logged; the caller
    /// answers a server error).
    Internal(String),
}

impl fmt::Display for SignInError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignInError::Limited(l) => {
                let who = match l {
                    Limited::User(_) => "for this user from this address",
                    Limited::Backoff(_) => "for this user",
                    Limited::Client(_) => "from this address",
                    Limited::Saturated => "on this server",
                };
                write!(
                    f,
                    "too many login attempts {who}; retry in {} s",
                    l.retry_after_secs()
                )
            }
            SignInError::BadCredentials => f.write_str("invalid username or password"),
            SignInError::MissingScope(s) => write!(f, "scope `{s}` is not granted to this user"),
            SignInError::Internal(_) => f.write_str("the login could not be checked"),
        }
    }
}

impl Auth {
    /// Counts an attempt from `client` against the per-address limit (call it before reading
    /// anything else of the request). A refusal is reported to [`Auth::on_limited`].
    pub fn check_client(&self, client: IpAddr) -> Result<(), Limited> {
        self.limits().check_client(client).inspect_err(|&l| {
            tracing::warn!(client = %client, "login rate limit reached for a client");
            self.limited(l);
        })
    }

    /// Checks `username`'s password and signs a token with `scope` (all the user's scopes
    /// when `None`). Applies the per-user limits (the per-address one is
    /// [`Auth::check_client`]), records failures for the back-off, re-reads revocations and
    /// reports refusals to [`Auth::on_failure`]. Blocking: argon2 takes tens of ms.
    pub fn sign_in(
        &self,
        username: &str,
        password: &str,
        scope: Option<&[Scope]>,
        client: Option<IpAddr>,
    ) -> Result<IssuedToken, SignInError> {
        self.limits().check_user(username, client).map_err(|l| {
            tracing::warn!(client = ?client, limit = l.label(), "login rate limit reached for a user name");
            self.limited(l);
            SignInError::Limited(l)
        })?;
        let outcome = self.login(username, password);
        if let Err(e) = self.refresh_revocations() {
            tracing::warn!(error = %e, "could not re-read revoked users");
        }
        let user = match outcome {
            Ok(Login::Granted(user)) => user,
            Ok(Login::Refused { known_user }) => {
                self.limits().failed(username, client);
                // The name is logged only when it is an account's: a mistyped name may be a
                // password typed in the wrong field.
                if known_user {
                    tracing::warn!(user = %username, client = ?client, "login failed: wrong password");
                    self.failed(AuthFailure::BadPassword);
                } else {
                    tracing::warn!(client = ?client, "login failed: unknown user");
                    self.failed(AuthFailure::UnknownUser);
                }
                return Err(SignInError::BadCredentials);
            }
            Err(e) => {
                tracing::error!(error = %e, "login could not be checked");
                return Err(SignInError::Internal(e.to_string()));
            }
        };
        let scopes = match scope {
            None => user.scopes.clone(),
            Some(requested) => {
                if let Some(&missing) = requested.iter().find(|s| !user.scopes.contains(s)) {
                    self.failed(AuthFailure::MissingScope);
                    return Err(SignInError::MissingScope(missing));
                }
                requested.to_vec()
            }
        };
        let issued = self.issue(&user.name, &scopes).map_err(|e| {
            tracing::error!(error = %e, "could not sign a token");
            SignInError::Internal(e.to_string())
        })?;
        tracing::info!(user = %user.name, scope = %issued.scope, client = ?client, "issued a token");
        Ok(issued)
    }
}
