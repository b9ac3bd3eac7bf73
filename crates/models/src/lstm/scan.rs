//! The LSTM recurrence over a whole sequence as one candle op, with its own backward pass
//! (back-propagation through time).
//!
//! Why an op: written step by step with candle tensors, the recurrence reads one time step of the
//! input projection per step (`narrow`), and candle's backward of `narrow` pads the step's
//! gradient with zeros to the full `(T, B, 4H)` size, so a sequence of T steps costs O(T^2)
//! memory traffic in the backward pass (and the same holds for `index_select` of per-step
//! embeddings). Here the forward pass runs the steps on plain (untracked) tensors, and the
//! backward pass recomputes the gates of all steps with one batched matmul, then walks the steps
//! backwards with O(T) work. `tests` checks the result against candle's autograd on the
//! step-by-step cell.
//!
//! Shapes (K independent recurrences, here the two directions of a BiLSTM, batched together):
//! input `x` = the input projections with both biases, `(K, T, B, 4H)`, gates in PyTorch's order
//! (input, forget, cell, output); `w` = the recurrent weights transposed, `(K, H, 4H)`; output
//! `(K, T, B, 2H)`: the hidden state `h_t` then the cell state `c_t` of every step (`c` is kept
//! so the backward pass needs no second forward walk).

use candle_core::{CpuStorage, CustomOp2, Device, Layout, Result, Shape, Tensor};
use candle_nn::ops::sigmoid;

/// The op; apply with `x.apply_op2(&w, LstmScan)`.
pub(crate) struct LstmScan;

fn cpu_tensor(s: &CpuStorage, l: &Layout) -> Result<Tensor> {
    let data = s.as_slice::<f32>()?;
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("lstm scan: inputs must be contiguous".into()))?;
    Tensor::from_slice(&data[a..b], l.shape(), &Device::Cpu)
}

