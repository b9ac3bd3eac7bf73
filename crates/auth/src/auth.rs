//! [`Auth`]: the shared authentication state of a server (settings, keys, user store, login
//! limiters, revocations) and its seam with axum: [`Auth::token_router`] serves `POST /token`,
//! [`Auth::guard`] protects a group of routes.
//!
//! Revocation. Tokens are stateless JWTs checked without touching the store, so the guard
//! keeps in memory, for each name that has or had an account, the time before which its
//! tokens are refused: its creation or last password change, or its removal (`taxon users
//! remove` leaves a tombstone). That map is re-read in the background every
//! `revocation_refresh` (10 s by default) and on every `/token` call, never on the request
//! path. So a removed user's tokens stop working within about 10 s, not when they expire;
//! tokens issued in the same second as the change survive it (JWT times are whole seconds).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use axum::Router;

use crate::config::AuthConfig;
use crate::error::AuthError;
use crate::failure::AuthFailure;
use crate::limit::{Limited, LoginLimits};
use crate::scope::Scope;
use crate::token::{Claims, IssuedToken, Keys, TokenError, new_claims};
use crate::users::{UserInfo, UserStore, check_credentials};

/// Authentication for one server. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    keys: Keys,
    users: Mutex<UserStore>,
    users_path: PathBuf,
    limits: LoginLimits,
    /// User name -> ms since the epoch before which its tokens are refused.
    not_before: ArcSwap<HashMap<String, i64>>,
    /// When `not_before` was last read, seconds since the epoch.
    refreshed_at: AtomicI64,
    refreshing: AtomicBool,
    /// Called with each login refused by a rate limit (the server's metrics).
    on_limited: std::sync::OnceLock<Box<dyn Fn(Limited) + Send + Sync>>,
    /// Called with each refused request or login (the server's metrics).
    on_failure: std::sync::OnceLock<Box<dyn Fn(AuthFailure) + Send + Sync>>,
}

/// The result of checking a user name and password.
pub(crate) enum Login {
    /// The password is right.
    Granted(UserInfo),
    /// Wrong password, or no such user (`known_user` tells which, for the log only).
    Refused { known_user: bool },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("config", &self.inner.config)
            .field("users", &self.inner.users_path)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Validates `config` (algorithm, ranges) and reads the revocation times from `users`.
    pub fn new(config: AuthConfig, users: UserStore) -> Result<Self, AuthError> {
        config.validate()?;
        let not_before = users.not_before()?;
        Ok(Self {
            inner: Arc::new(Inner {
                keys: Keys::new(&config),
                limits: LoginLimits::new(
                    config.user_attempts_per_minute,
                    config.client_attempts_per_minute,
                    config.user_failures_per_minute,
                ),
                on_limited: std::sync::OnceLock::new(),
                on_failure: std::sync::OnceLock::new(),
                users_path: users.path().to_path_buf(),
                users: Mutex::new(users),
                not_before: ArcSwap::from_pointee(not_before),
                refreshed_at: AtomicI64::new(chrono::Utc::now().timestamp()),
                refreshing: AtomicBool::new(false),
                config,
            }),
        })
    }

    /// Calls `f` with every login a rate limit refuses (the server counts them as a security
    /// metric). Only the first call takes effect.
    pub fn on_limited(&self, f: impl Fn(Limited) + Send + Sync + 'static) {
        let _ = self.inner.on_limited.set(Box::new(f));
    }

    /// Reports a limited login to [`Auth::on_limited`]'s callback.
    pub(crate) fn limited(&self, limit: Limited) {
        if let Some(f) = self.inner.on_limited.get() {
            f(limit);
        }
    }

    /// Calls `f` with every refusal: a guarded request without a valid token or scope, a
    /// login with a wrong password, an unknown user or a scope the user lacks (the server
    /// counts them as `taxon_auth_failures_total{reason}`). Only the first call takes effect.
    pub fn on_failure(&self, f: impl Fn(AuthFailure) + Send + Sync + 'static) {
        let _ = self.inner.on_failure.set(Box::new(f));
    }

