//! Speed of the int8 matmul (`taxon_kernels::int8`, the kernel of `taxon model optimize
//! --int8`) against the f32 product the model's inference runs (`taxon_kernels::matmul`), at
//! every kernel level this CPU supports, on the dense shapes of MiniLM at batch 32 x 128
//! tokens, one text, and the groups of 512 rows the model runs per thread.
//!
//!     RAYON_NUM_THREADS=1 taskset -c 1 cargo run --release -p taxon-models --example int8_speed \
//!         [-- --reps 5] [--levels avx512,avx2,portable]
//!
//! Per shape and level (`avx512`: the VNNI kernel where the CPU has it; `avx2`: the AVX2 kernel
//! and gemm's AVX2 + FMA f32 kernels, what an AVX2-only CPU runs; `portable`: the int8 products
//! through gemm's f32 kernels of the target's baseline, scalar on x86-64), the median
//! milliseconds of f32 and int8 and their GMAC/s, the levels alternating within each repeat
//! so a changing machine load hits them alike. Times are the thread's CPU time where Linux
//! reports it (a core shared with other work does not inflate them), else wall time, over
//! samples of about 150 ms; run with one thread. The int8 time includes quantizing the
//! activations (as in the model's forward pass). The weights are drawn from a normal
//! distribution, like trained ones (the kernels' speed does not depend on the values).

use std::time::Instant;

use taxon_kernels::Level;
use taxon_kernels::int8::{self, Isa, PackedWeights};
use taxon_kernels::matmul::{View, ViewMut, matmul_at};

/// Milliseconds of CPU this thread has run (Linux: `/proc/thread-self/schedstat`, in ns), so
/// that time the scheduler gives other processes on a shared core does not count; wall time
/// elsewhere.
fn thread_ms(start: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or_else(|| start.elapsed().as_secs_f64() * 1e3, |ns| ns / 1e6)
}

/// Milliseconds per call of `f`, called `iters` times: thread CPU time where the system tells
/// it (often in scheduler ticks of a few ms, hence the repeats), else wall time.
fn timed(iters: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let before = thread_ms(start);
    for _ in 0..iters {
        f();
    }
    (thread_ms(start) - before) / iters as f64
}

/// Calls per sample so that one sample lasts about 150 ms (from one timed call).
fn iters_for(ms: f64) -> usize {
    ((150.0 / ms.max(0.01)).ceil() as usize).clamp(1, 10_000)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Deterministic values, roughly normal (the sum of four uniforms, scaled), with `scale`.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|_| (next() + next() + next() + next()) * scale * 1.7)
        .collect()
}

/// `/proc/cpuinfo`'s SIMD flags that matter here (Linux; empty elsewhere).
fn cpu_flags() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let flags = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| {
            l.split_whitespace()
                .filter(|f| {
                    [
                        "avx2",
                        "fma",
                        "avx512f",
                        "avx512bw",
                        "avx512_vnni",
                        "avx_vnni",
                    ]
                    .contains(f)
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    format!("{model} ({flags})")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let reps: usize = flag("--reps").map_or(Ok(5), |s| s.parse())?;
    let levels: Vec<Level> = match flag("--levels") {
        Some(list) => list
            .split(',')
            .map(Level::checked)
            .collect::<Result<_, _>>()?,
        None => Level::supported_levels().into_iter().rev().collect(),
    };
    println!(
        "{}; rayon threads {}; {reps} reps, medians",
        cpu_flags(),
        rayon::current_num_threads()
    );
    print!("| N x in -> out |");
    for l in &levels {
        print!(
            " {l}: f32 ({}) ms | int8 ({}) ms | int8 GMAC/s | int8 speedup |",
            taxon_kernels::matmul::path_at(*l),
            Isa::at(*l)
        );
    }
    println!();
    println!("|---|{}", "---|---|---|---|".repeat(levels.len()));
    let threads = rayon::current_num_threads();
    for (n, inp, out) in [
        (4096, 384, 1536),
        (4096, 1536, 384),
        (4096, 384, 384),
        (4096, 384, 1152),
        (512, 384, 1536),
        (512, 1536, 384),
        (128, 384, 1536),
        (128, 1536, 384),
    ] {
        let x = values(n * inp, 1, 1.0);
        let w = values(out * inp, 2, 0.05);
        let bias = values(out, 3, 0.1);
        // W^T row-major (in, out), as the model's f32 inference path keeps it.
        let mut wt = vec![0f32; inp * out];
        for o in 0..out {
            for k in 0..inp {
                wt[k * out + o] = w[o * inp + k];
            }
        }
        let packed = PackedWeights::quantize(&w, out, inp)?;
        let mut y = vec![0f32; n * out];
        let mut f32_ms = vec![Vec::new(); levels.len()];
        let mut i8_ms = vec![Vec::new(); levels.len()];
        // One round that sizes the samples (and builds each path's weight form on first use),
        // then `reps` rounds.
        let mut iters = vec![(1, 1); levels.len()];
        for rep in 0..=reps {
            for (li, &level) in levels.iter().enumerate() {
                let f = timed(iters[li].0, || {
                    for row in y.chunks_exact_mut(out) {
                        row.copy_from_slice(&bias);
                    }
                    let dst = ViewMut {
                        data: &mut y,
                        offset: 0,
                        rows: n,
                        cols: out,
                        row_stride: out,
                    };
                    let r = matmul_at(
                        level,
                        dst,
                        View::rows(&x, 0, n, inp, inp),
                        View::rows(&wt, 0, inp, out, out),
                        1.0,
                        true,
                        threads,
                    );
                    std::hint::black_box(r.map(|_| &y).ok());
                });
                let q = timed(iters[li].1, || {
                    let r = int8::matmul_on(Isa::at(level), &x, n, &packed, Some(&bias), &mut y);
                    std::hint::black_box(r.map(|_| &y).ok());
                });
                if rep == 0 {
                    let wall = |g: &mut dyn FnMut()| {
                        let t = Instant::now();
                        g();
                        t.elapsed().as_secs_f64() * 1e3
                    };
                    // Size from wall time: the first CPU-time reading may be a tick of 0.
                    let fw = wall(&mut || {
                        let dst = ViewMut {
                            data: &mut y,
                            offset: 0,
                            rows: n,
                            cols: out,
                            row_stride: out,
                        };
                        let r = matmul_at(
                            level,
                            dst,
                            View::rows(&x, 0, n, inp, inp),
                            View::rows(&wt, 0, inp, out, out),
                            1.0,
                            false,
                            threads,
                        );
                        std::hint::black_box(r.ok());
                    });
                    let qw = wall(&mut || {
                        let r = int8::matmul_on(Isa::at(level), &x, n, &packed, None, &mut y);
                        std::hint::black_box(r.ok());
                    });
                    iters[li] = (iters_for(fw), iters_for(qw));
                } else {
                    f32_ms[li].push(f);
                    i8_ms[li].push(q);
                }
            }
        }
        print!("| {n} x {inp} -> {out} |");
        for li in 0..levels.len() {
            let (f, q) = (median(f32_ms[li].clone()), median(i8_ms[li].clone()));
            let gmacs = (n * inp * out) as f64 / (q * 1e6);
            print!(" {f:.2} | {q:.2} | {gmacs:.0} | {:.2}x |", f / q);
        }
        println!();
    }
    Ok(())
}