impl CustomOp2 for LstmScan {
    fn name(&self) -> &'static str {
        "lstm-scan"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = forward(&cpu_tensor(s1, l1)?, &cpu_tensor(s2, l2)?)?;
        let shape = out.shape().clone();
        Ok((CpuStorage::F32(out.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = backward(&x.detach(), &w.detach(), &res.detach(), &grad.detach())?;
        Ok((Some(dx), Some(dw)))
    }
}

fn dims(x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize, usize)> {
    let (k, t, b, h4) = x.dims4()?;
    let (wk, wh, wh4) = w.dims3()?;
    if h4 % 4 != 0 || wk != k || wh4 != h4 || wh * 4 != h4 || t == 0 {
        return Err(candle_core::Error::Msg(format!(
            "lstm scan: shapes x {:?} and w {:?} do not agree",
            x.dims(),
            w.dims()
        )));
    }
    Ok((k, t, b, h4 / 4))
}

/// The time step `t` of a `(K, T, ...)` tensor.
fn step(x: &Tensor, t: usize) -> Result<Tensor> {
    x.narrow(1, t, 1)?.squeeze(1)
}

/// Runs the recurrence from zero states; returns `(K, T, B, 2H)`.
pub(crate) fn forward(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (k, t, b, h) = dims(x, w)?;
    let mut hs = Tensor::zeros((k, b, h), x.dtype(), x.device())?;
    let mut cs = hs.clone();
    let mut outs = Vec::with_capacity(t);
    for s in 0..t {
        let pre = (step(x, s)? + hs.matmul(w)?)?;
        (hs, cs) = cell(&pre, &cs, h)?;
        outs.push(Tensor::cat(&[&hs, &cs], 2)?);
    }
    Tensor::stack(&outs, 1)
}

/// One LSTM step from the gate pre-activations `pre` (`(..., 4H)`) and the previous cell
/// state: `c = f*c_prev + i*g`, `h = o*tanh(c)`. Returns `(h, c)`.
pub(crate) fn cell(pre: &Tensor, c_prev: &Tensor, h: usize) -> Result<(Tensor, Tensor)> {
    let last = pre.rank() - 1;
    let s = sigmoid(pre)?;
    let i = s.narrow(last, 0, h)?;
    let f = s.narrow(last, h, h)?;
    let o = s.narrow(last, 3 * h, h)?;
    let g = pre.narrow(last, 2 * h, h)?.tanh()?;
    let c = ((f * c_prev)? + (i * g)?)?;
    let hn = (o * c.tanh()?)?;
    Ok((hn, c))
}

/// The states before each step: zeros, then the states of steps `0..T-1`.
fn shifted(states: &Tensor) -> Result<Tensor> {
    let (k, t, b, h) = states.dims4()?;
    let zeros = Tensor::zeros((k, 1, b, h), states.dtype(), states.device())?;
    if t == 1 {
        return Ok(zeros);
    }
    Tensor::cat(&[&zeros, &states.narrow(1, 0, t - 1)?], 1)
}

/// Gradients of `x` and `w` given the op's result `res` and the gradient `grad` of the result.
pub(crate) fn backward(
    x: &Tensor,
    w: &Tensor,
    res: &Tensor,
    grad: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (k, t, b, h) = dims(x, w)?;
    let hs = res.narrow(3, 0, h)?;
    let cs = res.narrow(3, h, h)?;
    let h_prev = shifted(&hs.contiguous()?)?;
    let c_prev = shifted(&cs.contiguous()?)?;
    // Gates of every step at once, from the known previous hidden states.
    let pre = (x + h_prev
        .reshape((k, t * b, h))?
        .matmul(w)?
        .reshape((k, t, b, 4 * h))?)?;
    let s = sigmoid(&pre)?;
    let i = s.narrow(3, 0, h)?;
    let f = s.narrow(3, h, h)?.contiguous()?;
    let o = s.narrow(3, 3 * h, h)?;
    let g = pre.narrow(3, 2 * h, h)?.tanh()?;
    let tc = cs.tanh()?;
    let one_minus = |v: &Tensor| v.affine(-1.0, 1.0);
    // d c_t += d h_t * o * (1 - tanh(c)^2)
    let a = (&o * one_minus(&tc.sqr()?)?)?.contiguous()?;
    // d pre = [dc * g*i(1-i), dc * c_prev*f(1-f), dc * i(1-g^2), dh * tanh(c)*o(1-o)]
    let p = Tensor::cat(
        &[
            (&g * (&i * one_minus(&i)?)?)?,
            (&c_prev * (&f * one_minus(&f)?)?)?,
            (&i * one_minus(&g.sqr()?)?)?,
            (&tc * (&o * one_minus(&o)?)?)?,
        ],
        3,
    )?;
    let dh_out = grad.narrow(3, 0, h)?.contiguous()?;
    let dc_out = grad.narrow(3, h, h)?.contiguous()?;
    let wt = w.transpose(1, 2)?.contiguous()?;
    let mut dh_next = Tensor::zeros((k, b, h), x.dtype(), x.device())?;
    let mut dc_next = dh_next.clone();
    let mut dpre = vec![None; t];
    for s in (0..t).rev() {
        let dh = (step(&dh_out, s)? + &dh_next)?;
        let dc = ((step(&dc_out, s)? + &dc_next)? + (&dh * step(&a, s)?)?)?;
        let m = Tensor::cat(&[&dc, &dc, &dc, &dh], 2)?;
        let d = (m * step(&p, s)?)?;
        dh_next = d.matmul(&wt)?;
        dc_next = (dc * step(&f, s)?)?;
        dpre[s] = Some(d);
    }
    let dpre: Vec<Tensor> = dpre.into_iter().flatten().collect();
    let dx = Tensor::stack(&dpre, 1)?;
    let dw = h_prev
        .reshape((k, t * b, h))?
        .transpose(1, 2)?
        .matmul(&dx.reshape((k, t * b, 4 * h))?)?;
    Ok((dx, dw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    fn rand(shape: &[usize], seed: u64, scale: f32) -> Tensor {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| (rng.next_f32() * 2.0 - 1.0) * scale)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The scan's forward and backward agree with candle's autograd through the step-by-step
    /// cell (the reference implementation), for both the hidden and the cell outputs.
    #[test]
    fn scan_gradients_match_autograd_of_the_step_by_step_cell() {
        let (k, t, b, h) = (2, 5, 3, 4);
        let x = Var::from_tensor(&rand(&[k, t, b, 4 * h], 1, 1.0)).unwrap();
        let w = Var::from_tensor(&rand(&[k, h, 4 * h], 2, 0.5)).unwrap();
        let coef = rand(&[k, t, b, 2 * h], 3, 1.0);

        // Reference: per-step candle ops, differentiated by candle.
        let mut hs = Tensor::zeros((k, b, h), DType::F32, &Device::Cpu).unwrap();
        let mut cs = hs.clone();
        let mut outs = Vec::new();
        for s in 0..t {
            let pre =
                (step(x.as_tensor(), s).unwrap() + hs.matmul(w.as_tensor()).unwrap()).unwrap();
            (hs, cs) = cell(&pre, &cs, h).unwrap();
            outs.push(Tensor::cat(&[&hs, &cs], 2).unwrap());
        }
        let reference = Tensor::stack(&outs, 1).unwrap();
        let loss = (&reference * &coef).unwrap().sum_all().unwrap();
        let g_ref = loss.backward().unwrap();

        let out = x.as_tensor().apply_op2(w.as_tensor(), LstmScan).unwrap();
        assert!(max_abs_diff(&out, &reference) < 1e-5);
        let loss = (&out * &coef).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        for (name, var) in [("x", &x), ("w", &w)] {
            let a = g.get(var.as_tensor()).expect(name);
            let r = g_ref.get(var.as_tensor()).expect(name);
            let diff = max_abs_diff(a, r);
            assert!(diff < 1e-4, "gradient of {name} differs by {diff}");
            let norm = r
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 1e-6, "reference gradient of {name} is zero");
        }
    }

    #[test]
    fn single_step_sequences_work() {
        let x = rand(&[2, 1, 2, 8], 4, 1.0);
        let w = rand(&[2, 2, 8], 5, 1.0);
        let out = x.apply_op2(&w, LstmScan).unwrap();
        assert_eq!(out.dims(), &[2, 1, 2, 4]);
        let (dx, dw) = backward(&x, &w, &out, &out.ones_like().unwrap()).unwrap();
        assert_eq!(dx.dims(), x.dims());
        assert_eq!(dw.dims(), w.dims());
    }
}
