//! Password hashing: argon2id PHC strings with the argon2 crate's defaults (19 MiB, 2 passes,
//! 1 lane: OWASP's recommended minimum), and the password policy.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};

use crate::error::AuthError;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Refuses passwords shorter than [`MIN_PASSWORD_CHARS`] characters.
pub fn check_password_policy(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::WeakPassword {
            min: MIN_PASSWORD_CHARS,
        });
    }
    Ok(())
}

/// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of `password` with a
/// fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A wrong password is `Ok(false)`; a string
/// that is not a valid argon2 PHC string is an error. The comparison is constant-time.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, AuthError> {
    let parsed = PasswordHash::new(phc).map_err(|e| AuthError::Hash(e.to_string()))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(AuthError::Hash(e.to_string())),
    }
}

/// Spends the time of one verification against a hash with the default parameters, so a
/// login for an unknown user costs as much as one with a wrong password.
pub fn dummy_verify(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let mut random = [0u8; 16];
        // Without OS randomness any fixed input still gives a hash that no password matches
        // in practice; only its cost matters here.
        let _ = getrandom::fill(&mut random);
        let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
        hash_password(&text).ok()
    });
    if let Some(phc) = dummy {
        let _ = verify_password(password, phc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password("correct horse", &phc).unwrap());
        assert!(!verify_password("correct hors", &phc).unwrap());
        assert!(!verify_password("", &phc).unwrap());
    }

    #[test]
    fn salts_differ() {
        assert_ne!(
            hash_password("same pass").unwrap(),
            hash_password("same pass").unwrap()
        );
    }

    #[test]
    fn a_broken_hash_is_an_error_not_a_mismatch() {
        assert!(matches!(
            verify_password("whatever", "not a phc string"),
            Err(AuthError::Hash(_))
        ));
    }

    #[test]
    fn policy_counts_characters() {
        assert!(check_password_policy("").is_err());
        assert!(check_password_policy("1234567").is_err());
        assert!(check_password_policy("12345678").is_ok());
        // Seven characters, 21 bytes: still too short.
        assert!(matches!(
            check_password_policy(&"€".repeat(7)),
            Err(AuthError::WeakPassword { min: 8 })
        ));
    }
}
