//! Parsing of the command-line values that need more than clap: the target URL, extra
//! headers, durations (`30s`, `500ms`) and the JSON field path to track.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};

use crate::error::Error;

/// Where requests go: one resolved socket address, the request path and the `Host` header.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given, for reports.
    pub url: String,
    /// The host and port as written in the URL (the `Host` header).
    pub authority: String,
    /// The address every connection dials.
    pub addr: SocketAddr,
    /// Path and query sent in the request line.
    pub path: Uri,
}

impl Target {
    /// Parses an `http://host[:port]/path` URL and resolves its host once.
    pub async fn resolve(url: &str) -> Result<Self, Error> {
        let (authority, host, port, path) = split_url(url)?;
        let mut addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|source| Error::Resolve {
                url: url.to_owned(),
                source,
            })?;
        let addr = addrs.next().ok_or_else(|| Error::Resolve {
            url: url.to_owned(),
            source: std::io::Error::other("no address"),
        })?;
        Ok(Self {
            url: url.to_owned(),
            authority,
            addr,
            path,
        })
    }
}

/// Splits a URL into (authority, host, port, path-and-query); only plain `http` is supported.
fn split_url(url: &str) -> Result<(String, String, u16, Uri), Error> {
    let bad = |reason: &str| Error::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if !url.contains("://") {
        return Err(bad("missing scheme, use http://host:port/path"));
    }
    let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(bad(&format!("scheme {other:?} is not supported, use http"))),
        None => return Err(bad("missing scheme, use http://host:port/path")),
    }
    let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user info in the URL is not supported"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = authority.port_u16().unwrap_or(80);
    let path: Uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| bad(&format!("{e}")))?;
    Ok((authority.as_str().to_owned(), host.to_owned(), port, path))
}

/// Parses `Name: value` into a header pair.
pub fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let bad = |reason: &str| Error::Header {
        header: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let (name, value) = raw.split_once(':').ok_or_else(|| bad("no ':'"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("invalid name"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| bad("invalid value"))?;
    Ok((name, value))
}

/// Parses a duration: a non-negative number followed by `ms`, `s`, `m` or `h`, or no unit for
/// seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, Error> {
    let bad = |reason: &str| Error::Duration {
        value: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let s = raw.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(bad("no number"));
    }
    let n: f64 = number.parse().map_err(|_| bad("not a number"))?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(bad(&format!("unknown unit {other:?}"))),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad("out of range"))
}

/// A dotted path of JSON object keys (or array indexes), such as `model.version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    keys: Vec<String>,
}

impl FieldPath {
    /// Parses `a.b.c`; every key must be non-empty.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let keys: Vec<String> = raw.split('.').map(str::to_owned).collect();
        if keys.iter().any(String::is_empty) {
            return Err(Error::TrackField(raw.to_owned()));
        }
        Ok(Self {
            text: raw.to_owned(),
            keys,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path in a JSON body: strings as they are, other values as JSON text,
    /// `(missing)` when absent and `(invalid json)` when the body does not parse.
    pub fn extract(&self, body: &[u8]) -> String {
        let Ok(root) = serde_json::from_slice::<serde_json::Value>(body) else {
            return "(invalid json)".to_owned();
        };
        let mut node = &root;
        for key in &self.keys {
            let next = match node {
                serde_json::Value::Object(map) => map.get(key),
                serde_json::Value::Array(items) => {
                    key.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return "(missing)".to_owned(),
            }
        }
        match node {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_port_and_path_splits() {
        let (authority, host, port, path) =
            split_url("http://127.0.0.1:8080/v1/predict?x=1").unwrap();
        assert_eq!(authority, "127.0.0.1:8080");
        assert_eq!(host, "127.0.0.1");
        assert_eq!(port, 8080);
        assert_eq!(path, "/v1/predict?x=1");
    }

    #[test]
    fn url_without_port_or_path_defaults() {
        let (_, host, port, path) = split_url("http://localhost").unwrap();
        assert_eq!(
            (host.as_str(), port, path.to_string().as_str()),
            ("localhost", 80, "/")
        );
        let (_, host, _, _) = split_url("http://[::1]:9/").unwrap();
        assert_eq!(host, "::1");
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (url, needle) in [
            ("https://127.0.0.1/", "use http"),
            ("127.0.0.1:80/x", "scheme"),
            ("not a url", "bad --url"),
            ("http://u:p@127.0.0.1/", "user info"),
        ] {
            let err = split_url(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn headers_parse_and_trim() {
        let (name, value) = parse_header("Authorization:  Bearer abc ").unwrap();
        assert_eq!(name, "authorization");
        assert_eq!(value, "Bearer abc");
        let (_, value) = parse_header("X-Empty:").unwrap();
        assert_eq!(value, "");
    }

    #[test]
    fn bad_headers_are_refused() {
        assert!(
            parse_header("no colon")
                .unwrap_err()
                .to_string()
                .contains("no ':'")
        );
        assert!(
            parse_header(": v")
                .unwrap_err()
                .to_string()
                .contains("empty name")
        );
        assert!(
            parse_header("bad name: v")
                .unwrap_err()
                .to_string()
                .contains("invalid name")
        );
        assert!(
            parse_header("X: a\u{1}b")
                .unwrap_err()
                .to_string()
                .contains("invalid value")
        );
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn bad_durations_are_refused() {
        for raw in ["", "s", "10x", "1.2.3s", "-1s"] {
            assert!(parse_duration(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn field_paths_extract_values() {
        let path = FieldPath::parse("model.version").unwrap();
        assert_eq!(path.extract(br#"{"model":{"version":"2"}}"#), "2");
        assert_eq!(path.extract(br#"{"model":{"version":3}}"#), "3");
        assert_eq!(path.extract(br#"{"model":{}}"#), "(missing)");
        assert_eq!(path.extract(b"not json"), "(invalid json)");
        let indexed = FieldPath::parse("items.1").unwrap();
        assert_eq!(indexed.extract(br#"{"items":["a","b"]}"#), "b");
    }

    #[test]
    fn empty_field_path_keys_are_refused() {
        for raw in ["", "a..b", ".a", "a."] {
            assert!(FieldPath::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }
}
