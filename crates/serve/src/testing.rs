//! Test fixtures: small linear models trained in-process, a tiny random `bert` model folder,
//! and [`Gated`], a real classifier wrapper whose predictions wait until the test opens a gate
//! (to hold the model busy).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use taxon_core::model::{ModelDescription, ModelError, TextClassifier};
use taxon_models::bert::{BertConfig, BertModel, RandomCheckpoint};
use taxon_models::linear::{LinearConfig, SgdOptions, train};

use crate::model::Loader;

pub const SPORT: &str = "the striker scored a goal in the league match";
pub const BUSINESS: &str = "the bank said shares and profit rose on the market";
pub const WEATHER: &str = "rain and wind with cold storms over the coast tonight";

/// Trains a linear model on `labels` (a subset of sport, business, weather) and saves it in
/// `dir`. `seed` varies the weights (and so the version).
pub fn train_model(dir: &Path, labels: &[&str], seed: u64) {
    let names: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    let texts: Vec<String> = (0..20)
        .flat_map(|i| {
            labels.iter().map(move |l| {
                let base = match *l {
                    "sport" => SPORT,
                    "business" => BUSINESS,
                    _ => WEATHER,
                };
                format!("{base} {i}")
            })
        })
        .collect();
    let data: Vec<(&str, usize)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i % labels.len()))
        .collect();
    let config = LinearConfig {
        dim: 16,
        buckets: 10_000,
        ..LinearConfig::default()
    };
    let opts = SgdOptions {
        learning_rate: 0.5,
        epochs: 5,
        seed,
        threads: 1,
    };
    let (model, _) = train(&config, &opts, &names, &data, &[], &()).expect("train");
    model.save(dir).expect("save model");
}

/// The words of [`write_tiny_bert`]'s vocabulary: each is one word piece; anything else
/// (punctuation included) is `[UNK]`, one piece per word or punctuation mark.
pub const BERT_WORDS: [&str; 12] = [
    "the", "striker", "scored", "goal", "match", "league", "bank", "shares", "profit", "market",
    "rose", "said",
];

/// Writes a `bert` model folder in `dir`: a tiny random BERT checkpoint (vocabulary
/// [`BERT_WORDS`]) with a new head for sport and business, `max_len` tokens per text. Its
/// predictions are not trained, only deterministic.
pub fn write_tiny_bert(dir: &Path, max_len: usize) {
    let base = dir.with_extension("checkpoint");
    RandomCheckpoint::tiny(&BERT_WORDS)
        .write(&base)
        .expect("write checkpoint");
    let config = BertConfig {
        max_len,
        ..BertConfig::default()
    };
    let labels = ["sport".to_string(), "business".to_string()];
    let model = BertModel::from_checkpoint(&base, &config, &labels, 3).expect("bert model");
    model.save(dir).expect("save bert model");
}

/// Gate shared by every [`Gated`] model a loader makes.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
    /// `predict_batch` calls that started (warm-up included).
    pub calls: AtomicUsize,
    /// Texts seen by `predict_batch` (warm-up included).
    pub texts: AtomicUsize,
    /// Panic in `predict_batch` for texts containing this word.
    pub panic_on: Mutex<Option<String>>,
}

impl Gate {
    /// A gate, open or closed.
    pub fn new(open: bool) -> Arc<Self> {
        let gate = Arc::new(Self::default());
        gate.set(open);
        gate
    }

    /// Opens or closes the gate.
    pub fn set(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }
}

/// A real model whose `predict_batch` waits for the gate.
pub struct Gated {
    inner: Box<dyn TextClassifier>,
    gate: Arc<Gate>,
}

impl TextClassifier for Gated {
    fn labels(&self) -> &[String] {
        self.inner.labels()
    }

    fn predict_batch(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        self.gate.calls.fetch_add(1, Ordering::SeqCst);
        self.gate.texts.fetch_add(texts.len(), Ordering::SeqCst);
        let panic_on = self.gate.panic_on.lock().unwrap().clone();
        if let Some(word) = panic_on {
            assert!(
                !texts.iter().any(|t| t.contains(&word)),
                "test model refuses {word:?}"
            );
        }
        self.gate.pass();
        self.inner.predict_batch(texts)
    }

    fn save(&self, dir: &Path) -> Result<(), ModelError> {
        self.inner.save(dir)
    }

    fn describe(&self) -> ModelDescription {
        self.inner.describe()
    }

    fn token_count(&self, text: &str) -> usize {
        self.inner.token_count(text)
    }
}

/// A loader that wraps every model it loads in [`Gated`] with `gate`.
pub fn gated_loader(gate: Arc<Gate>) -> Loader {
    Arc::new(move |dir: &Path| {
        let inner = taxon_models::load(dir)?;
        Ok(Box::new(Gated {
            inner,
            gate: Arc::clone(&gate),
        }) as Box<dyn TextClassifier>)
    })
}
