//! The server's connection guard: a cap on open connections, a header-read, an idle keep-alive
//! and a body-read deadline, and accept errors that back off.
//!
//! axum's `serve` has none of these (and hyper's own `header_read_timeout` also runs while a
//! keep-alive connection waits for its next request, so it cannot tell an idle client from a
//! slow one), so [`serve_connections`] accepts and serves HTTP/1 connections with hyper itself.
//! Each connection is in one of three phases, kept in a [`ConnState`] that the connection's
//! I/O and service update:
//!
//! - idle (just accepted, or answered and kept alive): closed after `idle_timeout`;
//! - reading a request head (a byte arrived while idle): closed after `header_read_timeout`;
//! - busy (a request is being handled): the body it reads carries its own deadline
//!   ([`DeadlineBody`], answered 408 by the JSON extractor), the handler is bounded by the
//!   engine's queue.
//!
//! At the cap, a new connection takes the place of the oldest one that is not busy (an idle or
//! trickling client), so `/health` still gets through while an attacker holds every slot; when
//! every connection is busy the new one is closed at once.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::Request;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::metrics::{ConnClose, Metrics};
use crate::state::AppState;

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;
const CLOSING: u8 = 3;

/// Where one connection is, and since when (milliseconds since the server's start).
#[derive(Debug)]
struct ConnState {
    phase: AtomicU8,
    since_ms: AtomicU64,
    /// Told to close (evicted to make room).
    close: Notify,
    /// The phase moved: the connection's task computes its deadline again.
    moved: Notify,
    epoch: Instant,
}

impl ConnState {
    fn new(epoch: Instant) -> Self {
        let state = Self {
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(0),
            close: Notify::new(),
            moved: Notify::new(),
            epoch,
        };
        state.since_ms.store(state.now_ms(), Ordering::Relaxed);
        state
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(&self, phase: u8) {
        self.since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        self.moved.notify_one();
    }

    /// A request byte arrived: an idle connection starts reading a head.
    fn bytes_read(&self) {
        if self
            .phase
            .compare_exchange(IDLE, HEAD, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            self.moved.notify_one();
        }
    }
}

/// The open connections, for the cap and for eviction.
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    /// Registers a new connection if there is room, making room by evicting the oldest
    /// connection that is not busy; `None` when every connection is busy.
    fn admit(self: &Arc<Self>, max: usize, metrics: &Metrics) -> Option<Registered> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= max {
            let victim = open
                .values()
                .filter(|c| matches!(c.phase.load(Ordering::Acquire), IDLE | HEAD))
                .min_by_key(|c| c.since_ms.load(Ordering::Relaxed))
                .cloned();
            match victim {
                Some(victim) => {
                    victim.phase.store(CLOSING, Ordering::Release);
                    victim.close.notify_one();
                    metrics.connection_closed(ConnClose::Evicted);
                }
                None => {
                    metrics.connection_closed(ConnClose::Refused);
                    return None;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(self.epoch));
        open.insert(id, Arc::clone(&state));
        Some(Registered {
            id,
            state,
            registry: Arc::clone(self),
        })
    }
}

/// A registered connection; unregisters on drop.
struct Registered {
    id: u64,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&self.id);
    }
}

/// Accepts connections on `listener` and serves `router` on each until `shutdown` completes;
/// then stops accepting, lets each connection finish its request, and returns once every
/// connection is closed.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        open: Mutex::new(HashMap::new()),
    });
    let config = app.config();
    let metrics = app.metrics();
    metrics.set_max_connections(config.max_connections);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Backoff::default();
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                metrics.accept_error();
                let delay = backoff.failed(&e);
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        let Some(registered) = registry.admit(config.max_connections, metrics) else {
            drop(tcp);
            continue;
        };
        // Responses are single small writes: do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let conn = Connection {
            router: router.clone(),
            peer,
            registered,
            app: app.clone(),
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            body_read_timeout: config.body_read_timeout,
            stop: stop_rx.clone(),
        };
        tokio::spawn(conn.serve(tcp));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    // Every connection task holds a receiver: this completes when the last one is gone.
    stop_tx.closed().await;
}

