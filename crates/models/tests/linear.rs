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
fn encode_counts_the_known_tokens_and_an_unreadable_text_is_uniform() {
    let (labels, train) = synthetic(30, 3);
    let model = train_on(&small_config(), &opts(1), &train, &labels);
    let read = model.encode("goal striker").unwrap();
    assert!(read.known_tokens() > 0);
    for text in ["!!!", "\u{1F600}", "zzzz qqqq"] {
        let e = model.encode(text).unwrap();
        assert_eq!(e.known_tokens(), 0, "{text:?}");
        let p = model.predict_encoded(&[&e]).unwrap();
        assert!(
            p[0].iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-6),
            "{text:?}: {p:?}"
        );
    }
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
    // The share of words the model's index lacks, for the monitor stage.
    assert_eq!(encoded[0].unknown_share(), Some(0.0));
    assert_eq!(encoded[2].unknown_share(), Some(0.0));
    let unseen = model.encode("goal qqzzx wwyyv striker").unwrap();
    assert_eq!(unseen.unknown_share(), Some(0.5));
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

/// An SVM-solver model (the default) trained on `train`, with `validation` for choosing `c`.
fn svm_on(
    cfg: &LinearConfig,
    train: &[(String, usize)],
    validation: &[(String, usize)],
    labels: &[String],
) -> Box<dyn TextClassifier> {
    use taxon_models::training::{Trainable, train_epochs};
    let ex = |rows: &[(String, usize)]| -> Vec<(String, usize)> { rows.to_vec() };
    let (train, validation) = (ex(train), ex(validation));
    let t: Vec<(&str, usize)> = train.iter().map(|(s, l)| (s.as_str(), *l)).collect();
    let v: Vec<(&str, usize)> = validation.iter().map(|(s, l)| (s.as_str(), *l)).collect();
    let mut trainer = linear::SvmTrainer::new(cfg, 2, 7, labels, &t, &v).unwrap();
    let reports = train_epochs(&mut trainer, 1, &()).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].validation_accuracy.is_some(),
        !validation.is_empty()
    );
    trainer.model()
}

#[test]
fn the_svm_solver_learns_calibrated_probabilities_and_round_trips() {
    let (labels, train) = synthetic(100, 11);
    let (_, validation) = synthetic(20, 12);
    let (_, test) = synthetic(50, 13);
    let cfg = LinearConfig {
        buckets: 10_000,
        ..LinearConfig::default()
    };
    assert_eq!(cfg.solver, linear::Solver::Svm);
    let model = svm_on(&cfg, &train, &validation, &labels);
    let acc = accuracy(model.as_ref(), &test);
    assert!(acc >= 0.97, "svm accuracy {acc}");
    let texts: Vec<&str> = test.iter().map(|(t, _)| t.as_str()).collect();
    let probs = model.predict_batch(&texts).unwrap();
    for p in &probs {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{p:?}");
    }
    // Calibrated, not certain: some test texts (mostly filler words) get a top score well
    // below 1.
    let top: Vec<f32> = probs
        .iter()
        .map(|p| p.iter().copied().fold(0.0, f32::max))
        .collect();
    assert!(top.iter().any(|&t| t < 0.9), "{top:?}");
    // One column per label; the folder loads back with the same scores.
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let desc = model.describe();
    assert_eq!(desc.params["solver"], "svm");
    assert_eq!(desc.params["dim"], 3);
    let loaded = taxon_models::load(dir.path()).unwrap();
    assert_eq!(loaded.predict_batch(&texts).unwrap(), probs);
}

#[test]
fn the_svm_solver_handles_two_labels_and_no_validation_data() {
    let (labels, rows) = synthetic(60, 14);
    let two: Vec<(String, usize)> = rows.into_iter().filter(|(_, l)| *l < 2).collect();
    let labels = labels[..2].to_vec();
    let model = svm_on(&LinearConfig::default(), &two, &[], &labels);
    let p = model
        .predict_batch(&["goal striker league", "market shares bank"])
        .unwrap();
    assert!(p[0][0] > 0.5 && p[1][1] > 0.5, "{p:?}");
    for v in &p {
        assert_eq!(v.len(), 2);
        assert!((v[0] + v[1] - 1.0).abs() < 1e-5);
        // Separable training data, and still no certainty.
        assert!(v.iter().all(|&x| x < 1.0), "{v:?}");
    }
}

#[test]
fn a_configured_class_weight_trains_and_is_kept_in_the_params() {
    // An imbalanced corpus: 100 sport texts, 10 of each other topic.
    let (labels, rows) = synthetic(100, 16);
    let mut seen = [0usize; 3];
    let train: Vec<(String, usize)> = rows
        .into_iter()
        .filter(|(_, l)| {
            seen[*l] += 1;
            *l == 0 || seen[*l] <= 10
        })
        .collect();
    let (_, test) = synthetic(30, 17);
    for class_weight in [linear::ClassWeight::None, linear::ClassWeight::Balanced] {
        let cfg = LinearConfig {
            class_weight: Some(class_weight),
            ..LinearConfig::default()
        };
        let model = svm_on(&cfg, &train, &[], &labels);
        let acc = accuracy(model.as_ref(), &test);
        assert!(acc >= 0.9, "{class_weight:?}: accuracy {acc}");
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let json = serde_json::to_value(class_weight).unwrap();
        assert_eq!(model.describe().params["class_weight"], json);
        let loaded = taxon_models::load(dir.path()).unwrap();
        assert_eq!(loaded.describe().params["class_weight"], json);
    }
    // Unset, it is chosen on the validation split; the params keep it unset.
    let (_, validation) = synthetic(10, 18);
    let model = svm_on(&LinearConfig::default(), &train, &validation, &labels);
    assert!(model.describe().params["class_weight"].is_null());
    assert!(accuracy(model.as_ref(), &test) >= 0.9);
}

#[test]
fn min_df_drops_features_of_one_text() {
    let (labels, train) = synthetic(30, 15);
    let mut rows = train.clone();
    rows.push(("zebra goal".into(), 0));
    for (min_df, has_zebra) in [(1, true), (2, false)] {
        let cfg = LinearConfig {
            min_df,
            buckets: 10_000,
            ..LinearConfig::default()
        };
        let model = svm_on(&cfg, &rows, &[], &labels);
        let (_, a) = synthetic(1, 16);
        let with = model
            .predict_batch(&[&format!("{} zebra", a[0].0)])
            .unwrap();
        let without = model.predict_batch(&[a[0].0.as_str()]).unwrap();
        assert_eq!(
            with != without,
            has_zebra,
            "min_df {min_df}: {with:?} {without:?}"
        );
    }
}

#[test]
fn a_model_json_from_before_the_svm_solver_loads_as_fasttext_on_raw_counts() {
    let (labels, train) = synthetic(30, 17);
    let cfg = LinearConfig {
        solver: linear::Solver::Sgd,
        tf: linear::Tf::Raw,
        min_df: 1,
        ..small_config()
    };
    let model = train_on(&cfg, &opts(1), &train, &labels);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let texts = ["goal goal goal striker", "market of the bank"];
    let expected = model.predict_batch(&texts).unwrap();
    edit_json(dir.path(), |v| {
        let params = v["params"].as_object_mut().unwrap();
        for key in ["tf", "solver", "min_df", "c"] {
            params.remove(key);
        }
    });
    let loaded = taxon_models::load(dir.path()).unwrap();
    assert_eq!(loaded.predict_batch(&texts).unwrap(), expected);
    assert_eq!(loaded.describe().params["tf"], "raw");
}
