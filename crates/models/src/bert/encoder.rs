//! The network and its training path: a BERT encoder (Devlin et al. 2019, "BERT: Pre-training
//! of Deep Bidirectional Transformers for Language Understanding"; post-LN layers as in Vaswani
//! et al. 2017) or a DistilBERT one (Sanh et al. 2019), pooling (`[CLS]` state or masked mean)
//! and a classification head (dropout + linear).
//!
//! Every op is differentiable through candle's autograd: layer norm (with the residual add),
//! the attention softmax (with the scale and the padding mask) and GELU are fused custom ops
//! with their own backward pass ([`super::ops`]; candle's fused `layer_norm` /
//! `softmax_last_dim` have no backward pass and silently cut the graph), and padding is masked
//! with a finite additive -1e4, not `f32::MIN` (which overflows to NaN in reduced precision).
//! The primitive-op versions of layer norm and softmax stay here as the references the fused
//! ops are tested against. Inference without tracked gradients skips padding altogether: it
//! runs on the real tokens of every text packed into one buffer ([`super::infer`]).
//!
//! Tensors are held in one list in [`names`] order, with Hugging Face's names (BERT's
//! `embeddings.*` / `encoder.layer.N.*`, DistilBERT's `embeddings.*` / `transformer.layer.N.*`),
//! then `pooler.dense.*` with [`Pooling::Pooler`], then `classifier.weight` and
//! `classifier.bias`.

use candle_core::{D, Device, Result, Tensor};

use super::Pooling;
use super::config::{Arch, EncoderConfig};
use super::infer::TransposedWeights;
use super::ops;
use super::quant::Int8Linears;
use crate::rng::SplitMix64;

/// Additive attention-mask value on padding positions.
const MASK_NEG: f64 = -1e4;

/// Tensors per encoder layer.
pub(crate) const PER_LAYER: usize = 16;

/// Name and shape of every tensor, in the order the network holds them: the encoder, the
/// pooler's dense layer when `pooling` is [`Pooling::Pooler`], the classifier (the last two).
pub(crate) fn names(
    cfg: &EncoderConfig,
    pooling: Pooling,
    labels: usize,
) -> Vec<(String, Vec<usize>)> {
    let (h, f) = (cfg.hidden, cfg.intermediate);
    let mut out: Vec<(String, Vec<usize>)> = vec![
        (
            "embeddings.word_embeddings.weight".into(),
            vec![cfg.vocab_size, h],
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![cfg.max_positions, h],
        ),
    ];
    if cfg.arch == Arch::Bert {
        out.push((
            "embeddings.token_type_embeddings.weight".into(),
            vec![cfg.type_vocab_size, h],
        ));
    }
    out.push(("embeddings.LayerNorm.weight".into(), vec![h]));
    out.push(("embeddings.LayerNorm.bias".into(), vec![h]));
    let parts: [(&str, &str, Vec<usize>); PER_LAYER / 2] = match cfg.arch {
        Arch::Bert => [
            ("attention.self.query", "weight", vec![h, h]),
            ("attention.self.key", "weight", vec![h, h]),
            ("attention.self.value", "weight", vec![h, h]),
            ("attention.output.dense", "weight", vec![h, h]),
            ("attention.output.LayerNorm", "weight", vec![h]),
            ("intermediate.dense", "weight", vec![f, h]),
            ("output.dense", "weight", vec![h, f]),
            ("output.LayerNorm", "weight", vec![h]),
        ],
        Arch::DistilBert => [
            ("attention.q_lin", "weight", vec![h, h]),
            ("attention.k_lin", "weight", vec![h, h]),
            ("attention.v_lin", "weight", vec![h, h]),
            ("attention.out_lin", "weight", vec![h, h]),
            ("sa_layer_norm", "weight", vec![h]),
            ("ffn.lin1", "weight", vec![f, h]),
            ("ffn.lin2", "weight", vec![h, f]),
            ("output_layer_norm", "weight", vec![h]),
        ],
    };
    let stack = match cfg.arch {
        Arch::Bert => "encoder",
        Arch::DistilBert => "transformer",
    };
    for i in 0..cfg.layers {
        for (part, _, shape) in &parts {
            let bias = vec![shape[0]];
            out.push((format!("{stack}.layer.{i}.{part}.weight"), shape.clone()));
            out.push((format!("{stack}.layer.{i}.{part}.bias"), bias));
        }
    }
    if pooling == Pooling::Pooler {
        out.push(("pooler.dense.weight".into(), vec![h, h]));
        out.push(("pooler.dense.bias".into(), vec![h]));
    }
    out.push(("classifier.weight".into(), vec![labels, h]));
    out.push(("classifier.bias".into(), vec![labels]));
    out
}

