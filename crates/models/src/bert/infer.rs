//! The packed inference path of the network (no dropout, no tracked gradients): the real
//! tokens of every text of a batch packed into one buffer without padding, the encoder layers
//! on plain `Vec<f32>` buffers reused across layers, in groups of whole texts, with Q, K and V
//! as one stacked product (f32 or int8), attention per text and head through strided matmuls,
//! and the fused softmax / GELU / residual layer-norm kernels of `taxon-kernels`. Equal to the
//! differentiable candle path of [`super::encoder`] up to float rounding (tested).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Error, Layout, Result, Storage, Tensor, TensorId};
use rayon::prelude::*;
use taxon_kernels::fused;
use taxon_kernels::matmul::{View, ViewMut, matmul};

use super::Pooling;
use super::config::Arch;
use super::encoder::{Batch, Net, PER_LAYER, embedding_count};
use super::ops;
use super::quant::Int8Linears;

/// Dense weights transposed to `(in, out)` row-major for [`Net::layers_on_buffers`]: gemm
/// multiplies by them without repacking the weight on every call (measured 1.2-1.8x faster
/// products at 128 rows, the same at 4096). Entries are keyed by the tensor's id, so a replaced
/// tensor (pruning, a trainer's snapshot) gets a fresh entry; clones share the cache.
/// It also holds each layer's Q, K and V stacked into one layer ([`StackedQkv`]).
#[derive(Clone, Default)]
pub(crate) struct TransposedWeights {
    single: Arc<Mutex<TransposedMap>>,
    /// First tensor index of a layer -> its stacked Q, K, V.
    qkv: Arc<Mutex<HashMap<usize, Arc<StackedQkv>>>>,
}

/// Weight index -> (id of the tensor it was built from, the transposed values).
type TransposedMap = HashMap<usize, (TensorId, Arc<Vec<f32>>)>;

impl std::fmt::Debug for TransposedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.single.lock().map_or(0, |m| m.len());
        let q = self.qkv.lock().map_or(0, |m| m.len());
        write!(f, "TransposedWeights({n} cached, {q} stacked Q/K/V)")
    }
}

/// One layer's Q, K and V dense layers as one of `3 * hidden` outputs (Q's, then K's, then
/// V's), so that inference computes them in one product (one wider gemm; for int8, the
/// activations quantized once).
pub(crate) struct StackedQkv {
    /// Ids of the tensors it was built from (Q, K, V weight and bias, in [`names`] order).
    from: [TensorId; 6],
    /// The int8 layers it was built from (`None` for f32); held, so that their address cannot
    /// be reused by other layers while this entry compares against it.
    int8: Option<Arc<Int8Linears>>,
    weight: StackedWeight,
    /// The three biases one after the other.
    bias: Vec<f32>,
}

enum StackedWeight {
    /// Transposed, `(hidden, 3 * hidden)` row-major.
    F32(Vec<f32>),
    Int8(taxon_kernels::int8::PackedWeights),
}

impl TransposedWeights {
    /// Tensor `k` (`t`, values `w` of shape `(out, inp)`) as `(inp, out)` row-major.
    fn get(&self, k: usize, t: &Tensor, w: &[f32], out: usize, inp: usize) -> Arc<Vec<f32>> {
        let mut map = self.single.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, wt)) = map.get(&k)
            && *id == t.id()
        {
            return wt.clone();
        }
        let mut wt = vec![0f32; w.len()];
        const BLOCK: usize = 32;
        for o0 in (0..out).step_by(BLOCK) {
            for i0 in (0..inp).step_by(BLOCK) {
                for o in o0..(o0 + BLOCK).min(out) {
                    for i in i0..(i0 + BLOCK).min(inp) {
                        wt[i * out + o] = w[o * inp + i];
                    }
                }
            }
        }
        let wt = Arc::new(wt);
        map.insert(k, (t.id(), wt.clone()));
        wt
    }
}

impl Net {
    /// Whether inference can run on plain buffers ([`Self::layers_on_buffers`]): every tensor
    /// a contiguous f32 CPU tensor that no gradient is tracked through (a trainer's variables
    /// take the differentiable candle path even without dropout, for their backward pass).
    pub(super) fn fast_path_applies(&self) -> bool {
        self.tensors.iter().all(|t| {
            !t.track_op() && t.dtype() == DType::F32 && t.device().is_cpu() && t.is_contiguous()
        })
    }

