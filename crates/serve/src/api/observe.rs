//! The layer around every route: request id (echoed or generated, set on the response and
//! given to handlers as a [`RequestId`] extension), in-flight gauge, request counter and
//! duration histogram by route template, and a debug-level access log.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use http::HeaderName;
use tower::{Layer, Service};

use crate::metrics::Route;
use crate::request_id::{HEADER, RequestId};
use crate::state::AppState;

static REQUEST_ID: HeaderName = HeaderName::from_static(HEADER);

/// Wraps routes in [`Observe`].
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    state: AppState,
}

impl ObserveLayer {
    /// A layer reporting into `state`'s metrics.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            state: self.state.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or(Route::Other, |p| Route::from_path(p.as_str()));
        let id = self
            .state
            .request_ids()
            .for_request(req.headers().get(&REQUEST_ID));
        req.extensions_mut().insert(id.clone());
        let inflight = self.state.metrics().inflight();
        let method = tracing::enabled!(tracing::Level::DEBUG).then(|| req.method().clone());
        // The service that was made ready is the one to call; leave a clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = inner.call(req);
        let state = self.state.clone();
        Box::pin(async move {
            let Ok(mut response) = future.await;
            drop(inflight);
            let status = response.status().as_u16();
            let elapsed = started.elapsed();
            state.metrics().observe_request(route, status, elapsed);
            if let Some(method) = method {
                tracing::debug!(
                    request_id = id.as_str(),
                    %method,
                    route = route.label(),
                    status,
                    micros = elapsed.as_micros() as u64,
                    "request"
                );
            }
            let RequestId(value) = id;
            response.headers_mut().insert(REQUEST_ID.clone(), value);
            Ok(response)
        })
    }
}
