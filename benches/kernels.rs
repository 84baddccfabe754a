//! Kernel benchmarks: each elementwise/normalization/conv kernel the encoder runs, scalar reference vs SIMD, at
//! model sizes (d = 1024 and 4096, T = 500 and 3000; conv c = 1024, k = 31), and the channel-major linears (f32 and
//! bf16) on the conformer's projection shapes at T = 500 with 1 and 2 threads, next to the `gemm` crate called
//! directly on the same [500×1024]·[1024×4096] product.
//!
//! Linear throughput is declared as `Throughput::Elements(2·m·k·n)`, so criterion's "elem/s" reads as
//! FLOP/s. Defaults are short (10 samples, 0.5 s warm-up, 2 s measurement); override on the command line:
//!   cargo bench --bench kernels -- --warm-up-time 1 --measurement-time 3 [filter]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use w2vbert_kernels::bf16::{
    linear_bf16_cm, linear_bf16_rows_cm, owned_rows, Bf16Kernel, Bf16Weights, Epilogue, RowsFrom,
};
use w2vbert_kernels::gemm::{linear_cm, linear_cm_ref, Threads};
use w2vbert_kernels::{activation, conv, norm};

/// A criterion group as the bench functions take it.
type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Deterministic inputs in [-2, 2) (values do not change timing, except that they avoid subnormals).
fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

const TS: [usize; 2] = [500, 3000];
const DS: [usize; 2] = [1024, 4096];

fn bench_layer_norm(c: &mut Criterion) {
    let mut g = c.benchmark_group("layer_norm");
    for &t in &TS {
        for &d in &DS {
            let x = data(t * d, 1);
            let (gamma, beta) = (data(d, 2), data(d, 3));
            let mut y = vec![0f32; t * d];
            g.throughput(Throughput::Elements((t * d) as u64));
            let id = format!("T{t}xd{d}");
            // What the encoder runs: channel-major [d, t].
            g.bench_function(BenchmarkId::new("ref_channel_major", &id), |b| {
                b.iter(|| norm::layer_norm_cm_ref(&mut y, black_box(&x), &gamma, &beta, 1e-5, d, t))
            });
            g.bench_function(BenchmarkId::new("simd_channel_major", &id), |b| {
                b.iter(|| norm::layer_norm_cm(&mut y, black_box(&x), &gamma, &beta, 1e-5, d, t))
            });
        }
    }
    g.finish();
}

fn bench_silu(c: &mut Criterion) {
    let mut g = c.benchmark_group("silu");
    for &t in &TS {
        for &d in &DS {
            let x = data(t * d, 4);
            let mut y = x.clone();
            g.throughput(Throughput::Elements((t * d) as u64));
            let id = format!("T{t}xd{d}");
            // Each iteration restores the input first (a memcpy, the same cost on both sides) so the
            // values stay in range instead of being iterated through silu.
            g.bench_function(BenchmarkId::new("ref", &id), |b| {
                b.iter(|| {
                    y.copy_from_slice(&x);
                    activation::silu_inplace_ref(black_box(&mut y))
                })
            });
            g.bench_function(BenchmarkId::new("simd", &id), |b| {
                b.iter(|| {
                    y.copy_from_slice(&x);
                    activation::silu_inplace(black_box(&mut y))
                })
            });
        }
    }
    g.finish();
}

fn bench_glu(c: &mut Criterion) {
    let mut g = c.benchmark_group("glu");
    for &t in &TS {
        for &ch in &DS {
            // The conv module's [2c, t]: value half rows 0..c, gate half rows c..2c.
            let x = data(t * 2 * ch, 5);
            let (a, gate) = x.split_at(t * ch);
            let mut y = vec![0f32; t * ch];
            g.throughput(Throughput::Elements((t * ch) as u64));
            let id = format!("T{t}xc{ch}");
            g.bench_function(BenchmarkId::new("ref", &id), |b| {
                b.iter(|| activation::gated_ref(&mut y, black_box(a), gate))
            });
            g.bench_function(BenchmarkId::new("simd", &id), |b| {
                b.iter(|| activation::gated(&mut y, black_box(a), gate))
            });
        }
    }
    g.finish();
}

