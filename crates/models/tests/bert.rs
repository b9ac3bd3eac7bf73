//! Integration tests of the `bert` model on tiny randomly initialised BERT and DistilBERT
//! checkpoints the tests write: loading, prediction, save/load, checkpoints that disagree with
//! their config, gradients reaching every trainable tensor (and no frozen one), a real learning
//! run, and the encoder of the real all-MiniLM-L6-v2 against an independent NumPy forward pass.

use std::path::{Path, PathBuf};

use taxon_core::model::TextClassifier;
use taxon_models::bert::{
    self, Arch, BertConfig, BertModel, Pooling, RandomCheckpoint, Truncation,
};
use taxon_models::training::AdamWOptions;

#[path = "common/minilm.rs"]
mod minilm;

const SPORT: [&str; 6] = ["goal", "match", "team", "coach", "league", "striker"];
const MONEY: [&str; 6] = ["bank", "market", "shares", "profit", "bond", "rates"];
const FILLER: [&str; 8] = ["the", "a", "of", "on", "said", "today", "new", "report"];

fn words() -> Vec<&'static str> {
    SPORT.iter().chain(&MONEY).chain(&FILLER).copied().collect()
}

/// A separable task of varied lengths (so batches need padding): label 1 texts hold sport
/// words, label 0 texts money words, both mixed with shared filler.
fn synthetic(n: usize, seed: usize) -> Vec<(String, usize)> {
    (0..n)
        .map(|i| {
            let label = i % 2;
            let key = if label == 1 { &SPORT } else { &MONEY };
            let len = 3 + (i * 7 + seed) % 9;
            let ws: Vec<&str> = (0..len)
                .map(|j| {
                    if (i + j + seed) % 3 == 0 {
                        key[(i * 5 + j + seed) % key.len()]
                    } else {
                        FILLER[(i * 3 + j * 11 + seed) % FILLER.len()]
                    }
                })
                .collect();
            (format!("{} {}", ws.join(" "), key[i % key.len()]), label)
        })
        .collect()
}

fn refs(rows: &[(String, usize)]) -> Vec<(&str, usize)> {
    rows.iter().map(|(t, l)| (t.as_str(), *l)).collect()
}

fn labels() -> Vec<String> {
    vec!["money".into(), "sport".into()]
}

fn tiny_dir(arch: Arch, prefixed: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = RandomCheckpoint::tiny(&words());
    spec.arch = arch;
    spec.prefixed = prefixed;
    spec.write(dir.path()).unwrap();
    dir
}

fn config(pooling: Pooling) -> BertConfig {
    BertConfig {
        base_model: "tiny".into(),
        pooling,
        max_len: 24,
        ..Default::default()
    }
}

fn assert_probabilities(rows: &[Vec<f32>], n: usize) {
    for p in rows {
        assert_eq!(p.len(), n);
        assert!(p.iter().all(|x| x.is_finite() && *x >= 0.0));
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
    }
}

#[test]
fn tiny_bert_and_distilbert_predict_probabilities_batched_like_alone() {
    for (arch, prefixed, pooling) in [
        (Arch::Bert, false, Pooling::Mean),
        (Arch::Bert, true, Pooling::Cls),
        (Arch::Bert, true, Pooling::Pooler),
        (Arch::DistilBert, false, Pooling::Mean),
        (Arch::DistilBert, true, Pooling::Cls),
    ] {
        let dir = tiny_dir(arch, prefixed);
        let m = BertModel::from_checkpoint(dir.path(), &config(pooling), &labels(), 1).unwrap();
        let texts = [
            "goal",
            "the bank said today profit rates of the market on a new report",
            "team coach",
            "",
        ];
        let batched = m.predict_batch(&texts).unwrap();
        assert_eq!(batched.len(), 4);
        assert_probabilities(&batched, 2);
        // Padding must not change a text's result: alone == in a padded batch.
        for (t, p) in texts.iter().zip(&batched) {
            let alone = &m.predict_batch(&[t]).unwrap()[0];
            for (a, b) in alone.iter().zip(p) {
                assert!((a - b).abs() < 1e-5, "{arch:?} {t:?}: {alone:?} vs {p:?}");
            }
        }
        let emb = m.embed(&texts).unwrap();
        assert_ne!(emb[0], emb[2], "different texts, same encoding");
    }
}

