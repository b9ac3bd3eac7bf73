//! The batching engine: a bounded queue of prediction jobs, counted in texts, drained by model
//! worker threads that group concurrent requests into model batches.
//!
//! The flow: a handler takes an [`Arrival`] once it has the request body (so workers know a job
//! is on its way), then [`Arrival::submit`]s its texts, each encoded once by the served model
//! ([`Text::encode`]). Admission is a compare-and-swap on the count of texts admitted and not
//! yet answered; past `queue_capacity` the job is refused ([`EngineError::Overloaded`], 503 +
//! `Retry-After` upstream), so memory stays bounded. The job carries a oneshot sender; the
//! handler awaits the receiver. A job holds its queue slot until it is answered or dropped.
//! Workers are described in the `worker` module.

mod worker;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use taxon_core::model::{Encoded, ModelError};
use tokio::sync::oneshot;

use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::model::LoadedModel;

/// The model currently served: swapped atomically, read once per batch.
pub type ModelSlot = ArcSwap<LoadedModel>;

/// One text of a job, prepared once where the request arrived: the model's input for it
/// ([`LoadedModel::encode`]), tagged with the load that encoded it, and its token count (the
/// tokenizer's count for `bert`, words for the others, capped at the model's `max_tokens`),
/// which drives the batch token budget and the length buckets. A worker whose model is another
/// load (a hot swap in between) encodes the text again before using it.
#[derive(Debug)]
pub struct Text {
    /// The text as the client sent it.
    text: String,
    /// The text as model `seq` reads it.
    encoded: Encoded,
    /// The load ([`LoadedModel::seq`]) that encoded it.
    seq: u64,
    /// Its token count, capped at the model's `max_tokens`.
    tokens: usize,
}

impl Text {
    /// `text`, encoded by `model`.
    pub fn encode(model: &LoadedModel, text: String) -> Result<Self, ModelError> {
        let encoded = model.encode(&text)?;
        Ok(Self {
            tokens: encoded.tokens().min(model.token_cap()),
            seq: model.seq,
            encoded,
            text,
        })
    }

    /// Its token count, as the model that encoded it counts them.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Encodes the text again when `model` is not the load that encoded it.
    fn encode_for(&mut self, model: &LoadedModel) -> Result<(), ModelError> {
        if self.seq != model.seq {
            let encoded = model.encode(&self.text)?;
            self.tokens = encoded.tokens().min(model.token_cap());
            self.seq = model.seq;
            self.encoded = encoded;
        }
        Ok(())
    }
}

/// The texts of one job: one `/v1/predict` text or the texts of a batch request.
#[derive(Debug)]
pub enum Texts {
    One(Text),
    Many(Vec<Text>),
}

impl Texts {
    /// Number of texts.
    pub fn len(&self) -> usize {
        match self {
            Texts::One(_) => 1,
            Texts::Many(v) => v.len(),
        }
    }

    /// Whether there are no texts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th text (`i < len()`).
    fn get(&self, i: usize) -> &Text {
        match self {
            Texts::One(t) => t,
            Texts::Many(v) => &v[i],
        }
    }

    /// Encodes every text again that `model` did not encode.
    fn encode_for(&mut self, model: &LoadedModel) -> Result<(), ModelError> {
        match self {
            Texts::One(t) => t.encode_for(model),
            Texts::Many(v) => v.iter_mut().try_for_each(|t| t.encode_for(model)),
        }
    }

    /// The tokens of every text together.
    fn tokens(&self) -> usize {
        match self {
            Texts::One(t) => t.tokens,
            Texts::Many(v) => v.iter().map(|t| t.tokens).sum(),
        }
    }
}

/// What a job's texts computed to, and the model that computed them.
#[derive(Debug)]
pub struct Computed {
    /// The model (and so the version) that computed `probs`.
    pub model: Arc<LoadedModel>,
    /// One probability vector per text, in the job's order.
    pub probs: Vec<Vec<f32>>,
}

/// Why a job was not computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The queue is full.
    #[error(
        "the server is at capacity ({queued} of {capacity} queued texts; this request has {wanted}): retry later"
    )]
    Overloaded {
        queued: usize,
        capacity: usize,
        wanted: usize,
    },
    /// The engine is shutting down.
    #[error("the server is shutting down and takes no new predictions")]
    Closed,
    /// The model failed on this request's texts (an error, a panic or malformed output).
    #[error("model {model} failed on this request: {message}")]
    Model {
        /// `name@version` of the model.
        model: String,
        /// What failed.
        message: String,
    },
}