    /// Reports a refusal to [`Auth::on_failure`]'s callback.
    pub(crate) fn failed(&self, failure: AuthFailure) {
        if let Some(f) = self.inner.on_failure.get() {
            f(failure);
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Signs a token for `user` with `scopes`, valid for the configured lifetime. Does not
    /// check the user store: `/token` does that before calling it.
    pub fn issue(&self, user: &str, scopes: &[Scope]) -> Result<IssuedToken, AuthError> {
        let mut claims = new_claims(&self.inner.config, user, scopes)?;
        // A token issued in the very millisecond of the user's last password change (or
        // creation) comes after it (it was issued for the new password), so it is stamped one
        // millisecond later: `verify` refuses what was issued at or before the change.
        if let Some(&changed) = self.inner.not_before.load().get(user)
            && claims.iat_ms.is_some_and(|ms| ms <= changed)
        {
            claims.iat_ms = Some(changed + 1);
        }
        Ok(IssuedToken {
            access_token: self.inner.keys.sign(&claims)?,
            token_type: "bearer",
            expires_in: self.inner.config.token_ttl.as_secs(),
            scope: claims.scope.clone(),
            claims,
        })
    }

    /// Checks a presented token: signature, algorithm, issuer, expiry and revocation. No
    /// store access; may start a background re-read of the revocation times.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self.inner.keys.verify(token)?;
        let revoked = self
            .inner
            .not_before
            .load()
            .get(claims.sub.as_str())
            // Issued at or before the removal or password change (in milliseconds: a token
            // from the same second as the change is not let through).
            .is_some_and(|&ms| claims.issued_at_ms() <= ms);
        self.refresh_if_stale();
        if revoked {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Re-reads removed users and password changes from the store (blocking: call it from a
    /// blocking context). The guard does it by itself every `revocation_refresh`.
    pub fn refresh_revocations(&self) -> Result<(), AuthError> {
        let map = self.users().not_before()?;
        self.inner.not_before.store(Arc::new(map));
        self.inner
            .refreshed_at
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        Ok(())
    }

    /// Starts a background refresh when the last one is older than `revocation_refresh` and
    /// none is running.
    fn refresh_if_stale(&self) {
        let every =
            i64::try_from(self.inner.config.revocation_refresh.as_secs()).unwrap_or(i64::MAX);
        let now = chrono::Utc::now().timestamp();
        if now.saturating_sub(self.inner.refreshed_at.load(Ordering::Relaxed)) < every {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        runtime.spawn_blocking(move || {
            if let Err(e) = me.refresh_revocations() {
                tracing::warn!(error = %e, "could not re-read revoked users; keeping the previous list");
                // Try again after another interval, not on the next request.
                me.inner
                    .refreshed_at
                    .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
            }
            me.inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// Checks `name` and `password` against the store (blocking: argon2 takes tens of ms).
    /// The store is locked only for the look-up, not for the hash.
    pub(crate) fn login(&self, name: &str, password: &str) -> Result<Login, AuthError> {
        let found = self.users().credentials(name)?;
        let known_user = found.is_some();
        Ok(
            match check_credentials(found, password, &self.inner.users_path)? {
                Some(user) => Login::Granted(user),
                None => Login::Refused { known_user },
            },
        )
    }

    pub(crate) fn limits(&self) -> &LoginLimits {
        &self.inner.limits
    }

    fn users(&self) -> MutexGuard<'_, UserStore> {
        // A panic while holding the lock cannot leave the store half-written (SQLite
        // transactions): keep using it.
        self.inner
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `POST /token`: the OAuth2 password grant (RFC 6749 section 4.3). Merge it into the
    /// server's router; it needs no state of its own.
    pub fn token_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        crate::http::token::router(self.clone())
    }

    /// `routes` behind a bearer-token check requiring `scope`: 401 with `WWW-Authenticate`
    /// for a missing, invalid, expired or revoked token, 403 for a token without `scope`.
    /// Handlers find the token's [`Claims`] in the request extensions. Only the routes
    /// already in `routes` are guarded (a `route_layer`); add public routes afterwards.
    pub fn guard<S: Clone + Send + Sync + 'static>(
        &self,
        routes: Router<S>,
        scope: Scope,
    ) -> Router<S> {
        crate::http::guard::protect(self.clone(), routes, scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn auth() -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(&dir.path().join("users.db")).unwrap();
        store
            .add("alice", "alice-password", &[Scope::Predict])
            .unwrap();
        store.add("bob", "bob-password", &[Scope::Predict]).unwrap();
        // Accounts made a minute ago, so tokens issued now postdate them.
        store
            .conn_for_tests()
            .execute(
                "UPDATE users SET created_at = created_at - 60000, updated_at = updated_at - 60000",
                &[],
            )
            .unwrap();
        let auth = Auth::new(AuthConfig::new(SECRET).unwrap(), store).unwrap();
        (dir, auth)
    }

    /// A token for `user` issued `ago` seconds ago.
    fn token_issued_ago(auth: &Auth, user: &str, ago: i64) -> String {
        let mut claims = new_claims(auth.config(), user, &[Scope::Predict]).unwrap();
        claims.iat -= ago;
        claims.exp -= ago;
        claims.iat_ms = claims.iat_ms.map(|ms| ms - ago * 1000);
        auth.inner.keys.sign(&claims).unwrap()
    }

    #[test]
    fn login_grants_and_refuses() {
        let (_d, auth) = auth();
        assert!(matches!(
            auth.login("alice", "alice-password").unwrap(),
            Login::Granted(u) if u.name == "alice"
        ));
        assert!(matches!(
            auth.login("alice", "wrong-password").unwrap(),
            Login::Refused { known_user: true }
        ));
        assert!(matches!(
            auth.login("carol", "alice-password").unwrap(),
            Login::Refused { known_user: false }
        ));
    }

    #[test]
    fn removed_users_tokens_are_revoked_after_a_refresh() {
        let (_d, auth) = auth();
        let alice = token_issued_ago(&auth, "alice", 5);
        let bob = token_issued_ago(&auth, "bob", 5);
        auth.verify(&alice).unwrap();
        assert!(auth.users().remove("alice").unwrap());
        // Not yet re-read: the token still passes.
        auth.verify(&alice).unwrap();
        auth.refresh_revocations().unwrap();
        assert_eq!(auth.verify(&alice), Err(TokenError::Revoked));
        auth.verify(&bob).unwrap();
        // A new account under the old name does not revive old tokens.
        auth.users()
            .add("alice", "new-alice-password", &[Scope::Predict])
            .unwrap();
        auth.refresh_revocations().unwrap();
        assert_eq!(auth.verify(&alice), Err(TokenError::Revoked));
    }

    #[test]
    fn a_password_change_revokes_older_tokens_only() {
        let (_d, auth) = auth();
        let old = token_issued_ago(&auth, "alice", 5);
        auth.users()
            .set_password("alice", "changed-password")
            .unwrap();
        auth.refresh_revocations().unwrap();
        assert_eq!(auth.verify(&old), Err(TokenError::Revoked));
        // Issued after the change (a later second): accepted.
        let mut claims = new_claims(auth.config(), "alice", &[Scope::Predict]).unwrap();
        claims.iat += 1;
        claims.iat_ms = claims.iat_ms.map(|ms| ms + 1000);
        let fresh = auth.inner.keys.sign(&claims).unwrap();
        auth.verify(&fresh).unwrap();
    }

    /// Waits until the wall clock is early in a second, so the next steps share it.
    fn start_of_a_second() {
        while chrono::Utc::now().timestamp_subsec_millis() > 300 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_token_issued_in_the_same_second_as_a_removal_is_revoked() {
        let (_d, auth) = auth();
        start_of_a_second();
        let token = auth.issue("alice", &[Scope::Predict]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(auth.users().remove("alice").unwrap());
        auth.refresh_revocations().unwrap();
        let iat = token.claims.iat;
        assert_eq!(
            chrono::Utc::now().timestamp(),
            iat,
            "the removal fell in the token's second"
        );
        assert_eq!(auth.verify(&token.access_token), Err(TokenError::Revoked));
    }

    #[test]
    fn a_password_change_in_the_same_second_revokes_the_token_and_not_the_next() {
        let (_d, auth) = auth();
        start_of_a_second();
        let before = auth.issue("alice", &[Scope::Predict]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        auth.users()
            .set_password("alice", "changed-password")
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let after = auth.issue("alice", &[Scope::Predict]).unwrap();
        auth.refresh_revocations().unwrap();
        assert_eq!(before.claims.iat, after.claims.iat, "one second");
        assert_eq!(auth.verify(&before.access_token), Err(TokenError::Revoked));
        auth.verify(&after.access_token).unwrap();
    }

    #[test]
    fn a_token_without_milliseconds_from_the_revocation_second_is_refused() {
        let (_d, auth) = auth();
        start_of_a_second();
        let mut claims = new_claims(auth.config(), "alice", &[Scope::Predict]).unwrap();
        claims.iat_ms = None;
        let legacy = auth.inner.keys.sign(&claims).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        auth.users()
            .set_password("alice", "changed-password")
            .unwrap();
        auth.refresh_revocations().unwrap();
        assert_eq!(auth.verify(&legacy), Err(TokenError::Revoked));
    }

    #[test]
    fn tokens_for_names_never_stored_are_not_revoked() {
        let (_d, auth) = auth();
        let t = auth.issue("service", &[Scope::Admin]).unwrap();
        let claims = auth.verify(&t.access_token).unwrap();
        assert_eq!(claims.sub, "service");
        assert!(claims.has(Scope::Admin) && !claims.has(Scope::Predict));
    }

    #[test]
    fn login_then_issue_in_the_same_second_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(&dir.path().join("users.db")).unwrap();
        store.add("new", "new-password", &[Scope::Predict]).unwrap();
        let auth = Auth::new(AuthConfig::new(SECRET).unwrap(), store).unwrap();
        let t = auth.issue("new", &[Scope::Predict]).unwrap();
        auth.verify(&t.access_token).unwrap();
    }

    #[test]
    fn invalid_settings_are_refused_at_construction() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(&dir.path().join("users.db")).unwrap();
        let mut c = AuthConfig::new(SECRET).unwrap();
        c.algorithm = jsonwebtoken::Algorithm::ES256;
        let err = Auth::new(c, store).unwrap_err();
        assert!(matches!(err, AuthError::UnsupportedAlgorithm(_)), "{err}");
    }

    #[test]
    fn debug_hides_the_secret() {
        let (_d, auth) = auth();
        let s = format!("{auth:?}");
        assert!(!s.contains(SECRET) && s.contains("[redacted]"), "{s}");
    }
}
