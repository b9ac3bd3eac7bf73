//! Password hashing: argon2id PHC strings with the argon2 crate's defaults (19 MiB, 2 passes,
//! 1 lane: OWASP's recommended minimum), and the password policy.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};

use crate::error::AuthError;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Fewest different characters in an accepted password.
pub const MIN_DISTINCT_CHARS: usize = 5;

/// The policy, as `taxon users add` states it.
pub const PASSWORD_POLICY: &str = "at least 8 characters, at least 5 of them different, and not one run of consecutive characters (12345678, abcdefgh)";

/// Refuses passwords shorter than [`MIN_PASSWORD_CHARS`] characters, with fewer than
/// [`MIN_DISTINCT_CHARS`] different characters (`aaaaaaaa`, `abababab`), or that are one run
/// of consecutive characters, up or down (`12345678`, `hgfedcba`).
pub fn check_password_policy(password: &str) -> Result<(), AuthError> {
    let chars: Vec<char> = password.chars().collect();
    let weak = |reason: &str| {
        Err(AuthError::WeakPassword {
            reason: reason.to_string(),
        })
    };
    if chars.len() < MIN_PASSWORD_CHARS {
        return weak(&format!(
            "it has {} characters, fewer than {MIN_PASSWORD_CHARS}",
            chars.len()
        ));
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return weak(&format!(
            "it has {} different characters, fewer than {MIN_DISTINCT_CHARS}",
            distinct.len()
        ));
    }
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])))
        .collect();
    if steps.iter().all(|&d| d == 1) || steps.iter().all(|&d| d == -1) {
        return weak("it is one run of consecutive characters");
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
        assert!(check_password_policy("31415926").is_ok());
        // Seven characters, 21 bytes: still too short.
        assert!(matches!(
            check_password_policy(&"€".repeat(7)),
            Err(AuthError::WeakPassword { .. })
        ));
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        for (password, reason) in [
            ("short", "fewer than 8"),
            ("aaaaaaaa", "1 different"),
            ("abababababab", "2 different"),
            ("12345678", "consecutive"),
            ("hgfedcba", "consecutive"),
        ] {
            let err = check_password_policy(password).unwrap_err().to_string();
            assert!(err.contains(reason), "{password}: {err}");
        }
        for good in ["correct horse battery", "Tr0ub4dor&3", "alice-password"] {
            check_password_policy(good).unwrap();
        }
    }
}