/// Tensors before the first encoder layer.
pub(crate) fn embedding_count(cfg: &EncoderConfig) -> usize {
    match cfg.arch {
        Arch::Bert => 5,
        Arch::DistilBert => 4,
    }
}

/// The weights and what the forward pass needs to know about them.
#[derive(Clone, Debug)]
pub(crate) struct Net {
    /// In [`names`] order.
    pub(crate) tensors: Vec<Tensor>,
    pub(crate) cfg: EncoderConfig,
    pub(crate) pooling: Pooling,
    /// int8 versions of some dense layers (an optimized model), used instead of their f32
    /// weights at inference; `None` for a trainable network.
    pub(crate) int8: Option<std::sync::Arc<Int8Linears>>,
    /// The f32 dense weights transposed for inference on buffers, built on first use.
    pub(crate) transposed: TransposedWeights,
}

/// A batch of token ids, right-padded (for the candle path) and packed (for inference on
/// buffers, which runs on the real tokens only).
pub(crate) struct Batch {
    /// `(B, T)` ids.
    ids: Tensor,
    /// `(B, T)`: 1 on tokens, 0 on padding.
    mask: Tensor,
    b: usize,
    t: usize,
    /// The ids of every text one after the other, no padding: `sum(lens)` ids.
    pub(super) packed: Vec<u32>,
    /// Each text's length in tokens.
    pub(super) lens: Vec<usize>,
}

impl Batch {
    /// Pads `seqs` (each at least one id, at most `max_positions`) to the longest.
    pub(crate) fn new(seqs: &[&[u32]], pad: u32) -> Result<Self> {
        let b = seqs.len();
        let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![pad; b * t];
        let mut mask = vec![0f32; b * t];
        let packed: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        for (j, s) in seqs.iter().enumerate() {
            ids[j * t..j * t + s.len()].copy_from_slice(s);
            mask[j * t..j * t + s.len()]
                .iter_mut()
                .for_each(|m| *m = 1.0);
        }
        Ok(Self {
            ids: Tensor::from_vec(ids, (b, t), &Device::Cpu)?,
            mask: Tensor::from_vec(mask, (b, t), &Device::Cpu)?,
            b,
            t,
            packed,
            lens,
        })
    }

    /// Real (non-padding) tokens in the batch.
    pub(crate) fn tokens(&self) -> Result<f32> {
        self.mask.sum_all()?.to_scalar::<f32>()
    }
}

/// Inverted dropout with masks from a seeded generator, active only while training: each call
/// draws a seed, and the fused op derives its mask from that seed ([`ops::dropout`]).
pub(crate) struct Dropout<'a> {
    pub(crate) rng: &'a mut SplitMix64,
}

impl Dropout<'_> {
    fn apply(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        ops::dropout(x, self.rng.next_u64(), p)
    }
}

fn drop(d: &mut Option<Dropout<'_>>, x: Tensor, p: f32) -> Result<Tensor> {
    match d.as_mut() {
        Some(d) => d.apply(&x, p),
        None => Ok(x),
    }
}

/// Layer norm over the last dimension from primitive (differentiable) ops: the reference of
/// [`ops::layer_norm`].
#[cfg(test)]
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(w)?
        .broadcast_add(b)
}

/// Softmax over the last dimension from primitive (differentiable) ops; the row maximum is
/// subtracted (as a constant) for range. The reference of [`ops::attention_softmax`], and the
/// head's softmax.
pub(crate) fn softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// `x W^T + b` for `x` of shape `(N, in)`.
fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.matmul(&w.t()?)?.broadcast_add(b)
}

impl Net {
    pub(super) fn t(&self, i: usize) -> &Tensor {
        &self.tensors[i]
    }

    /// The dense layer whose weight is tensor `k` (bias `k + 1`) applied to `x` `(N, in)`:
    /// int8 when the model was quantized, else f32.
    fn dense(&self, k: usize, x: &Tensor) -> Result<Tensor> {
        if let Some(q) = self.int8.as_ref().and_then(|q| q.get(k)) {
            return q.forward(x, self.t(k + 1));
        }
        linear(x, self.t(k), self.t(k + 1))
    }

    /// The dense layer `k` without its bias when the caller can fold the bias into the next
    /// fused op: `(x W^T, Some(bias))`; `(x W^T + b, None)` when `with_bias` or when the layer
    /// is int8 (which adds its bias itself).
    fn project(&self, k: usize, x: &Tensor, with_bias: bool) -> Result<(Tensor, Option<&Tensor>)> {
        if with_bias || self.int8.as_ref().and_then(|q| q.get(k)).is_some() {
            return Ok((self.dense(k, x)?, None));
        }
        Ok((x.matmul(&self.t(k).t()?)?, Some(self.t(k + 1))))
    }

