//! JWT bearer tokens (RFC 7519): the claims taxon writes, signing, and verification with a key
//! and a validation built once, so checking a token costs one HMAC and one small JSON parse.

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;
use crate::error::AuthError;
use crate::scope::{Scope, format_scopes};

/// The claims of a taxon token. Handlers behind [`crate::Auth::guard`] read them from the
/// request's extensions (`Extension<Claims>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    /// Granted scopes, space-separated (RFC 8693 `scope` claim): `"predict admin"`.
    pub scope: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Issuer (`taxon` unless configured).
    pub iss: String,
    /// Unique token id (32 hex digits).
    pub jti: String,
    /// Issued at, milliseconds since the epoch (taxon's own claim: whole-second `iat` cannot
    /// tell a token issued just before a revocation from one issued just after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
}

impl Claims {
    /// Whether the token carries scope `s`. Scopes are independent: `admin` does not imply
    /// `predict`.
    pub fn has(&self, s: Scope) -> bool {
        self.scope.split_ascii_whitespace().any(|x| x == s.as_str())
    }

    /// When the token was issued, in milliseconds since the epoch: `iat_ms`, or for a token
    /// without it the first millisecond of its `iat` second (so a revocation in that second
    /// refuses it).
    pub fn issued_at_ms(&self) -> i64 {
        self.iat_ms
            .filter(|ms| ms.div_euclid(1000) == self.iat)
            .unwrap_or_else(|| self.iat.saturating_mul(1000))
    }

    /// The scopes taxon knows among the token's (unknown names are skipped).
    pub fn scopes(&self) -> Vec<Scope> {
        Scope::ALL.into_iter().filter(|s| self.has(*s)).collect()
    }
}

/// A freshly signed token, serialized as the RFC 6749 section 5.1 response body
/// (`access_token`, `token_type`, `expires_in`, `scope`). `Debug` hides the token.
#[derive(Clone, Serialize)]
pub struct IssuedToken {
    /// The signed JWT.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// What the token says.
    #[serde(skip)]
    pub claims: Claims,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("claims", &self.claims)
            .finish()
    }
}

/// Why a presented token was refused. The text is safe to show to the client and to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `exp` is in the past.
    #[error("the token has expired; request a new one from POST /token")]
    Expired,
    /// Not signed with this server's secret.
    #[error("the token signature is invalid")]
    BadSignature,
    /// Signed with another algorithm than the configured one.
    #[error("the token algorithm is not the one this server signs with")]
    WrongAlgorithm,
    /// `iss` is not this server's issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// The user was removed or changed password after the token was issued.
    #[error("the token was revoked: its user was removed or changed password")]
    Revoked,
    /// Not a JWT, or one without taxon's claims.
    #[error("the token is malformed")]
    Malformed,
    /// `iat` is in the future.
    #[error("the token is issued in the future")]
    IssuedInFuture,
    /// `exp` is further from `iat` than this server's token lifetime.
    #[error("the token lives longer than this server's token lifetime")]
    LifetimeTooLong,
}

/// Signing and verifying keys with the validation rules, built once.
pub(crate) struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    /// The longest lifetime (`exp - iat`) accepted: the configured one.
    max_lifetime: i64,
}

impl Keys {
    pub(crate) fn new(config: &AuthConfig) -> Self {
        let secret = config.secret.as_bytes();
        let mut validation = Validation::new(config.algorithm);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        // Tokens are checked by the server that issued them (or its replicas, on the same
        // clock source): `expires_in` means what it says.
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            header: Header::new(config.algorithm),
            validation,
            max_lifetime: i64::try_from(config.token_ttl.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Signs `claims`.
    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding).map_err(AuthError::Token)
    }

    /// Verifies the signature, algorithm, issuer and expiry of `token`, that it was not issued
    /// in the future (1 s of clock skew allowed) and that it lives no longer than the
    /// configured token lifetime.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self.decode(token)?;
        if claims.iat > chrono::Utc::now().timestamp() + 1 {
            return Err(TokenError::IssuedInFuture);
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime {
            return Err(TokenError::LifetimeTooLong);
        }
        Ok(claims)
    }

    fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                _ => TokenError::Malformed,
            })
    }
}

