//! The linear model end to end: learning, save/load, and what a broken folder says.

use std::path::Path;

use taxon_core::model::{ModelDescription, TextClassifier};
use taxon_models::linear::{self, LinearConfig, LinearModel, SgdOptions, Weighting};
use taxon_models::rng::SplitMix64;

/// Three topics, each with its own vocabulary plus shared filler words; separable by words.
fn synthetic(n_per_class: usize, seed: u64) -> (Vec<String>, Vec<(String, usize)>) {
    let topics = [
        ["goal", "match", "striker", "league", "coach"],
        ["market", "shares", "profit", "bank", "investor"],
        ["film", "actor", "award", "music", "festival"],
    ];
    let filler = ["the", "a", "of", "said", "on", "with", "after", "new"];
    let mut rng = SplitMix64::new(seed);
    let mut rows = Vec::new();
    for (label, words) in topics.iter().enumerate() {
        for _ in 0..n_per_class {
            let len = 6 + rng.below(8);
            let text: Vec<&str> = (0..len)
                .map(|_| {
                    if rng.below(2) == 0 {
                        words[rng.below(words.len())]
                    } else {
                        filler[rng.below(filler.len())]
                    }
                })
                .collect();
            rows.push((text.join(" "), label));
        }
    }
    rng.shuffle(&mut rows);
    let labels = ["sport", "business", "culture"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    (labels, rows)
}

fn small_config() -> LinearConfig {
    LinearConfig {
        dim: 16,
        buckets: 10_000,
        ..LinearConfig::default()
    }
}

fn opts(threads: usize) -> SgdOptions {
    SgdOptions {
        learning_rate: 0.5,
        epochs: 10,
        seed: 7,
        threads,
    }
}

fn train_on(
    cfg: &LinearConfig,
    o: &SgdOptions,
    rows: &[(String, usize)],
    labels: &[String],
) -> LinearModel {
    let ex: Vec<(&str, usize)> = rows.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    linear::train(cfg, o, labels, &ex, &[], &()).unwrap().0
}

fn accuracy(model: &dyn TextClassifier, rows: &[(String, usize)]) -> f64 {
    let texts: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    let probs = model.predict_batch(&texts).unwrap();
    let correct = probs
        .iter()
        .zip(rows)
        .filter(|(p, (_, l))| {
            let best = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i);
            best == Some(*l)
        })
        .count();
    correct as f64 / rows.len() as f64
}

#[test]
fn learns_a_separable_dataset() {
    let (labels, train) = synthetic(100, 1);
    let (_, test) = synthetic(50, 2);
    for threads in [1, 2] {
        let model = train_on(&small_config(), &opts(threads), &train, &labels);
        let acc = accuracy(&model, &test);
        assert!(acc >= 0.95, "threads {threads}: accuracy {acc}");
    }
    let idf = LinearConfig {
        weighting: Weighting::Idf,
        ..small_config()
    };
    let acc = accuracy(&train_on(&idf, &opts(1), &train, &labels), &test);
    assert!(acc >= 0.95, "idf: accuracy {acc}");
}

#[test]
fn probabilities_sum_to_one_and_unknown_text_is_uniform() {
    let (labels, train) = synthetic(30, 3);
    let model = train_on(&small_config(), &opts(1), &train, &labels);
    let p = model
        .predict_batch(&["goal striker", "zzzz qqqq", ""])
        .unwrap();
    for v in &p {
        assert_eq!(v.len(), 3);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert!(p[1].iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-6));
}

#[test]
fn one_thread_is_reproducible_for_a_seed() {
    let (labels, train) = synthetic(40, 4);
    let a = train_on(&small_config(), &opts(1), &train, &labels);
    let b = train_on(&small_config(), &opts(1), &train, &labels);
    let texts = ["goal market film", "bank coach award"];
    assert_eq!(
        a.predict_batch(&texts).unwrap(),
        b.predict_batch(&texts).unwrap()
    );
    let c = train_on(
        &small_config(),
        &SgdOptions { seed: 8, ..opts(1) },
        &train,
        &labels,
    );
    assert_ne!(
        a.predict_batch(&texts).unwrap(),
        c.predict_batch(&texts).unwrap()
    );
}

