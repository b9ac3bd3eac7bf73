//! Integration tests of the `lstm` model: gradients reach every weight, a tiny model learns a
//! separable task, save/load round trip, and folders that disagree with their description.

use taxon_core::model::TextClassifier;
use taxon_models::lstm::{self, LstmConfig, Pooling};
use taxon_models::training::{AdamWOptions, EpochReport};

fn tiny(pooling: Pooling) -> LstmConfig {
    LstmConfig {
        dim: 16,
        hidden: 12,
        pooling,
        dropout: 0.1,
        min_count: 1,
        max_vocab: 1000,
        max_len: 20,
        lowercase: true,
    }
}

/// A separable task: label 0 texts mention sport words, label 1 texts money words, both mixed
/// with shared filler words and of varied lengths (so batches need padding).
fn synthetic(n: usize, seed: usize) -> Vec<(String, usize)> {
    let sport = ["goal", "match", "team", "coach", "league", "striker"];
    let money = ["bank", "market", "shares", "profit", "bond", "rates"];
    let filler = ["the", "a", "of", "on", "said", "today", "new", "report"];
    (0..n)
        .map(|i| {
            let label = i % 2;
            let key = if label == 0 { &sport } else { &money };
            let len = 3 + (i * 7 + seed) % 9;
            let words: Vec<&str> = (0..len)
                .map(|j| {
                    if (i + j + seed) % 3 == 0 {
                        key[(i * 5 + j + seed) % key.len()]
                    } else {
                        filler[(i * 3 + j * 11 + seed) % filler.len()]
                    }
                })
                .collect();
            // Every text holds at least one key word.
            (format!("{} {}", words.join(" "), key[i % key.len()]), label)
        })
        .collect()
}

fn refs(rows: &[(String, usize)]) -> Vec<(&str, usize)> {
    rows.iter().map(|(t, l)| (t.as_str(), *l)).collect()
}

fn labels() -> Vec<String> {
    vec!["money".into(), "sport".into()]
}

fn train_tiny(pooling: Pooling) -> (lstm::LstmModel, Vec<EpochReport>, Vec<(String, usize)>) {
    let train = synthetic(200, 0);
    let val = synthetic(60, 5);
    let opts = AdamWOptions {
        learning_rate: 1e-2,
        epochs: 8,
        batch_size: 16,
        seed: 7,
        threads: 1,
        ..Default::default()
    };
    let (model, reports) = lstm::train(
        &tiny(pooling),
        &opts,
        &labels(),
        &refs(&train),
        &refs(&val),
        &(),
    )
    .unwrap();
    (model, reports, val)
}

fn accuracy(model: &dyn TextClassifier, rows: &[(String, usize)]) -> f64 {
    let texts: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    let probs = model.predict_batch(&texts).unwrap();
    let right = probs
        .iter()
        .zip(rows)
        .filter(|(p, (_, l))| {
            let best = if p[0] >= p[1] { 0 } else { 1 };
            best == *l
        })
        .count();
    right as f64 / rows.len() as f64
}

#[test]
fn gradients_reach_every_trainable_tensor() {
    let rows = synthetic(8, 1);
    let grads = lstm::gradients_of_one_step(&tiny(Pooling::Mean), 2, &refs(&rows), 3).unwrap();
    assert_eq!(grads.len(), 11);
    for (name, g) in grads {
        let g = g.unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "gradient of {name} is {norm}"
        );
    }
    let grads = lstm::gradients_of_one_step(&tiny(Pooling::Max), 2, &refs(&rows), 3).unwrap();
    for (name, g) in grads {
        let norm: f32 = g
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(norm > 0.0, "max pooling: gradient of {name} is zero");
    }
}

#[test]
fn tiny_model_learns_a_separable_task_and_is_reproducible() {
    let (model, reports, val) = train_tiny(Pooling::Mean);
    assert_eq!(reports.len(), 8);
    let acc = accuracy(&model, &val);
    assert!(acc >= 0.9, "validation accuracy {acc}");
    assert!(reports[7].train_loss < reports[0].train_loss);
    assert!(reports[7].validation_accuracy.unwrap() >= 0.9);
    // Same seed, same data, same threads: same metrics.
    let (_, again, _) = train_tiny(Pooling::Mean);
    let losses = |r: &[EpochReport]| r.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&reports), losses(&again));
}