    /// Seeded classification head: weights normal(0, 0.02) as in `transformers`' init, zero bias.
    pub(crate) fn init_head(
        hidden: usize,
        labels: usize,
        rng: &mut SplitMix64,
    ) -> Result<[Tensor; 2]> {
        let w: Vec<f32> = (0..labels * hidden)
            .map(|_| {
                // Box-Muller.
                let u1 = rng.next_f32().max(1e-7);
                let u2 = rng.next_f32();
                0.02 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        Ok([
            Tensor::from_vec(w, (labels, hidden), &Device::Cpu)?,
            Tensor::zeros(labels, candle_core::DType::F32, &Device::Cpu)?,
        ])
    }

    /// The pooled text vectors `(B, hidden)`; `dropout` only while training.
    pub(crate) fn encode(
        &self,
        batch: &Batch,
        dropout: &mut Option<Dropout<'_>>,
    ) -> Result<Tensor> {
        self.encode_with(batch, dropout, true)
    }

    /// [`Self::encode`]; `fast` lets inference (no dropout, no tracked gradients) run the layers
    /// on plain buffers ([`Self::layers_on_buffers`]) instead of the differentiable candle ops.
    pub(super) fn encode_with(
        &self,
        batch: &Batch,
        dropout: &mut Option<Dropout<'_>>,
        fast: bool,
    ) -> Result<Tensor> {
        let training = dropout.is_some();
        if fast && !training && self.fast_path_applies() {
            return self.encode_packed(batch);
        }
        let cfg = &self.cfg;
        let (b, t, h) = (batch.b, batch.t, cfg.hidden);
        let (nh, dh) = (cfg.heads, cfg.head_dim());
        let ids = batch.ids.flatten_all()?;
        let mut x = self.t(0).index_select(&ids, 0)?.reshape((b, t, h))?;
        let pos = self.t(1).narrow(0, 0, t)?;
        x = x.broadcast_add(&pos)?;
        let mut i = 2;
        if cfg.arch == Arch::Bert {
            x = x.broadcast_add(&self.t(2).narrow(0, 0, 1)?)?;
            i = 3;
        }
        let mut x = ops::layer_norm(&x, self.t(i), self.t(i + 1), cfg.layer_norm_eps)?;
        x = drop(dropout, x, cfg.hidden_dropout)?.reshape((b * t, h))?;
        // (B, T): 0 on tokens, -1e4 on padding.
        let bias = batch.mask.affine(-MASK_NEG, MASK_NEG)?;
        let scale = 1.0 / (dh as f64).sqrt();
        let first = embedding_count(cfg);
        for layer in 0..cfg.layers {
            let base = first + layer * PER_LAYER;
            let w = |k: usize| self.t(base + k);
            let heads = |y: Tensor| -> Result<Tensor> {
                y.reshape((b, t, nh, dh))?.transpose(1, 2)?.contiguous()
            };
            let q = heads(self.dense(base, &x)?)?;
            let k = heads(self.dense(base + 2, &x)?)?;
            let v = heads(self.dense(base + 4, &x)?)?;
            let scores = q.matmul(&k.t()?)?;
            let probs = ops::attention_softmax(&scores, &bias, scale)?;
            let probs = drop(dropout, probs, cfg.attention_dropout)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * t, h))?;
            // Dense biases go into the next fused op, except before dropout (training).
            let (attn, attn_bias) = self.project(base + 6, &ctx, training)?;
            let attn = drop(dropout, attn, cfg.hidden_dropout)?;
            x = ops::add_layer_norm(&attn, attn_bias, &x, w(8), w(9), cfg.layer_norm_eps)?;
            let (ff, ff_bias) = self.project(base + 10, &x, false)?;
            let ff = ops::gelu(&ff, ff_bias)?;
            let (ff, out_bias) = self.project(base + 12, &ff, training)?;
            let ff = drop(dropout, ff, cfg.hidden_dropout)?;
            x = ops::add_layer_norm(&ff, out_bias, &x, w(14), w(15), cfg.layer_norm_eps)?;
        }
        self.pool(x, batch)
    }

