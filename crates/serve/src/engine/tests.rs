//! Engine tests on a real linear model wrapped in a gate, so a test decides when the model
//! worker may finish a batch and can queue work behind it deterministically.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::oneshot;

use super::*;
use crate::model::LoadedModel;
use crate::source::SourceModel;
use crate::testing::{
    BERT_WORDS, BUSINESS, Gate, SPORT, gated_loader, train_model, write_tiny_bert,
};

struct Fixture {
    engine: Engine,
    metrics: Arc<Metrics>,
    slot: Arc<ModelSlot>,
    gate: Arc<Gate>,
    _dir: tempfile::TempDir,
}

fn fixture(config: ServeConfig) -> Fixture {
    fixture_with(config, |dir| train_model(dir, &["sport", "business"], 1))
}

/// A fixture on the model folder that `write` makes.
fn fixture_with(config: ServeConfig, write: impl FnOnce(&std::path::Path)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("news");
    write(&model_dir);
    let gate = Gate::new(true);
    let source = SourceModel {
        name: "news".into(),
        version: "v1".into(),
        dir: model_dir,
    };
    let model = LoadedModel::load(&source, &gated_loader(Arc::clone(&gate))).unwrap();
    let slot = Arc::new(ArcSwap::from_pointee(model));
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::start(&config, Arc::clone(&slot), Arc::clone(&metrics)).unwrap();
    Fixture {
        engine,
        metrics,
        slot,
        gate,
        _dir: dir,
    }
}

/// Waits for `cond` (a state change, not a duration); fails after 20 s.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Fixture {
    /// `text`, encoded by the served model (as a handler does).
    fn text(&self, text: &str) -> Text {
        Text::encode(&self.slot.load(), text.to_string()).unwrap()
    }

    fn submit_one(&self, text: &str) -> Result<oneshot::Receiver<Reply>, EngineError> {
        self.engine.arrival().submit(Texts::One(self.text(text)))
    }

    /// Closes the gate, submits one job and waits until the worker is blocked computing it.
    fn hold_worker(&self) -> oneshot::Receiver<Reply> {
        self.gate.set(false);
        let calls = self.gate.calls.load(Ordering::SeqCst);
        let rx = self.submit_one(SPORT).unwrap();
        wait_until("the worker to take the first job", || {
            self.gate.calls.load(Ordering::SeqCst) > calls
        });
        rx
    }
}

