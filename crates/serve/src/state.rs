//! [`AppState`]: everything a running server holds (config, model slot, engine, cache, metrics,
//! reloader, readiness), built by [`AppState::start`], which loads, warms up and self-tests the
//! first model before anything is served.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::PredictionCache;
use crate::config::ServeConfig;
use crate::engine::{Engine, ModelSlot};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::model::{LoadedModel, Loader, default_loader};
use crate::monitor::Monitoring;
use crate::reload::{self, ReloadOutcome, Reloader};
use crate::request_id::RequestIds;
use crate::source::ModelSource;

/// Whether the server takes traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// A model passed its warm-up and self-test; requests are served.
    Ready,
    /// Shutting down: in-flight requests finish, `/ready` answers 503.
    Draining,
}

/// The shared state of one server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServeConfig,
    source: String,
    slot: Arc<ModelSlot>,
    engine: Engine,
    cache: Option<Arc<PredictionCache>>,
    metrics: Arc<Metrics>,
    reloader: Arc<Reloader>,
    health: watch::Sender<Health>,
    request_ids: RequestIds,
    poller: Mutex<Option<JoinHandle<()>>>,
    monitoring: Arc<Monitoring>,
    /// A retraining started by `POST /v1/admin/retrain` is running.
    retraining: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("source", &self.source)
            .field("config", &self.config)
            .field("model", &self.slot.load())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(poller) = self
            .poller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            poller.abort();
        }
        // The engine closes its queue when dropped; its threads then exit.
    }
}

impl AppState {
    /// Loads the source's model (warm-up and self-test included), starts the model workers
    /// and, with `poll_interval`, the source poller. Must run inside a Tokio runtime.
    pub async fn start(
        source: Arc<dyn ModelSource>,
        config: ServeConfig,
    ) -> Result<AppState, ServeError> {
        Self::start_with_loader(source, config, default_loader()).await
    }

    /// [`AppState::start`] with another model loader (a model factory of its own, or a test
    /// model).
    pub async fn start_with_loader(
        source: Arc<dyn ModelSource>,
        config: ServeConfig,
        loader: Loader,
    ) -> Result<AppState, ServeError> {
        config.validate()?;
        let wanted = reload::current(&source).await?;
        let model = reload::load(&source, &loader, wanted).await?;
        let metrics = Arc::new(Metrics::new());
        metrics.set_queue_capacity(config.queue_capacity);
        metrics.model_served(None, &model.name, &model.version, model.evaluated_accuracy);
        let kernels = taxon_kernels::paths();
        tracing::info!(
            int8 = kernels.int8,
            fused = kernels.fused,
            f32 = kernels.f32,
            level = %kernels.level,
            forced = kernels.requested.as_deref().unwrap_or(""),
            "CPU kernel paths"
        );
        if let Some(note) = &kernels.fallback {
            tracing::warn!("{note}");
        }
        tracing::info!(
            name = %model.name,
            version = %model.version,
            model_type = %model.model_type,
            warmup_ms = model.warmup_seconds * 1e3,
            "model loaded, warmed up and self-tested"
        );
        let slot = Arc::new(ArcSwap::from_pointee(model));
        let cache = PredictionCache::new(
            config.cache_capacity,
            config.cache_max_bytes,
            config.cache_ttl,
        )
        .map(Arc::new);
        let engine = Engine::start(&config, Arc::clone(&slot), Arc::clone(&metrics))?;
        let reloader = Arc::new(Reloader::new(
            Arc::clone(&source),
            loader,
            Arc::clone(&slot),
            cache.clone(),
            Arc::clone(&metrics),
        ));
        let poller = config
            .poll_interval
            .map(|every| tokio::spawn(Arc::clone(&reloader).poll(every)));
        let (health, _) = watch::channel(Health::Ready);
        let monitoring = Arc::new(Monitoring::start(config.monitor.clone())?);
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                source: source.describe(),
                slot,
                engine,
                cache,
                metrics,
                reloader,
                health,
                request_ids: RequestIds::new(),
                poller: Mutex::new(poller),
                monitoring,
                retraining: Arc::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }

    /// The source's description.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The model served now.
    pub fn model(&self) -> Arc<LoadedModel> {
        self.inner.slot.load_full()
    }

    /// The model slot (read it once per request: `slot().load()`).
    pub fn slot(&self) -> &ModelSlot {
        &self.inner.slot
    }

    /// The batching engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The prediction cache, when on.
    pub fn cache(&self) -> Option<&PredictionCache> {
        self.inner.cache.as_deref()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Set while a retraining started by `POST /v1/admin/retrain` runs.
    pub fn retraining(&self) -> &Arc<std::sync::atomic::AtomicBool> {
        &self.inner.retraining
    }

    /// Prediction log, feedback and live accuracy.
    pub fn monitoring(&self) -> &Monitoring {
        &self.inner.monitoring
    }

    /// The request id generator.
    pub fn request_ids(&self) -> &RequestIds {
        &self.inner.request_ids
    }

    /// The model source itself (for alias changes through the admin API).
    pub fn model_source(&self) -> Arc<dyn crate::source::ModelSource> {
        Arc::clone(self.inner.reloader.source())
    }

    /// Checks the source now and swaps if it names another model (what the poller and
    /// `POST /v1/admin/reload` do).
    pub async fn reload(&self) -> Result<ReloadOutcome, ServeError> {
        self.inner.reloader.check().await
    }

    /// Readiness now.
    pub fn health(&self) -> Health {
        *self.inner.health.borrow()
    }

    /// Follows readiness changes.
    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.inner.health.subscribe()
    }

    /// Marks the server as draining (`/ready` answers 503) and stops polling the source.
    pub fn begin_drain(&self) {
        self.inner.health.send_replace(Health::Draining);
        if let Some(poller) = self
            .inner
            .poller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            poller.abort();
        }
    }

    /// Drains: marks draining, lets the model workers finish every queued job, and stops them.
    pub async fn shutdown(&self) {
        self.begin_drain();
        let state = self.clone();
        // Joining threads blocks: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            state.inner.engine.shutdown();
            state.inner.monitoring.flush();
        })
        .await;
    }
}