struct Connection {
    router: Router,
    peer: SocketAddr,
    registered: Registered,
    app: AppState,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    body_read_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(mut self, tcp: TcpStream) {
        let state = Arc::clone(&self.registered.state);
        let io = TokioIo::new(TrackedIo {
            inner: tcp,
            state: Arc::clone(&state),
        });
        let router = self.router.clone();
        let peer = self.peer;
        let body_timeout = self.body_read_timeout;
        let service_state = Arc::clone(&state);
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let router = router.clone();
            let state = Arc::clone(&service_state);
            async move {
                state.enter(BUSY);
                let mut req = req.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
                req.extensions_mut().insert(ConnectInfo(peer));
                let response = router.oneshot(req).await;
                state.enter(IDLE);
                response
            }
        });
        let _open = self.app.metrics().open_guard();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new());
        // The phases below replace hyper's header timer (which also runs while idle).
        builder.header_read_timeout(None);
        let conn = builder.serve_connection(io, service).with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let mut draining = *self.stop.borrow();
        if draining {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let phase = state.phase.load(Ordering::Acquire);
            let since = Duration::from_millis(state.since_ms.load(Ordering::Relaxed));
            // A busy connection has no deadline here (its body has its own).
            let deadline = match phase {
                IDLE => Some(self.idle_timeout),
                HEAD => Some(self.header_read_timeout),
                _ => None,
            }
            .map(|limit| tokio::time::Instant::from_std(state.epoch + since + limit));
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("connection from {} ended: {e}", self.peer);
                    }
                    return;
                }
                () = state.close.notified() => {
                    tracing::debug!("connection from {} closed to make room", self.peer);
                    return;
                }
                changed = self.stop.changed(), if !draining => {
                    if changed.is_ok() {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    } else {
                        draining = true;
                    }
                }
                () = state.moved.notified() => {}
                () = sleep_until(deadline) => {
                    // Closed only when the phase did not move on in the meantime.
                    let same = state.phase.load(Ordering::Acquire) == phase
                        && Duration::from_millis(state.since_ms.load(Ordering::Relaxed)) == since;
                    if same {
                        let reason = if phase == IDLE {
                            ConnClose::IdleTimeout
                        } else {
                            ConnClose::HeaderTimeout
                        };
                        self.app.metrics().connection_closed(reason);
                        tracing::debug!(
                            "connection from {} closed: {}",
                            self.peer,
                            reason.label()
                        );
                        return;
                    }
                }
            }
        }
    }
}

/// Raises this process's soft open-file limit, when it can, so that `max_connections` sockets
/// fit beside the files the server holds; the warning to log when they do not.
pub fn ensure_fd_room(max_connections: usize) -> Option<String> {
    // Model files, the listener, logs, the registry and users databases.
    const SPARE: u64 = 128;
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let wanted = max_connections as u64 + SPARE;
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let soft = limit.current.filter(|&soft| soft < wanted)?;
    let raised = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let current = match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => raised,
        Err(_) => soft,
    };
    (current < wanted).then(|| {
        format!(
            "the open-file limit ({current}) is below --max-connections ({max_connections}) + {SPARE}: \
             past about {} connections accepts fail (raise `ulimit -n` or lower --max-connections)",
            current.saturating_sub(SPARE)
        )
    })
}

/// Completes at `deadline`, or never.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Connection-level accept errors: the peer went away before it was accepted.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The pause after an accept error (out of file descriptors, out of memory): 10 ms doubling to
/// 1 s while the errors last, logged when they start and when they stop.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn failed(&mut self, e: &io::Error) -> Duration {
        if self.failures == 0 {
            tracing::error!("accept error: {e}; backing off until connections can be accepted");
        }
        self.failures = self.failures.saturating_add(1);
        self.delay()
    }

    fn delay(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        (Self::FIRST * 2u32.pow(doublings)).min(Self::MAX)
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::warn!(
                "accepting connections again after {} accept error(s)",
                self.failures
            );
            self.failures = 0;
        }
    }
}

/// The socket, noting when a request's first byte arrives on an idle connection.
struct TrackedIo {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_read();
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The request body did not arrive within the body-read timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// A request body that must arrive whole within a deadline counted from the request head
/// (tower-http's `TimeoutBody` restarts its timer on every frame, so a client trickling one byte
/// at a time would never be cut off).
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, due within `limit` from now.
    pub fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The limit of the [`BodyTimeout`] that `error` is or was caused by.
pub fn body_timeout(error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(timeout) = e.downcast_ref::<BodyTimeout>() {
            return Some(timeout.0);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod socket_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_up_to_a_second_and_resets() {
        let mut backoff = Backoff::default();
        let e = io::Error::other("Too many open files");
        let delays: Vec<Duration> = (0..10).map(|_| backoff.failed(&e)).collect();
        assert_eq!(delays[0], Duration::from_millis(10));
        assert_eq!(delays[1], Duration::from_millis(20));
        assert_eq!(delays[6], Duration::from_millis(640));
        assert_eq!(delays[9], Duration::from_secs(1));
        backoff.succeeded();
        assert_eq!(backoff.failed(&e), Duration::from_millis(10));
    }

    #[test]
    fn the_open_file_limit_is_raised_to_fit_the_connection_cap() {
        use rustix::process::{Resource, getrlimit};
        let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
        let warning = ensure_fd_room(4000);
        let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        if hard >= 4128 {
            assert!(soft >= 4128, "soft limit {soft}");
            assert_eq!(warning, None);
        } else {
            assert!(warning.unwrap().contains("--max-connections (4000)"));
        }
    }
}
