//! Relative-key attention: fused (online softmax, 73-bucket bias) vs the naive `[T, T]` reference, at the
//! real head layout (16 heads × 64, L = 64, R = 8), channel-major as the encoder runs it: q/k/v read in place from
//! a fused `[3·1024, T]` buffer, no mask. Also prints the peak extra heap memory of one call at T = 3000 for both
//! (counting allocator).
//!
//! ```text
//! cargo bench --bench attention -- --warm-up-time 1 --measurement-time 3            # all timings
//! cargo bench --bench attention -- fused --warm-up-time 1 --measurement-time 3      # one group
//! W2VBERT_ATTN_MEMORY=1 cargo bench --bench attention -- memory-only                # the memory figures
//! W2VBERT_ATTN_TUNE=1 cargo bench --bench attention -- tune-only                    # block sizes, CPU time
//! ```
//! The naive reference is timed at T = 250 and 750 only: at T = 3000 one call takes over a minute
//! (27·10⁹ scalar f64 multiply-adds), so it is run exactly once, for the memory figure, and only when
//! `W2VBERT_ATTN_MEMORY=1` (the filters `memory-only`, `tune-only` match no timing benchmark).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use w2vbert_kernels::attention::{
    relative_attention_cm, relative_attention_cm_naive, AttnBlocks, RelPosAttention, DEFAULT_BLOCKS,
};

/// System allocator that tracks live bytes and their high-water mark (across all threads).
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CFG: RelPosAttention = RelPosAttention {
    n_heads: 16,
    head_dim: 64,
    left_max: 64,
    right_max: 8,
};

/// Inputs of one call: a fused qkv buffer `[3d, t]`, the distance embedding `[73, 64]`, an output `[d, t]`.
struct Inputs {
    t: usize,
    qkv: Vec<f32>,
    emb: Vec<f32>,
    out: Vec<f32>,
}

impl Inputs {
    fn new(t: usize) -> Self {
        let d = CFG.width();
        // Values spread in about [-1.7, 1.7] (std ≈ 1), so softmax and bias behave as with real activations.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.46
        };
        let qkv = (0..t * 3 * d).map(|_| next()).collect();
        let emb = (0..CFG.n_buckets() * CFG.head_dim).map(|_| next()).collect();
        Inputs {
            t,
            qkv,
            emb,
            out: vec![0.0; t * d],
        }
    }

    /// q, k, v are consecutive `[d, t]` blocks of `[3d, t]`, output `[d, t]`. `Some(blocks)` overrides the default
    /// block sizes.
    fn fused(&mut self, blocks: Option<AttnBlocks>) {
        let (d, t, x) = (CFG.width(), self.t, &self.qkv);
        let (q, k, v) = (&x[..], &x[d * t..], &x[2 * d * t..]);
        let b = blocks.unwrap_or(DEFAULT_BLOCKS);
        relative_attention_cm(&CFG, b, &mut self.out, t, q, t, k, t, v, t, &self.emb, None, t);
    }

    fn naive(&mut self) {
        let (d, t, x) = (CFG.width(), self.t, &self.qkv);
        let (q, k, v) = (&x[..], &x[d * t..], &x[2 * d * t..]);
        relative_attention_cm_naive(&CFG, &mut self.out, t, q, t, k, t, v, t, &self.emb, None, t);
    }
}

/// Peak bytes allocated above the level at entry, during `f`.
fn peak_extra(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    f();
    PEAK.load(Relaxed) - base
}

fn memory_report() {
    let t = 3000;
    let mut x = Inputs::new(t);
    let first = peak_extra(|| x.fused(None));
    let warm = peak_extra(|| x.fused(None));
    let start = Instant::now();
    let naive = peak_extra(|| x.naive());
    let naive_s = start.elapsed().as_secs_f64();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "peak extra heap at T = {t}, 16 heads × 64, {} rayon threads: fused {:.3} MiB (first call, \
         includes gemm's lazily allocated workspace) / {:.3} MiB (warm); naive {:.1} MiB ({naive_s:.1} s). \
         For scale: the [1024, T] output is {:.1} MiB, HF's [T, T, 64] bias tensor {:.0} MiB.",
        rayon::current_num_threads(),
        mib(first),
        mib(warm),
        mib(naive),
        mib(t * 1024 * 4),
        mib(t * t * 64 * 4),
    );
}

/// MACs of one call (q·k, q·E, p·v), for criterion's throughput column.
fn macs(t: usize) -> u64 {
    (CFG.n_heads * t * CFG.head_dim * (2 * t + CFG.n_buckets())) as u64
}

fn bench_fused(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_fused");
    for t in [250, 750, 3000] {
        let mut x = Inputs::new(t);
        g.throughput(Throughput::Elements(macs(t)));
        g.bench_function(BenchmarkId::from_parameter(t), |b| b.iter(|| x.fused(None)));
    }
    g.finish();
}

fn bench_naive(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_naive");
    g.sample_size(10);
    for t in [250, 750] {
        let mut x = Inputs::new(t);
        g.throughput(Throughput::Elements(macs(t)));
        g.bench_function(BenchmarkId::from_parameter(t), |b| b.iter(|| x.naive()));
    }
    g.finish();
}

/// Block sizes compared by the `attention_blocks` group and by the CPU-time sweep.
const BLOCK_SWEEP: [(usize, usize); 9] = [
    (64, 128),
    (64, 256),
    (64, 512),
    (128, 64),
    (128, 128),
    (128, 256),
    (128, 512),
    (256, 128),
    (256, 512),
];

/// Block-size sweep (wall time; on a quiet machine).
fn bench_blocks(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_blocks");
    g.sample_size(10);
    for t in [750, 3000] {
        let mut x = Inputs::new(t);
        for (bq, bk) in BLOCK_SWEEP {
            let id = BenchmarkId::new(format!("T{t}"), format!("{bq}x{bk}"));
            g.bench_function(id, |b| b.iter(|| x.fused(Some(AttnBlocks { q: bq, k: bk }))));
        }
    }
    g.finish();
}

/// Process CPU time (user + system, all threads) in seconds, from /proc/self/stat (10 ms ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" that closes the command name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// Block-size sweep in *CPU* time per call: on a machine shared with other jobs wall time mostly measures the
/// neighbours, CPU time much less so. Configurations are interleaved over rounds; the minimum is kept.
fn cpu_time_sweep() {
    for t in [500, 3000] {
        let mut x = Inputs::new(t);
        let calls = if t <= 750 { 100 } else { 4 };
        let mut best = vec![f64::INFINITY; BLOCK_SWEEP.len()];
        for _round in 0..3 {
            for (b, &(bq, bk)) in BLOCK_SWEEP.iter().enumerate() {
                let blocks = Some(AttnBlocks { q: bq, k: bk });
                x.fused(blocks);
                let c0 = cpu_seconds();
                for _ in 0..calls {
                    x.fused(blocks);
                }
                best[b] = best[b].min((cpu_seconds() - c0) / calls as f64);
            }
        }
        for ((bq, bk), s) in BLOCK_SWEEP.iter().zip(best) {
            println!("cpu-time sweep T={t} blocks {bq}x{bk}: {:.1} ms CPU per call", s * 1e3);
        }
    }
}

criterion_group!(benches, bench_fused, bench_naive, bench_blocks);

fn main() {
    let env_on = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    if env_on("W2VBERT_ATTN_MEMORY") {
        memory_report();
    }
    if env_on("W2VBERT_ATTN_TUNE") {
        cpu_time_sweep();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