fn bench_conv(c: &mut Criterion) {
    let mut g = c.benchmark_group("depthwise_conv_k31");
    let (ch, k) = (1024, 31);
    let w = data(ch * k, 9);
    for &t in &TS {
        let x = data(t * ch, 10);
        let mut y = vec![0f32; t * ch];
        g.throughput(Throughput::Elements((t * ch * k) as u64));
        let id = format!("T{t}xc{ch}");
        // Channel-major [c, t] (what the encoder runs), weights read in place.
        g.bench_function(BenchmarkId::new("ref", &id), |b| {
            b.iter(|| conv::depthwise_conv1d_causal_cm_ref(&mut y, black_box(&x), &w, ch, t, k))
        });
        g.bench_function(BenchmarkId::new("simd", &id), |b| {
            b.iter(|| conv::depthwise_conv1d_causal_cm_segments(&mut y, black_box(&x), &w, ch, t, k, &[t]))
        });
    }
    g.finish();
}

/// The four projection shapes of a conformer layer at T = 500 (`[m, k]·[k, n]`, W stored `[n, k]`).
fn bench_linear(c: &mut Criterion) {
    let mut g = c.benchmark_group("linear_T500");
    let m = 500;
    for &(k, n) in &[(1024, 4096), (4096, 1024), (1024, 1024), (1024, 2048)] {
        let x = data(m * k, 11);
        let w = data(n * k, 12);
        let bias = data(n, 13);
        let mut y = vec![0f32; m * n];
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        let id = format!("{m}x{k}x{n}");
        for (name, threads) in [("1thread", Threads::Single), ("2threads", Threads::Rayon(2))] {
            // What the encoder runs: yᵀ[n, m] = W·xᵀ + b, activations channel-major (x read as [k, m]).
            g.bench_function(BenchmarkId::new(format!("channel_major_{name}"), &id), |b| {
                b.iter(|| {
                    linear_cm(
                        Epilogue::Store { y: &mut y },
                        black_box(&x),
                        &w,
                        Some(&bias),
                        n,
                        k,
                        m,
                        threads,
                    )
                })
            });
        }
        bench_linear_bf16(&mut g, &id, &x, &w, &bias, &mut y, (m, k, n));
        if (k, n) == (1024, 4096) {
            bench_gemm_direct(&mut g, &id, &x, &w, &bias, &mut y, (m, k, n));
        }
    }
    g.finish();
}

/// The bf16 kernels this CPU has on one shape, 1 and 2 threads: weights as the model holds them, row-major bf16,
/// page-aligned (x rounded to bf16 per call for the tile kernels, f32 accumulation; widened per row block for
/// WidenF32, f32 gemm).
fn bench_linear_bf16(
    g: &mut Group,
    id: &str,
    x: &[f32],     // [k, m]
    w: &[f32],     // [n, k]
    bias: &[f32],  // [n]
    y: &mut [f32], // [n, m]
    (m, k, n): (usize, usize, usize),
) {
    let (bits, ld) = owned_rows(Bf16Kernel::WidenF32, RowsFrom::F32(w), n, k);
    let weights = Bf16Weights::new(&bits, n, k, ld);
    for kernel in [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16, Bf16Kernel::WidenF32]
        .into_iter()
        .filter(|k| k.available())
    {
        for (name, threads) in [("1thread", Threads::Single), ("2threads", Threads::Rayon(2))] {
            let label = format!(
                "bf16_{}_{name}",
                match kernel {
                    Bf16Kernel::Amx => "amx",
                    Bf16Kernel::Avx512Bf16 => "avx512",
                    Bf16Kernel::WidenF32 => "widen",
                }
            );
            g.bench_function(BenchmarkId::new(label, id), |b| {
                b.iter(|| {
                    let out = Epilogue::Store { y: &mut *y };
                    if kernel.packs_tiles() {
                        linear_bf16_cm(kernel, out, black_box(x), weights, Some(bias), m, threads)
                    } else {
                        linear_bf16_rows_cm(out, black_box(x), RowsFrom::Bf16(&bits), Some(bias), n, k, m, threads)
                    }
                })
            });
        }
    }
}

/// The gemm crate directly, time-major y[m, n] = x·Wᵀ with W read in place (bias pre-filled, then
/// dst = 1·dst + 1·x·Wᵀ) in one call on gemm's own threads: what channel_major's row blocks are measured against.
fn bench_gemm_direct(
    g: &mut Group,
    id: &str,
    x: &[f32],     // [m, k]
    w: &[f32],     // [n, k]
    bias: &[f32],  // [n]
    y: &mut [f32], // [m, n]
    (m, k, n): (usize, usize, usize),
) {
    for (name, par) in [
        ("gemm_direct_1thread", gemm::Parallelism::None),
        ("gemm_direct_2threads", gemm::Parallelism::Rayon(2)),
    ] {
        g.bench_function(BenchmarkId::new(name, id), |b| {
            b.iter(|| {
                for row in y.chunks_exact_mut(n) {
                    row.copy_from_slice(bias);
                }
                // SAFETY: y is [m, n] (row stride n), x is [m, k] (row stride k), w is [n, k]
                // read as [k, n] with strides (1, k): every index lies inside the slices.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        y.as_mut_ptr(),
                        1,
                        n as isize,
                        true,
                        black_box(x).as_ptr(),
                        1,
                        k as isize,
                        w.as_ptr(),
                        k as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        par,
                    )
                }
            })
        });
    }
}

