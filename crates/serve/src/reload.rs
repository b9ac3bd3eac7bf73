//! Hot swap: ask the source what to serve; when its (name, version) differs from the served
//! model, load, warm up and self-test the new one in the background, then swap it in
//! atomically. Requests never wait for a load and never fail because of one: batches already
//! running keep the model they read, the next batches read the new one. A failed load is
//! logged and counted, and the old model keeps serving.
//!
//! One check runs at a time (the poller and `POST /v1/admin/reload` share a lock).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::cache::PredictionCache;
use crate::engine::ModelSlot;
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::model::{LoadedModel, Loader};
use crate::source::{ModelSource, SourceModel};

/// A model's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ModelIdentity {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
}

/// What one check did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReloadOutcome {
    /// The model served before the check.
    pub previous: ModelIdentity,
    /// The model served after the check.
    pub current: ModelIdentity,
    /// Whether a new model was swapped in.
    pub swapped: bool,
}

/// Checks the source and swaps models.
pub struct Reloader {
    source: Arc<dyn ModelSource>,
    loader: Loader,
    slot: Arc<ModelSlot>,
    cache: Option<Arc<PredictionCache>>,
    metrics: Arc<Metrics>,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source.describe())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader swapping into `slot`.
    pub fn new(
        source: Arc<dyn ModelSource>,
        loader: Loader,
        slot: Arc<ModelSlot>,
        cache: Option<Arc<PredictionCache>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            source,
            loader,
            slot,
            cache,
            metrics,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The source this reloader asks.
    pub fn source(&self) -> &Arc<dyn ModelSource> {
        &self.source
    }

    /// Asks the source now; swaps when it names another model. Errors leave the served model
    /// in place (load failures are counted in `taxon_model_load_failures_total`).
    pub async fn check(&self) -> Result<ReloadOutcome, ServeError> {
        let _one_at_a_time = self.lock.lock().await;
        let served = self.slot.load_full();
        let previous = identity(&served);
        let wanted = current(&self.source).await?;
        if wanted.name == served.name && wanted.version == served.version {
            return Ok(ReloadOutcome {
                current: previous.clone(),
                previous,
                swapped: false,
            });
        }
        tracing::info!(
            from = %format!("{}@{}", served.name, served.version),
            to = %format!("{}@{}", wanted.name, wanted.version),
            "loading a new model version"
        );
        let loaded = match load(&self.source, &self.loader, wanted).await {
            Ok(m) => m,
            Err(e) => {
                self.metrics.load_failed();
                tracing::error!(
                    "model swap failed, still serving {}@{}: {e}",
                    served.name,
                    served.version
                );
                return Err(e);
            }
        };
        let now = identity(&loaded);
        let evaluated_accuracy = loaded.evaluated_accuracy;
        tracing::info!(
            name = %loaded.name,
            version = %loaded.version,
            warmup_ms = loaded.warmup_seconds * 1e3,
            "swapped in the new model"
        );
        self.slot.store(Arc::new(loaded));
        if let Some(cache) = &self.cache {
            cache.clear();
        }
        self.metrics.model_served(
            Some((&previous.name, &previous.version)),
            &now.name,
            &now.version,
            evaluated_accuracy,
        );
        Ok(ReloadOutcome {
            previous,
            current: now,
            swapped: true,
        })
    }

    /// Checks every `every` until the task is aborted; errors are logged, not fatal.
    pub async fn poll(self: Arc<Self>, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; the model was just loaded.
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match self.check().await {
                Ok(_) => {}
                Err(ServeError::Source(e)) => {
                    tracing::warn!("cannot ask {} what to serve: {e}", self.source.describe());
                }
                // Load failures were logged by check().
                Err(_) => {}
            }
        }
    }
}

/// The identity of a loaded model.
pub fn identity(model: &LoadedModel) -> ModelIdentity {
    ModelIdentity {
        name: model.name.clone(),
        version: model.version.clone(),
    }
}

/// `source.current()` on the blocking pool.
pub async fn current(source: &Arc<dyn ModelSource>) -> Result<SourceModel, ServeError> {
    let source = Arc::clone(source);
    tokio::task::spawn_blocking(move || source.current())
        .await
        .map_err(|e| ServeError::Task {
            what: "asking the model source",
            message: e.to_string(),
        })?
        .map_err(ServeError::from)
}

/// Loads, warms up and self-tests `wanted` on the blocking pool, then checks that the source
/// still names it (a folder rewritten during the load is retried on the next check).
pub async fn load(
    source: &Arc<dyn ModelSource>,
    loader: &Loader,
    wanted: SourceModel,
) -> Result<LoadedModel, ServeError> {
    let loader = Arc::clone(loader);
    let target = wanted.clone();
    let loaded = tokio::task::spawn_blocking(move || LoadedModel::load(&target, &loader))
        .await
        .map_err(|e| ServeError::Task {
            what: "loading the model",
            message: e.to_string(),
        })??;
    let after = current(source).await?;
    if after != wanted {
        return Err(ServeError::SourceMoved {
            name: wanted.name,
            version: wanted.version,
            now: format!("{}@{}", after.name, after.version),
        });
    }
    Ok(loaded)
}
