//! Post-training optimization of a fine-tuned bert model (`taxon model optimize`): global
//! magnitude (L1) pruning and int8 quantization of the encoder's dense layers (Q, K, V,
//! attention output, FFN in and out of every layer; the embeddings and the classifier head
//! stay f32).
//!
//! Pruning (Han et al. 2015, "Learning both Weights and Connections for Efficient Neural
//! Networks"; global rather than per-layer as in Frankle & Carbin 2019) zeroes the given
//! fraction of those weights with the smallest |w| across all layers together, so layers with
//! many small weights lose more. Quantization (as PyTorch's dynamic quantization) stores each
//! weight row as int8 with one scale and quantizes activations per row at run time; see
//! [`super::quant`]. Both combine: pruning first, then quantizing (zeros stay zero).
//!
//! The result records both in `model.json` params (`quantization`, `pruned`) and saves as a
//! normal model folder (see [`super::io`]); taxon-eval measures it before and after
//! (`optimize.json`).

use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use taxon_core::model::ModelError;

use super::BertModel;
use super::quant::{Int8Linears, dense_weight_indices, placeholder};

/// How the encoder's dense layers are stored and run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// f32 weights (a trainable model).
    #[default]
    None,
    /// Symmetric per-output-channel int8 weights, activations quantized per row at run time.
    Int8,
}

impl Quantization {
    /// Whether this is [`Quantization::None`] (then `model.json` leaves the field out).
    pub fn is_none(&self) -> bool {
        *self == Self::None
    }
}

/// What to do to a model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OptimizeOptions {
    /// Quantize the encoder's dense layers to int8.
    pub int8: bool,
    /// Fraction (0 <= p < 1) of the encoder's dense weights to zero, smallest |w| first,
    /// across all layers together; 0 prunes nothing.
    pub prune: f64,
}

/// What pruning did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruneStats {
    /// Weights considered (every encoder dense weight).
    pub total: u64,
    /// Weights set to zero now: `round(amount * total)`.
    pub zeroed: u64,
    /// The largest |w| that was zeroed (0 when none was).
    pub threshold: f32,
}

/// Zeroes `round(amount * total)` entries of `weights` (several tensors' values), those with
/// the smallest |w| across all of them together (ties broken by position), and returns what
/// it did. `amount` is clamped to [0, 1]; NaN weights count as the largest.
pub fn prune_global(weights: &mut [Vec<f32>], amount: f64) -> PruneStats {
    let total: usize = weights.iter().map(Vec::len).sum();
    let amount = if amount.is_nan() {
        0.0
    } else {
        amount.clamp(0.0, 1.0)
    };
    let k = ((amount * total as f64).round() as usize).min(total);
    if k == 0 {
        return PruneStats {
            total: total as u64,
            zeroed: 0,
            threshold: 0.0,
        };
    }
    let key = |v: f32| if v.is_nan() { f32::INFINITY } else { v.abs() };
    let mut mags: Vec<f32> = weights.iter().flatten().map(|&v| key(v)).collect();
    let (_, &mut threshold, _) = mags.select_nth_unstable_by(k - 1, f32::total_cmp);
    drop(mags);
    // Everything strictly below the threshold goes, then entries equal to it in order until k.
    let below: usize = weights
        .iter()
        .flatten()
        .filter(|&&v| key(v) < threshold)
        .count();
    let mut ties = k - below;
    for w in weights.iter_mut() {
        for v in w.iter_mut() {
            let m = key(*v);
            if m < threshold {
                *v = 0.0;
            } else if m == threshold && ties > 0 {
                *v = 0.0;
                ties -= 1;
            }
        }
    }
    PruneStats {
        total: total as u64,
        zeroed: k as u64,
        threshold,
    }
}

fn compute(what: &str) -> impl Fn(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError::compute(super::MODEL_TYPE, format!("optimize ({what})"), e)
}

impl BertModel {
    /// Whether the encoder's dense layers are int8.
    pub fn is_int8(&self) -> bool {
        self.net.int8.is_some()
    }

    /// The fraction of zeros among the encoder's dense weights (int8 or f32).
    pub fn dense_sparsity(&self) -> f64 {
        let (mut zeros, mut total) = (0usize, 0usize);
        for i in dense_weight_indices(&self.net.cfg) {
            match self.net.int8.as_ref().and_then(|q| q.get(i)) {
                Some(l) => {
                    let q = l.packed.int8();
                    zeros += q.iter().filter(|&&v| v == 0).count();
                    total += q.len();
                }
                None => {
                    let v = self.net.tensors[i]
                        .flatten_all()
                        .and_then(|t| t.to_vec1::<f32>())
                        .unwrap_or_default();
                    zeros += v.iter().filter(|&&x| x == 0.0).count();
                    total += v.len();
                }
            }
        }
        zeros as f64 / total.max(1) as f64
    }

