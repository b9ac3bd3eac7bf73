//! [`AuthFailure`]: why a request or a login was refused, as the server counts it
//! (`taxon_auth_failures_total{reason}`).

use crate::token::TokenError;

/// Why the guard refused a request or `POST /token` refused a login. Rate-limited logins are
/// not failures of this kind: they go to [`crate::Auth::on_limited`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// A guarded route was called without `Authorization: Bearer`.
    MissingToken,
    /// A token that is malformed, badly signed, of another algorithm or issuer, issued in the
    /// future or living longer than the server allows.
    BadToken,
    /// A token past its `exp`.
    Expired,
    /// A token of a user removed or whose password changed since it was issued.
    Revoked,
    /// A valid token without the route's scope, or a login asking for a scope the user lacks.
    MissingScope,
    /// A login with a known user name and a wrong password.
    BadPassword,
    /// A login with a user name that has no account.
    UnknownUser,
}

impl AuthFailure {
    /// Every reason, in the order of the metric's documentation.
    pub const ALL: [AuthFailure; 7] = [
        AuthFailure::MissingToken,
        AuthFailure::BadToken,
        AuthFailure::Expired,
        AuthFailure::Revoked,
        AuthFailure::MissingScope,
        AuthFailure::BadPassword,
        AuthFailure::UnknownUser,
    ];

    /// The `reason` label: `missing_token`, `bad_token`, `expired`, `revoked`,
    /// `missing_scope`, `bad_password` or `unknown_user`.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::BadToken => "bad_token",
            AuthFailure::Expired => "expired",
            AuthFailure::Revoked => "revoked",
            AuthFailure::MissingScope => "missing_scope",
            AuthFailure::BadPassword => "bad_password",
            AuthFailure::UnknownUser => "unknown_user",
        }
    }
}

impl From<&TokenError> for AuthFailure {
    fn from(e: &TokenError) -> Self {
        match e {
            TokenError::Expired => AuthFailure::Expired,
            TokenError::Revoked => AuthFailure::Revoked,
            TokenError::BadSignature
            | TokenError::WrongAlgorithm
            | TokenError::WrongIssuer
            | TokenError::Malformed
            | TokenError::IssuedInFuture
            | TokenError::LifetimeTooLong => AuthFailure::BadToken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_token_errors_map_to_them() {
        let labels: std::collections::HashSet<_> =
            AuthFailure::ALL.iter().map(|f| f.label()).collect();
        assert_eq!(labels.len(), AuthFailure::ALL.len());
        assert_eq!(AuthFailure::from(&TokenError::Expired).label(), "expired");
        assert_eq!(AuthFailure::from(&TokenError::Revoked).label(), "revoked");
        assert_eq!(
            AuthFailure::from(&TokenError::LifetimeTooLong).label(),
            "bad_token"
        );
    }
}