/// The f64 triple loop once, for scale (a single sample is enough to see the gap).
fn bench_linear_ref(c: &mut Criterion) {
    let mut g = c.benchmark_group("linear_ref");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(1))
        .warm_up_time(Duration::from_millis(1));
    let (m, k, n) = (64, 1024, 1024);
    let (x, w) = (data(m * k, 14), data(n * k, 15));
    let mut y = vec![0f32; m * n];
    g.throughput(Throughput::Elements((2 * m * k * n) as u64));
    g.bench_function(BenchmarkId::new("ref", format!("{m}x{k}x{n}")), |b| {
        b.iter(|| linear_cm_ref(Epilogue::Store { y: &mut y }, black_box(&x), &w, None, n, k, m))
    });
    g.finish();
}

/// The tile kernels against their instruction's ceiling on the encoder's four projection shapes at T = 500, one
/// thread, from bf16 weights and (AMX) from f32 weights rounded in the kernel
/// (`cargo bench --bench kernels -- bf16_peak`; `W2VBERT_BF16_KERNEL=amx` for one kernel): paired rounds, each
/// timing 5 kernel calls then the instruction's register-only stream ([`Bf16Kernel::instruction_peak`]), so
/// both see the same host; printed is the median over rounds of achieved / peak flops, and its range.
fn bench_bf16_peak(_: &mut Criterion) {
    if !std::env::args().any(|a| a.contains("bf16_peak")) {
        return;
    }
    let m: usize = std::env::var("W2VBERT_BF16_PEAK_T")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    // W2VBERT_BF16_KERNEL=amx|avx512 measures that one kernel only (bf16::best_kernel).
    let only = std::env::var_os("W2VBERT_BF16_KERNEL").and(w2vbert_kernels::bf16::best_kernel());
    if let Some(k) = only.filter(|k| !k.packs_tiles()) {
        println!(
            "bf16_peak: the kernel `{}` has no bf16 instruction peak to be measured against (it runs the f32 \
             gemm); `cargo bench --bench kernels -- bf16_widen` times it as a linear",
            k.name()
        );
        return;
    }
    for kernel in [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16]
        .into_iter()
        .filter(|k| k.available() && only.is_none_or(|o| o == *k))
    {
        for &(k, n) in &[(1024, 4096), (4096, 1024), (1024, 1024), (1024, 2048)] {
            let (x, w, bias) = (data(m * k, 11), data(n * k, 12), data(n, 13));
            let mut y = vec![0f32; m * n];
            let (bits, ld) = owned_rows(kernel, RowsFrom::F32(&w), n, k);
            let mut sources = vec![("W bf16", Bf16Weights::new(&bits, n, k, ld))];
            if kernel.packs_tiles() {
                sources.push(("W f32 rounded in the kernel", Bf16Weights::from_f32(&w, n, k)));
            }
            for (source, weights) in sources {
                let mut call = || {
                    let out = Epilogue::Store { y: &mut y };
                    linear_bf16_cm(kernel, out, black_box(&x), weights, Some(&bias), m, Threads::Single)
                };
                call();
                let flops = (2 * m * k * n) as f64;
                let (mut ratios, mut achieved, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..15 {
                    let t = std::time::Instant::now();
                    for _ in 0..5 {
                        call();
                    }
                    let got = 5.0 * flops / t.elapsed().as_secs_f64();
                    let peak = kernel.instruction_peak().expect("available");
                    ratios.push(got / peak);
                    achieved.push(got);
                    peaks.push(peak);
                }
                for v in [&mut ratios, &mut achieved, &mut peaks] {
                    v.sort_by(f64::total_cmp);
                }
                println!(
                    "bf16_peak {} {m}x{k}x{n} {source}, 1 thread: {:.0} GFLOP/s, instruction peak {:.0} GFLOP/s \
                     (medians); achieved / peak per round: median {:.1} %, range {:.1}-{:.1} %",
                    kernel.name(),
                    achieved[7] / 1e9,
                    peaks[7] / 1e9,
                    100.0 * ratios[7],
                    100.0 * ratios[0],
                    100.0 * ratios[14]
                );
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_bf16_peak, bench_linear, bench_linear_ref, bench_layer_norm, bench_silu, bench_glu, bench_conv
}
criterion_main!(benches);
