//! The JWT signing secret: long enough to resist brute force, never printed.

use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq;

use crate::error::AuthError;

/// Shortest accepted secret, in bytes: HS256's key should be at least as long as its output.
pub const MIN_SECRET_BYTES: usize = 32;

/// A symmetric signing secret for HS256/384/512. `Debug` and `Display` print `[redacted]`;
/// equality is constant-time.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// Accepts `secret` when it is at least [`MIN_SECRET_BYTES`] bytes long.
    pub fn new(secret: &str) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::WeakSecret {
                len: secret.len(),
                min: MIN_SECRET_BYTES,
            });
        }
        Ok(Self(secret.as_bytes().to_vec()))
    }

    /// The raw key bytes (for building the signing and verifying keys).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for JwtSecret {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for JwtSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for JwtSecret {}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn short_secrets_are_refused_with_their_length() {
        let err = JwtSecret::new("too short").unwrap_err();
        assert!(matches!(err, AuthError::WeakSecret { len: 9, min: 32 }));
        let msg = err.to_string();
        assert!(
            msg.contains("9 bytes") && msg.contains("at least 32"),
            "{msg}"
        );
        assert!(JwtSecret::new(&GOOD[..31]).is_err());
        assert!(JwtSecret::new("").is_err());
    }

    #[test]
    fn length_is_counted_in_bytes() {
        // 11 three-byte characters: 33 bytes.
        assert!(JwtSecret::new(&"€".repeat(11)).is_ok());
        assert!(JwtSecret::new(&"€".repeat(10)).is_err());
    }

    #[test]
    fn never_printed() {
        let s: JwtSecret = GOOD.parse().unwrap();
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.to_string(), "[redacted]");
        assert!(!format!("{:?}", Some(&s)).contains("0123"));
    }

    #[test]
    fn equality_compares_content() {
        let a = JwtSecret::new(GOOD).unwrap();
        assert_eq!(a, JwtSecret::new(GOOD).unwrap());
        assert_ne!(a, JwtSecret::new(&format!("{GOOD}x")).unwrap());
        assert_ne!(a, JwtSecret::new(&GOOD.replace('0', "1")).unwrap());
    }
}