#[test]
fn save_and_load_round_trip_through_the_factory() {
    let dir = tiny_dir(Arch::Bert, false);
    let m = BertModel::from_checkpoint(dir.path(), &config(Pooling::Mean), &labels(), 3).unwrap();
    let out = tempfile::tempdir().unwrap();
    m.save(out.path()).unwrap();
    let loaded = taxon_models::load(out.path()).unwrap();
    assert_eq!(loaded.labels(), labels().as_slice());
    let desc = loaded.describe();
    assert_eq!(desc.model_type, "bert");
    assert_eq!(desc.params["pooling"], "mean");
    assert_eq!(desc.params["truncation"], "head-tail");
    assert_eq!(desc.input.max_tokens, Some(24));
    assert!(desc.input.lowercase);
    let names: Vec<&str> = desc.files.iter().map(|f| f.name.as_str()).collect();
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        assert!(names.contains(&f), "{names:?}");
    }
    let texts = ["goal team", "bank rates"];
    assert_eq!(
        m.predict_batch(&texts).unwrap(),
        loaded.predict_batch(&texts).unwrap()
    );

    // A changed byte is caught by the md5 in model.json.
    let tok = out.path().join("tokenizer.json");
    let mut text = std::fs::read_to_string(&tok).unwrap();
    text.push(' ');
    std::fs::write(&tok, text).unwrap();
    let err = taxon_models::load(out.path()).err().unwrap().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

