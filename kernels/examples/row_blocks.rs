//! Channel-major linears at the encoder's shapes: one gemm call on gemm's own threads vs
//! [`gemm::linear_cm`]'s row blocks (one single-threaded gemm per block of `gemm::block_rows` rows, one block per
//! thread), interleaved, weights rotated through more matrices than the L3 holds (as in a forward pass). Median
//! GFLOP/s of each.
//!
//! `cargo run --release -p w2vbert-kernels --example row_blocks [threads]`

use std::time::Instant;
use w2vbert_kernels::gemm::{linear_cm, matmul, Epilogue, Threads};

fn run(n: usize, k: usize, t: usize) {
    let nw = (400 << 20) / (n * k * 4); // ~400 MB of weights
    let ws: Vec<Vec<f32>> = (0..nw)
        .map(|j| {
            (0..n * k)
                .map(|i| ((i * 7919 + j) % 1000) as f32 * 1e-3 - 0.5)
                .collect()
        })
        .collect();
    let x: Vec<f32> = (0..k * t).map(|i| ((i * 104729) % 1000) as f32 * 1e-3 - 0.5).collect();
    let mut y = vec![0f32; n * t];
    let flops = 2.0 * (n * k * t) as f64;
    let (mut one, mut blocks) = (vec![], vec![]);
    for it in 0..3 * nw {
        let s = Instant::now();
        matmul(
            &mut y,
            t,
            &ws[(2 * it) % nw],
            k,
            1,
            &x,
            t,
            1,
            n,
            k,
            t,
            1.0,
            false,
            Threads::Rayon(0),
        );
        one.push(s.elapsed().as_secs_f64());
        let s = Instant::now();
        linear_cm(
            Epilogue::Store { y: &mut y },
            &x,
            &ws[(2 * it + 1) % nw],
            None,
            n,
            k,
            t,
            Threads::Rayon(0),
        );
        blocks.push(s.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        flops / v[v.len() / 2] / 1e9
    };
    let (a, b) = (median(&mut one), median(&mut blocks));
    println!(
        "[{n}x{k}]·[{k}x{t}]: gemm threads {a:6.1}  row blocks {b:6.1} GFLOP/s  ({:.2}x)",
        b / a
    );
}

fn main() {
    let threads = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon pool");
    println!("{threads} threads");
    for t in [250, 500, 750] {
        for (n, k) in [(4096, 1024), (1024, 4096), (2048, 1024), (1024, 1024)] {
            run(n, k, t);
        }
    }
}