impl EngineError {
    /// `message` as `model`'s failure.
    pub fn model(model: &LoadedModel, message: impl std::fmt::Display) -> Self {
        EngineError::Model {
            model: format!("{}@{}", model.name, model.version),
            message: message.to_string(),
        }
    }
}

/// The answer a job's receiver gets.
pub type Reply = Result<Computed, EngineError>;

/// One queued job.
struct Job {
    texts: Texts,
    tokens: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
    _permit: Permit,
}

/// Releases a job's queue slots when the job is answered or dropped.
struct Permit {
    shared: Arc<Shared>,
    texts: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.admitted.fetch_sub(self.texts, Ordering::AcqRel);
    }
}

/// Batch limits, copied from the config.
#[derive(Clone, Copy, Debug)]
struct BatchLimits {
    max_batch_size: usize,
    max_wait: Duration,
    max_batch_tokens: usize,
}

/// State under the queue lock.
struct QueueState {
    jobs: VecDeque<Job>,
    /// Texts and estimated tokens of `jobs`.
    queued_texts: usize,
    queued_tokens: usize,
    /// Workers waiting for a first job.
    idle: usize,
    /// Workers waiting to complete a batch, and the least texts or tokens that would fill
    /// one of them (`usize::MAX` when none waits).
    gatherers: usize,
    need_texts: usize,
    need_tokens: usize,
    closed: bool,
}

impl QueueState {
    fn pop(&mut self) -> Option<Job> {
        let job = self.jobs.pop_front()?;
        self.queued_texts -= job.texts.len();
        self.queued_tokens -= job.tokens;
        Some(job)
    }
}

/// What the handlers and the workers share.
struct Shared {
    state: Mutex<QueueState>,
    /// Signalled for idle workers: a job was queued, or the queue closed.
    work: Condvar,
    /// Signalled for gathering workers: their batch can be filled, or nothing more is on its
    /// way.
    more: Condvar,
    /// Texts admitted and not yet answered.
    admitted: AtomicUsize,
    /// Requests past body reading that have not submitted (or given up) yet.
    arriving: AtomicUsize,
    /// Workers gathering (mirrors `QueueState::gatherers`, readable without the lock).
    gathering: AtomicUsize,
    capacity: usize,
    limits: BatchLimits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A worker never panics while holding the lock (model calls happen outside it), so a
        // poisoned lock still holds a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_admit(self: &Arc<Self>, texts: usize) -> Result<Permit, EngineError> {
        let mut current = self.admitted.load(Ordering::Acquire);
        loop {
            if current + texts > self.capacity {
                return Err(EngineError::Overloaded {
                    queued: current,
                    capacity: self.capacity,
                    wanted: texts,
                });
            }
            match self.admitted.compare_exchange_weak(
                current,
                current + texts,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Permit {
                        shared: Arc::clone(self),
                        texts,
                    });
                }
                Err(now) => current = now,
            }
        }
    }
}

