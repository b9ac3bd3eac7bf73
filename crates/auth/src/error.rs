//! The one error type of taxon-auth: what went wrong, where, and what to do about it.

use std::path::PathBuf;

/// Everything that can fail in taxon-auth. Messages never contain a secret, a password or a
/// token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The JWT signing secret is too short to resist brute force.
    #[error(
        "the JWT signing secret is {len} bytes long; at least {min} bytes are required \
         (generate one with `openssl rand -hex 32`)"
    )]
    WeakSecret { len: usize, min: usize },
    /// A JWT algorithm taxon does not sign with.
    #[error("JWT algorithm {0} is not supported: use HS256, HS384 or HS512")]
    UnsupportedAlgorithm(String),
    /// An authentication setting outside its allowed range.
    #[error("invalid authentication setting {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// A scope name other than `predict` and `admin`.
    #[error("unknown scope `{0}` (known scopes: predict, admin)")]
    UnknownScope(String),
    /// A user name taxon cannot store.
    #[error("invalid user name `{name}`: {reason}")]
    InvalidUserName { name: String, reason: &'static str },
    /// A password the policy refuses.
    #[error("the password is too weak: {reason} (a password needs {policy})", policy = crate::password::PASSWORD_POLICY)]
    WeakPassword { reason: String },
    /// A user created without any scope.
    #[error("a user needs at least one scope (predict, admin)")]
    NoScopes,
    /// `add` of a name that is already taken.
    #[error("user `{0}` already exists (use `taxon users passwd` to change the password)")]
    UserExists(String),
    /// An operation on a user that is not in the store.
    #[error("no user `{0}`")]
    NoSuchUser(String),
    /// The user store could not be read or written.
    #[error("user store {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: taxon_db::DbError,
    },
    /// A file-system operation on the user store's folder failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A row of the user store that taxon cannot interpret.
    #[error("user store {path}: user `{name}`: {reason}")]
    CorruptUser {
        path: PathBuf,
        name: String,
        reason: String,
    },
    /// The password hash function failed (not a wrong password: that is `Ok(None)`).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A token could not be signed.
    #[error("could not sign the token: {0}")]
    Token(#[source] jsonwebtoken::errors::Error),
    /// The operating system's random number generator failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// A non-loopback listen address while authentication is off.
    #[error(
        "refusing to listen on {host} without authentication: anyone who can reach it could \
         predict and change models. Set a signing secret (--jwt-secret or TAXON_JWT_SECRET, \
         32 bytes or more) and add users with `taxon users add`, listen on 127.0.0.1, or pass \
         --insecure to accept the risk"
    )]
    InsecureBind { host: String },
}

impl AuthError {
    /// A closure mapping a database error on `path` (a file, or a PostgreSQL URL without its
    /// password) to [`AuthError::Db`].
    pub(crate) fn db(path: &std::path::Path) -> impl Fn(taxon_db::DbError) -> AuthError + '_ {
        move |source| AuthError::Db {
            path: path.to_path_buf(),
            source,
        }
    }
}