/// 32 random hex digits for `jti`.
pub(crate) fn new_token_id() -> Result<String, AuthError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Claims for `user` with `scopes`, issued now by `config`'s issuer.
pub(crate) fn new_claims(
    config: &AuthConfig,
    user: &str,
    scopes: &[Scope],
) -> Result<Claims, AuthError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let now = now_ms.div_euclid(1000);
    let ttl = i64::try_from(config.token_ttl.as_secs()).unwrap_or(i64::MAX);
    Ok(Claims {
        sub: user.to_string(),
        scope: format_scopes(scopes),
        iat: now,
        exp: now.saturating_add(ttl),
        iss: config.issuer.clone(),
        jti: new_token_id()?,
        iat_ms: Some(now_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn keys(f: impl FnOnce(&mut AuthConfig)) -> (AuthConfig, Keys) {
        let mut c = AuthConfig::new(SECRET).unwrap();
        f(&mut c);
        let k = Keys::new(&c);
        (c, k)
    }

    #[test]
    fn claims_round_trip_with_every_hmac_algorithm() {
        for alg in [
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::Algorithm::HS384,
            jsonwebtoken::Algorithm::HS512,
        ] {
            let (c, k) = keys(|c| c.algorithm = alg);
            let claims = new_claims(&c, "alice", &[Scope::Admin, Scope::Predict]).unwrap();
            let token = k.sign(&claims).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg);
            assert_eq!(k.verify(&token).unwrap(), claims);
        }
    }

    #[test]
    fn claims_content() {
        let (c, _) = keys(|_| {});
        let claims = new_claims(&c, "alice", &[Scope::Admin, Scope::Predict]).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.scope, "predict admin");
        assert_eq!(claims.exp - claims.iat, 1800);
        assert_eq!(claims.iss, "taxon");
        assert_eq!(claims.jti.len(), 32);
        assert!(claims.has(Scope::Predict) && claims.has(Scope::Admin));
        let other = new_claims(&c, "alice", &[Scope::Admin]).unwrap();
        assert_ne!(other.jti, claims.jti);
        assert!(!other.has(Scope::Predict), "admin must not imply predict");
        assert_eq!(other.scopes(), vec![Scope::Admin]);
    }

    #[test]
    fn has_matches_whole_words_only() {
        let c = Claims {
            sub: "a".into(),
            scope: "predictions administrator".into(),
            iat: 0,
            exp: 0,
            iss: "taxon".into(),
            jti: String::new(),
            iat_ms: None,
        };
        assert!(!c.has(Scope::Predict) && !c.has(Scope::Admin));
        assert!(c.scopes().is_empty());
    }

    #[test]
    fn tokens_from_the_future_or_longer_lived_than_configured_are_refused() {
        let (c, k) = keys(|_| {});
        let mut future = new_claims(&c, "alice", &[Scope::Predict]).unwrap();
        future.iat += 600;
        future.exp += 600;
        assert_eq!(
            k.verify(&k.sign(&future).unwrap()),
            Err(TokenError::IssuedInFuture)
        );
        let mut long = new_claims(&c, "alice", &[Scope::Predict]).unwrap();
        long.exp = long.iat + 30 * 24 * 3600;
        assert_eq!(
            k.verify(&k.sign(&long).unwrap()),
            Err(TokenError::LifetimeTooLong)
        );
        // Exactly the configured lifetime is fine.
        let ok = new_claims(&c, "alice", &[Scope::Predict]).unwrap();
        assert_eq!(k.verify(&k.sign(&ok).unwrap()).unwrap(), ok);
    }

    #[test]
    fn refusals_are_classified() {
        let (c, k) = keys(|_| {});
        let mut claims = new_claims(&c, "alice", &[Scope::Predict]).unwrap();
        claims.iat -= 7200;
        claims.exp -= 7200;
        assert_eq!(
            k.verify(&k.sign(&claims).unwrap()),
            Err(TokenError::Expired)
        );

        let claims = new_claims(&c, "alice", &[Scope::Predict]).unwrap();
        let (_, other_secret) = keys(|c| c.secret = "x".repeat(32).parse().unwrap());
        let forged = other_secret.sign(&claims).unwrap();
        assert_eq!(k.verify(&forged), Err(TokenError::BadSignature));

        let (_, hs512) = keys(|c| c.algorithm = jsonwebtoken::Algorithm::HS512);
        assert_eq!(
            k.verify(&hs512.sign(&claims).unwrap()),
            Err(TokenError::WrongAlgorithm)
        );

        let (other_iss, k2) = keys(|c| c.issuer = "someone-else".into());
        let foreign = k2
            .sign(&new_claims(&other_iss, "alice", &[]).unwrap())
            .unwrap();
        assert_eq!(k.verify(&foreign), Err(TokenError::WrongIssuer));

        for junk in ["", "abc", "a.b.c", "....", "Bearer x"] {
            assert_eq!(k.verify(junk), Err(TokenError::Malformed), "{junk:?}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let (c, k) = keys(|_| {});
        let claims = new_claims(&c, "alice", &[Scope::Predict]).unwrap();
        let access_token = k.sign(&claims).unwrap();
        let issued = IssuedToken {
            access_token: access_token.clone(),
            token_type: "bearer",
            expires_in: 1800,
            scope: claims.scope.clone(),
            claims,
        };
        assert!(!format!("{issued:?}").contains(&access_token));
        let json = serde_json::to_value(&issued).unwrap();
        assert_eq!(json["access_token"], access_token.as_str());
        assert_eq!(json["token_type"], "bearer");
        assert_eq!(json["expires_in"], 1800);
        assert_eq!(json["scope"], "predict");
        assert_eq!(json.as_object().unwrap().len(), 4);
    }
}