    /// Inference (no dropout, no tracked gradients) on packed token rows: the embeddings of
    /// the real tokens only (`sum(lens)` rows, no padding), [`Self::layers_on_buffers`], and
    /// pooling per text from its own rows. Returns the pooled vectors `(B, hidden)`, equal to
    /// the padded candle path up to float rounding (tested).
    pub(super) fn encode_packed(&self, batch: &Batch) -> Result<Tensor> {
        let cfg = &self.cfg;
        let h = cfg.hidden;
        let n = batch.packed.len();
        let max_pos = self.t(1).dim(0)?;
        for (j, &len) in batch.lens.iter().enumerate() {
            if len == 0 || len > max_pos {
                return Err(Error::Msg(format!(
                    "bert inference: text {j} of the batch has {len} tokens, expected 1 to {max_pos}"
                )));
            }
        }
        let ids = Tensor::from_slice(&batch.packed, n, &Device::Cpu)?;
        let pos: Vec<u32> = batch.lens.iter().flat_map(|&l| 0..l as u32).collect();
        let pos = Tensor::from_vec(pos, n, &Device::Cpu)?;
        // The same sums in the same order as the padded path.
        let mut x = self
            .t(0)
            .index_select(&ids, 0)?
            .add(&self.t(1).index_select(&pos, 0)?)?;
        let mut i = 2;
        if cfg.arch == Arch::Bert {
            x = x.broadcast_add(&self.t(2).narrow(0, 0, 1)?)?;
            i = 3;
        }
        let x = ops::layer_norm(&x, self.t(i), self.t(i + 1), cfg.layer_norm_eps)?;
        let x = self.layers_on_buffers(&x, &batch.lens)?;
        let mut pooled = vec![0f32; batch.lens.len() * h];
        let mut at = 0;
        for (&len, out) in batch.lens.iter().zip(pooled.chunks_exact_mut(h.max(1))) {
            let rows = &x[at * h..(at + len) * h];
            match self.pooling {
                Pooling::Cls | Pooling::Pooler => out.copy_from_slice(&rows[..h]),
                Pooling::Mean => {
                    for row in rows.chunks_exact(h) {
                        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
                    }
                    let inv = len as f32;
                    out.iter_mut().for_each(|o| *o /= inv);
                }
            }
            at += len;
        }
        Tensor::from_vec(pooled, (batch.lens.len(), h), &Device::Cpu)
    }

    /// The encoder layers at inference on plain `Vec<f32>` buffers reused across layers, on
    /// packed token rows (text `j` in the `lens[j]` rows after those of texts `0..j`, no
    /// padding): Q, K, V from one product of the stacked layer ([`StackedQkv`]), attention per
    /// (text, head) over the text's own rows straight from the projections through strided
    /// views (no head transposes, no mask), the fused softmax / GELU / residual layer-norm
    /// kernels, int8 layers through their kernel. The texts go through all the layers in
    /// groups of about [`GROUP_ROWS`] rows per thread (texts never see each other, so a group
    /// is a batch of its own), which keeps the activations in cache and the buffers small.
    /// `x` is the embedding output `(sum(lens), hidden)`; returns the final states, same shape.
    /// Equal to the candle path up to float rounding (tested).
    fn layers_on_buffers(&self, x: &Tensor, lens: &[usize]) -> Result<Vec<f32>> {
        let target = GROUP_ROWS * rayon::current_num_threads().max(1);
        self.layers_in_groups(x, lens, target)
    }

    /// [`Self::layers_on_buffers`] in groups of texts of at most `target` rows.
    fn layers_in_groups(&self, x: &Tensor, lens: &[usize], target: usize) -> Result<Vec<f32>> {
        let h = self.cfg.hidden;
        let n: usize = lens.iter().sum();
        let mut x = x.flatten_all()?.to_vec1::<f32>()?;
        if x.len() != n * h {
            return Err(Error::Msg(format!(
                "bert inference: embeddings hold {} values, expected {n}x{h}",
                x.len()
            )));
        }
        let groups = text_groups(lens, target);
        let most = groups.iter().map(|g| g.rows).max().unwrap_or(0);
        let mut bufs = LayerBuffers::new(most, h, self.cfg.intermediate);
        for g in groups {
            let x = &mut x[g.row * h..(g.row + g.rows) * h];
            self.layers_on_group(x, &lens[g.texts], &mut bufs)?;
        }
        Ok(x)
    }

