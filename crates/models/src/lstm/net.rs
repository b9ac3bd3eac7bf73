//! The network of an lstm model: token embeddings, a one-layer bidirectional LSTM
//! (Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", Neural Computation 9(8);
//! bidirectional as in Schuster & Paliwal 1997), pooling over the non-padding steps, dropout and
//! a linear head giving one logit per label.
//!
//! Tensor names follow PyTorch's `nn.Embedding` / `nn.LSTM` / `nn.Linear` (`embedding.weight`,
//! `lstm.weight_ih_l0`, `lstm.weight_hh_l0_reverse`, ..., `head.weight`), so the weights read
//! the same in both. Both directions run together: the backward direction reads each sequence
//! reversed within its own length, so both see right-padded input and padding never enters a
//! state that pooling reads; pooling (mean or max) does not depend on step order.

use candle_core::{Device, Result, Tensor};

use super::{LstmConfig, Pooling};
use crate::rng::SplitMix64;

/// Weight tensors, in save order.
pub(crate) const NAMES: [&str; 11] = [
    "embedding.weight",
    "lstm.weight_ih_l0",
    "lstm.weight_hh_l0",
    "lstm.bias_ih_l0",
    "lstm.bias_hh_l0",
    "lstm.weight_ih_l0_reverse",
    "lstm.weight_hh_l0_reverse",
    "lstm.bias_ih_l0_reverse",
    "lstm.bias_hh_l0_reverse",
    "head.weight",
    "head.bias",
];

/// The shape of each tensor of [`NAMES`] for a vocabulary, config and label count.
pub(crate) fn shapes(vocab: usize, cfg: &LstmConfig, labels: usize) -> [Vec<usize>; 11] {
    let (d, h) = (cfg.dim, cfg.hidden);
    let dir = [vec![4 * h, d], vec![4 * h, h], vec![4 * h], vec![4 * h]];
    [
        vec![vocab, d],
        dir[0].clone(),
        dir[1].clone(),
        dir[2].clone(),
        dir[3].clone(),
        dir[0].clone(),
        dir[1].clone(),
        dir[2].clone(),
        dir[3].clone(),
        vec![labels, 2 * h],
        vec![labels],
    ]
}

/// The weights, as tensors (plain for prediction, variables for training).
#[derive(Clone, Debug)]
pub(crate) struct Net {
    /// In [`NAMES`] order.
    pub(crate) tensors: Vec<Tensor>,
    pub(crate) hidden: usize,
    pub(crate) pooling: Pooling,
}

/// A padded batch of token ids, time-major.
pub(crate) struct Batch {
    /// `2 * T * B` ids: the forward sequences `(T, B)` then the reversed ones.
    ids: Tensor,
    /// `(1, T, B, 1)`: 1 on real tokens, 0 on padding.
    mask: Tensor,
    /// `(1, B, 1)`: tokens per sequence (at least 1).
    lens: Tensor,
    t: usize,
    b: usize,
}

impl Batch {
    /// Pads `seqs` to the longest one (at least one step; empty sequences are all padding).
    pub(crate) fn new(seqs: &[&[u32]]) -> Result<Self> {
        let b = seqs.len();
        let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![super::vocab::PAD; 2 * t * b];
        let mut mask = vec![0f32; t * b];
        let (fwd, rev) = ids.split_at_mut(t * b);
        for (j, s) in seqs.iter().enumerate() {
            for (step, &id) in s.iter().enumerate() {
                fwd[step * b + j] = id;
                rev[(s.len() - 1 - step) * b + j] = id;
                mask[step * b + j] = 1.0;
            }
        }
        let lens: Vec<f32> = seqs.iter().map(|s| s.len().max(1) as f32).collect();
        let dev = Device::Cpu;
        Ok(Self {
            ids: Tensor::from_vec(ids, 2 * t * b, &dev)?,
            mask: Tensor::from_vec(mask, (1, t, b, 1), &dev)?,
            lens: Tensor::from_vec(lens, (1, b, 1), &dev)?,
            t,
            b,
        })
    }

    /// Real (non-padding) tokens in the batch.
    pub(crate) fn tokens(&self) -> Result<f32> {
        self.mask.sum_all()?.to_scalar::<f32>()
    }
}

/// Inverted dropout with masks drawn from a seeded generator (candle's own dropout draws from an
/// unseeded one, which would make training irreproducible).
pub(crate) struct Dropout<'a> {
    pub(crate) p: f32,
    pub(crate) rng: &'a mut SplitMix64,
}

impl Dropout<'_> {
    fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - self.p);
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.next_f32() < self.p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?
    }
}