#[test]
fn max_pooling_learns_too() {
    let (model, _, val) = train_tiny(Pooling::Max);
    let acc = accuracy(&model, &val);
    assert!(acc >= 0.9, "validation accuracy {acc}");
}

#[test]
fn save_load_round_trip_gives_identical_predictions() {
    let (model, _, val) = train_tiny(Pooling::Mean);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = taxon_models::load(dir.path()).unwrap();
    assert_eq!(loaded.labels(), model.labels());
    assert_eq!(loaded.describe().model_type, "lstm");
    let texts: Vec<&str> = val
        .iter()
        .map(|(t, _)| t.as_str())
        .chain(["", "UNSEEN WORDS ONLY"])
        .collect();
    let a = model.predict_batch(&texts).unwrap();
    let b = loaded.predict_batch(&texts).unwrap();
    assert_eq!(a, b);
    for p in &a {
        assert_eq!(p.len(), 2);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // Predictions do not depend on which texts share a batch.
    let single: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| loaded.predict_batch(&[t]).unwrap().remove(0))
        .collect();
    for (x, y) in single.iter().zip(&b) {
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() < 1e-5, "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn folder_whose_shapes_disagree_with_model_json_is_a_clear_error() {
    let (model, _, _) = train_tiny(Pooling::Mean);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let path = dir.path().join("model.json");
    let mut desc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    desc["params"]["hidden"] = serde_json::json!(13);
    std::fs::write(&path, serde_json::to_string(&desc).unwrap()).unwrap();
    let err = taxon_models::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(err.contains("lstm.weight_ih_l0"), "{err}");
    assert!(
        err.contains("[52, 16]") && err.contains("[48, 16]"),
        "{err}"
    );

    // A weights file edited after saving fails its md5 check.
    desc["params"]["hidden"] = serde_json::json!(12);
    std::fs::write(&path, serde_json::to_string(&desc).unwrap()).unwrap();
    std::fs::write(dir.path().join("vocab.txt"), "<pad>\n<unk>\nx\n").unwrap();
    let err = taxon_models::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("vocab.txt"), "{err}");
}

#[test]
fn bad_config_and_data_are_errors_naming_the_field() {
    let rows = synthetic(10, 0);
    let cfg = LstmConfig {
        dropout: 1.5,
        ..tiny(Pooling::Mean)
    };
    let err = lstm::train(
        &cfg,
        &AdamWOptions::default(),
        &labels(),
        &refs(&rows),
        &[],
        &(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("dropout"), "{err}");
    let opts = AdamWOptions {
        batch_size: 0,
        ..Default::default()
    };
    let err = lstm::train(
        &tiny(Pooling::Mean),
        &opts,
        &labels(),
        &refs(&rows),
        &[],
        &(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("batch_size"), "{err}");
    let bad = vec![("text", 5usize)];
    let err = lstm::train(
        &tiny(Pooling::Mean),
        &AdamWOptions::default(),
        &labels(),
        &bad,
        &[],
        &(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("label index 5"), "{err}");
}

#[test]
fn encoded_texts_count_words_up_to_max_len_and_score_like_texts() {
    let (model, _, val) = train_tiny(Pooling::Mean);
    let max_len = model.config().max_len;
    let long = "good ".repeat(max_len + 5);
    let texts = [val[0].0.as_str(), "good, bad!", long.as_str()];
    let encoded: Vec<_> = texts.iter().map(|t| model.encode(t).unwrap()).collect();
    assert_eq!(encoded[1].tokens(), 2);
    assert_eq!(encoded[2].tokens(), max_len);
    let refs: Vec<_> = encoded.iter().collect();
    assert_eq!(
        model.predict_encoded(&refs).unwrap(),
        model.predict_batch(&texts).unwrap()
    );
    let foreign = taxon_core::model::Encoded::new(1, "not ids".to_string());
    assert!(model.predict_encoded(&[&foreign]).is_err());
}