/// The queue and its model worker threads.
pub struct Engine {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("capacity", &self.shared.capacity)
            .field("admitted", &self.admitted())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts `config.workers` model threads reading the model from `slot`, each with its own
    /// rayon pool of [`ServeConfig::model_threads_per_worker`] threads for the model's kernels.
    pub fn start(
        config: &ServeConfig,
        slot: Arc<ModelSlot>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(QueueState {
                jobs: VecDeque::with_capacity(config.queue_capacity.min(4096)),
                queued_texts: 0,
                queued_tokens: 0,
                idle: 0,
                gatherers: 0,
                need_texts: usize::MAX,
                need_tokens: usize::MAX,
                closed: false,
            }),
            work: Condvar::new(),
            more: Condvar::new(),
            admitted: AtomicUsize::new(0),
            arriving: AtomicUsize::new(0),
            gathering: AtomicUsize::new(0),
            capacity: config.queue_capacity,
            limits: BatchLimits {
                max_batch_size: config.max_batch_size,
                max_wait: config.max_wait,
                max_batch_tokens: config.max_batch_tokens,
            },
        });
        let mut workers = Vec::with_capacity(config.workers);
        // The workers log where their creator logs (a thread does not inherit it).
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let threads = config.model_threads_per_worker();
        for i in 0..config.workers {
            let (queue, slot, metrics) =
                (Arc::clone(&shared), Arc::clone(&slot), Arc::clone(&metrics));
            let dispatch = dispatch.clone();
            let pool = match model_pool(i, threads) {
                Ok(pool) => pool,
                Err(e) => {
                    close(&shared);
                    return Err(e);
                }
            };
            let spawned = std::thread::Builder::new()
                .name(format!("taxon-model-{i}"))
                .spawn(move || {
                    // The loop runs on one of the pool's threads, so the model's parallel
                    // kernels start on this pool from the thread that gathered the batch (no
                    // hand-off per operation, no other pool involved).
                    pool.install(|| {
                        tracing::dispatcher::with_default(&dispatch, || {
                            worker::run(&queue, &slot, &metrics);
                        });
                    });
                });
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    close(&shared);
                    return Err(e);
                }
            }
        }
        Ok(Self {
            shared,
            metrics,
            workers: Mutex::new(workers),
        })
    }

    /// Announces a request that will submit soon; workers gathering a batch wait for it (up
    /// to `max_wait`). Drop it without submitting when the request ends otherwise.
    pub fn arrival(&self) -> Arrival<'_> {
        self.shared.arriving.fetch_add(1, Ordering::SeqCst);
        Arrival {
            engine: self,
            done: false,
        }
    }

    /// Texts admitted and not yet answered (the queue depth).
    pub fn admitted(&self) -> usize {
        self.shared.admitted.load(Ordering::Acquire)
    }

    /// The queue capacity, in texts.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Stops admitting jobs; workers finish what is queued, then exit.
    pub fn close(&self) {
        close(&self.shared);
    }

    /// Closes the queue and waits for the workers to finish what was queued. Blocking.
    pub fn shutdown(&self) {
        self.close();
        let handles =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in handles {
            if handle.join().is_err() {
                tracing::error!("a model worker thread panicked");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
    }
}

/// The rayon pool of model worker `i`: `threads` threads named `taxon-model-{i}-{j}`.
fn model_pool(i: usize, threads: usize) -> std::io::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |j| format!("taxon-model-{i}-{j}"))
        .build()
        .map_err(|e| {
            std::io::Error::other(format!(
                "starting the {threads} compute threads of model worker {i}: {e}"
            ))
        })
}

fn close(shared: &Shared) {
    shared.lock().closed = true;
    shared.work.notify_all();
    shared.more.notify_all();
}

/// A request that will submit to the engine (see [`Engine::arrival`]).
pub struct Arrival<'a> {
    engine: &'a Engine,
    done: bool,
}

impl Arrival<'_> {
    /// Admits and queues `texts`; the receiver gets the answer. Refused when the queue is full
    /// or closed.
    pub fn submit(mut self, texts: Texts) -> Result<oneshot::Receiver<Reply>, EngineError> {
        let shared = &self.engine.shared;
        let permit = match shared.try_admit(texts.len()) {
            Ok(p) => p,
            Err(e) => {
                self.engine.metrics.queue_rejected();
                return Err(e);
            }
        };
        let (tx, rx) = oneshot::channel();
        let tokens = texts.tokens();
        let job = Job {
            texts,
            tokens,
            enqueued: Instant::now(),
            reply: tx,
            _permit: permit,
        };
        let mut state = shared.lock();
        if state.closed {
            return Err(EngineError::Closed);
        }
        state.queued_texts += job.texts.len();
        state.queued_tokens += job.tokens;
        state.jobs.push_back(job);
        // Under the lock: a worker never sees "queue empty, nothing arriving" in between.
        let still_arriving = shared.arriving.fetch_sub(1, Ordering::SeqCst) - 1;
        self.done = true;
        // Wake a gatherer only when its batch can now be closed (full, or nothing more is on
        // its way), not for every job: under load that is one wake-up per batch.
        let fill = state.gatherers > 0
            && (still_arriving == 0
                || state.queued_texts >= state.need_texts
                || state.queued_tokens >= state.need_tokens);
        let start = state.idle > 0;
        drop(state);
        if fill {
            shared.more.notify_all();
        }
        if start {
            shared.work.notify_one();
        }
        Ok(rx)
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let shared = &self.engine.shared;
        let before = shared.arriving.fetch_sub(1, Ordering::SeqCst);
        // A worker may be waiting for this request: tell it nothing more is coming.
        if before == 1 && shared.gathering.load(Ordering::SeqCst) > 0 {
            let _state = shared.lock();
            shared.more.notify_all();
        }
    }
}

#[cfg(test)]
mod tests;
