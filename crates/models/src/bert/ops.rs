//! The encoder's fused float ops as candle custom ops, so autograd still reaches every weight:
//! GELU (optionally with the dense bias folded in), the attention softmax (scale and padding
//! mask folded in), layer norm (optionally with the residual add and the dense bias folded in)
//! and dropout (mask from a seed, never stored), each running `taxon_kernels::fused` forward and its
//! hand-written backward pass. Compared with graphs of primitive ops, each saves several passes
//! over the activations and as many fresh tensors.
//!
//! The ops take contiguous f32 tensors (the wrappers make them contiguous); anything else is an
//! error naming the op, never a panic. `tests` checks each forward pass against the
//! primitive-op versions in `net` and each backward pass against finite differences.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, Error, Layout, Result, Shape, Tensor,
};
use taxon_kernels::fused;

fn slice<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        return Err(Error::Msg(format!(
            "{op}: expects f32, got {:?}",
            s.dtype()
        )));
    };
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| Error::Msg(format!("{op}: expects a contiguous tensor")))?;
    Ok(&data[a..b])
}

fn kernel(e: fused::ShapeError) -> Error {
    Error::Msg(e.to_string())
}

fn last_dim(op: &str, l: &Layout) -> Result<usize> {
    l.dims()
        .last()
        .copied()
        .ok_or_else(|| Error::Msg(format!("{op}: expects at least one dimension")))
}

/// GELU (erf form); see [`gelu`].
struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s, l)?;
        let mut y = vec![0f32; x.len()];
        fused::gelu(x, &[], &mut y).map_err(kernel)?;
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let none = Tensor::zeros(0, x.dtype(), x.device())?;
        Ok(Some(x.apply_op3_no_bwd(
            &none,
            &grad.contiguous()?,
            &GeluBackward,
        )?))
    }
}

/// `gelu(x + bias)`, `bias` one row; see [`gelu`].
struct BiasGelu;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "fused-bias-gelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, bias) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
        let mut y = vec![0f32; x.len()];
        fused::gelu(x, bias, &mut y).map_err(kernel)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.apply_op3_no_bwd(bias, &grad.contiguous()?, &GeluBackward)?;
        let db = dx.reshape(((), bias.elem_count()))?.sum(0)?;
        Ok((Some(dx), Some(db)))
    }
}

/// `(x, bias, dy) -> dx` of GELU (`bias` empty or one row).
struct GeluBackward;

impl CustomOp3 for GeluBackward {
    fn name(&self) -> &'static str {
        "fused-gelu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let (x, bias, dy) = (slice(n, s1, l1)?, slice(n, s2, l2)?, slice(n, s3, l3)?);
        let mut dx = vec![0f32; x.len()];
        fused::gelu_backward(x, bias, dy, &mut dx).map_err(kernel)?;
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// GELU, exact erf form, of `x + bias` (`bias`: a dense layer's bias, one value per column of
/// `x`; `None`: GELU of `x`).
pub(crate) fn gelu(x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        None => x.contiguous()?.apply_op1(Gelu),
        Some(b) => x.contiguous()?.apply_op2(&b.contiguous()?, BiasGelu),
    }
}

/// Inverted dropout from a seed; see [`dropout`].
struct Dropout {
    seed: u64,
    p: f32,
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s, l)?;
        let mut y = vec![0f32; x.len()];
        fused::dropout(x, self.seed, self.p, &mut y).map_err(kernel)?;
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// Dropout is linear in its input: the gradient goes through the same mask.
    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let again = Dropout {
            seed: self.seed,
            p: self.p,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&again)?))
    }
}

/// Inverted dropout with rate `p` in [0, 1), its mask a function of `seed` and the element's
/// position (nothing stored; the backward pass regenerates it).
pub(crate) fn dropout(x: &Tensor, seed: u64, p: f32) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Dropout { seed, p })
}

/// `softmax(scale * x + bias)` over the last dimension; see [`attention_softmax`].
struct Softmax {
    scale: f32,
}

impl CustomOp2 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, bias) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
        let mut y = vec![0f32; x.len()];
        fused::softmax(x, bias, last_dim(self.name(), l1)?, self.scale, &mut y).map_err(kernel)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx =
            res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward { scale: self.scale })?;
        Ok((Some(dx), None))
    }
}

