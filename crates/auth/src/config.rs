//! Authentication settings: signing secret and algorithm, token lifetime, issuer, login rate
//! limits, and how often revocations are re-read from the user store.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::error::AuthError;
use crate::secret::JwtSecret;

/// Environment variable the server reads the signing secret from.
pub const JWT_SECRET_ENV: &str = "TAXON_JWT_SECRET";

/// Default token lifetime: 30 minutes.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);

/// Longest accepted token lifetime: one day. A stateless token cannot be recalled before it
/// expires except through the revocation list, so a long lifetime is refused.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Settings of [`crate::Auth`]. Build with [`AuthConfig::new`], change fields, and
/// [`crate::Auth::new`] validates the result.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// HMAC signing secret (32 bytes or more).
    pub secret: JwtSecret,
    /// HS256 (default), HS384 or HS512; anything else is refused.
    pub algorithm: Algorithm,
    /// Lifetime of issued tokens (`expires_in`), 30 minutes by default.
    pub token_ttl: Duration,
    /// `iss` claim written into tokens and required from them.
    pub issuer: String,
    /// `/token` attempts allowed per user name and client address and minute (burst; refills
    /// evenly).
    pub user_attempts_per_minute: u32,
    /// Failed `/token` attempts per user name and minute from every address together; past
    /// them the addresses that failed back off, others may still try.
    pub user_failures_per_minute: u32,
    /// `/token` attempts allowed per client address and minute (burst; refills evenly).
    pub client_attempts_per_minute: u32,
    /// How often the guard re-reads removed users and password changes from the store (in the
    /// background, never on the request path). `/token` also re-reads them.
    pub revocation_refresh: Duration,
}

impl AuthConfig {
    /// Defaults around `secret`: HS256, 30-minute tokens, issuer `taxon`, 5 attempts per user
    /// and 20 per client a minute, revocations re-read every 10 seconds. Refuses a secret
    /// shorter than 32 bytes.
    pub fn new(secret: &str) -> Result<Self, AuthError> {
        Ok(Self {
            secret: JwtSecret::new(secret)?,
            algorithm: Algorithm::HS256,
            token_ttl: DEFAULT_TOKEN_TTL,
            issuer: "taxon".into(),
            user_attempts_per_minute: 5,
            user_failures_per_minute: 20,
            client_attempts_per_minute: 20,
            revocation_refresh: Duration::from_secs(10),
        })
    }

    /// Checks every field; [`crate::Auth::new`] calls it.
    pub fn validate(&self) -> Result<(), AuthError> {
        check_algorithm(self.algorithm)?;
        if self.token_ttl < Duration::from_secs(1) || self.token_ttl > MAX_TOKEN_TTL {
            return Err(AuthError::InvalidConfig {
                field: "token_ttl",
                reason: format!(
                    "{} s is outside 1 s ..= {} s",
                    self.token_ttl.as_secs_f64(),
                    MAX_TOKEN_TTL.as_secs()
                ),
            });
        }
        if self.revocation_refresh < Duration::from_secs(1) {
            return Err(AuthError::InvalidConfig {
                field: "revocation_refresh",
                reason: "must be at least 1 s".into(),
            });
        }
        if self.issuer.trim().is_empty() {
            return Err(AuthError::InvalidConfig {
                field: "issuer",
                reason: "must not be empty".into(),
            });
        }
        for (field, v) in [
            ("user_attempts_per_minute", self.user_attempts_per_minute),
            ("user_failures_per_minute", self.user_failures_per_minute),
            (
                "client_attempts_per_minute",
                self.client_attempts_per_minute,
            ),
        ] {
            if v == 0 {
                return Err(AuthError::InvalidConfig {
                    field,
                    reason: "must be at least 1 (0 would lock every login out)".into(),
                });
            }
        }
        Ok(())
    }
}

/// Parses an algorithm name (`HS256`, `hs384`, ...), refusing all but the HMAC family.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, AuthError> {
    let alg = name
        .to_ascii_uppercase()
        .parse::<Algorithm>()
        .map_err(|_| AuthError::UnsupportedAlgorithm(name.to_string()))?;
    check_algorithm(alg)?;
    Ok(alg)
}

/// Accepts HS256, HS384 and HS512: the algorithms that sign with a shared secret.
fn check_algorithm(alg: Algorithm) -> Result<(), AuthError> {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(()),
        other => Err(AuthError::UnsupportedAlgorithm(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "an example secret that is long enough";

    #[test]
    fn defaults() {
        let c = AuthConfig::new(SECRET).unwrap();
        assert_eq!(c.algorithm, Algorithm::HS256);
        assert_eq!(c.token_ttl, Duration::from_secs(1800));
        assert_eq!(c.issuer, "taxon");
        assert_eq!(c.user_attempts_per_minute, 5);
        assert_eq!(c.client_attempts_per_minute, 20);
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("example secret"));
    }

    #[test]
    fn weak_secret_refused() {
        assert!(matches!(
            AuthConfig::new("short").unwrap_err(),
            AuthError::WeakSecret { len: 5, min: 32 }
        ));
    }

    #[test]
    fn only_hmac_algorithms() {
        assert_eq!(parse_algorithm("HS256").unwrap(), Algorithm::HS256);
        assert_eq!(parse_algorithm("hs384").unwrap(), Algorithm::HS384);
        assert_eq!(parse_algorithm("HS512").unwrap(), Algorithm::HS512);
        for bad in ["RS256", "ES256", "EdDSA", "none", "HS1024", ""] {
            let err = parse_algorithm(bad).unwrap_err();
            assert!(
                err.to_string().contains("use HS256, HS384 or HS512"),
                "{bad}: {err}"
            );
        }
        let mut c = AuthConfig::new(SECRET).unwrap();
        c.algorithm = Algorithm::RS256;
        assert!(matches!(
            c.validate(),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn ranges_are_checked() {
        let base = AuthConfig::new(SECRET).unwrap();
        let mut c = base.clone();
        c.token_ttl = Duration::ZERO;
        assert!(c.validate().unwrap_err().to_string().contains("token_ttl"));
        c.token_ttl = MAX_TOKEN_TTL + Duration::from_secs(1);
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.user_attempts_per_minute = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("user_attempts_per_minute")
        );
        let mut c = base.clone();
        c.client_attempts_per_minute = 0;
        assert!(c.validate().is_err());
        let mut c = base;
        c.issuer = " ".into();
        assert!(c.validate().is_err());
    }
}
