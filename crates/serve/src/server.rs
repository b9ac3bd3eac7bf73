//! Serving a router on a socket until a shutdown signal, then draining: stop accepting, let
//! every in-flight request finish, let the model workers answer every queued job, return.

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

use crate::api;
use crate::error::ServeError;
use crate::state::AppState;

/// Serves [`api::app`] on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let router = api::app(state.clone());
    run_router(listener, router, state, shutdown).await
}

/// Serves `router` (built with [`api::router`], guards included) on `listener` until
/// `shutdown` completes: readiness turns to 503, no new connections are accepted, in-flight
/// requests finish, then the model workers drain and stop. Handlers can read the peer address
/// with `ConnectInfo<SocketAddr>`. Connections are capped and timed out as
/// [`crate::conn`] says.
pub async fn run_router(
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let draining = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        draining.begin_drain();
    };
    crate::conn::serve_connections(listener, router, state.clone(), signal).await;
    state.shutdown().await;
    tracing::info!("drained; stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
