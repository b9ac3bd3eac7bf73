//! A model worker thread: gathers a batch from the queue, computes it with the current model
//! and answers every job through its oneshot.
//!
//! Gathering takes the first job, then more while they fit (`max_batch_size` texts,
//! `max_batch_tokens` estimated tokens; a first job larger than either is taken whole). It
//! waits for more only while requests are known to be on their way (past body reading, not yet
//! queued) and at most until `max_wait` after the first job was queued. So a closed-loop client
//! never pays `max_wait` for peers that do not exist, and a burst is grouped.
//!
//! Lingering: the clients a batch answered often come straight back (closed-loop callers, a
//! service calling per item). Right after a batch, the next gather also waits for them: until it
//! holds as many texts as were queued plus just answered, for at most a tenth of the previous
//! batch's compute time and at most `LINGER_MAX_WAITS` x `max_wait`. Without this, on a busy
//! core the worker starts the next batch before the answered clients' requests are read, and
//! clients split into groups that alternate, each batch half as large as it could be. For a
//! model whose batch takes 100 ms that is a 2 ms wait to double the batch; for a model that
//! answers in microseconds the wait is microseconds; `max_wait` 0 turns it off.
//!
//! Computing skips jobs whose client went away and reads the model once (a swap during the
//! batch does not affect it). Texts encoded by another load (the handler encoded them before a
//! swap) are encoded again by this one: an input is only ever run by the model that made it.
//! The texts are ordered by token count (the model's own count, taken when the request
//! arrived: [`super::Text::tokens`]) and cut into buckets of similar lengths (at most 2x apart,
//! plus slack), one `predict_encoded` per bucket, so padded models do not pad short texts to
//! the longest one.
//!
//! A model that fails on a bucket (an error, a panic, malformed output) never answers with
//! made-up probabilities: when the bucket holds several requests, each request's texts run
//! again alone, so one bad text fails only its own request (`model_error` upstream) and the
//! others get their answers. The thread lives on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use taxon_core::model::Encoded;

use super::{Computed, EngineError, Job, ModelSlot, Shared};
use crate::metrics::Metrics;
use crate::model::{LoadedModel, check_probabilities};

/// Texts whose estimates are within `2 * first + BUCKET_SLACK` share a bucket.
const BUCKET_SLACK: usize = 16;

/// Lingering lasts at most the previous batch's compute time divided by this.
const LINGER_FRACTION: u32 = 10;
/// Lingering lasts at most this many `max_wait`s.
const LINGER_MAX_WAITS: u32 = 10;

/// What the previous batch tells the next gather (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
struct Linger {
    /// Texts the previous batch answered.
    answered: usize,
    /// The end of the window in which they may come back (`None`: no previous batch).
    until: Option<Instant>,
}

impl Linger {
    /// After a batch of `answered` texts computed from `started` to `ended`.
    fn after(answered: usize, started: Instant, ended: Instant, max_wait: Duration) -> Self {
        let window = ((ended - started) / LINGER_FRACTION).min(max_wait * LINGER_MAX_WAITS);
        Self {
            answered,
            until: Some(ended + window),
        }
    }
}

/// The worker loop: runs until the queue is closed and empty.
pub(super) fn run(shared: &Shared, slot: &ModelSlot, metrics: &Metrics) {
    let mut batch = Vec::with_capacity(shared.limits.max_batch_size);
    let mut scratch = Scratch::default();
    let mut linger = Linger::default();
    while gather(shared, &mut batch, linger) {
        let answered = batch.iter().map(|job| job.texts.len()).sum();
        let started = Instant::now();
        compute(&mut batch, slot, metrics, &mut scratch);
        batch.clear();
        linger = Linger::after(answered, started, Instant::now(), shared.limits.max_wait);
    }
}