#[test]
fn save_load_round_trip_gives_identical_predictions() {
    let (labels, train) = synthetic(40, 5);
    let cfg = LinearConfig {
        weighting: Weighting::Idf,
        minn: 2,
        maxn: 4,
        ..small_config()
    };
    let model = train_on(&cfg, &opts(2), &train, &labels);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = taxon_models::load(dir.path()).unwrap();
    assert_eq!(loaded.labels(), model.labels());
    let texts: Vec<&str> = train.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        loaded.predict_batch(&texts).unwrap(),
        model.predict_batch(&texts).unwrap()
    );
    let desc = loaded.describe();
    assert_eq!(desc.model_type, "linear");
    assert_eq!(desc.files.len(), 1);
    assert_eq!(desc.params["weighting"], "idf");
}

fn saved_model() -> tempfile::TempDir {
    let (labels, train) = synthetic(20, 6);
    let model = train_on(&small_config(), &opts(1), &train, &labels);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    match taxon_models::load(dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_json(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("model.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn unknown_model_type_names_the_file_and_field() {
    let dir = saved_model();
    edit_json(dir.path(), |v| v["model_type"] = "gpt9".into());
    let err = load_err(dir.path());
    assert!(err.contains("model.json"), "{err}");
    assert!(err.contains("model_type") && err.contains("gpt9"), "{err}");
    assert!(err.contains("linear"), "lists the known types: {err}");
}

#[test]
fn tampered_weights_are_detected() {
    let dir = saved_model();
    let path = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("md5"),
        "{err}"
    );
}

#[test]
fn weights_that_disagree_with_model_json_are_an_error() {
    // dim in model.json no longer matches the tensors' shape.
    let dir = saved_model();
    edit_json(dir.path(), |v| v["params"]["dim"] = 32.into());
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("input"),
        "{err}"
    );
    assert!(err.contains("shape"), "{err}");

    // One label fewer than the output layer has rows.
    let dir = saved_model();
    edit_json(dir.path(), |v| {
        v["labels"].as_array_mut().unwrap().pop();
    });
    let err = load_err(dir.path());
    assert!(err.contains("output") && err.contains("shape"), "{err}");
}

#[test]
fn missing_weights_and_unknown_keys_are_errors() {
    let dir = saved_model();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("model.safetensors"), "{err}");

    let dir = saved_model();
    edit_json(dir.path(), |v| v["colour"] = "blue".into());
    let err = load_err(dir.path());
    assert!(
        err.contains("model.json") && err.contains("colour"),
        "{err}"
    );

    let dir = saved_model();
    edit_json(dir.path(), |v| v["params"]["dimension"] = 3.into());
    let err = load_err(dir.path());
    assert!(err.contains("dimension"), "{err}");
    let desc = ModelDescription::read(dir.path()).unwrap();
    assert_eq!(desc.model_type, "linear");
}

#[test]
fn invalid_config_names_the_field() {
    let (labels, train) = synthetic(5, 7);
    let ex: Vec<(&str, usize)> = train.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let cfg = LinearConfig {
        dim: 0,
        ..small_config()
    };
    let err = linear::train(&cfg, &opts(1), &labels, &ex, &[], &())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`dim`"), "{err}");
    let bad = SgdOptions {
        learning_rate: -1.0,
        ..opts(1)
    };
    let err = linear::train(&small_config(), &bad, &labels, &ex, &[], &())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("learning_rate"), "{err}");
}

#[test]
fn encoded_texts_score_like_texts_and_count_their_words() {
    let (labels, train) = synthetic(30, 6);
    let cfg = LinearConfig {
        max_tokens: Some(4),
        ..small_config()
    };
    let model = train_on(&cfg, &opts(1), &train, &labels);
    let texts = [
        "goal striker match",
        "bank, profit; shares!",
        "",
        "a b c d e f g",
    ];
    let encoded: Vec<_> = texts.iter().map(|t| model.encode(t).unwrap()).collect();
    // Words (punctuation splits, not counts), up to max_tokens.
    let tokens: Vec<usize> = encoded.iter().map(|e| e.tokens()).collect();
    assert_eq!(tokens, [3, 3, 0, 4]);
    let refs: Vec<_> = encoded.iter().collect();
    // predict_batch has its own buffer-reusing path: both must agree exactly.
    assert_eq!(
        model.predict_encoded(&refs).unwrap(),
        model.predict_batch(&texts).unwrap()
    );
}

#[test]
fn an_input_encoded_by_another_model_type_is_an_error_not_a_guess() {
    let (labels, train) = synthetic(20, 7);
    let model = train_on(&small_config(), &opts(1), &train, &labels);
    let foreign = taxon_core::model::Encoded::new(2, vec![1u32, 2]);
    let err = model.predict_encoded(&[&foreign]).unwrap_err();
    assert!(
        matches!(&err, taxon_core::model::ModelError::Inference { model_type, .. } if model_type == "linear"),
        "{err}"
    );
}