/// `(y, dy) -> dx` of the scaled softmax.
struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "fused-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
        let mut dx = vec![0f32; y.len()];
        let cols = last_dim(self.name(), l1)?;
        fused::softmax_backward(y, dy, cols, self.scale, &mut dx).map_err(kernel)?;
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// The attention probabilities `softmax(scale * scores + bias)` over the last dimension, for
/// `scores` `(B, heads, Tq, Tk)` and an additive `bias` `(B, Tk)` (the padding mask, shared by
/// every head and query); the bias gets no gradient.
pub(crate) fn attention_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    scores.contiguous()?.apply_op2(
        &bias.contiguous()?,
        Softmax {
            scale: scale as f32,
        },
    )
}

/// Layer norm of `x` `(.., H)` with `w`, `b` `(H)`; see [`layer_norm`].
struct LayerNorm {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let (x, w, b) = (slice(n, s1, l1)?, slice(n, s2, l2)?, slice(n, s3, l3)?);
        let mut y = vec![0f32; x.len()];
        fused::layer_norm(x, &[], &[], w, b, self.eps, &mut y).map_err(kernel)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = layer_norm_grads(x, w, grad, self.eps)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Layer norm of `x + residual` (+ `bias`) with `wb` = `[w; b]` `(2, H)` or `[w; b; bias]`
/// `(3, H)`; see [`add_layer_norm`].
struct AddLayerNorm {
    eps: f32,
}

impl CustomOp3 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "fused-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let (x, r, wb) = (slice(n, s1, l1)?, slice(n, s2, l2)?, slice(n, s3, l3)?);
        let cols = last_dim(n, l3)?;
        let (w, rest) = wb.split_at(cols);
        let (b, bias) = rest.split_at(cols);
        let mut y = vec![0f32; x.len()];
        fused::layer_norm(x, bias, r, w, b, self.eps, &mut y).map_err(kernel)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        r: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let wb = wb.detach();
        let mut z = (x.detach() + r.detach())?;
        if wb.dim(0)? == 3 {
            z = z.broadcast_add(&wb.get(2)?)?;
        }
        let (dz, dw, db) = layer_norm_grads(&z, &wb.get(0)?, grad, self.eps)?;
        let mut rows = vec![dw, db];
        if wb.dim(0)? == 3 {
            rows.push(dz.reshape(((), wb.dim(1)?))?.sum(0)?);
        }
        Ok((Some(dz.clone()), Some(dz), Some(Tensor::stack(&rows, 0)?)))
    }
}

/// `(z, w, dy) -> [dz rows; dw; db]` of layer norm, one `(rows + 2, H)` tensor.
struct LayerNormBackward {
    eps: f32,
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "fused-layer-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let (z, w, dy) = (slice(n, s1, l1)?, slice(n, s2, l2)?, slice(n, s3, l3)?);
        let cols = w.len();
        let mut out = vec![0f32; z.len() + 2 * cols];
        let (dz, dwb) = out.split_at_mut(z.len());
        let sums = fused::layer_norm_backward(z, w, dy, self.eps, dz).map_err(kernel)?;
        dwb.copy_from_slice(&sums);
        Ok((
            CpuStorage::F32(out),
            Shape::from((z.len() / cols + 2, cols)),
        ))
    }
}

/// The gradients of `z`, `w` and `b` from one backward kernel.
fn layer_norm_grads(
    z: &Tensor,
    w: &Tensor,
    grad: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let cols = w.elem_count();
    let rows = z.elem_count() / cols.max(1);
    let packed = z.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &grad.contiguous()?,
        &LayerNormBackward { eps },
    )?;
    Ok((
        packed.narrow(0, 0, rows)?.reshape(z.shape())?,
        packed.narrow(0, rows, 1)?.reshape(cols)?,
        packed.narrow(0, rows + 1, 1)?.reshape(cols)?,
    ))
}

/// Layer norm over the last dimension (biased variance, as BERT's).
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LayerNorm { eps: eps as f32 },
    )
}

/// `layer_norm(x + bias + residual)`: the post-LN residual block in one pass, with the bias of
/// the dense layer that made `x` folded in when given.
pub(crate) fn add_layer_norm(
    x: &Tensor,
    bias: Option<&Tensor>,
    residual: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let wb = match bias {
        None => Tensor::stack(&[w, b], 0)?,
        Some(bias) => Tensor::stack(&[w, b, bias], 0)?,
    };
    x.contiguous()?.apply_op3(
        &residual.contiguous()?,
        &wb,
        AddLayerNorm { eps: eps as f32 },
    )
}

#[cfg(test)]
mod tests;
