//! Request extraction owned by the server, so every failure is an [`ApiError`] that says what
//! is wrong: the content type, the body size limit, malformed JSON (with serde's line and
//! column), and the JSON's shape (missing, unknown or mistyped fields, with their names).
//!
//! The happy path is one `serde_json::from_slice` into a borrowing struct. Only when it fails
//! is the body parsed again, generically, to name the offending field.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;

/// What a JSON field must hold.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// A string.
    String,
    /// An array of strings.
    Strings,
    /// A non-negative integer.
    Integer,
    /// `true` or `false`.
    Bool,
}

/// The expected shape of a request body: an object with these required fields, and optionally
/// these others, and no more.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Required field names and kinds.
    pub fields: &'static [(&'static str, FieldKind)],
    /// Optional field names and kinds.
    pub optional: &'static [(&'static str, FieldKind)],
    /// An example body, for messages.
    pub example: &'static str,
}

/// Checks the content type, then reads the whole body, refusing more than `limit` bytes.
pub async fn json_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    check_json_content_type(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(e) => Err(ApiError::invalid_json(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// `application/json` (parameters such as `charset` allowed), or a `+json` type.
fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::unsupported_media_type(None));
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or("").trim();
    let is_json = essence.eq_ignore_ascii_case("application/json")
        || essence.rsplit_once('+').is_some_and(|(kind, suffix)| {
            suffix.eq_ignore_ascii_case("json")
                && kind.len() > "application/".len()
                && kind[.."application/".len()].eq_ignore_ascii_case("application/")
        });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(Some(&text)))
    }
}

/// Parses `body` as `T`; on failure, says precisely what does not match `shape`.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], shape: &Shape) -> Result<T, ApiError> {
    // serde's derived structs also accept a JSON array of the field values: only objects here.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(explain(body, shape, None));
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(fast) => Err(explain(body, shape, Some(&fast))),
    }
}

/// The error for a body that did not deserialize: re-parses it generically to name the field.
fn explain(body: &[u8], shape: &Shape, fast: Option<&serde_json::Error>) -> ApiError {
    if body.iter().all(u8::is_ascii_whitespace) {
        return ApiError::invalid_json(format!(
            "the request body is empty: expected a JSON object like {}",
            shape.example
        ));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::invalid_json(format!("malformed JSON in the request body: {e}"));
        }
    };
    let Value::Object(map) = &value else {
        return ApiError::invalid_request(format!(
            "the request body must be a JSON object like {}, found {}",
            shape.example,
            kind_of(&value)
        ));
    };
    let all = || shape.fields.iter().chain(shape.optional);
    let expected = all()
        .map(|(name, _)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(unknown) = map.keys().find(|k| !all().any(|(name, _)| name == k)) {
        return ApiError::invalid_request(format!(
            "unknown field `{unknown}` in the request body: expected only {expected}"
        ));
    }
    for &(name, kind) in all() {
        let Some(field) = map.get(name) else {
            if shape.optional.iter().any(|(n, _)| *n == name) {
                continue;
            }
            return ApiError::invalid_request(format!(
                "missing field `{name}` in the request body: expected a JSON object like {}",
                shape.example
            ));
        };
        match (kind, field) {
            (FieldKind::String, Value::String(_)) => {}
            (FieldKind::String, other) => {
                return ApiError::invalid_request(format!(
                    "field `{name}` must be a string, found {}",
                    kind_of(other)
                ));
            }
            (FieldKind::Strings, Value::Array(items)) => {
                if let Some((i, item)) = items.iter().enumerate().find(|(_, v)| !v.is_string()) {
                    return ApiError::invalid_request(format!(
                        "field `{name}[{i}]` must be a string, found {}",
                        kind_of(item)
                    ));
                }
            }
            (FieldKind::Strings, other) => {
                return ApiError::invalid_request(format!(
                    "field `{name}` must be an array of strings, found {}",
                    kind_of(other)
                ));
            }
            (FieldKind::Integer, Value::Number(n)) if n.is_u64() => {}
            (FieldKind::Integer, other) => {
                return ApiError::invalid_request(format!(
                    "field `{name}` must be a non-negative integer, found {}",
                    kind_of(other)
                ));
            }
            (FieldKind::Bool, Value::Bool(_)) => {}
            (FieldKind::Bool, other) => {
                return ApiError::invalid_request(format!(
                    "field `{name}` must be true or false, found {}",
                    kind_of(other)
                ));
            }
        }
    }
    // The generic parse found nothing wrong (a duplicate field, say): serde's own words.
    match fast {
        Some(e) => ApiError::invalid_request(format!("invalid request body: {e}")),
        None => ApiError::invalid_request(format!(
            "the request body must be a JSON object like {}",
            shape.example
        )),
    }
}

/// "a number (12)", "null", "an object", ... for messages.
fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => {
            let mut text = n.to_string();
            if text.len() > 24 {
                text.truncate(24);
                text.push_str("...");
            }
            format!("a number ({text})")
        }
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// What is wrong with a text (see [`check_text`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextProblem {
    /// No characters.
    Empty,
    /// Only whitespace.
    Whitespace,
    /// More characters than the limit.
    TooLong { chars: usize, limit: usize },
}