/// Rewrites one key of `dir/config.json`.
fn set_config(dir: &Path, key: &str, value: serde_json::Value) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v[key] = value;
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn checkpoint_disagreeing_with_config_names_file_tensor_and_key() {
    let cfg = config(Pooling::Mean);
    let dir = tiny_dir(Arch::Bert, false);
    set_config(dir.path(), "intermediate_size", 48.into());
    let err = BertModel::from_checkpoint(dir.path(), &cfg, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(
        err.contains("encoder.layer.0.intermediate.dense.weight"),
        "{err}"
    );
    assert!(err.contains("intermediate_size"), "{err}");
    assert!(
        err.contains("[48, 32]") && err.contains("[64, 32]"),
        "{err}"
    );

    let dir = tiny_dir(Arch::DistilBert, true);
    set_config(dir.path(), "dim", 16.into());
    set_config(dir.path(), "n_heads", 2.into());
    let err = BertModel::from_checkpoint(dir.path(), &cfg, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("`dim`"),
        "{err}"
    );

    // A DistilBERT checkpoint described as BERT: the BERT names are missing.
    let dir = tiny_dir(Arch::DistilBert, false);
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"model_type":"bert","vocab_size":25,"hidden_size":32,"num_hidden_layers":2,
            "num_attention_heads":4,"intermediate_size":64,"max_position_embeddings":64}"#,
    )
    .unwrap();
    let err = BertModel::from_checkpoint(dir.path(), &cfg, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("missing"),
        "{err}"
    );
    assert!(
        err.contains("embeddings.token_type_embeddings.weight"),
        "{err}"
    );

    // max_len beyond the position table, and a missing file.
    let dir = tiny_dir(Arch::Bert, false);
    let long = BertConfig {
        max_len: 65,
        ..cfg.clone()
    };
    let err = BertModel::from_checkpoint(dir.path(), &long, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("max_len") && err.contains("64"), "{err}");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = BertModel::from_checkpoint(dir.path(), &cfg, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn one_backward_pass_reaches_every_trainable_tensor_and_no_frozen_one() {
    let rows = synthetic(8, 0);
    for (arch, pooling) in [
        (Arch::Bert, Pooling::Mean),
        (Arch::Bert, Pooling::Pooler),
        (Arch::DistilBert, Pooling::Mean),
    ] {
        let dir = tiny_dir(arch, false);
        let grads =
            bert::gradients_of_one_step(dir.path(), &config(pooling), 2, &refs(&rows), 5).unwrap();
        assert!(grads.len() > 30, "{}", grads.len());
        let has_pooler = grads.iter().any(|(n, _)| n == "pooler.dense.weight");
        assert_eq!(
            has_pooler,
            pooling == Pooling::Pooler,
            "{arch:?} {pooling:?}"
        );
        for (name, g) in &grads {
            let g = g
                .as_ref()
                .unwrap_or_else(|| panic!("{arch:?}: no gradient for {name}"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            // Token types are all 0, so only row 0 of that table moves; still non-zero overall.
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{arch:?}: zero gradient for {name}"
            );
        }

        let frozen = BertConfig {
            freeze_layers: 1,
            ..config(Pooling::Cls)
        };
        let grads = bert::gradients_of_one_step(dir.path(), &frozen, 2, &refs(&rows), 5).unwrap();
        let layer = match arch {
            Arch::Bert => "encoder.layer.",
            Arch::DistilBert => "transformer.layer.",
        };
        for (name, g) in &grads {
            let is_frozen =
                name.starts_with("embeddings.") || name.starts_with(&format!("{layer}0."));
            assert_eq!(
                g.is_none(),
                is_frozen,
                "{arch:?} {name}: frozen {is_frozen}"
            );
        }
    }
}

#[test]
fn fine_tuning_the_tiny_bert_learns_a_separable_task() {
    let dir = tiny_dir(Arch::Bert, false);
    let train = synthetic(160, 0);
    let val = synthetic(40, 5);
    let opts = AdamWOptions {
        learning_rate: 3e-3,
        epochs: 6,
        batch_size: 16,
        seed: 11,
        threads: 1,
        ..Default::default()
    };
    let (model, reports) = bert::train(
        dir.path(),
        &config(Pooling::Mean),
        &opts,
        &labels(),
        &refs(&train),
        &refs(&val),
        &(),
    )
    .unwrap();
    assert_eq!(reports.len(), 6);
    assert!(
        reports[5].train_loss < reports[0].train_loss * 0.5,
        "loss did not fall: {:?}",
        reports.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    );
    let texts: Vec<&str> = train.iter().map(|(t, _)| t.as_str()).collect();
    let right = model
        .predict_batch(&texts)
        .unwrap()
        .iter()
        .zip(&train)
        .filter(|(p, (_, l))| usize::from(p[1] > p[0]) == *l)
        .count();
    let acc = right as f64 / train.len() as f64;
    assert!(acc >= 0.95, "train accuracy {acc}");
    assert!(
        reports[5].validation_accuracy.unwrap() >= 0.9,
        "{:?}",
        reports[5]
    );
}

/// The test venv's python and the all-MiniLM-L6-v2 folder (with the NumPy reference's modules).
fn minilm_dir() -> Option<(PathBuf, PathBuf)> {
    minilm::minilm_dir(&["numpy", "safetensors", "tokenizers"])
}

#[test]
fn minilm_encoder_matches_an_independent_numpy_forward_pass() {
    let Some((python, dir)) = minilm_dir() else {
        return;
    };
    let long = "The central bank raised interest rates again. ".repeat(30);
    let texts = [
        "A man is eating food.",
        "Shares in the company fell sharply after the profit warning.",
        "The striker scored twice as the team won the league title.",
        long.as_str(),
    ];
    for truncation in [Truncation::HeadTail, Truncation::Head] {
        let cfg = BertConfig {
            base_model: dir.display().to_string(),
            pooling: Pooling::Mean,
            max_len: 64,
            truncation,
            freeze_layers: 0,
            ..BertConfig::default()
        };
        let model = BertModel::from_checkpoint(&dir, &cfg, &labels(), 1).unwrap();
        let ours = model.embed(&texts).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_reference.py");
        let name = serde_json::to_value(truncation).unwrap();
        let mut child = std::process::Command::new(&python)
            .arg(&script)
            .arg(&dir)
            .arg("64")
            .arg(name.as_str().unwrap())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(serde_json::to_string(&texts).unwrap().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "reference failed");
        let reference: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(reference.len(), texts.len());
        for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
            assert_eq!(a.len(), 384);
            let max_diff = a
                .iter()
                .zip(b)
                .map(|(x, y)| (*x as f64 - y).abs())
                .fold(0.0, f64::max);
            let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
            let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|y| y.powi(2)).sum::<f64>().sqrt();
            let cos = dot / (na * nb);
            eprintln!("{truncation:?} text {i}: max abs diff {max_diff:.2e}, cosine {cos:.8}");
            assert!(
                max_diff < 1e-3 && cos > 0.9999,
                "{truncation:?} text {i}: max abs diff {max_diff}, cosine {cos}"
            );
        }
    }
}

