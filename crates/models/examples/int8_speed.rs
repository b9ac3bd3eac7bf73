//! Speed of the int8 matmul (`taxon_kernels::int8`, the kernel of `taxon model optimize
//! --int8`) against candle's f32 matmul on the dense shapes of MiniLM at batch 32 x 128 tokens.
//!
//!     RAYON_NUM_THREADS=1 cargo run --release -p taxon-models --example int8_speed [-- --reps 5] [--no-portable]
//!
//! Prints the median milliseconds of each and the ratio; the int8 time includes quantizing the
//! activations (as in the model's forward pass).

use std::time::Instant;

use candle_core::{Device, Tensor};
use taxon_kernels::int8::{self, Isa, PackedWeights};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(5), |s| s.parse())?;
    let no_portable = args.iter().any(|a| a == "--no-portable");
    println!(
        "int8 kernel: {:?}; rayon threads {}; {reps} reps",
        Isa::best(),
        rayon::current_num_threads()
    );
    println!(
        "| N x in -> out | quantize ms | f32 candle ms | int8 ms | int8 GMAC/s | int8 portable ms | speedup |"
    );
    println!("|---|---|---|---|---|---|---|");
    // FFN in, FFN out, attention output, the stacked Q/K/V; a group of 512 rows (what the
    // model runs per thread) and one text.
    for (n, inp, out) in [
        (4096, 384, 1536),
        (4096, 1536, 384),
        (4096, 384, 384),
        (4096, 384, 1152),
        (512, 384, 1536),
        (512, 1536, 384),
        (128, 384, 1536),
    ] {
        let x = values(n * inp, 1);
        let w = values(out * inp, 2);
        let bias = values(out, 3);
        let xt = Tensor::from_vec(x.clone(), (n, inp), &Device::Cpu)?;
        let wt = Tensor::from_vec(w.clone(), (out, inp), &Device::Cpu)?;
        let bt = Tensor::from_vec(bias.clone(), out, &Device::Cpu)?;
        let time = |f: &mut dyn FnMut()| -> f64 {
            f();
            median(
                (0..reps)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .collect(),
            )
        };
        let f32_ms = time(&mut || {
            let y = xt
                .matmul(&wt.t().unwrap())
                .unwrap()
                .broadcast_add(&bt)
                .unwrap();
            std::hint::black_box(y);
        });
        let packed = PackedWeights::quantize(&w, out, inp)?;
        let mut y = vec![0f32; n * out];
        let i8_ms = time(&mut || {
            int8::matmul(&x, n, &packed, Some(&bias), &mut y).unwrap();
            std::hint::black_box(&y);
        });
        let portable_ms = if no_portable {
            f64::NAN
        } else {
            time(&mut || {
                int8::matmul_on(Isa::Portable, &x, n, &packed, Some(&bias), &mut y).unwrap();
                std::hint::black_box(&y);
            })
        };
        let quant_ms = time(&mut || {
            std::hint::black_box(int8::QuantizedRows::quantize(&x, n, inp).unwrap());
        });
        let gmacs = (n * inp * out) as f64 / (i8_ms * 1e6);
        println!(
            "| {n} x {inp} -> {out} | {quant_ms:.2} | {f32_ms:.2} | {i8_ms:.2} | {gmacs:.0} | {portable_ms:.2} | {:.2}x |",
            f32_ms / i8_ms
        );
    }
    Ok(())
}
