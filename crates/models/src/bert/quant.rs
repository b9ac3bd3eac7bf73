//! int8 linear layers of an optimized bert model (`taxon model optimize --int8`): the encoder's
//! dense weights as symmetric per-output-channel int8, applied by `taxon_kernels::int8`.

use std::collections::HashMap;

use candle_core::{Device, Result, Tensor};

/// One quantized `x W^T + b` layer: `weight` is `(out, in)` int8 row-major, `scale[o]` maps
/// row `o` back to floats.
#[derive(Clone, Debug)]
pub(crate) struct Int8Linear {
    pub(crate) weight: Vec<i8>,
    pub(crate) scale: Vec<f32>,
    pub(crate) out: usize,
    pub(crate) inp: usize,
}

impl Int8Linear {
    /// `x W^T + b` for `x` of shape `(N, in)`.
    pub(crate) fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let mut y = vec![0f32; n * self.out];
        for r in 0..n {
            let row = &xs[r * self.inp..(r + 1) * self.inp];
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let xs_scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
            let q: Vec<i32> = row.iter().map(|v| (v / xs_scale).round() as i32).collect();
            for o in 0..self.out {
                let w = &self.weight[o * self.inp..(o + 1) * self.inp];
                let acc: i32 = q.iter().zip(w).map(|(a, b)| a * i32::from(*b)).sum();
                y[r * self.out + o] = acc as f32 * xs_scale * self.scale[o];
            }
        }
        Tensor::from_vec(y, (n, self.out), &Device::Cpu)?.broadcast_add(bias)
    }
}

/// The quantized layers of a network, by the index of their weight in `Net::tensors`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Int8Linears {
    pub(crate) layers: HashMap<usize, Int8Linear>,
}

impl Int8Linears {
    /// The quantized layer whose weight is tensor `index`, if that layer is quantized.
    pub(crate) fn get(&self, index: usize) -> Option<&Int8Linear> {
        self.layers.get(&index)
    }
}