    /// The encoder layers on the packed rows `x` of the texts of `lens` (see
    /// [`Self::layers_on_buffers`]), in place.
    fn layers_on_group(
        &self,
        x: &mut [f32],
        lens: &[usize],
        bufs: &mut LayerBuffers,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let (h, f) = (cfg.hidden, cfg.intermediate);
        let (nh, dh) = (cfg.heads, cfg.head_dim());
        let n: usize = lens.iter().sum();
        let threads = rayon::current_num_threads();
        let eps = cfg.layer_norm_eps as f32;
        let scale = 1.0 / (dh as f32).sqrt();
        let x2 = &mut bufs.x2[..n * h];
        let qkv = &mut bufs.qkv[..n * 3 * h];
        let ctx = &mut bufs.ctx[..n * h];
        let y = &mut bufs.y[..n * h];
        let ff = &mut bufs.ff[..n * f];
        let ff2 = &mut bufs.ff2[..n * f];
        let first = embedding_count(cfg);
        for layer in 0..cfg.layers {
            let base = first + layer * PER_LAYER;
            let guards: Vec<_> = (0..PER_LAYER)
                .map(|j| self.t(base + j).storage_and_layout())
                .collect();
            let w = |j: usize| -> Result<&[f32]> {
                let (storage, layout) = &guards[j];
                cpu_f32(storage, layout, base + j)
            };
            let dense = |j: usize, x: &[f32], inp: usize, out: &mut [f32], bias: bool| {
                self.dense_on_buffers(base + j, w(j)?, w(j + 1)?, x, inp, out, bias, threads)
            };
            let qkv_weights = [w(0)?, w(1)?, w(2)?, w(3)?, w(4)?, w(5)?];
            match self.stacked_qkv(base, qkv_weights)? {
                Some(stacked) => self.qkv_on_buffers(&stacked, x, qkv, threads)?,
                None => {
                    // Some of Q, K, V int8 and some not: three products, copied side by side.
                    for part in 0..3 {
                        dense(2 * part, x, h, ctx, true)?;
                        for (dst, src) in qkv.chunks_exact_mut(3 * h).zip(ctx.chunks_exact(h)) {
                            dst[part * h..(part + 1) * h].copy_from_slice(src);
                        }
                    }
                }
            }
            attention(qkv, 3 * h, lens, (nh, dh), scale, ctx)?;
            let biased = dense(6, ctx, h, y, false)?;
            let bias = if biased { &[][..] } else { w(7)? };
            fused::layer_norm(y, bias, x, w(8)?, w(9)?, eps, x2).map_err(kernel)?;
            let biased = dense(10, x2, h, ff, false)?;
            let bias = if biased { &[][..] } else { w(11)? };
            fused::gelu(ff, bias, ff2).map_err(kernel)?;
            let biased = dense(12, ff2, f, y, false)?;
            let bias = if biased { &[][..] } else { w(13)? };
            fused::layer_norm(y, bias, x2, w(14)?, w(15)?, eps, x).map_err(kernel)?;
        }
        Ok(())
    }

