//! Speed of the fused GELU and softmax kernels on the shapes of MiniLM's inference: GELU on
//! rows of 1536 (the FFN) with a bias row, softmax on attention score rows of 27 (a served
//! sentence) and 128 tokens, at the process's kernel level (`TAXON_KERNELS` picks one):
//!
//!     for l in avx512 avx2 portable; do TAXON_KERNELS=$l RAYON_NUM_THREADS=1 taskset -c 1 \
//!         cargo run --release -q -p taxon-kernels --example fused_speed [-- REPS]; done
//!
//! Prints nanoseconds per element, the best of REPS (default 9) timed loops of about 50 M
//! elements each. Run with one thread: the kernels split big inputs over rayon's pool.

use std::time::Instant;

use taxon_kernels::{fused, paths};

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 200.0 - 2.5)
        .collect()
}

/// Nanoseconds per element of `f`, which handles `n` elements per call.
fn ns_per_element(n: usize, mut f: impl FnMut()) -> f64 {
    let iters = (50_000_000 / n).max(3);
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_secs_f64() * 1e9 / (iters * n) as f64
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(9);
    let shapes: [(&str, usize, usize); 3] = [
        ("gelu 512 x 1536 + bias", 512, 1536),
        ("softmax 512 x 27", 512, 27),
        ("softmax 512 x 128", 512, 128),
    ];
    println!(
        "{}; rayon threads {}; best of {reps}",
        paths(),
        rayon::current_num_threads()
    );
    println!("| kernel, shape | ns/element |\n|---|---:|");
    for (name, rows, cols) in shapes {
        let n = rows * cols;
        let x = values(n);
        let bias = values(cols);
        let mut y = vec![0f32; n];
        let best = (0..reps)
            .map(|_| {
                ns_per_element(n, || {
                    if name.starts_with("gelu") {
                        fused::gelu(&x, &bias, &mut y).expect("shapes match");
                    } else {
                        fused::softmax(&x, &[], cols, 0.17, &mut y).expect("shapes match");
                    }
                })
            })
            .fold(f64::MAX, f64::min);
        println!("| {name} | {best:.3} |");
    }
}
