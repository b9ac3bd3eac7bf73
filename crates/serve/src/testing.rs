//! Test fixtures: small linear models trained in-process, a tiny random `bert` model folder,
//! and [`Gated`], a real classifier wrapper whose predictions wait until the test opens a gate
//! (to hold the model busy), and that panics or fails on marked texts.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use taxon_core::model::{Encoded, ModelDescription, ModelError, TextClassifier};
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
    /// `predict_encoded` calls that started (warm-up included).
    pub calls: AtomicUsize,
    /// Texts seen by `predict_encoded` (warm-up included).
    pub texts: AtomicUsize,
    /// `encode` calls (warm-up included).
    pub encodes: AtomicUsize,
    /// Panic in `predict_encoded` for texts containing this word.
    pub panic_on: Mutex<Option<String>>,
    /// Fail `predict_encoded` (a [`ModelError::Inference`]) for texts containing this word.
    pub fail_on: Mutex<Option<String>>,
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

/// A real model whose `predict_encoded` waits for the gate.
pub struct Gated {
    inner: Box<dyn TextClassifier>,
    gate: Arc<Gate>,
}

/// A text as [`Gated`] encodes it: the inner model's input and the text (for the markers).
struct GatedInput {
    text: String,
    inner: Encoded,
}

impl TextClassifier for Gated {
    fn labels(&self) -> &[String] {
        self.inner.labels()
    }

    fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
        self.gate.encodes.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.encode(text)?;
        Ok(Encoded::new(
            inner.tokens(),
            GatedInput {
                text: text.to_string(),
                inner,
            },
        ))
    }

    fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.gate.calls.fetch_add(1, Ordering::SeqCst);
        self.gate.texts.fetch_add(inputs.len(), Ordering::SeqCst);
        let inputs = inputs
            .iter()
            .map(|e| e.input::<GatedInput>("gated"))
            .collect::<Result<Vec<_>, _>>()?;
        let marked = |word: &Mutex<Option<String>>| {
            let word = word.lock().unwrap().clone()?;
            inputs
                .iter()
                .any(|i| i.text.contains(&word))
                .then_some(word)
        };
        if let Some(word) = marked(&self.gate.panic_on) {
            panic!("test model refuses {word:?}");
        }
        if let Some(word) = marked(&self.gate.fail_on) {
            return Err(ModelError::Inference {
                model_type: "gated".into(),
                message: format!("test model fails on {word:?}"),
            });
        }
        self.gate.pass();
        let inner: Vec<&Encoded> = inputs.iter().map(|i| &i.inner).collect();
        self.inner.predict_encoded(&inner)
    }

    fn save(&self, dir: &Path) -> Result<(), ModelError> {
        self.inner.save(dir)
    }

    fn describe(&self) -> ModelDescription {
        self.inner.describe()
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