impl TextProblem {
    /// The error for the text in `field` (`text`, `texts[3]`).
    pub fn at(self, field: &str) -> ApiError {
        match self {
            TextProblem::Empty => ApiError::empty_text(field, false),
            TextProblem::Whitespace => ApiError::empty_text(field, true),
            TextProblem::TooLong { chars, limit } => ApiError::text_too_long(field, chars, limit),
        }
    }
}

/// Checks one text: not empty, not only whitespace, at most `limit` characters.
pub fn check_text(text: &str, limit: usize) -> Result<(), TextProblem> {
    if text.is_empty() {
        return Err(TextProblem::Empty);
    }
    // Byte length bounds the character count: count only when it could matter.
    if text.len() > limit {
        let chars = text.chars().count();
        if chars > limit {
            return Err(TextProblem::TooLong { chars, limit });
        }
    }
    if text.chars().all(char::is_whitespace) {
        return Err(TextProblem::Whitespace);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    use crate::api::ErrorKind;

    const ONE: Shape = Shape {
        fields: &[("text", FieldKind::String)],
        optional: &[],
        example: r#"{"text": "..."}"#,
    };
    const MANY: Shape = Shape {
        fields: &[("texts", FieldKind::Strings)],
        optional: &[],
        example: r#"{"texts": ["...", "..."]}"#,
    };

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct One<'a> {
        #[serde(borrow)]
        text: Cow<'a, str>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Many<'a> {
        #[serde(borrow)]
        texts: Vec<Cow<'a, str>>,
    }

    fn err_one(body: &[u8]) -> ApiError {
        parse::<One<'_>>(body, &ONE).err().expect("should fail")
    }

    #[test]
    fn messages_name_the_problem() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"", "invalid_json", "the request body is empty"),
            (b"{\"text\": ", "invalid_json", "line 1 column 9"),
            (b"[1, 2]", "invalid_request", "found an array"),
            (b"{}", "invalid_request", "missing field `text`"),
            (
                b"{\"text\": 5}",
                "invalid_request",
                "`text` must be a string, found a number (5)",
            ),
            (b"{\"text\": null}", "invalid_request", "found null"),
            (
                b"{\"text\": \"a\", \"x\": 1}",
                "invalid_request",
                "unknown field `x`",
            ),
            (
                b"{\"text\": \"a\", \"text\": \"b\"}",
                "invalid_request",
                "duplicate field",
            ),
            (b"{\"text\": \"\xff\"}", "invalid_json", "malformed JSON"),
        ];
        for (body, kind, needle) in cases {
            let e = err_one(body);
            assert_eq!(e.kind().as_str(), *kind, "{e}");
            assert!(e.message().contains(needle), "{needle:?} not in {e}");
        }
        let e = parse::<Many<'_>>(br#"{"texts": ["a", null]}"#, &MANY)
            .err()
            .unwrap();
        assert!(
            e.message()
                .contains("`texts[1]` must be a string, found null"),
            "{e}"
        );
        let e = parse::<Many<'_>>(br#"{"texts": "a"}"#, &MANY)
            .err()
            .unwrap();
        assert!(e.message().contains("must be an array of strings"), "{e}");
    }

    #[test]
    fn deep_nesting_and_huge_numbers_are_errors_not_panics() {
        let deep = "[".repeat(100_000);
        let e = err_one(deep.as_bytes());
        assert_eq!(e.kind(), ErrorKind::InvalidJson, "{e}");
        let huge = format!("{{\"text\": 1{}}}", "0".repeat(5000));
        let e = err_one(huge.as_bytes());
        assert!(e.message().contains("number out of range"), "{e}");
        let e = err_one(format!("{{\"text\": 1{}}}", "0".repeat(40)).as_bytes());
        assert!(
            e.message()
                .contains("must be a string, found a number (1e+40)"),
            "{e}"
        );
    }

    #[test]
    fn text_checks() {
        assert!(check_text("ok", 5).is_ok());
        assert_eq!(check_text("", 5), Err(TextProblem::Empty));
        assert_eq!(check_text(" \n", 5), Err(TextProblem::Whitespace));
        let e = check_text("abcdef", 5).unwrap_err().at("texts[2]");
        assert_eq!(e.kind(), ErrorKind::TextTooLong);
        assert_eq!(
            e.message(),
            "\"texts[2]\" has 6 characters, more than the limit of 5"
        );
        // Five two-byte characters are within a five-character limit.
        assert!(check_text("ééééé", 5).is_ok());
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_json_content_type(&h).unwrap_err().kind(),
            ErrorKind::UnsupportedMediaType
        );
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.x+json",
        ] {
            h.insert(header::CONTENT_TYPE, ok.parse().unwrap());
            assert!(check_json_content_type(&h).is_ok(), "{ok}");
        }
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let e = check_json_content_type(&h).unwrap_err();
        assert!(e.message().contains("application/json"), "{e}");
    }
}