impl Net {
    /// Seeded initialisation: embeddings uniform in ±0.1, LSTM weights uniform in ±1/sqrt(H)
    /// (PyTorch's default), forget-gate bias 1 (Jozefowicz et al. 2015), head uniform in
    /// ±1/sqrt(2H) with zero bias.
    pub(crate) fn init(
        vocab: usize,
        cfg: &LstmConfig,
        labels: usize,
        rng: &mut SplitMix64,
    ) -> Result<Self> {
        let h = cfg.hidden;
        let lstm_bound = 1.0 / (h as f32).sqrt();
        let head_bound = 1.0 / ((2 * h) as f32).sqrt();
        let tensors = NAMES
            .iter()
            .zip(shapes(vocab, cfg, labels))
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let mut uniform = |bound: f32| -> Vec<f32> {
                    (0..n)
                        .map(|_| (rng.next_f32() * 2.0 - 1.0) * bound)
                        .collect()
                };
                let data = match *name {
                    "embedding.weight" => {
                        let mut v = uniform(0.1);
                        v[..cfg.dim].iter_mut().for_each(|x| *x = 0.0); // <pad>
                        v
                    }
                    "head.weight" => uniform(head_bound),
                    "head.bias" => vec![0.0; n],
                    n if n.starts_with("lstm.bias_ih") => {
                        let mut v = vec![0.0; 4 * h];
                        v[h..2 * h].iter_mut().for_each(|x| *x = 1.0);
                        v
                    }
                    n if n.starts_with("lstm.bias_hh") => vec![0.0; 4 * h],
                    _ => uniform(lstm_bound),
                };
                Tensor::from_vec(data, shape, &Device::Cpu)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tensors,
            hidden: h,
            pooling: cfg.pooling,
        })
    }

    fn t(&self, i: usize) -> &Tensor {
        &self.tensors[i]
    }

    /// Logits `(B, labels)` for a batch; `dropout` only while training.
    pub(crate) fn forward(
        &self,
        batch: &Batch,
        mut dropout: Option<Dropout<'_>>,
    ) -> Result<Tensor> {
        let (t, b, h) = (batch.t, batch.b, self.hidden);
        let emb = self.t(0).index_select(&batch.ids, 0)?;
        let emb = match dropout.as_mut() {
            Some(d) => d.apply(&emb)?,
            None => emb,
        };
        let d = emb.dim(1)?;
        let emb = emb.reshape((2, t * b, d))?;
        // Directions stacked: forward uses tensors 1..=4, backward 5..=8.
        let w_ih = Tensor::stack(&[self.t(1).t()?, self.t(5).t()?], 0)?;
        let w_hh = Tensor::stack(&[self.t(2).t()?, self.t(6).t()?], 0)?;
        let bias = Tensor::stack(&[(self.t(3) + self.t(4))?, (self.t(7) + self.t(8))?], 0)?
            .unsqueeze(1)?;
        let x = emb
            .matmul(&w_ih)?
            .broadcast_add(&bias)?
            .reshape((2, t, b, 4 * h))?
            .contiguous()?;
        let states = x.apply_op2(&w_hh, super::scan::LstmScan)?;
        let hs = states.narrow(3, 0, h)?; // (2, T, B, H)
        let pooled = match self.pooling {
            Pooling::Mean => hs
                .broadcast_mul(&batch.mask)?
                .sum(1)?
                .broadcast_div(&batch.lens)?,
            Pooling::Max => {
                let penalty = batch.mask.affine(1e4, -1e4)?; // 0 on tokens, -1e4 on padding
                hs.broadcast_add(&penalty)?.max(1)?
            }
        }; // (2, B, H)
        let pooled = pooled.transpose(0, 1)?.reshape((b, 2 * h))?;
        let pooled = match dropout.as_mut() {
            Some(d) => d.apply(&pooled)?,
            None => pooled,
        };
        pooled.matmul(&self.t(9).t()?)?.broadcast_add(self.t(10))
    }

    /// Softmax probabilities `(B, labels)` as rows.
    pub(crate) fn probabilities(&self, batch: &Batch) -> Result<Vec<Vec<f32>>> {
        let logits = self.forward(batch, None)?;
        candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()
    }

    /// Mean cross-entropy of `logits` against label ids.
    pub(crate) fn loss(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
        let targets = Tensor::from_slice(targets, targets.len(), &Device::Cpu)?;
        candle_nn::loss::cross_entropy(logits, &targets)
    }

    /// The tensors' values, flattened, in [`NAMES`] order.
    pub(crate) fn values(&self) -> Result<Vec<Vec<f32>>> {
        self.tensors
            .iter()
            .map(|t| t.flatten_all()?.to_vec1::<f32>())
            .collect()
    }
}
