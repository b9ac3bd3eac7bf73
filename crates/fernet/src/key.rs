//! Fernet keys: generate, parse, load from the environment or a key file. `Debug` never
//! prints key material.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

use crate::FernetError;

/// The environment variable taxon reads a key from by default.
pub const DEFAULT_KEY_ENV: &str = "TAXON_FERNET_KEY";

/// A Fernet key: 16 bytes of HMAC-SHA256 signing key, then 16 bytes of AES-128 encryption key.
#[derive(Clone)]
pub struct Key {
    raw: [u8; 32],
    pub(crate) fernet: fernet::Fernet,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A new random key from the operating system's random source.
    pub fn generate() -> Key {
        // The `fernet` crate draws the key from the OS random source (getrandom).
        let text = fernet::Fernet::generate_key();
        match Self::parse(&text, "a generated key") {
            Ok(key) => key,
            // generate_key always returns 32 bytes of URL-safe base64: unreachable in practice,
            // but never panic: fall back to drawing again.
            Err(_) => Self::generate(),
        }
    }

    /// Parses a key written as URL-safe base64 (with or without `=` padding; surrounding
    /// whitespace, such as a key file's trailing newline, is ignored).
    pub fn from_base64(s: &str) -> Result<Key, FernetError> {
        Self::parse(s, "the given text")
    }

    /// `plaintext` as one Fernet token (padded URL-safe base64), for short values such as a
    /// logged text; files go through [`crate::encrypt_stream`].
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        self.fernet.encrypt(plaintext)
    }

    /// The plaintext of one token from [`Key::encrypt`] (or any Fernet library); `None` when
    /// the token fails authentication: wrong key, tampered or corrupted.
    pub fn decrypt(&self, token: &str) -> Option<Vec<u8>> {
        self.fernet.decrypt(token.trim()).ok()
    }

    /// The key as 44 characters of padded URL-safe base64, as Python's `Fernet.generate_key()`.
    pub fn to_base64(&self) -> String {
        URL_SAFE.encode(self.raw)
    }

    /// Loads the key from `file` when one is given (an explicit file is the more specific
    /// setting), otherwise from the environment variable `env_var` (taxon uses
    /// [`DEFAULT_KEY_ENV`]). Errors name where the key was looked for.
    pub fn from_env_or_file(env_var: &str, file: Option<&Path>) -> Result<Key, FernetError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| FernetError::File {
                op: "read key file",
                path: path.to_path_buf(),
                source,
            })?;
            return Self::parse(&text, &format!("key file {}", path.display()));
        }
        match std::env::var(env_var) {
            Ok(text) if !text.trim().is_empty() => {
                Self::parse(&text, &format!("environment variable {env_var}"))
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => Err(FernetError::KeyMissing {
                env_var: env_var.to_string(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(FernetError::InvalidKey {
                origin: format!("environment variable {env_var}"),
                reason: "not valid UTF-8".into(),
            }),
        }
    }

    fn parse(text: &str, origin: &str) -> Result<Key, FernetError> {
        let trimmed = text.trim();
        let invalid = |reason: String| FernetError::InvalidKey {
            origin: origin.to_string(),
            reason,
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(trimmed.trim_end_matches('='))
            .map_err(|e| invalid(format!("not URL-safe base64 ({e})")))?;
        let raw: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format!("decodes to {} bytes, expected 32", bytes.len())))?;
        let fernet = fernet::Fernet::new(&URL_SAFE.encode(raw))
            .ok_or_else(|| invalid("rejected by the Fernet implementation".into()))?;
        Ok(Key { raw, fernet })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_key_material() {
        let key = Key::generate();
        let shown = format!("{key:?}");
        assert_eq!(shown, "Key(<redacted>)");
        assert!(!shown.contains(&key.to_base64()[..10]));
    }

    #[test]
    fn base64_round_trip_with_and_without_padding() {
        let key = Key::generate();
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        assert!(text.ends_with('='));
        assert_eq!(Key::from_base64(&text).unwrap().to_base64(), text);
        let unpadded = text.trim_end_matches('=');
        assert_eq!(Key::from_base64(unpadded).unwrap().to_base64(), text);
        assert_eq!(
            Key::from_base64(&format!("  {text}\n"))
                .unwrap()
                .to_base64(),
            text
        );
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(Key::generate().to_base64(), Key::generate().to_base64());
    }

    #[test]
    fn short_or_non_base64_keys_are_rejected_with_reason() {
        let err = Key::from_base64("c2hvcnQ=").unwrap_err().to_string();
        assert!(err.contains("decodes to 5 bytes, expected 32"), "{err}");
        let err = Key::from_base64("not base64 at all!!")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not URL-safe base64"), "{err}");
    }

    #[test]
    fn key_file_wins_and_errors_name_the_origin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = Key::generate();
        std::fs::write(&path, format!("{}\n", key.to_base64())).unwrap();
        let var = "TAXON_FERNET_TEST_KEY_UNSET_4242";
        let loaded = Key::from_env_or_file(var, Some(&path)).unwrap();
        assert_eq!(loaded.to_base64(), key.to_base64());

        let err = Key::from_env_or_file(var, None).unwrap_err();
        assert!(matches!(err, FernetError::KeyMissing { ref env_var } if env_var == var));

        std::fs::write(&path, "garbage").unwrap();
        let err = Key::from_env_or_file(var, Some(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("k.key"), "{err}");

        let missing = dir.path().join("nope.key");
        let err = Key::from_env_or_file(var, Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.key"), "{err}");
    }
}