    /// Pools the final hidden states `(B * T, hidden)` into text vectors `(B, hidden)`.
    fn pool(&self, x: Tensor, batch: &Batch) -> Result<Tensor> {
        let x = x.reshape((batch.b, batch.t, self.cfg.hidden))?;
        match self.pooling {
            Pooling::Cls | Pooling::Pooler => x.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean => {
                let m = batch.mask.unsqueeze(2)?;
                let sum = x.broadcast_mul(&m)?.sum(1)?;
                sum.broadcast_div(&batch.mask.sum_keepdim(1)?.clamp(1e-9, f64::MAX)?)
            }
        }
    }

    /// Logits `(B, labels)`; `dropout` only while training.
    pub(crate) fn forward(
        &self,
        batch: &Batch,
        mut dropout: Option<Dropout<'_>>,
    ) -> Result<Tensor> {
        let mut pooled = self.encode(batch, &mut dropout)?;
        let n = self.tensors.len();
        if self.pooling == Pooling::Pooler {
            pooled = linear(&pooled, self.t(n - 4), self.t(n - 3))?.tanh()?;
        }
        let pooled = drop(&mut dropout, pooled, self.cfg.hidden_dropout)?;
        linear(&pooled, self.t(n - 2), self.t(n - 1))
    }

    /// Softmax probabilities as rows.
    pub(crate) fn probabilities(&self, batch: &Batch) -> Result<Vec<Vec<f32>>> {
        softmax(&self.forward(batch, None)?)?.to_vec2::<f32>()
    }

    /// [`Net::probabilities`] with the pooled vector the head read (after the pooler, for
    /// [`Pooling::Pooler`]) of each row: the embedding the monitor projects.
    pub(crate) fn probabilities_pooled(&self, batch: &Batch) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        let mut pooled = self.encode(batch, &mut None)?;
        let n = self.tensors.len();
        if self.pooling == Pooling::Pooler {
            pooled = linear(&pooled, self.t(n - 4), self.t(n - 3))?.tanh()?;
        }
        let logits = linear(&pooled, self.t(n - 2), self.t(n - 1))?;
        let probs = softmax(&logits)?.to_vec2::<f32>()?;
        Ok(probs.into_iter().zip(pooled.to_vec2::<f32>()?).collect())
    }

    /// Mean cross-entropy of `logits` against label ids.
    pub(crate) fn loss(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
        let targets = Tensor::from_slice(targets, targets.len(), &Device::Cpu)?;
        candle_nn::loss::cross_entropy(logits, &targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
    }

    #[test]
    fn primitive_layer_norm_and_softmax_match_candle_fused_ops() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0, 4.0, -3.0], [0.5, 0.5, 0.1, 9.0]], &dev).unwrap();
        let w = Tensor::new(&[1f32, 0.5, 2.0, -1.0], &dev).unwrap();
        let b = Tensor::new(&[0f32, 0.1, -0.2, 0.3], &dev).unwrap();
        let ours = layer_norm(&x, &w, &b, 1e-12).unwrap();
        let fused = candle_nn::ops::layer_norm(&x, &w, &b, 1e-12).unwrap();
        let (o, f) = (
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(close(&o, &f), "{o:?} vs {f:?}");
        let s = softmax(&x).unwrap().flatten_all().unwrap();
        let f = candle_nn::ops::softmax_last_dim(&x)
            .unwrap()
            .flatten_all()
            .unwrap();
        assert!(close(&s.to_vec1().unwrap(), &f.to_vec1().unwrap()));
    }

    #[test]
    fn layer_norm_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let data = [0.3f32, -1.2, 2.0, 0.7];
        let w = Tensor::new(&[1f32, 0.5, 2.0, -1.0], &dev).unwrap();
        let b = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
        let coef = Tensor::new(&[0.1f32, -0.4, 0.9, 0.2], &dev).unwrap();
        let f = |x: &Tensor| {
            let y = layer_norm(x, &w, &b, 1e-5).unwrap();
            softmax(&y.unsqueeze(0).unwrap())
                .unwrap()
                .squeeze(0)
                .unwrap()
                .mul(&coef)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let var = candle_core::Var::new(&data, &dev).unwrap();
        let grads = f(var.as_tensor()).backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for i in 0..4 {
            let mut up = data;
            let mut down = data;
            up[i] += 1e-2;
            down[i] -= 1e-2;
            let fu = f(&Tensor::new(&up, &dev).unwrap())
                .to_scalar::<f32>()
                .unwrap();
            let fd = f(&Tensor::new(&down, &dev).unwrap())
                .to_scalar::<f32>()
                .unwrap();
            let numeric = (fu - fd) / 2e-2;
            assert!((numeric - g[i]).abs() < 2e-3, "{i}: {numeric} vs {}", g[i]);
        }
    }
}
