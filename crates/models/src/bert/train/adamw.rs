//! AdamW (Loshchilov & Hutter 2019) updating the weights in place: one fused pass per tensor
//! over the weight, its two moments and its gradient (`taxon_kernels::fused::adamw`), where
//! candle's `AdamW` runs a dozen tensor ops and allocates as many fresh tensors per weight, and
//! gradient clipping folded into the same pass (the gradients are read, never rescaled into
//! copies). The update is candle's `AdamW` formula; `tests` checks it against candle's.

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Error, InplaceOp2, Layout, Result, Storage, Tensor, Var};
use taxon_kernels::fused::{self, AdamWStep};

/// The two moments of one weight.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

/// One trained weight and its optimizer state.
struct Param {
    var: Var,
    weight_decay: f32,
    moments: Moments,
}

/// Hyper-parameters shared by every weight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hyper {
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
}

/// AdamW over a set of weights, each with its own weight decay.
pub(crate) struct FusedAdamW {
    params: Vec<Param>,
    hyper: Hyper,
    lr: f64,
    /// Steps taken (the bias corrections' exponent).
    t: u32,
}

/// The in-place update of one weight (the destination) from its gradient.
struct Update<'a> {
    moments: Mutex<&'a mut Moments>,
    step: AdamWStep,
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        return Err(Error::Msg(
            "fused adamw: expects f32 weights and gradients".into(),
        ));
    };
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| Error::Msg("fused adamw: expects contiguous tensors".into()))?;
    Ok(&data[a..b])
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let g = f32_slice(s2, l2)?;
        let CpuStorage::F32(data) = s1 else {
            return Err(Error::Msg("fused adamw: expects f32 weights".into()));
        };
        let (a, b) = l1
            .contiguous_offsets()
            .ok_or_else(|| Error::Msg("fused adamw: expects a contiguous weight".into()))?;
        let mut moments = self
            .moments
            .lock()
            .map_err(|_| Error::Msg("fused adamw: poisoned optimizer state".into()))?;
        let Moments { m, v } = &mut **moments;
        fused::adamw(&mut data[a..b], m, v, g, &self.step).map_err(|e| Error::Msg(e.to_string()))
    }
}

/// Sum of squares of a gradient, read in place.
fn sum_squares(g: &Tensor) -> Result<f64> {
    let (storage, layout) = g.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) if layout.is_contiguous() => {
            Ok(fused::sum_squares(f32_slice(cpu, layout)?))
        }
        _ => {
            drop(storage);
            let c = g.contiguous()?;
            sum_squares(&c)
        }
    }
}

impl FusedAdamW {
    /// `vars` with their weight decay; moments start at zero.
    pub(crate) fn new(vars: Vec<(Var, f64)>, lr: f64, hyper: Hyper) -> Self {
        let params = vars
            .into_iter()
            .map(|(var, wd)| {
                let n = var.elem_count();
                Param {
                    var,
                    weight_decay: wd as f32,
                    moments: Moments {
                        m: vec![0.0; n],
                        v: vec![0.0; n],
                    },
                }
            })
            .collect();
        Self {
            params,
            hyper,
            lr,
            t: 0,
        }
    }

