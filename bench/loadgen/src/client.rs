//! One keep-alive HTTP/1.1 connection (hyper's client connection over a `TcpStream` with
//! `TCP_NODELAY`) and one request/response exchange on it, classified into an [`Outcome`].

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::options::FieldPath;
use crate::record::{Failure, Outcome};

/// What every request carries besides its body.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// Path and query of the request line.
    pub path: Uri,
    /// `Host`, `Content-Type` and the user's extra headers.
    pub headers: HeaderMap,
    /// The field of 2xx bodies to extract, if any.
    pub track: Option<FieldPath>,
}

impl RequestTemplate {
    /// A template for `path` on `authority` with `extra` headers (which may override
    /// `Content-Type: application/json`).
    pub fn new(
        path: Uri,
        authority: &str,
        extra: &[(hyper::header::HeaderName, HeaderValue)],
        track: Option<FieldPath>,
    ) -> Result<Self, hyper::header::InvalidHeaderValue> {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(authority)?);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        Ok(Self {
            path,
            headers,
            track,
        })
    }
}

/// An open connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Dials `addr` and performs the HTTP/1.1 handshake; the connection's I/O runs in its own
    /// task until this value is dropped.
    pub async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            // The exchange that needed this connection sees its errors; nothing to add here.
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Waits until the connection can take a request; false when it has closed (the server
    /// ended keep-alive), in which case nothing was sent and the caller reconnects.
    pub async fn ready(&mut self) -> bool {
        self.sender.ready().await.is_ok()
    }

    /// Sends one request and reads the whole response within `timeout`. The second value is
    /// false when the connection must not be reused (it broke or timed out mid-response).
    pub async fn exchange(
        &mut self,
        template: &RequestTemplate,
        body: Bytes,
        timeout: Duration,
    ) -> (Outcome, bool) {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = template.path.clone();
        *request.headers_mut() = template.headers.clone();
        let exchange = async {
            let response = self.sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts.status, parts.headers, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => (Outcome::Failed(Failure::Timeout), false),
            Ok(Err(_)) => (Outcome::Failed(Failure::Io), false),
            Ok(Ok((status, headers, body))) => (
                classify(status, &headers, &body, template.track.as_ref()),
                true,
            ),
        }
    }
}

/// 2xx is ok (with the tracked field extracted), 503 is a rejection, anything else failed.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    track: Option<&FieldPath>,
) -> Outcome {
    if status.is_success() {
        Outcome::Ok {
            status: status.as_u16(),
            tracked: track.map(|path| path.extract(body)),
        }
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        Outcome::Rejected {
            retry_after: headers.contains_key(RETRY_AFTER),
        }
    } else {
        Outcome::Failed(Failure::Status(status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let none = HeaderMap::new();
        let mut retry = HeaderMap::new();
        retry.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        let track = FieldPath::parse("model.version").unwrap();
        let body = br#"{"model":{"version":"7"}}"#;
        assert_eq!(
            classify(StatusCode::OK, &none, body, Some(&track)),
            Outcome::Ok {
                status: 200,
                tracked: Some("7".to_owned())
            }
        );
        assert_eq!(
            classify(StatusCode::NO_CONTENT, &none, b"", None),
            Outcome::Ok {
                status: 204,
                tracked: None
            }
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &retry, b"", None),
            Outcome::Rejected { retry_after: true }
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &none, b"", None),
            Outcome::Rejected { retry_after: false }
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &retry, b"", None),
            Outcome::Failed(Failure::Status(429))
        );
        assert_eq!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &none, b"", None),
            Outcome::Failed(Failure::Status(500))
        );
    }

    #[test]
    fn template_headers_let_the_user_override_content_type() {
        let extra = [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))];
        let t = RequestTemplate::new("/v1/predict".parse().unwrap(), "127.0.0.1:9", &extra, None)
            .unwrap();
        assert_eq!(t.headers[HOST], "127.0.0.1:9");
        assert_eq!(t.headers[CONTENT_TYPE], "text/plain");
    }
}