    /// The stacked Q, K, V of the layer whose first tensor is `base` (`ws`: the f32 values of
    /// its tensors `base..base + 6`, Q, K, V weight and bias), built on first use; `None` when
    /// only some of the three are int8.
    fn stacked_qkv(&self, base: usize, ws: [&[f32]; 6]) -> Result<Option<Arc<StackedQkv>>> {
        let h = self.cfg.hidden;
        let from: [TensorId; 6] = std::array::from_fn(|j| self.t(base + j).id());
        let int8 = self.int8.clone();
        let mut map = self
            .transposed
            .qkv
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&base)
            && s.from == from
            && match (&s.int8, &int8) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        {
            return Ok(Some(s.clone()));
        }
        let err = |what: String| Error::Msg(format!("bert inference: layer at {base}: {what}"));
        for j in [1, 3, 5] {
            if ws[j].len() != h {
                return Err(err(format!(
                    "bias {j} holds {} values, expected {h}",
                    ws[j].len()
                )));
            }
        }
        let q = |j: usize| self.int8.as_ref().and_then(|q| q.get(base + j));
        let weight = match [q(0), q(2), q(4)] {
            [Some(a), Some(b), Some(c)] => {
                let p =
                    taxon_kernels::int8::PackedWeights::concat(&[&a.packed, &b.packed, &c.packed])
                        .map_err(|e| err(format!("int8 Q, K, V: {e}")))?;
                if (p.out(), p.inp()) != (3 * h, h) {
                    return Err(err(format!(
                        "int8 Q, K, V of {}x{}, expected {}x{h}",
                        p.out(),
                        p.inp(),
                        3 * h
                    )));
                }
                StackedWeight::Int8(p)
            }
            [None, None, None] => {
                let mut wt = vec![0f32; h * 3 * h];
                for (part, j) in [0, 2, 4].into_iter().enumerate() {
                    let w = ws[j];
                    if w.len() != h * h {
                        return Err(err(format!(
                            "weight {j} holds {} values, expected {h}x{h}",
                            w.len()
                        )));
                    }
                    for (o, row) in w.chunks_exact(h.max(1)).enumerate() {
                        for (i, &v) in row.iter().enumerate() {
                            wt[i * 3 * h + part * h + o] = v;
                        }
                    }
                }
                StackedWeight::F32(wt)
            }
            _ => return Ok(None),
        };
        let bias = [ws[1], ws[3], ws[5]].concat();
        let s = Arc::new(StackedQkv {
            from,
            int8,
            weight,
            bias,
        });
        map.insert(base, s.clone());
        Ok(Some(s))
    }

    /// `qkv = x W^T + b` for the stacked Q, K, V: `x` `(rows, hidden)`, `qkv` `(rows, 3 hidden)`.
    fn qkv_on_buffers(
        &self,
        s: &StackedQkv,
        x: &[f32],
        qkv: &mut [f32],
        threads: usize,
    ) -> Result<()> {
        let h = self.cfg.hidden;
        let rows = x.len() / h.max(1);
        let err = |e: &dyn std::fmt::Display| Error::Msg(format!("bert inference: Q, K, V: {e}"));
        match &s.weight {
            StackedWeight::Int8(p) => {
                taxon_kernels::int8::matmul(x, rows, p, Some(&s.bias), qkv).map_err(|e| err(&e))
            }
            StackedWeight::F32(wt) => {
                for row in qkv.chunks_exact_mut(3 * h.max(1)) {
                    row.copy_from_slice(&s.bias);
                }
                let dst = ViewMut {
                    data: qkv,
                    offset: 0,
                    rows,
                    cols: 3 * h,
                    row_stride: 3 * h,
                };
                let wt = View::rows(wt, 0, h, 3 * h, 3 * h);
                matmul(dst, View::rows(x, 0, rows, h, h), wt, 1.0, true, threads)
                    .map_err(|e| err(&e))
            }
        }
    }

    /// `out = x W^T` (`+ b` when `bias`) for the dense layer whose weight is tensor `k`, `x` of
    /// `n = out.len() / W.rows` rows of `inp`; int8 when the model was quantized (and then the
    /// bias is always added). Returns whether the bias was added.
    #[allow(clippy::too_many_arguments)]
    fn dense_on_buffers(
        &self,
        k: usize,
        weight: &[f32],
        b: &[f32],
        x: &[f32],
        inp: usize,
        out: &mut [f32],
        bias: bool,
        threads: usize,
    ) -> Result<bool> {
        let rows = x.len() / inp.max(1);
        if let Some(q) = self.int8.as_ref().and_then(|q| q.get(k)) {
            taxon_kernels::int8::matmul(x, rows, &q.packed, Some(b), out)
                .map_err(|e| Error::Msg(format!("bert inference: int8 dense layer {k}: {e}")))?;
            return Ok(true);
        }
        let outs = b.len();
        if weight.len() != outs * inp {
            return Err(Error::Msg(format!(
                "bert inference: dense layer {k} holds {} weights, expected {outs}x{inp}",
                weight.len()
            )));
        }
        let wt = self.transposed.get(k, self.t(k), weight, outs, inp);
        if bias {
            for row in out.chunks_exact_mut(outs.max(1)) {
                row.copy_from_slice(b);
            }
        }
        let dst = ViewMut {
            data: out,
            offset: 0,
            rows,
            cols: outs,
            row_stride: outs,
        };
        let wt = View::rows(&wt, 0, inp, outs, outs);
        matmul(
            dst,
            View::rows(x, 0, rows, inp, inp),
            wt,
            1.0,
            bias,
            threads,
        )
        .map_err(|e| Error::Msg(format!("bert inference: dense layer {k}: {e}")))?;
        Ok(bias)
    }
}

