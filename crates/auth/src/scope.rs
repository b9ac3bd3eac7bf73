//! Scopes: what a token allows. `predict` calls the prediction routes, `admin` reloads models
//! and moves aliases. `admin` does not imply `predict`: a user who needs both is granted both,
//! so an operations account can be kept away from the data it would otherwise see.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::AuthError;

/// One permission a token can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Prediction routes.
    Predict,
    /// Administration routes: model reload, alias changes.
    Admin,
}

impl Scope {
    /// Every scope, in canonical order.
    pub const ALL: [Scope; 2] = [Scope::Predict, Scope::Admin];

    /// The scope's name in tokens, the store and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Predict => "predict",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "predict" => Ok(Scope::Predict),
            "admin" => Ok(Scope::Admin),
            other => Err(AuthError::UnknownScope(other.to_string())),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a space-separated scope list (RFC 6749 section 3.3); the result is sorted and
/// deduplicated. An empty or blank string gives an empty list.
pub fn parse_scopes(s: &str) -> Result<Vec<Scope>, AuthError> {
    let mut scopes = s
        .split_ascii_whitespace()
        .map(Scope::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

/// The space-separated form of `scopes`, sorted and deduplicated (`"predict admin"`).
pub fn format_scopes(scopes: &[Scope]) -> String {
    let mut sorted = scopes.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scope::ALL {
            assert_eq!(s.to_string().parse::<Scope>().unwrap(), s);
        }
        assert_eq!("predict".parse::<Scope>().unwrap(), Scope::Predict);
        assert_eq!("admin".parse::<Scope>().unwrap(), Scope::Admin);
    }

    #[test]
    fn unknown_and_differently_cased_names_are_refused() {
        for bad in ["Admin", "PREDICT", "", "read", "admin "] {
            let err = bad.parse::<Scope>().unwrap_err();
            assert!(
                matches!(err, AuthError::UnknownScope(ref s) if s == bad),
                "{bad:?}"
            );
        }
        assert!(
            "predict write"
                .parse::<Scope>()
                .unwrap_err()
                .to_string()
                .contains("known scopes: predict, admin")
        );
    }

    #[test]
    fn lists_are_sorted_and_deduplicated() {
        assert_eq!(
            parse_scopes(" admin  predict admin\t").unwrap(),
            vec![Scope::Predict, Scope::Admin]
        );
        assert_eq!(parse_scopes("").unwrap(), vec![]);
        assert!(parse_scopes("predict nope").is_err());
        assert_eq!(
            format_scopes(&[Scope::Admin, Scope::Predict, Scope::Admin]),
            "predict admin"
        );
        assert_eq!(format_scopes(&[]), "");
    }

    #[test]
    fn serde_uses_the_names() {
        let json = serde_json::to_string(&[Scope::Predict, Scope::Admin]).unwrap();
        assert_eq!(json, r#"["predict","admin"]"#);
        let back: Vec<Scope> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![Scope::Predict, Scope::Admin]);
        assert!(serde_json::from_str::<Scope>(r#""root""#).is_err());
    }
}