/// Fills `batch` (empty on entry); false when the queue is closed and drained.
fn gather(shared: &Shared, batch: &mut Vec<Job>, linger: Linger) -> bool {
    let limits = shared.limits;
    let mut state = shared.lock();
    // Lingering waits until the batch holds what is queued now plus what the previous batch
    // answered (or the batch is full).
    let expect = state
        .queued_texts
        .saturating_add(linger.answered)
        .min(limits.max_batch_size);
    let first = loop {
        if let Some(job) = state.pop() {
            break job;
        }
        if state.closed {
            return false;
        }
        state.idle += 1;
        state = shared
            .work
            .wait(state)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.idle -= 1;
    };
    let mut texts = first.texts.len();
    let mut tokens = first.tokens;
    let deadline = first.enqueued + limits.max_wait;
    batch.push(first);
    loop {
        while let Some(next) = state.jobs.front() {
            if texts + next.texts.len() > limits.max_batch_size
                || tokens + next.tokens > limits.max_batch_tokens
            {
                return true;
            }
            texts += next.texts.len();
            tokens += next.tokens;
            if let Some(job) = state.pop() {
                batch.push(job);
            }
        }
        if texts >= limits.max_batch_size || state.closed {
            return true;
        }
        // A full queue admits nothing more: no point in waiting.
        if shared.admitted.load(Ordering::Acquire) >= shared.capacity {
            return true;
        }
        let now = Instant::now();
        let lingering = texts < expect && linger.until.is_some_and(|until| now < until);
        if now >= deadline && !lingering {
            return true;
        }
        // Announce the wait before looking at `arriving`: an arrival that gives up sees
        // either our announcement (and wakes us) or we see its departure.
        shared.gathering.fetch_add(1, Ordering::SeqCst);
        let arriving = now < deadline && shared.arriving.load(Ordering::SeqCst) > 0;
        let wake = match (arriving, linger.until) {
            (true, Some(until)) if lingering => deadline.max(until),
            (true, _) => deadline,
            (false, Some(until)) if lingering => until,
            (false, _) => {
                shared.gathering.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
        };
        state.gatherers += 1;
        state.need_texts = state.need_texts.min(limits.max_batch_size - texts);
        state.need_tokens = state.need_tokens.min(
            limits
                .max_batch_tokens
                .saturating_sub(tokens)
                .saturating_add(1),
        );
        state = match shared.more.wait_timeout(state, wake - now) {
            Ok((s, _)) => s,
            Err(poisoned) => poisoned.into_inner().0,
        };
        state.gatherers -= 1;
        if state.gatherers == 0 {
            state.need_texts = usize::MAX;
            state.need_tokens = usize::MAX;
        }
        shared.gathering.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Buffers reused from batch to batch.
#[derive(Default)]
struct Scratch {
    /// (tokens, job index, text index), sorted by tokens.
    order: Vec<(usize, usize, usize)>,
}

/// Per job: its probability vectors (filled bucket by bucket), or why it failed.
type Results = Vec<Result<Vec<Vec<f32>>, EngineError>>;

/// Computes `batch` and answers every job.
fn compute(batch: &mut Vec<Job>, slot: &ModelSlot, metrics: &Metrics, scratch: &mut Scratch) {
    // A job whose client went away is dropped here (releasing its slots), not computed.
    batch.retain(|job| !job.reply.is_closed());
    if batch.is_empty() {
        return;
    }
    let model = slot.load_full();
    let mut results: Results = batch
        .iter_mut()
        .map(|job| {
            catch_unwind(AssertUnwindSafe(|| job.texts.encode_for(&model)))
                .map_err(|panic| {
                    format!("model panicked encoding a text: {}", panic_message(panic))
                })
                .and_then(|encoded| encoded.map_err(|e| e.to_string()))
                .map(|()| vec![Vec::new(); job.texts.len()])
                .map_err(|message| EngineError::model(&model, message))
        })
        .collect();
    let order = &mut scratch.order;
    order.clear();
    for (j, job) in batch.iter().enumerate() {
        if results[j].is_ok() {
            for t in 0..job.texts.len() {
                order.push((job.texts.get(t).tokens, j, t));
            }
        }
    }
    order.sort_unstable_by_key(|&(tokens, _, _)| tokens);
    let total_tokens: usize = order.iter().map(|&(tokens, _, _)| tokens).sum();
    metrics.observe_batch(order.len(), total_tokens);

    let mut start = 0;
    while start < order.len() {
        let limit = order[start]
            .0
            .saturating_mul(2)
            .saturating_add(BUCKET_SLACK);
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&(tokens, _, _)| tokens <= limit)
                .count();
        compute_bucket(&model, batch, &order[start..end], &mut results);
        start = end;
    }
    for (job, result) in batch.drain(..).zip(results) {
        let Job { reply, _permit, .. } = job;
        // Free the slots first: a client that sends its next request as soon as it has this
        // answer must find them free.
        drop(_permit);
        // The client may have gone away meanwhile; nothing to do then.
        let _ = reply.send(result.map(|probs| Computed {
            model: Arc::clone(&model),
            probs,
        }));
    }
}

/// Computes the texts of one length bucket into `results`, skipping jobs that already failed.
/// When the model fails on a bucket of several jobs, each job's texts run again alone.
fn compute_bucket(
    model: &LoadedModel,
    batch: &[Job],
    bucket: &[(usize, usize, usize)],
    results: &mut Results,
) {
    let live: Vec<(usize, usize, usize)>;
    let bucket = if bucket.iter().any(|&(_, j, _)| results[j].is_err()) {
        live = bucket
            .iter()
            .copied()
            .filter(|&(_, j, _)| results[j].is_ok())
            .collect();
        &live[..]
    } else {
        bucket
    };
    if bucket.is_empty() {
        return;
    }
    let failure = match predict_checked(model, batch, bucket) {
        Ok(probs) => return fill(results, bucket, probs),
        Err(message) => message,
    };
    let mut jobs: Vec<usize> = bucket.iter().map(|&(_, j, _)| j).collect();
    jobs.sort_unstable();
    jobs.dedup();
    if let [j] = jobs[..] {
        results[j] = Err(EngineError::model(model, failure));
        return;
    }
    tracing::warn!(
        model = %model.name,
        version = %model.version,
        requests = jobs.len(),
        "the model failed on a batch; computing its requests one by one: {failure}"
    );
    for j in jobs {
        let alone: Vec<(usize, usize, usize)> =
            bucket.iter().copied().filter(|&(_, k, _)| k == j).collect();
        match predict_checked(model, batch, &alone) {
            Ok(probs) => fill(results, &alone, probs),
            Err(message) => results[j] = Err(EngineError::model(model, message)),
        }
    }
}

/// Stores the probability vectors of the texts of `bucket`, in its order.
fn fill(results: &mut Results, bucket: &[(usize, usize, usize)], probs: Vec<Vec<f32>>) {
    for (&(_, j, t), p) in bucket.iter().zip(probs) {
        if let Ok(out) = &mut results[j] {
            out[t] = p;
        }
    }
}

/// One `predict_encoded` on the texts of `bucket`, with panics caught and the output checked.
fn predict_checked(
    model: &LoadedModel,
    batch: &[Job],
    bucket: &[(usize, usize, usize)],
) -> Result<Vec<Vec<f32>>, String> {
    let inputs: Vec<&Encoded> = bucket
        .iter()
        .map(|&(_, j, t)| &batch[j].texts.get(t).encoded)
        .collect();
    let probs = catch_unwind(AssertUnwindSafe(|| model.predict_encoded(&inputs)))
        .map_err(|panic| format!("model panicked: {}", panic_message(panic)))?
        .map_err(|e| e.to_string())?;
    check_probabilities(&probs, inputs.len(), model.labels.len())
        .map_err(|e| format!("model returned invalid output: {e}"))?;
    Ok(probs)
}

/// What a caught panic said.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