    /// Sets the learning rate of the next steps.
    pub(crate) fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The global L2 norm of the gradients of every weight.
    pub(crate) fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sq = 0.0;
        for p in &self.params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                sq += sum_squares(g)?;
            }
        }
        Ok(sq.sqrt())
    }

    /// One step for every weight that has a gradient, the gradients scaled by `grad_scale`.
    pub(crate) fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<()> {
        self.t += 1;
        let t = self.t;
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let step = AdamWStep {
                lr: self.lr as f32,
                beta1: self.hyper.beta1 as f32,
                beta2: self.hyper.beta2 as f32,
                eps: self.hyper.eps as f32,
                weight_decay: p.weight_decay,
                t,
                grad_scale: grad_scale as f32,
            };
            let update = Update {
                moments: Mutex::new(&mut p.moments),
                step,
            };
            p.var.as_tensor().inplace_op2(&g.contiguous()?, &update)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

    fn rand(n: usize, seed: u64) -> Tensor {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let v: Vec<f32> = (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
        Tensor::from_vec(v, n, &Device::Cpu).unwrap()
    }

    #[test]
    fn fused_adamw_matches_candle_adamw_with_two_decay_groups() {
        let hyper = Hyper {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let (a, b) = (rand(1000, 1), rand(37, 2));
        let ours = [Var::from_tensor(&a).unwrap(), Var::from_tensor(&b).unwrap()];
        let theirs = [Var::from_tensor(&a).unwrap(), Var::from_tensor(&b).unwrap()];
        let mut opt = FusedAdamW::new(
            vec![(ours[0].clone(), 0.01), (ours[1].clone(), 0.0)],
            1e-3,
            hyper,
        );
        let params = |wd| ParamsAdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
        };
        let mut decay = AdamW::new(vec![theirs[0].clone()], params(0.01)).unwrap();
        let mut plain = AdamW::new(vec![theirs[1].clone()], params(0.0)).unwrap();
        for step in 0..4u64 {
            let loss = |v: &[Var; 2]| {
                let c = rand(1000, 10 + step);
                ((v[0].as_tensor() * &c).unwrap().sum_all().unwrap()
                    + v[1].as_tensor().sqr().unwrap().sum_all().unwrap())
                .unwrap()
            };
            let g_ours = loss(&ours).backward().unwrap();
            let g_theirs = loss(&theirs).backward().unwrap();
            let lr = 1e-3 * (step + 1) as f64;
            opt.set_learning_rate(lr);
            decay.set_learning_rate(lr);
            plain.set_learning_rate(lr);
            opt.step(&g_ours, 1.0).unwrap();
            decay.step(&g_theirs).unwrap();
            plain.step(&g_theirs).unwrap();
        }
        for (o, t) in ours.iter().zip(&theirs) {
            let d = (o.as_tensor() - t.as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-6, "max abs diff {d}");
        }
        // And the weights moved.
        let moved = (ours[0].as_tensor() - &a)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(moved.to_scalar::<f32>().unwrap() > 0.1);
    }

    #[test]
    fn grad_norm_and_scale_clip_like_rescaled_gradients() {
        let hyper = Hyper {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let x = rand(500, 3);
        let (v1, v2) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&x).unwrap());
        let g1 = (v1.as_tensor().sqr().unwrap().sum_all().unwrap() * 3.0)
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (v2.as_tensor().sqr().unwrap().sum_all().unwrap() * 1.5)
            .unwrap()
            .backward()
            .unwrap();
        let mut o1 = FusedAdamW::new(vec![(v1.clone(), 0.0)], 1e-2, hyper);
        let mut o2 = FusedAdamW::new(vec![(v2.clone(), 0.0)], 1e-2, hyper);
        let n1 = o1.grad_norm(&g1).unwrap();
        let want = (x
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64)
            .sqrt()
            * 6.0;
        assert!((n1 - want).abs() < 1e-4 * want, "{n1} vs {want}");
        // Half of gradient 1 is gradient 2: the same update. Two steps so that the scale
        // matters (Adam's first step is scale-free).
        o1.step(&g1, 0.5).unwrap();
        o2.step(&g2, 1.0).unwrap();
        let g1 = (v1.as_tensor().sqr().unwrap().sum_all().unwrap() * 3.0)
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (v2.as_tensor().sqr().unwrap().sum_all().unwrap() * 1.5)
            .unwrap()
            .backward()
            .unwrap();
        o1.step(&g1, 0.5).unwrap();
        o2.step(&g2, 1.0).unwrap();
        let d = (v1.as_tensor() - v2.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-7, "{d}");
    }
}
