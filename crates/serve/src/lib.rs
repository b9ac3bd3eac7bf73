//! The inference server: HTTP API, adaptive batching, cache, backpressure and hot model swap.
//!
//! How a prediction flows: the HTTP layer ([`api`]) checks and parses the request, answers
//! from the prediction cache ([`cache`]) when it can, otherwise submits the text to the
//! batching engine ([`engine`]): a bounded queue (full: 503 + `Retry-After`) drained by model
//! worker threads that group concurrent requests into model batches and answer through oneshot
//! channels. The served model ([`model`]) sits in an atomically swapped slot; a poller or the
//! admin endpoint asks the [`source`] what to serve and swaps in a new version once it is
//! loaded, warmed up and self-tested ([`reload`]). [`server::run`] serves until a signal and
//! drains. Everything a request touches is in [`AppState`].
//!
//! ```no_run
//! # async fn example() -> Result<(), taxon_serve::ServeError> {
//! use std::sync::Arc;
//! let source = Arc::new(taxon_serve::DirSource::new("model")?);
//! let state = taxon_serve::AppState::start(source, taxon_serve::ServeConfig::default()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! taxon_serve::run(listener, state, taxon_serve::shutdown_signal()).await
//! # }
//! ```

pub mod alias;
pub mod api;
pub mod cache;
pub mod config;
pub mod conn;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod reload;
pub mod request_id;
pub mod server;
pub mod source;
pub mod state;
#[cfg(test)]
mod testing;

pub use alias::AliasSource;
pub use api::{admin_routes, app, predict_routes, public_routes, router};
pub use config::ServeConfig;
pub use error::ServeError;
pub use model::{LoadedModel, Loader};
pub use reload::{ModelIdentity, ReloadOutcome};
pub use server::{run, run_router, shutdown_signal};
pub use source::{AliasMove, DirSource, ModelSource, SourceError, SourceModel};
pub use state::{AppState, Health};