fn config() -> ServeConfig {
    ServeConfig {
        max_wait: Duration::from_millis(20),
        ..ServeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_behind_a_busy_model_share_one_batch() {
    let f = fixture(config());
    let first = f.hold_worker();
    let receivers: Vec<_> = (0..49)
        .map(|i| f.submit_one(&format!("{BUSINESS} {i}")).unwrap())
        .collect();
    assert_eq!(f.engine.admitted(), 50);
    f.gate.set(true);
    first.await.unwrap().unwrap();
    for rx in receivers {
        let computed = rx.await.unwrap().unwrap();
        assert_eq!(computed.probs.len(), 1);
        assert_eq!(
            computed.model.labels[argmax(&computed.probs[0])],
            "business"
        );
    }
    // The held job alone, then the 49 queued behind it together.
    assert_eq!(f.metrics.batches(), (50, 2));
    assert_eq!(f.engine.admitted(), 0);
}

#[test]
fn a_batch_waits_for_announced_requests() {
    let f = fixture(ServeConfig {
        max_wait: Duration::from_secs(5),
        ..ServeConfig::default()
    });
    // Ten requests announce themselves (as handlers do once they have the body), then submit
    // one by one: the worker keeps gathering while any is still on its way.
    let arrivals: Vec<_> = (0..10).map(|_| f.engine.arrival()).collect();
    let receivers: Vec<_> = arrivals
        .into_iter()
        .map(|a| {
            std::thread::sleep(Duration::from_millis(1));
            a.submit(Texts::One(f.text(SPORT))).unwrap()
        })
        .collect();
    for rx in receivers {
        rx.blocking_recv().unwrap().unwrap();
    }
    assert_eq!(f.metrics.batches(), (10, 1));
}

#[test]
fn a_lone_request_does_not_wait_for_max_wait() {
    let max_wait = Duration::from_secs(5);
    let f = fixture(ServeConfig {
        max_wait,
        ..ServeConfig::default()
    });
    let started = Instant::now();
    f.submit_one(SPORT)
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    // Nothing else was on its way, so the batch ran at once, far inside max_wait.
    assert!(started.elapsed() < max_wait, "{:?}", started.elapsed());
}

#[test]
fn an_announced_request_that_gives_up_ends_the_wait() {
    let max_wait = Duration::from_secs(5);
    let f = fixture(ServeConfig {
        max_wait,
        ..ServeConfig::default()
    });
    let started = Instant::now();
    let announced = f.engine.arrival();
    let rx = f.submit_one(SPORT).unwrap();
    wait_until("the worker to wait for the announced request", || {
        f.engine.shared.gathering.load(Ordering::SeqCst) > 0
    });
    // A validation error or cache hit: the request never submits.
    drop(announced);
    rx.blocking_recv().unwrap().unwrap();
    assert!(started.elapsed() < max_wait, "{:?}", started.elapsed());
    assert_eq!(f.metrics.batches(), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_clients_that_come_straight_back_join_the_next_batch() {
    let f = fixture(ServeConfig {
        max_wait: Duration::from_millis(50),
        ..ServeConfig::default()
    });
    // Batch 1: the held job, computed for about 600 ms (so the next gather may linger up to
    // 60 ms). Three more jobs queue behind it, past their own max_wait when it ends.
    let first = f.hold_worker();
    let queued: Vec<_> = (0..3).map(|_| f.submit_one(BUSINESS).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(600));
    f.gate.set(true);
    first.await.unwrap().unwrap();
    // The worker holds 3 of the 4 texts it expects (3 queued + 1 answered) and waits for the
    // answered client instead of computing the 3 alone (which would make a second batch).
    wait_until("the worker to linger or to compute the 3", || {
        f.engine.shared.lock().gatherers > 0 || f.metrics.batches().1 >= 2
    });
    let again = f.submit_one(SPORT).unwrap();
    for rx in queued {
        rx.await.unwrap().unwrap();
    }
    again.await.unwrap().unwrap();
    assert_eq!(f.metrics.batches(), (5, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_respect_size_and_token_limits() {
    let f = fixture(ServeConfig {
        max_batch_size: 4,
        max_batch_tokens: 30,
        ..config()
    });
    let first = f.hold_worker();
    // 10 texts of 10 words: at most 3 fit the token budget.
    let text = "one two three four five six seven eight nine ten";
    let receivers: Vec<_> = (0..10).map(|_| f.submit_one(text).unwrap()).collect();
    f.gate.set(true);
    first.await.unwrap().unwrap();
    for rx in receivers {
        rx.await.unwrap().unwrap();
    }
    // 1 held, then 3 + 3 + 3 + 1.
    assert_eq!(f.metrics.batches(), (11, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_and_recovers() {
    let f = fixture(ServeConfig {
        queue_capacity: 4,
        max_batch_texts: 4,
        ..config()
    });
    let first = f.hold_worker();
    let queued: Vec<_> = (0..3).map(|_| f.submit_one(SPORT).unwrap()).collect();
    let refused = f.submit_one(SPORT).unwrap_err();
    assert_eq!(
        refused,
        EngineError::Overloaded {
            queued: 4,
            capacity: 4,
            wanted: 1
        }
    );
    let batch = f
        .engine
        .arrival()
        .submit(Texts::Many(vec![f.text(SPORT), f.text(BUSINESS)]));
    assert!(matches!(
        batch,
        Err(EngineError::Overloaded { wanted: 2, .. })
    ));
    f.gate.set(true);
    first.await.unwrap().unwrap();
    for rx in queued {
        rx.await.unwrap().unwrap();
    }
    assert_eq!(f.engine.admitted(), 0);
    f.submit_one(SPORT).unwrap().await.unwrap().unwrap();
    assert!(
        f.metrics
            .render(0)
            .contains("taxon_queue_rejections_total 2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_are_not_computed() {
    let f = fixture(config());
    let first = f.hold_worker();
    let texts_before = f.gate.texts.load(Ordering::SeqCst);
    drop(f.submit_one("gone one").unwrap());
    drop(f.submit_one("gone two").unwrap());
    let kept = f.submit_one(BUSINESS).unwrap();
    f.gate.set(true);
    first.await.unwrap().unwrap();
    kept.await.unwrap().unwrap();
    // Only the kept text reached the model after the held one.
    assert_eq!(f.gate.texts.load(Ordering::SeqCst), texts_before + 1);
    assert_eq!(f.engine.admitted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_jobs_keep_their_order_across_length_buckets() {
    let f = fixture(config());
    let long = format!("{BUSINESS} {}", "market ".repeat(200));
    let texts = [
        long.clone(),
        SPORT.to_string(),
        "goal".to_string(),
        BUSINESS.to_string(),
        format!("{SPORT} {}", "match ".repeat(80)),
    ];
    let computed = f
        .engine
        .arrival()
        .submit(Texts::Many(texts.iter().map(|t| f.text(t)).collect()))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let model = f.slot.load_full();
    for (text, probs) in texts.iter().zip(&computed.probs) {
        let alone = model.predict(&[text.as_str()]).unwrap();
        for (a, b) in alone[0].iter().zip(probs) {
            assert!((a - b).abs() < 1e-6, "{text}: {a} vs {b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_model_fails_the_batch_not_the_worker() {
    let f = fixture(config());
    *f.gate.panic_on.lock().unwrap() = Some("boom".into());
    let err = f
        .submit_one("boom goes the text")
        .unwrap()
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::Model { message, .. } if message.contains("test model refuses")),
        "{err}"
    );
    f.submit_one(SPORT).unwrap().await.unwrap().unwrap();
    assert_eq!(f.engine.admitted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_text_fails_only_its_own_request_of_the_batch() {
    let f = fixture(config());
    *f.gate.fail_on.lock().unwrap() = Some("poison".into());
    let calls = f.gate.calls.load(Ordering::SeqCst);
    let first = f.hold_worker();
    // Queued behind the held job, these five requests make one model batch of one length
    // bucket; two of them hold the marked word.
    let good_texts = [SPORT, BUSINESS, "goal match"];
    let good: Vec<_> = good_texts
        .iter()
        .map(|t| f.submit_one(t).unwrap())
        .collect();
    let bad = f.submit_one(&format!("{SPORT} poison")).unwrap();
    let bad_batch = f
        .engine
        .arrival()
        .submit(Texts::Many(vec![f.text(BUSINESS), f.text("poison pill")]))
        .unwrap();
    f.gate.set(true);
    first.await.unwrap().unwrap();
    let mut answers = Vec::new();
    for rx in good {
        answers.push(rx.await.unwrap().unwrap());
    }
    for rx in [bad, bad_batch] {
        let err = rx.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, EngineError::Model { model, message }
                if model == "news@v1" && message.contains("test model fails on \"poison\"")),
            "{err}"
        );
    }
    // The held job; the batch of five, which failed; then each of its requests alone.
    assert_eq!(f.gate.calls.load(Ordering::SeqCst) - calls, 1 + 1 + 5);
    assert_eq!(f.engine.admitted(), 0);
    let model = f.slot.load_full();
    for (computed, text) in answers.iter().zip(good_texts) {
        let alone = model.predict(&[text]).unwrap();
        for (a, b) in alone[0].iter().zip(&computed.probs[0]) {
            assert!((a - b).abs() < 1e-6, "{text}: {a} vs {b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_encoded_before_a_swap_is_encoded_again_by_the_new_model() {
    let f = fixture(config());
    let text = f.text(BUSINESS);
    // Another model (other labels, other feature rows) replaces the one that encoded it.
    let dir = tempfile::tempdir().unwrap();
    train_model(dir.path(), &["weather", "business", "sport"], 9);
    let source = SourceModel {
        name: "news".into(),
        version: "v2".into(),
        dir: dir.path().to_path_buf(),
    };
    let new = LoadedModel::load(&source, &gated_loader(Arc::clone(&f.gate))).unwrap();
    assert_ne!(new.seq, f.slot.load().seq);
    let expected = new.predict(&[BUSINESS]).unwrap();
    f.slot.store(Arc::new(new));
    let encodes = f.gate.encodes.load(Ordering::SeqCst);
    let computed = f
        .engine
        .arrival()
        .submit(Texts::One(text))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(computed.model.version, "v2");
    assert_eq!(computed.probs[0].len(), 3);
    for (a, b) in expected[0].iter().zip(&computed.probs[0]) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // Encoded once more, by the worker.
    assert_eq!(f.gate.encodes.load(Ordering::SeqCst) - encodes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_queued_jobs_and_refuses_new_ones() {
    let f = fixture(config());
    let first = f.hold_worker();
    let queued = f.submit_one(BUSINESS).unwrap();
    f.engine.close();
    assert_eq!(f.submit_one(SPORT).unwrap_err(), EngineError::Closed);
    f.gate.set(true);
    first.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    tokio::task::block_in_place(|| f.engine.shutdown());
    assert_eq!(f.engine.admitted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_answer_every_request() {
    let f = Arc::new(fixture(ServeConfig {
        workers: 3,
        ..config()
    }));
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let f = Arc::clone(&f);
            tokio::spawn(async move {
                let text = if i % 2 == 0 { SPORT } else { BUSINESS };
                let computed = f.submit_one(text).unwrap().await.unwrap().unwrap();
                let want = if i % 2 == 0 { "sport" } else { "business" };
                assert_eq!(computed.model.labels[argmax(&computed.probs[0])], want);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(f.metrics.batches().0, 300);
    assert_eq!(f.engine.admitted(), 0);
    tokio::task::block_in_place(|| f.engine.shutdown());
}

#[test]
fn linear_counts_words_up_to_the_cap() {
    let f = fixture(config());
    assert_eq!(f.text("  a b\tc\n d ").tokens(), 4);
    assert_eq!(f.text("goal, match.").tokens(), 2);
    assert_eq!(f.text("").tokens(), 0);
    assert_eq!(f.text(&"word ".repeat(100)).tokens(), 100);
    let capped = f.slot.load().token_cap();
    if capped < usize::MAX {
        assert_eq!(f.text(&"word ".repeat(capped + 5)).tokens(), capped);
    }
}

/// A bert fixture (tiny random BERT, `max_len` tokens per text).
fn bert_fixture(config: ServeConfig, max_len: usize) -> Fixture {
    fixture_with(config, |dir| write_tiny_bert(dir, max_len))
}

#[test]
fn bert_counts_word_pieces_with_special_tokens_up_to_max_len() {
    let f = bert_fixture(config(), 16);
    // [CLS] + one piece per vocabulary word + [SEP].
    assert_eq!(f.text("the striker scored").tokens(), 5);
    // Punctuation marks are pieces of their own: 4 pieces for 2 whitespace words.
    assert_eq!(f.text("goal, match.").tokens(), 6);
    assert_eq!(f.text("").tokens(), 2);
    // Truncated to max_len, however long the text.
    let long = BERT_WORDS.join(" ").repeat(10);
    assert_eq!(f.text(&long).tokens(), 16);
    assert_eq!(f.slot.load().token_cap(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_token_budget_counts_bert_word_pieces() {
    let f = bert_fixture(
        ServeConfig {
            max_batch_tokens: 20,
            ..config()
        },
        16,
    );
    // 3 whitespace words, 6 pieces, 8 with [CLS] and [SEP]: two fit a budget of 20 tokens,
    // where a word count (3 each) would have let all six into one batch.
    let text = "goal, match, league!";
    assert_eq!(f.text(text).tokens(), 8);
    let first = f.hold_worker();
    let tokens_before = f.metrics.batched_tokens();
    let receivers: Vec<_> = (0..6).map(|_| f.submit_one(text).unwrap()).collect();
    f.gate.set(true);
    first.await.unwrap().unwrap();
    for rx in receivers {
        rx.await.unwrap().unwrap();
    }
    // The held batch (1 text), then 2 + 2 + 2 of 8 tokens each.
    assert_eq!(f.metrics.batches(), (7, 4));
    assert_eq!(f.metrics.batched_tokens() - tokens_before, 6 * 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bert_batches_across_length_buckets_match_one_text_at_a_time() {
    let f = bert_fixture(config(), 64);
    let long = "the striker scored, the bank said: shares rose! ".repeat(6);
    let texts = [
        long.as_str(),
        "goal",
        "the bank said shares rose",
        "profit",
        "market market market market market market market market market market market",
    ];
    let model = f.slot.load_full();
    // From 3 to 64 pieces: more than one length bucket.
    assert_eq!(f.text("goal").tokens(), 3);
    assert_eq!(f.text(&long).tokens(), 64);
    let computed = f
        .engine
        .arrival()
        .submit(Texts::Many(texts.iter().map(|t| f.text(t)).collect()))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    for (text, probs) in texts.iter().zip(&computed.probs) {
        let alone = model.predict(&[text]).unwrap();
        for (a, b) in alone[0].iter().zip(probs) {
            assert!((a - b).abs() < 1e-5, "{text}: {a} vs {b}");
        }
    }
}

fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in p.iter().enumerate() {
        if *x > p[best] {
            best = i;
        }
    }
    best
}