/// The f32 values of tensor `index` held in `storage` with `layout` (contiguous, CPU).
fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout, index: usize) -> Result<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        return Err(Error::Msg(format!(
            "bert inference: tensor {index} is not on the CPU"
        )));
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::Msg(format!("bert inference: tensor {index} is not contiguous")))?;
    Ok(&cpu.as_slice::<f32>()?[start..end])
}

fn kernel(e: fused::ShapeError) -> Error {
    Error::Msg(format!("bert inference: {e}"))
}

/// Token rows per thread in one group of texts of [`Net::layers_on_buffers`]: enough rows for
/// the products to reuse each weight, few enough for the activations of a group (about 40 KiB a
/// row for MiniLM) to stay in the caches.
const GROUP_ROWS: usize = 512;

/// Consecutive texts and their rows in the packed batch.
struct TextGroup {
    texts: std::ops::Range<usize>,
    /// First row.
    row: usize,
    rows: usize,
}

/// Splits texts of `lens` into runs of whole texts of at most `target` rows (a longer text
/// alone).
fn text_groups(lens: &[usize], target: usize) -> Vec<TextGroup> {
    let mut groups: Vec<TextGroup> = Vec::new();
    let mut row = 0;
    for (j, &len) in lens.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if g.rows + len <= target => {
                g.texts.end = j + 1;
                g.rows += len;
            }
            _ => groups.push(TextGroup {
                texts: j..j + 1,
                row,
                rows: len,
            }),
        }
        row += len;
    }
    groups
}

/// The work buffers of [`Net::layers_on_group`], for up to `rows` rows.
struct LayerBuffers {
    x2: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    y: Vec<f32>,
    ff: Vec<f32>,
    ff2: Vec<f32>,
}

impl LayerBuffers {
    fn new(rows: usize, h: usize, f: usize) -> Self {
        Self {
            x2: vec![0f32; rows * h],
            qkv: vec![0f32; rows * 3 * h],
            ctx: vec![0f32; rows * h],
            y: vec![0f32; rows * h],
            ff: vec![0f32; rows * f],
            ff2: vec![0f32; rows * f],
        }
    }
}

