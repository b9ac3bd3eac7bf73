//! int8 linear layers of an optimized bert model (`taxon model optimize --int8`): the encoder's
//! dense weights (Q, K, V, attention output, FFN in and out of every layer; not the embeddings,
//! not the classifier head) as symmetric per-output-channel int8, applied by
//! `taxon_kernels::int8` (AVX-512 VNNI, AVX2 or portable, whichever the process's kernel level
//! runs; the same results on each) with activations quantized per row on the fly.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Storage, Tensor};
use taxon_kernels::int8::{self, PackedWeights};

use super::config::EncoderConfig;
use super::encoder::{PER_LAYER, embedding_count};

/// Offsets, within one encoder layer's tensors, of the dense weights that can be quantized and
/// pruned (each followed by its bias): Q, K, V, attention output, FFN in, FFN out.
const DENSE_IN_LAYER: [usize; 6] = [0, 2, 4, 6, 10, 12];

/// Indices (into `Net::tensors`) of every encoder dense weight, layer by layer.
pub(crate) fn dense_weight_indices(cfg: &EncoderConfig) -> Vec<usize> {
    let first = embedding_count(cfg);
    (0..cfg.layers)
        .flat_map(|l| {
            DENSE_IN_LAYER
                .iter()
                .map(move |k| first + l * PER_LAYER + k)
        })
        .collect()
}

/// One quantized `x W^T + b` layer: the packed int8 weight and its per-output scales.
#[derive(Clone, Debug)]
pub(crate) struct Int8Linear {
    pub(crate) packed: PackedWeights,
}

fn kernel_err(e: int8::Int8Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("int8 matmul: {e}"))
}

impl Int8Linear {
    /// Quantizes the f32 weight `w` of shape `(out, in)`.
    pub(crate) fn quantize(w: &Tensor) -> Result<Self> {
        let (out, inp) = w.dims2()?;
        let data = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let packed = PackedWeights::quantize(&data, out, inp).map_err(kernel_err)?;
        Ok(Self { packed })
    }

    /// A layer from stored int8 weights (row-major `(out, in)`) and their scales.
    pub(crate) fn from_int8(
        q: &[i8],
        scales: &[f32],
        out: usize,
        inp: usize,
    ) -> std::result::Result<Self, int8::Int8Error> {
        Ok(Self {
            packed: PackedWeights::from_int8(q, scales, out, inp)?,
        })
    }

    /// `x W^T + b` for `x` of shape `(N, in)`.
    pub(crate) fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (n, inp) = x.dims2()?;
        if inp != self.packed.inp() {
            return Err(candle_core::Error::Msg(format!(
                "int8 linear: input width {inp}, the layer takes {}",
                self.packed.inp()
            )));
        }
        let bias = bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let mut y = vec![0f32; n * self.packed.out()];
        {
            let (storage, layout) = x.storage_and_layout();
            let Storage::Cpu(cpu) = &*storage else {
                return Err(candle_core::Error::Msg(
                    "int8 linear runs on the CPU only".into(),
                ));
            };
            let start = layout.start_offset();
            let xs = &cpu.as_slice::<f32>()?[start..start + n * inp];
            int8::matmul(xs, n, &self.packed, Some(&bias), &mut y).map_err(kernel_err)?;
        }
        Tensor::from_vec(y, (n, self.packed.out()), &Device::Cpu)
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

    /// Quantizes the encoder dense weights among `tensors` (f32, in `names` order).
    pub(crate) fn quantize(tensors: &[Tensor], cfg: &EncoderConfig) -> Result<Self> {
        let layers = dense_weight_indices(cfg)
            .into_iter()
            .map(|i| Ok((i, Int8Linear::quantize(&tensors[i])?)))
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }
}

/// What an int8 layer keeps in `Net::tensors` in place of its f32 weight (never read: the
/// forward pass uses the int8 layer), so the network does not hold both.
pub(crate) fn placeholder() -> Result<Tensor> {
    Tensor::zeros(0, DType::F32, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_linear_is_close_to_the_f32_linear() {
        let dev = Device::Cpu;
        let (n, inp, out) = (5, 70, 19);
        let vals = |len: usize, k: f32| -> Vec<f32> {
            (0..len).map(|i| (i as f32 * k).sin() * 0.8).collect()
        };
        let x = Tensor::from_vec(vals(n * inp, 0.37), (n, inp), &dev).unwrap();
        let w = Tensor::from_vec(vals(out * inp, 0.11), (out, inp), &dev).unwrap();
        let b = Tensor::from_vec(vals(out, 1.3), out, &dev).unwrap();
        let exact = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let q = Int8Linear::quantize(&w).unwrap();
        // A strided (transposed twice, non-contiguous) input gives the same answer.
        let xt = x.t().unwrap().contiguous().unwrap().t().unwrap();
        let got = q
            .forward(&xt, &b)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let scale = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (e, g) in exact.iter().zip(&got) {
            assert!((e - g).abs() < 0.02 * scale, "{e} vs {g}");
        }
        let narrow = x.narrow(1, 0, inp - 1).unwrap();
        assert!(q.forward(&narrow, &b).is_err(), "wrong input width");
    }
}
