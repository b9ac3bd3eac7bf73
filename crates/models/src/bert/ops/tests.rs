//! The fused ops against the primitive-op versions (forward, and backward through candle's
//! autograd) and against finite differences.

use candle_core::{Device, Tensor, Var};

use super::*;
use crate::bert::encoder;

fn rand(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let n = shape.iter().product();
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

/// Gradients of `sum(f(inputs) * coef)` with respect to each input.
fn grads_of(f: &dyn Fn(&[Tensor]) -> Tensor, inputs: &[Tensor], coef: &Tensor) -> Vec<Tensor> {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let loss = (f(&ts) * coef).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    ts.iter().map(|t| g.get(t).unwrap().clone()).collect()
}

/// Checks a few entries of `analytic` (the gradient of input `which`) against central
/// differences of `sum(f(inputs) * coef)` in f32.
fn check_fd(
    f: &dyn Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    coef: &Tensor,
    which: usize,
    analytic: &Tensor,
    tol: f32,
) {
    let base: Vec<f32> = inputs[which].flatten_all().unwrap().to_vec1().unwrap();
    let g: Vec<f32> = analytic.flatten_all().unwrap().to_vec1().unwrap();
    let loss = |v: Vec<f32>| -> f32 {
        let mut ins = inputs.to_vec();
        ins[which] = Tensor::from_vec(v, inputs[which].shape(), &Device::Cpu).unwrap();
        (f(&ins) * coef)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let h = 1e-2f32;
    for i in (0..base.len()).step_by((base.len() / 12).max(1)) {
        let (mut up, mut down) = (base.clone(), base.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (loss(up) - loss(down)) / (2.0 * h);
        assert!(
            (numeric - g[i]).abs() < tol * (1.0 + numeric.abs()),
            "input {which}[{i}]: finite difference {numeric} vs {}",
            g[i]
        );
    }
}

#[test]
fn gelu_matches_candle_gelu_erf_forward_and_backward() {
    let x = rand(&[7, 33], 1, 5.0);
    let coef = rand(&[7, 33], 2, 1.0);
    assert!(max_abs_diff(&gelu(&x, None).unwrap(), &x.gelu_erf().unwrap()) < 1e-6);
    let fused = grads_of(
        &|t| gelu(&t[0], None).unwrap(),
        std::slice::from_ref(&x),
        &coef,
    );
    let prim = grads_of(
        &|t| t[0].gelu_erf().unwrap(),
        std::slice::from_ref(&x),
        &coef,
    );
    assert!(max_abs_diff(&fused[0], &prim[0]) < 1e-5);
    check_fd(
        &|t| gelu(&t[0], None).unwrap(),
        &[x],
        &coef,
        0,
        &fused[0],
        2e-3,
    );
}

fn reference_attention_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Tensor {
    let (b, _, _, t) = scores.dims4().unwrap();
    let z = (scores * scale)
        .unwrap()
        .broadcast_add(&bias.reshape((b, 1, 1, t)).unwrap())
        .unwrap();
    encoder::softmax(&z).unwrap()
}

#[test]
fn attention_softmax_matches_the_primitive_ops_forward_and_backward() {
    let scores = rand(&[2, 3, 5, 6], 3, 4.0);
    let mask = Tensor::new(
        &[[1f32, 1., 1., 1., 0., 0.], [1., 1., 1., 1., 1., 1.]],
        &Device::Cpu,
    )
    .unwrap();
    let bias = mask.affine(1e4, -1e4).unwrap();
    let coef = rand(&[2, 3, 5, 6], 4, 1.0);
    let scale = 0.35;
    let fused = attention_softmax(&scores, &bias, scale).unwrap();
    let prim = reference_attention_softmax(&scores, &bias, scale);
    assert!(max_abs_diff(&fused, &prim) < 1e-6);
    let f = |t: &[Tensor]| attention_softmax(&t[0], &bias, scale).unwrap();
    let gf = grads_of(&f, std::slice::from_ref(&scores), &coef);
    let gp = grads_of(
        &|t| reference_attention_softmax(&t[0], &bias, scale),
        std::slice::from_ref(&scores),
        &coef,
    );
    assert!(max_abs_diff(&gf[0], &gp[0]) < 1e-5);
    check_fd(&f, &[scores], &coef, 0, &gf[0], 2e-3);
}

#[test]
fn layer_norm_matches_the_primitive_ops_forward_and_backward() {
    let x = rand(&[2, 5, 24], 5, 3.0);
    let w = rand(&[24], 6, 1.5);
    let b = rand(&[24], 7, 0.5);
    let coef = rand(&[2, 5, 24], 8, 1.0);
    let eps = 1e-5;
    let fused = layer_norm(&x, &w, &b, eps).unwrap();
    assert!(max_abs_diff(&fused, &encoder::layer_norm(&x, &w, &b, eps).unwrap()) < 1e-5);
    let f = |t: &[Tensor]| layer_norm(&t[0], &t[1], &t[2], eps).unwrap();
    let inputs = [x, w, b];
    let gf = grads_of(&f, &inputs, &coef);
    let gp = grads_of(
        &|t| encoder::layer_norm(&t[0], &t[1], &t[2], eps).unwrap(),
        &inputs,
        &coef,
    );
    for (i, (a, p)) in gf.iter().zip(&gp).enumerate() {
        assert!(max_abs_diff(a, p) < 1e-4, "input {i}");
        check_fd(&f, &inputs, &coef, i, a, 5e-3);
    }
}

#[test]
fn add_layer_norm_matches_add_then_layer_norm_forward_and_backward() {
    let x = rand(&[9, 40], 9, 2.0);
    let r = rand(&[9, 40], 10, 2.0);
    let w = rand(&[40], 11, 1.5);
    let b = rand(&[40], 12, 0.5);
    let coef = rand(&[9, 40], 13, 1.0);
    let eps = 1e-12;
    let f = |t: &[Tensor]| add_layer_norm(&t[0], None, &t[1], &t[2], &t[3], eps).unwrap();
    let p =
        |t: &[Tensor]| encoder::layer_norm(&(&t[0] + &t[1]).unwrap(), &t[2], &t[3], eps).unwrap();
    let inputs = [x, r, w, b];
    assert!(max_abs_diff(&f(&inputs), &p(&inputs)) < 1e-5);
    let gf = grads_of(&f, &inputs, &coef);
    let gp = grads_of(&p, &inputs, &coef);
    for (i, (a, q)) in gf.iter().zip(&gp).enumerate() {
        assert!(max_abs_diff(a, q) < 1e-4, "input {i}");
        check_fd(&f, &inputs, &coef, i, a, 5e-3);
    }
}

#[test]
fn bias_gelu_matches_gelu_of_the_broadcast_sum_forward_and_backward() {
    let x = rand(&[6, 10], 14, 3.0);
    let bias = rand(&[10], 15, 1.0);
    let coef = rand(&[6, 10], 16, 1.0);
    let f = |t: &[Tensor]| gelu(&t[0], Some(&t[1])).unwrap();
    let p = |t: &[Tensor]| t[0].broadcast_add(&t[1]).unwrap().gelu_erf().unwrap();
    let inputs = [x, bias];
    assert!(max_abs_diff(&f(&inputs), &p(&inputs)) < 1e-6);
    let (gf, gp) = (grads_of(&f, &inputs, &coef), grads_of(&p, &inputs, &coef));
    for (i, (a, q)) in gf.iter().zip(&gp).enumerate() {
        assert!(max_abs_diff(a, q) < 1e-4, "input {i}");
        check_fd(&f, &inputs, &coef, i, a, 2e-3);
    }
}

#[test]
fn add_layer_norm_with_a_dense_bias_matches_the_primitive_ops_forward_and_backward() {
    let x = rand(&[5, 16], 17, 2.0);
    let bias = rand(&[16], 18, 1.0);
    let r = rand(&[5, 16], 19, 2.0);
    let w = rand(&[16], 20, 1.5);
    let b = rand(&[16], 21, 0.5);
    let coef = rand(&[5, 16], 22, 1.0);
    let eps = 1e-12;
    let f = |t: &[Tensor]| add_layer_norm(&t[0], Some(&t[1]), &t[2], &t[3], &t[4], eps).unwrap();
    let p = |t: &[Tensor]| {
        let z = (t[0].broadcast_add(&t[1]).unwrap() + &t[2]).unwrap();
        encoder::layer_norm(&z, &t[3], &t[4], eps).unwrap()
    };
    let inputs = [x, bias, r, w, b];
    assert!(max_abs_diff(&f(&inputs), &p(&inputs)) < 1e-5);
    let (gf, gp) = (grads_of(&f, &inputs, &coef), grads_of(&p, &inputs, &coef));
    for (i, (a, q)) in gf.iter().zip(&gp).enumerate() {
        assert!(max_abs_diff(a, q) < 1e-4, "input {i}");
        check_fd(&f, &inputs, &coef, i, a, 5e-3);
    }
}

#[test]
fn dropout_gradient_goes_through_the_forward_mask() {
    let x = (rand(&[50, 40], 23, 1.0) + 2.0).unwrap(); // no zeros
    let coef = rand(&[50, 40], 24, 1.0);
    let f = |t: &[Tensor]| dropout(&t[0], 99, 0.2).unwrap();
    let y = f(std::slice::from_ref(&x));
    let g = grads_of(&f, std::slice::from_ref(&x), &coef);
    // d(sum(y * c))/dx = c * y / x: 0 where dropped, c / 0.8 where kept.
    let want = (&coef * (&y / &x).unwrap()).unwrap();
    assert!(max_abs_diff(&g[0], &want) < 1e-5);
    let kept = y
        .ne(0f32)
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap();
    let frac = kept.mean_all().unwrap().to_scalar::<f32>().unwrap();
    assert!((frac - 0.8).abs() < 0.05, "kept {frac}");
}

#[test]
fn non_f32_input_is_an_error_naming_the_op() {
    let x = Tensor::new(&[1f64, 2.0], &Device::Cpu).unwrap();
    let err = gelu(&x, None).unwrap_err().to_string();
    assert!(err.contains("fused-gelu") && err.contains("f32"), "{err}");
}