    /// A pruned and/or int8 copy of this model (not yet saved: `save` writes the folder), with
    /// what pruning did. An int8 model cannot be optimized again (its f32 weights are gone).
    pub fn optimize(
        &self,
        opts: &OptimizeOptions,
    ) -> Result<(BertModel, Option<PruneStats>), ModelError> {
        if self.is_int8() {
            return Err(ModelError::InvalidConfig {
                field: "quantization".into(),
                message: "is already int8: optimize the f32 model it came from instead".into(),
            });
        }
        if !(0.0..1.0).contains(&opts.prune) {
            return Err(ModelError::InvalidConfig {
                field: "prune".into(),
                message: format!(
                    "must be a fraction in [0, 1) of the weights to zero, got {}",
                    opts.prune
                ),
            });
        }
        if !opts.int8 && opts.prune == 0.0 {
            return Err(ModelError::InvalidConfig {
                field: "prune".into(),
                message: "nothing to do: ask for int8 quantization, pruning, or both".into(),
            });
        }
        let mut model = self.clone();
        model.files = Vec::new();
        let dense = dense_weight_indices(&model.net.cfg);
        let mut stats = None;
        if opts.prune > 0.0 {
            let mut values: Vec<Vec<f32>> = dense
                .iter()
                .map(|&i| model.net.tensors[i].flatten_all()?.to_vec1::<f32>())
                .collect::<candle_core::Result<_>>()
                .map_err(compute("reading weights"))?;
            let s = prune_global(&mut values, opts.prune);
            for (&i, v) in dense.iter().zip(values) {
                let shape = model.net.tensors[i].shape().clone();
                model.net.tensors[i] =
                    Tensor::from_vec(v, shape, &Device::Cpu).map_err(compute("pruning"))?;
            }
            stats = Some(s);
        }
        if opts.int8 {
            let q = Int8Linears::quantize(&model.net.tensors, &model.net.cfg)
                .map_err(compute("quantizing"))?;
            for &i in &dense {
                model.net.tensors[i] = placeholder().map_err(compute("quantizing"))?;
            }
            model.net.int8 = Some(Arc::new(q));
            model.config.quantization = Quantization::Int8;
        }
        // Pruning an already pruned model again keeps the larger amount (zeros stay zeros).
        model.config.pruned = self.config.pruned.max(opts.prune);
        Ok((model, stats))
    }
}

/// The int8 kernel this process runs (`avx512-vnni`, `avx2` or `portable`: the best this CPU
/// has, or what `TAXON_KERNELS` forces).
pub fn int8_kernel() -> &'static str {
    taxon_kernels::paths().int8
}

/// Runs `f` in a rayon pool of `threads` threads (where bert's prediction and the int8 kernel
/// split their work).
pub fn with_threads<R: Send>(
    threads: usize,
    f: impl FnOnce() -> R + Send,
) -> Result<R, ModelError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| ModelError::Threads {
            threads,
            source: Box::new(e),
        })?;
    Ok(pool.install(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(w: &[Vec<f32>]) -> usize {
        w.iter().flatten().filter(|&&v| v == 0.0).count()
    }

    #[test]
    fn pruning_zeroes_exactly_the_fraction_globally_not_per_layer() {
        // Layer a holds small weights, layer b large ones: global pruning takes a first.
        let a: Vec<f32> = (1..=60).map(|i| i as f32 * 0.001).collect();
        let b: Vec<f32> = (1..=40).map(|i| -(i as f32)).collect();
        let mut w = vec![a.clone(), b.clone()];
        let s = prune_global(&mut w, 0.3);
        assert_eq!((s.total, s.zeroed), (100, 30));
        assert_eq!(zeros(&w), 30);
        assert_eq!(w[0].iter().filter(|&&v| v == 0.0).count(), 30);
        assert_eq!(w[1], b, "the large layer keeps every weight");
        // The 30 smallest |w| are the ones gone.
        assert!(w[0][..30].iter().all(|&v| v == 0.0) && w[0][30..] == a[30..]);
        assert!((s.threshold - 0.030).abs() < 1e-6);

        let mut w = vec![a.clone(), b.clone()];
        prune_global(&mut w, 0.75);
        assert_eq!(zeros(&w), 75);
        assert!(w[0].iter().all(|&v| v == 0.0));
        assert_eq!(w[1].iter().filter(|&&v| v == 0.0).count(), 15);
        assert!(w[1][..15].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn pruning_breaks_ties_to_hit_the_exact_count() {
        let mut w = vec![vec![0.5f32; 10], vec![-0.5; 7]];
        let s = prune_global(&mut w, 0.5);
        assert_eq!(s.zeroed, 9); // round(8.5) = 9 (half away from zero)
        assert_eq!(zeros(&w), 9);
        let mut w = vec![vec![1.0f32, f32::NAN, 2.0, -0.1]];
        prune_global(&mut w, 0.5);
        assert_eq!(w[0][0], 0.0);
        assert_eq!(w[0][3], 0.0);
        assert!(w[0][1].is_nan(), "NaN counts as the largest");
        let mut w = vec![vec![1.0f32; 4]];
        assert_eq!(prune_global(&mut w, 0.0).zeroed, 0);
        assert_eq!(zeros(&w), 0);
    }
}
