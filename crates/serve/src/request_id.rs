//! Request ids: a client's `x-request-id` when it is 1-128 visible ASCII characters, otherwise
//! a per-process random prefix and a counter (`3f9a2c1b-1a2f`): unique, cheap, and grep-able
//! across the access log and the response.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

/// The header carrying the id, in requests and responses.
pub const HEADER: &str = "x-request-id";

/// Longest client id echoed.
const MAX_CLIENT_ID: usize = 128;

/// The id of the request being handled (a request extension).
#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The id as text (always visible ASCII).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
}

/// Makes ids for one server process.
#[derive(Debug)]
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            prefix: random[..8].to_string(),
            next: AtomicU64::new(1),
        }
    }

    /// The client's id when acceptable, else a new one.
    pub fn for_request(&self, client: Option<&HeaderValue>) -> RequestId {
        if let Some(v) = client.filter(|v| acceptable(v)) {
            return RequestId(v.clone());
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n:x}", self.prefix);
        // Hex digits and a dash are always a valid header value.
        RequestId(HeaderValue::try_from(id).unwrap_or(HeaderValue::from_static("invalid")))
    }
}

/// 1-128 visible ASCII characters (no spaces, no control characters).
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_CLIENT_ID && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_echoed_only_when_visible_ascii() {
        let ids = RequestIds::new();
        let good = HeaderValue::from_static("client-42");
        assert_eq!(ids.for_request(Some(&good)).as_str(), "client-42");
        for bad in ["", "has space", &"x".repeat(129)] {
            let v = HeaderValue::from_str(bad).unwrap();
            let id = ids.for_request(Some(&v));
            assert_ne!(id.as_str(), bad);
            assert!(id.as_str().len() > 9, "{}", id.as_str());
        }
        let a = ids.for_request(None);
        let b = ids.for_request(None);
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str()[..8], b.as_str()[..8]);
    }
}