/// Multi-head attention at inference from the packed projections in `qkv`: row `r` (at
/// `r * stride`) holds the query, key and value of token `r` side by side (`hidden` values
/// each, head `h` in columns `h * dh .. (h + 1) * dh` of each), text `j` in the `lens[j]` rows
/// after those of texts `0..j`. Per text and head: scores `Q K^T` into a `len x len` buffer,
/// the fused scaled softmax (no mask: a text attends to its own rows only), and `P V` written
/// straight into the head's columns of `ctx` (`(sum(lens), hidden)`). Texts run in parallel on
/// the rayon pool.
fn attention(
    qkv: &[f32],
    stride: usize,
    lens: &[usize],
    (nh, dh): (usize, usize),
    scale: f32,
    ctx: &mut [f32],
) -> Result<()> {
    let h = nh * dh;
    let n: usize = lens.iter().sum();
    if stride < 3 * h {
        return Err(Error::Msg(format!(
            "bert attention: rows of {stride} values cannot hold q, k and v of {h}"
        )));
    }
    for (what, len, want) in [
        ("qkv", qkv.len(), n * stride),
        ("context", ctx.len(), n * h),
    ] {
        if len != want {
            return Err(Error::Msg(format!(
                "bert attention: {what} holds {len} values, expected {want} ({n} rows)"
            )));
        }
    }
    if h == 0 {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| Error::Msg(format!("bert attention: {e}"));
    // (first row, the text's context rows) per text.
    let mut texts = Vec::with_capacity(lens.len());
    let (mut rest, mut at) = (ctx, 0);
    for &len in lens {
        let (out, tail) = rest.split_at_mut(len * h);
        texts.push((at, out));
        rest = tail;
        at += len;
    }
    let longest = lens.iter().copied().max().unwrap_or(0);
    texts.into_par_iter().try_for_each_init(
        || (vec![0f32; longest * longest], vec![0f32; longest * longest]),
        |(scores, probs), (row, out)| -> Result<()> {
            let t = out.len() / h;
            if t == 0 {
                return Ok(());
            }
            let (scores, probs) = (&mut scores[..t * t], &mut probs[..t * t]);
            for head in 0..nh {
                let at = row * stride + head * dh;
                let dst = ViewMut {
                    data: scores,
                    offset: 0,
                    rows: t,
                    cols: t,
                    row_stride: t,
                };
                let kt = View::rows(qkv, at + h, t, dh, stride).t();
                let q = View::rows(qkv, at, t, dh, stride);
                matmul(dst, q, kt, 1.0, false, 1).map_err(|e| err(&e))?;
                fused::softmax(scores, &[], t, scale, probs).map_err(|e| err(&e))?;
                let dst = ViewMut {
                    data: out,
                    offset: head * dh,
                    rows: t,
                    cols: dh,
                    row_stride: h,
                };
                let p = View::rows(probs, 0, t, t, t);
                let v = View::rows(qkv, at + 2 * h, t, dh, stride);
                matmul(dst, p, v, 1.0, false, 1).map_err(|e| err(&e))?;
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
    }

    /// A tiny random network of `arch` (2 layers, hidden 16, 2 heads) with a 3-label head.
    fn tiny_net(arch: super::super::Arch, pooling: Pooling) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let words = [
            "goal", "match", "team", "bank", "market", "the", "a", "of", "said",
        ];
        let mut spec = super::super::RandomCheckpoint::tiny(&words);
        spec.arch = arch;
        spec.write(dir.path()).unwrap();
        let config = super::super::BertConfig {
            base_model: "tiny".into(),
            pooling,
            max_len: 24,
            ..Default::default()
        };
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        super::super::BertModel::from_checkpoint(dir.path(), &config, &labels, 7)
            .unwrap()
            .net
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Padded batches of different lengths and batch 1, every arch and pooling, f32 and int8.
    #[test]
    fn inference_on_buffers_matches_the_candle_path() {
        use super::super::Arch;
        let seqs: Vec<Vec<u32>> = vec![
            vec![2, 5, 7, 9, 3],
            vec![2, 8, 3],
            vec![2, 5, 6, 7, 8, 9, 10, 11, 12, 3],
            vec![2, 3],
            vec![2],
            vec![2, 9, 9, 5, 3],
        ];
        for arch in [Arch::Bert, Arch::DistilBert] {
            for pooling in [Pooling::Mean, Pooling::Cls] {
                let mut net = tiny_net(arch, pooling);
                assert!(net.fast_path_applies());
                for int8 in [false, true] {
                    if int8 {
                        let q = Int8Linears::quantize(&net.tensors, &net.cfg).unwrap();
                        net.int8 = Some(Arc::new(q));
                    }
                    let tol = if int8 { 1e-3 } else { 1e-5 };
                    let all: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
                    let mixed = vec![all[4], all[2], all[0], all[3], all[2], all[1]];
                    for batch in [all.clone(), mixed, vec![all[2]], vec![all[3]], vec![all[4]]] {
                        let batch = Batch::new(&batch, net.cfg.pad_token_id).unwrap();
                        let fast = net.encode_with(&batch, &mut None, true).unwrap();
                        let slow = net.encode_with(&batch, &mut None, false).unwrap();
                        let d = max_diff(&fast, &slow);
                        assert!(d < tol, "{arch:?} {pooling:?} int8 {int8}: {d}");
                        let scale = slow.abs().unwrap().max_all().unwrap();
                        assert!(scale.to_scalar::<f32>().unwrap() > 0.1);
                    }
                }
            }
        }
    }

    /// Each text's vector from a packed batch equals the text encoded alone: no row of one
    /// text leaks into another's attention or pooling.
    #[test]
    fn packed_texts_do_not_see_each_other() {
        let net = tiny_net(super::super::Arch::Bert, Pooling::Mean);
        let seqs: [&[u32]; 3] = [&[2, 5, 7, 3], &[2, 3], &[2, 9, 8, 6, 5, 4, 3]];
        let together = net.encode_with(&Batch::new(&seqs, 0).unwrap(), &mut None, true);
        let together = together.unwrap().to_vec2::<f32>().unwrap();
        for (s, row) in seqs.iter().zip(&together) {
            let alone = net.encode_with(&Batch::new(&[s], 0).unwrap(), &mut None, true);
            let alone = alone.unwrap().to_vec2::<f32>().unwrap();
            assert!(close(row, &alone[0]), "{s:?}");
        }
    }

    #[test]
    fn packed_inference_rejects_empty_and_too_long_texts() {
        let net = tiny_net(super::super::Arch::DistilBert, Pooling::Cls);
        let long = vec![5u32; net.tensors[1].dim(0).unwrap() + 1];
        for bad in [&[][..], &long[..]] {
            let batch = Batch::new(&[&[2, 3][..], bad], 0).unwrap();
            let e = net.encode_with(&batch, &mut None, true).unwrap_err();
            assert!(e.to_string().contains("text 1"), "{e}");
        }
    }

    #[test]
    fn a_replaced_weight_is_transposed_again() {
        let mut net = tiny_net(super::super::Arch::Bert, Pooling::Mean);
        let seqs: [&[u32]; 2] = [&[2, 5, 7, 3], &[2, 9, 3]];
        let batch = Batch::new(&seqs, net.cfg.pad_token_id).unwrap();
        let before = net.encode_with(&batch, &mut None, true).unwrap();
        let k = embedding_count(&net.cfg) + 10; // the first layer's intermediate dense
        net.tensors[k] = (&net.tensors[k] * 3.0).unwrap();
        let fast = net.encode_with(&batch, &mut None, true).unwrap();
        let slow = net.encode_with(&batch, &mut None, false).unwrap();
        assert!(max_diff(&fast, &slow) < 1e-5);
        assert!(
            max_diff(&fast, &before) > 1e-3,
            "the new weight was not used"
        );
    }

    #[test]
    fn tracked_gradients_take_the_candle_path() {
        let mut net = tiny_net(super::super::Arch::Bert, Pooling::Mean);
        assert!(net.fast_path_applies());
        net.tensors[0] = candle_core::Var::from_tensor(&net.tensors[0])
            .unwrap()
            .into_inner();
        assert!(!net.fast_path_applies());
    }

    #[test]
    fn attention_rejects_wrong_sizes() {
        let qkv = vec![0f32; 5 * 12];
        let mut ctx = vec![0f32; 5 * 4];
        assert!(attention(&qkv, 12, &[3, 2], (2, 2), 1.0, &mut ctx).is_ok());
        let e = attention(&qkv[1..], 12, &[3, 2], (2, 2), 1.0, &mut ctx).unwrap_err();
        assert!(e.to_string().contains("qkv"), "{e}");
        assert!(attention(&qkv, 12, &[3, 3], (2, 2), 1.0, &mut ctx).is_err());
        let e = attention(&qkv, 10, &[3, 2], (2, 2), 1.0, &mut ctx).unwrap_err();
        assert!(e.to_string().contains("cannot hold"), "{e}");
        let e = attention(&qkv, 12, &[3, 2], (2, 2), 1.0, &mut ctx[1..]).unwrap_err();
        assert!(e.to_string().contains("context"), "{e}");
    }

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
    }

    /// Attention on rows holding q | k | v (and, with `stride` > 3h, padding) equals the
    /// textbook formula computed per text and head.
    #[test]
    fn attention_on_stacked_rows_matches_the_formula() {
        let (nh, dh) = (3, 4);
        let h = nh * dh;
        let lens = [5usize, 1, 7];
        let n: usize = lens.iter().sum();
        let scale = 0.4;
        for stride in [3 * h, 3 * h + 5] {
            let qkv = values(n * stride, stride as u64);
            let mut ctx = vec![f32::NAN; n * h];
            attention(&qkv, stride, &lens, (nh, dh), scale, &mut ctx).unwrap();
            let mut first = 0;
            for &t in &lens {
                for head in 0..nh {
                    let at = |r: usize, part: usize, d: usize| {
                        qkv[(first + r) * stride + part * h + head * dh + d]
                    };
                    for i in 0..t {
                        let s: Vec<f32> = (0..t)
                            .map(|j| {
                                scale * (0..dh).map(|d| at(i, 0, d) * at(j, 1, d)).sum::<f32>()
                            })
                            .collect();
                        let m = s.iter().copied().fold(f32::MIN, f32::max);
                        let e: Vec<f32> = s.iter().map(|v| (v - m).exp()).collect();
                        let z: f32 = e.iter().sum();
                        for d in 0..dh {
                            let want: f32 = (0..t).map(|j| e[j] / z * at(j, 2, d)).sum();
                            let got = ctx[(first + i) * h + head * dh + d];
                            assert!(
                                (got - want).abs() < 1e-5,
                                "stride {stride}: {got} vs {want}"
                            );
                        }
                    }
                }
                first += t;
            }
        }
    }

    /// The stacked Q, K, V product equals the three dense layers: bit for bit in int8 (the
    /// same quantized rows, the same sums), up to rounding in f32.
    #[test]
    fn stacked_qkv_equals_three_dense_layers() {
        let mut net = tiny_net(super::super::Arch::Bert, Pooling::Mean);
        let h = net.cfg.hidden;
        let rows = 9;
        let x = values(rows * h, 3);
        let base = embedding_count(&net.cfg) + PER_LAYER; // the second layer
        for int8 in [false, true] {
            if int8 {
                let q = Int8Linears::quantize(&net.tensors, &net.cfg).unwrap();
                net.int8 = Some(Arc::new(q));
            }
            let vals: Vec<Vec<f32>> = (0..6)
                .map(|j| {
                    net.t(base + j)
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                })
                .collect();
            let ws: [&[f32]; 6] = std::array::from_fn(|j| vals[j].as_slice());
            let stacked = net.stacked_qkv(base, ws).unwrap().unwrap();
            assert_eq!(
                matches!(stacked.weight, StackedWeight::Int8(_)),
                int8,
                "the cached f32 layers were not rebuilt"
            );
            let mut qkv = vec![0f32; rows * 3 * h];
            net.qkv_on_buffers(&stacked, &x, &mut qkv, 1).unwrap();
            for part in 0..3 {
                let j = 2 * part;
                let mut one = vec![0f32; rows * h];
                let biased = net
                    .dense_on_buffers(base + j, ws[j], ws[j + 1], &x, h, &mut one, true, 1)
                    .unwrap();
                assert!(biased);
                for r in 0..rows {
                    let got = &qkv[r * 3 * h + part * h..r * 3 * h + (part + 1) * h];
                    let want = &one[r * h..(r + 1) * h];
                    for (g, w) in got.iter().zip(want) {
                        if int8 {
                            assert_eq!(g.to_bits(), w.to_bits(), "part {part} row {r}");
                        } else {
                            assert!((g - w).abs() < 1e-5, "part {part} row {r}: {g} vs {w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn texts_are_grouped_whole_up_to_the_target() {
        let groups = text_groups(&[3, 4, 2, 9, 1, 1], 7);
        let got: Vec<_> = groups
            .iter()
            .map(|g| (g.texts.clone(), g.row, g.rows))
            .collect();
        assert_eq!(
            got,
            vec![(0..2, 0, 7), (2..3, 7, 2), (3..4, 9, 9), (4..6, 18, 2)]
        );
        assert!(text_groups(&[], 7).is_empty());
    }

    /// Running the texts through the layers in several groups gives what one group gives.
    #[test]
    fn grouped_layers_equal_one_group() {
        let mut net = tiny_net(super::super::Arch::Bert, Pooling::Mean);
        let lens = [5usize, 3, 10, 2, 1, 5];
        let n: usize = lens.iter().sum();
        let x = Tensor::from_vec(
            values(n * net.cfg.hidden, 8),
            (n, net.cfg.hidden),
            &Device::Cpu,
        )
        .unwrap();
        for int8 in [false, true] {
            if int8 {
                let q = Int8Linears::quantize(&net.tensors, &net.cfg).unwrap();
                net.int8 = Some(Arc::new(q));
            }
            let one = net.layers_in_groups(&x, &lens, n).unwrap();
            for target in [1, 8, 11] {
                let grouped = net.layers_in_groups(&x, &lens, target).unwrap();
                assert!(close(&one, &grouped), "int8 {int8}, groups of {target}");
            }
            assert!(one.iter().all(|v| v.is_finite()));
        }
    }
}
