//! The names the registry accepts (model names, aliases) and the references users type
//! (`3`, `v3`, `latest`, an alias).

use crate::error::RegistryError;

/// The model name the CLI uses when none is given.
pub const DEFAULT_MODEL: &str = "default";

/// The reference to a model's newest version; reserved, so no alias can take it.
pub const LATEST: &str = "latest";

const MODEL_RULE: &str =
    "use 1 to 64 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit";
const ALIAS_RULE: &str = "use 1 to 63 characters from a-z, 0-9, '_' and '-', starting with a letter; \
     not `latest` and not `v` followed by digits (those name versions)";

/// Checks a model name: `[a-z0-9][a-z0-9._-]{0,63}` (it names a cache folder, and `:` splits
/// `NAME:VERSION` on the command line).
pub fn validate_model_name(name: &str) -> Result<(), RegistryError> {
    let b = name.as_bytes();
    let ok = (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidName {
            kind: "model",
            name: name.to_string(),
            rule: MODEL_RULE.into(),
        })
    }
}

/// Checks an alias: `[a-z][a-z0-9_-]{0,62}`, except `latest` and `v<digits>`.
pub fn validate_alias(alias: &str) -> Result<(), RegistryError> {
    let b = alias.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-".contains(c))
        && alias != LATEST
        && parse_version(alias).is_none();
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidName {
            kind: "alias",
            name: alias.to_string(),
            rule: ALIAS_RULE.into(),
        })
    }
}

/// `3` or `v3` as a version number (versions start at 1).
pub fn parse_version(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('v').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|v| *v >= 1)
}

/// Splits `NAME[:REF]` (REF a version, an alias or `latest`); the reference defaults to
/// `latest`.
pub fn split_ref(s: &str) -> (&str, &str) {
    match s.split_once(':') {
        Some((name, r)) if !r.is_empty() => (name, r),
        Some((name, _)) => (name, LATEST),
        None => (s, LATEST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_lower_case_words_that_cannot_be_read_as_versions() {
        // A lone `v` is a word, not a version.
        for ok in [
            "production",
            "staging",
            "a",
            "v",
            "canary-2",
            "team_a",
            "version",
        ] {
            assert!(validate_alias(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "3", "v3", "latest", "Prod", "-x", "_x", "2fast", "a b", "a:b", "a/b",
        ] {
            let err = validate_alias(bad).unwrap_err().to_string();
            assert!(err.contains("alias name"), "{bad}: {err}");
        }
        assert!(validate_alias(&"a".repeat(63)).is_ok());
        assert!(validate_alias(&"a".repeat(64)).is_err());
    }

    #[test]
    fn model_names_cannot_escape_the_cache_folder() {
        for ok in ["default", "bbc-news", "spam.v2", "7days"] {
            assert!(validate_model_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", ".hidden", "a/b", "A", "a:b", "-x"] {
            assert!(validate_model_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_and_references_parse() {
        assert_eq!(parse_version("3"), Some(3));
        assert_eq!(parse_version("v12"), Some(12));
        assert_eq!(parse_version("0"), None);
        assert_eq!(parse_version("v"), None);
        assert_eq!(parse_version("prod"), None);
        assert_eq!(parse_version("99999999999999999999999"), None);
        assert_eq!(split_ref("default"), ("default", "latest"));
        assert_eq!(split_ref("default:production"), ("default", "production"));
        assert_eq!(split_ref("spam:v2"), ("spam", "v2"));
        assert_eq!(split_ref("spam:"), ("spam", "latest"));
    }
}