/// The probabilities `pooler` pooling must give: the `[CLS]` state (from `cls` pooling, the
/// same encoder), the checkpoint's `pooler.dense`, tanh, the saved model's classifier, softmax.
#[test]
fn pooler_pooling_applies_the_checkpoints_pooler_and_round_trips() {
    use candle_core::{Device, Tensor};
    let dir = tiny_dir(Arch::Bert, true);
    let texts = ["goal team", "bank rates of the market", "the"];
    let m = BertModel::from_checkpoint(dir.path(), &config(Pooling::Pooler), &labels(), 3).unwrap();
    let out = tempfile::tempdir().unwrap();
    m.save(out.path()).unwrap();
    let loaded = taxon_models::load(out.path()).unwrap();
    assert_eq!(loaded.describe().params["pooling"], "pooler");
    let probs = m.predict_batch(&texts).unwrap();
    assert_eq!(loaded.predict_batch(&texts).unwrap(), probs);

    let dev = Device::Cpu;
    let ck = candle_core::safetensors::load(dir.path().join("model.safetensors"), &dev).unwrap();
    let saved = candle_core::safetensors::load(out.path().join("model.safetensors"), &dev).unwrap();
    let (pw, pb) = (
        &ck["bert.pooler.dense.weight"],
        &ck["bert.pooler.dense.bias"],
    );
    // Fine-tuning starts from the pre-trained pooler, stored under its unprefixed name.
    assert_eq!(
        saved["pooler.dense.weight"].to_vec2::<f32>().unwrap(),
        pw.to_vec2::<f32>().unwrap()
    );
    let cls = BertModel::from_checkpoint(dir.path(), &config(Pooling::Cls), &labels(), 3).unwrap();
    let states = cls.embed(&texts).unwrap();
    assert_eq!(m.embed(&texts).unwrap(), states);
    let linear = |x: &Tensor, w: &Tensor, b: &Tensor| {
        x.matmul(&w.t().unwrap()).unwrap().broadcast_add(b).unwrap()
    };
    let x = Tensor::new(states, &dev).unwrap();
    let pooled = linear(&x, pw, pb).tanh().unwrap();
    let logits = linear(
        &pooled,
        &saved["classifier.weight"],
        &saved["classifier.bias"],
    );
    let expected = candle_nn::ops::softmax_last_dim(&logits)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (p, e) in probs.iter().zip(&expected) {
        for (a, b) in p.iter().zip(e) {
            assert!((a - b).abs() < 1e-5, "{p:?} vs {e:?}");
        }
    }
    // Mean of the [CLS] state vs the pooler: different functions, different outputs.
    assert_ne!(cls.predict_batch(&texts).unwrap(), probs);
}

#[test]
fn pooler_pooling_without_a_pooler_is_a_clear_error() {
    let cfg = config(Pooling::Pooler);
    let dir = tiny_dir(Arch::DistilBert, false);
    let err = BertModel::from_checkpoint(dir.path(), &cfg, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("pooling") && err.contains("DistilBERT"),
        "{err}"
    );

    let dir = tiny_dir(Arch::Bert, false);
    let path = dir.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    tensors.remove("pooler.dense.weight").unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = BertModel::from_checkpoint(dir.path(), &cfg, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("pooler.dense.weight"),
        "{err}"
    );
    // Mean pooling does not need the pooler.
    BertModel::from_checkpoint(dir.path(), &config(Pooling::Mean), &labels(), 1).unwrap();
}

#[test]
fn layer_norm_gamma_beta_names_load_like_weight_bias() {
    let dir = tiny_dir(Arch::Bert, true);
    let cfg = config(Pooling::Mean);
    let before = BertModel::from_checkpoint(dir.path(), &cfg, &labels(), 1).unwrap();
    let path = dir.path().join("model.safetensors");
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    let renamed: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, v)| {
            let k = k
                .replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta");
            (k, v)
        })
        .collect();
    assert!(renamed.contains_key("bert.embeddings.LayerNorm.gamma"));
    candle_core::safetensors::save(&renamed, &path).unwrap();
    let after = BertModel::from_checkpoint(dir.path(), &cfg, &labels(), 1).unwrap();
    let texts = ["goal team", "bank rates of the market"];
    assert_eq!(
        before.predict_batch(&texts).unwrap(),
        after.predict_batch(&texts).unwrap()
    );
}
