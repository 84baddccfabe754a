//! bf16 matmul for channel-major linears: `y[n, t] = epilogue(W[n, k] · x[k, t])` with W held in bf16 and
//! f32 accumulation.
//!
//! Three kernels, chosen at run time ([`best_kernel`]):
//! - [`Bf16Kernel::Amx`]: Intel AMX `tdpbf16ps` on 16×16 f32 tiles (Sapphire Rapids and later). Needs the
//!   kernel's permission for the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), asked once.
//! - [`Bf16Kernel::Avx512Bf16`]: `vdpbf16ps` (AVX512-BF16: Zen 4, Cooper Lake, Sapphire Rapids).
//! - [`Bf16Kernel::WidenF32`] ([`linear_bf16_rows_cm`], `widen.rs`): W kept row-major as stored, widened to f32
//!   one L2-sized block at a time (exact) and multiplied by the f32 gemm, x not rounded. Plain Rust over the
//!   f32 gemm, so it runs on every target: the kernel of CPUs without AVX512-BF16 or AMX (AVX2-only x86,
//!   aarch64), and of cores that have AVX512-BF16 but run `vdpbf16ps` slower than f32 FMAs (Intel without AMX:
//!   a quarter of the FMA's instruction rate, so half its flops; [`dot_vs_fma`] measures it). bf16 then still
//!   halves the weights' memory (and a bf16 checkpoint is used from its mapping without a copy), at close to
//!   the f32 path's speed
//!   (a bf16 checkpoint ran 10 s of speech ~7 % slower than fp32 in 8 interleaved pairs: the widening reads
//!   the weights from memory outside the microkernel, where the f32 path's reads overlap its FMAs).
//!
//! Amx and Avx512Bf16 read the same weights, row-major bf16 in place ([`Bf16Weights`]: a bf16 checkpoint's
//! mapping as stored, nothing done per weight at load; or f32 weights rounded once; or an f32 checkpoint's
//! mapping as stored, each block of W rounded as the kernel copies it), and compute, per output
//! element, pairwise products of bf16 values (x rounded to nearest even when packed, like `torch.autocast`)
//! summed in f32; they differ from each other and from [`linear_bf16_cm_ref`] (f64 sums of the same bf16
//! products) only in the f32 summation order. WidenF32 multiplies the bf16 weights by the unrounded f32 x.
//!
//! Layouts (element = bf16 as `u16`):
//! - weights [`Bf16Weights`], `weights.rs`: `[n, k]` row-major at row stride `ld`, as stored. The AVX512-BF16 kernel
//!   broadcasts value pairs from the rows (of f32 weights, from a task's copy of its 32 rows × one k block,
//!   rounded, `avx512::round_rows`); AMX copies one 32-row × 256-column micro-panel at a time into the
//!   A-tile layout (`[2][8][16][32]`, 16 KiB, L1) inside the matmul (`amx.rs`). n and k are multiples of 32 in
//!   every projection of the model; other shapes get a zero-padded copy at load ([`owned_rows`]).
//! - activations (packed per call): `[t_pad/16 column tiles][k_pad/2 pairs][16 columns][2]`, the VNNI pair
//!   layout: element `(2p + e, j)` of x sits in column tile j/16 at pair row p, column j%16, slot e, so every
//!   AMX B-tile (16 pair rows × 16 columns) is a contiguous 1 KiB. t padded to 32 with zeros. Packed per call
//!   from f32, or once for several linears, or by the linear producing it ([`PackedX`], `packed.rs`).
//!
//! Work is split over 32-row blocks of W (AMX: groups of four, its loop nest blocked for the caches, see
//! `amx.rs`): each output element is computed by one task in a fixed order, so the result does not depend on
//! the thread count (nor does WidenF32's, split like the f32 linears).

mod amx;
mod avx512;
mod packed;
mod weights;
mod widen;

pub use avx512::dot_vs_fma;
pub(crate) use packed::ColumnSink;
pub use packed::PackedX;
use packed::{pack_x, PackSink};
pub use weights::{owned_rows, tiles_read_in_place, Bf16Weights, RowsFrom};
pub(crate) use weights::{NextPanel, Rows};
pub use widen::{linear_bf16_rows_cm, widen, widen_rounded};

use crate::alignedbuf::AlignedBuf;
pub use crate::gemm::Epilogue;
use crate::gemm::Threads;
pub(crate) use crate::gemm::{out_kind, Kind};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Rows of W per task (two AMX row tiles).
pub const ROW_BLOCK: usize = 32;
/// Columns of x per block (two AMX column tiles).
pub const COL_BLOCK: usize = 32;
/// k values per AMX chunk / tile row.
pub const K_CHUNK: usize = 32;
/// k values per cache block of the AVX512-BF16 loop nest: at k = 4096 (the FFN's second linear) a thread's
/// halves of W and of x would not fit its L2 together; 1024 keeps W's row half (≤ 1 MiB at n = 1024) and x's
/// slice (1 MiB at t = 512) there.
pub const KC: usize = 1024;

fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// Seconds taken by the fastest of 5 calls of `run` (the throughput probes: register-only instruction
/// streams, where the fastest call is the one the host did not interrupt).
fn fastest_of_5(run: impl Fn()) -> f64 {
    (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// k rounded up to whole chunks (at least one, so that k = 0 still runs the epilogue).
fn k_padded(k: usize) -> usize {
    round_up(k.max(1), K_CHUNK)
}

/// f32 → bf16, round to nearest even (NaN stays NaN), as `half::bf16::from_f32` and `vcvtneps2bf16` do.
#[inline]
pub fn bf16_from_f32(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x40;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// `dst[i] = bf16_from_f32(src[i])` over a slice: a branch-free loop the compiler vectorizes (rounding a
/// checkpoint's weights at load).
pub fn bf16_from_f32_slice(dst: &mut [u16] /* [n] */, src: &[f32] /* [n] */) {
    assert_eq!(dst.len(), src.len(), "bf16_from_f32_slice: lengths differ");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16_from_f32(s);
    }
}

/// bf16 → f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Which bf16 microkernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Kernel {
    Amx,
    Avx512Bf16,
    WidenF32,
}

impl Bf16Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Amx => "AMX (tdpbf16ps)",
            Bf16Kernel::Avx512Bf16 => "AVX512-BF16 (vdpbf16ps)",
            Bf16Kernel::WidenF32 => "bf16 weights widened to f32, f32 FMA (gemm)",
        }
    }

    /// Whether this CPU (and OS, for AMX) can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Bf16Kernel::Amx => amx::available(),
            Bf16Kernel::Avx512Bf16 => avx512::available(),
            Bf16Kernel::WidenF32 => true,
        }
    }

    /// Flops per second one core's stream of the kernel's instruction delivers with operands in registers
    /// (`tdpbf16ps`, `vdpbf16ps`): the ceiling its efficiency is quoted against. `None` for WidenF32 (its
    /// ceiling is the f32 FMA's) and for kernels this CPU lacks.
    /// The stream: 2^14 iterations of the instruction's throughput loop (`amx::peak_stream`,
    /// `avx512::peak_stream`: independent accumulators, zeroed sources, no memory operands), fastest of 5.
    pub fn instruction_peak(self) -> Option<f64> {
        const ITERS: usize = 1 << 14;
        let (stream, flops_per_iter): (unsafe fn(usize), f64) = match self {
            Bf16Kernel::Amx => (amx::peak_stream, amx::PEAK_FLOPS_PER_ITER),
            Bf16Kernel::Avx512Bf16 => (avx512::peak_stream, avx512::PEAK_FLOPS_PER_ITER),
            Bf16Kernel::WidenF32 => return None,
        };
        // SAFETY: the kernel is available on this CPU (checked first); the loops touch registers only.
        self.available()
            .then(|| ITERS as f64 * flops_per_iter / fastest_of_5(|| unsafe { stream(ITERS) }))
    }

    /// Whether the kernel multiplies 32×32 blocks of [`Bf16Weights`] by x rounded to bf16 ([`linear_bf16_cm`]:
    /// Amx, Avx512Bf16; they also read f32 weights as stored, [`Bf16Weights::from_f32`]), or bf16 rows by x as
    /// it is ([`linear_bf16_rows_cm`]: WidenF32).
    pub fn packs_tiles(self) -> bool {
        self != Bf16Kernel::WidenF32
    }
}

/// `vdpbf16ps` is taken over [`Bf16Kernel::WidenF32`] only when it delivers at least this many times the
/// f32 FMA's flops ([`dot_vs_fma`]): the bf16 kernel reaches a smaller share of its peak than gemm.
const DOT_OVER_FMA_MIN: f64 = 1.25;

/// The fastest bf16 kernel this CPU runs. AMX where present; else, on a core with AVX512-BF16, `vdpbf16ps` if
/// it is fast here, otherwise [`Bf16Kernel::WidenF32`] (bf16 weights, f32 compute), which is also the kernel of
/// every CPU without AVX512-BF16 (AVX2-only x86, aarch64). `W2VBERT_BF16_KERNEL=amx|avx512|widen` forces one
/// (for comparison and tests); `None` only when the forced kernel cannot run here: then there is no bf16 path
/// and callers must say so and run f32. The choice is reported by [`describe`].
pub fn best_kernel() -> Option<Bf16Kernel> {
    static BEST: OnceLock<Option<Bf16Kernel>> = OnceLock::new();
    *BEST.get_or_init(|| {
        let pick = |k: Bf16Kernel| k.available().then_some(k);
        match std::env::var("W2VBERT_BF16_KERNEL").ok().as_deref() {
            Some("avx512") => pick(Bf16Kernel::Avx512Bf16),
            Some("amx") => pick(Bf16Kernel::Amx),
            Some("widen") => Some(Bf16Kernel::WidenF32),
            _ if amx::available() => Some(Bf16Kernel::Amx),
            _ => Some(match avx512::dot_vs_fma() {
                Some(r) if r >= DOT_OVER_FMA_MIN => Bf16Kernel::Avx512Bf16,
                _ => Bf16Kernel::WidenF32,
            }),
        }
    })
}

/// One line for `--verbose`: which bf16 kernel runs, and why.
pub fn describe() -> String {
    let Some(k) = best_kernel() else {
        return format!(
            "bf16 matmul: unavailable (W2VBERT_BF16_KERNEL={} cannot run on this CPU)",
            std::env::var("W2VBERT_BF16_KERNEL").unwrap_or_default()
        );
    };
    match (k, avx512::dot_vs_fma()) {
        (Bf16Kernel::Amx, _) => format!("bf16 matmul: {}", k.name()),
        (_, Some(r)) => format!(
            "bf16 matmul: {} (vdpbf16ps delivers {r:.2}x the f32 FMA's flops on this core; \
             the AVX512-BF16 kernel is taken from {DOT_OVER_FMA_MIN}x)",
            k.name()
        ),
        (_, None) => format!("bf16 matmul: {} (no AVX512-BF16 or AMX on this CPU)", k.name()),
    }
}

thread_local! {
    /// One row block's `[32, t_pad]` f32 accumulator, per thread (single k block).
    static ROW_ACC: std::cell::RefCell<AlignedBuf<f32>> = std::cell::RefCell::new(AlignedBuf::zeroed(0));
    /// The AVX512-BF16 kernel's row block of f32 weights rounded to bf16, `[32, k]`, per thread.
    static ROUNDED_ROWS: std::cell::RefCell<AlignedBuf<u16>> = std::cell::RefCell::new(AlignedBuf::zeroed(0));
    /// Packed x and the `[n_pad, t_pad]` f32 accumulator, reused across calls on the calling thread.
    static SCRATCH: std::cell::RefCell<(AlignedBuf<u16>, AlignedBuf<f32>)> =
        std::cell::RefCell::new((AlignedBuf::zeroed(0), AlignedBuf::zeroed(0)));
}

/// `epilogue(W · x + bias)` for channel-major activations: `x` `[k, t]` (one input channel per row), the
/// result `[n, t]`. `bias` `[n]`. Runs `kernel` (which must be [`Bf16Kernel::available`]).
///
/// Loop nest (AVX512-BF16; AMX has its own, `amx.rs`): k blocks of [`KC`] (so a thread's slices of W and x stay in its L2 together) × 32-row blocks
/// (the parallel loop) × 32-column blocks (inside the microkernel call). The f32 accumulator lives in a
/// `[n_pad, t_pad]` scratch between k blocks; each row block's epilogue runs right after its last k block.
pub fn linear_bf16_cm(
    kernel: Bf16Kernel,
    out: Epilogue<'_>,
    x: &[f32], // [k, t]
    w: Bf16Weights<'_>,
    bias: Option<&[f32]>, // [n]
    t: usize,
    threads: Threads,
) {
    linear_tiles(kernel, Out::Rows(out), Input::F32(x, t), w, bias, threads)
}

/// `SiLU(W · x + bias)` `[n, t]` into `next` only, packed as the next linear reads it: each row block gets its
/// epilogue in its accumulator and is packed from there, so no f32 output is written (the feed-forward's SiLU(W₁x)
/// `[4096, t]`, 8 MiB at t = 512, into W₂). The bits [`PackedX::pack`] makes of [`linear_bf16_cm_packed`]'s
/// `StoreSilu` output.
pub fn linear_bf16_cm_packed_silu_into(
    kernel: Bf16Kernel,
    next: &mut PackedX,
    x: &PackedX, // [k, t]
    w: Bf16Weights<'_>,
    bias: Option<&[f32]>, // [n]
    threads: Threads,
) {
    let sink = next.sink(w.n, x.t);
    linear_tiles(kernel, Out::PackedSilu(sink), Input::Packed(x), w, bias, threads)
}

/// [`linear_bf16_cm`] on an input already packed ([`linear_bf16_cm_packed_silu_into`], [`PackedX::pack`],
/// [`crate::norm::layer_norm_cm_to`]): `x` holds
/// `[k, t]`, the result is `[n, t]`.
pub fn linear_bf16_cm_packed(
    kernel: Bf16Kernel,
    out: Epilogue<'_>,
    x: &PackedX,
    w: Bf16Weights<'_>,
    bias: Option<&[f32]>, // [n]
    threads: Threads,
) {
    linear_tiles(kernel, Out::Rows(out), Input::Packed(x), w, bias, threads)
}

/// A tile kernel's input: f32 `[k, t]`, packed per call, or packed already.
#[derive(Clone, Copy)]
enum Input<'a> {
    F32(&'a [f32], usize),
    Packed(&'a PackedX),
}

/// A tile kernel's output: an epilogue into f32 `[n, t]`, or only the next linear's packed input, SiLU(acc + bias)
/// (applied in the accumulator, which is packed from there).
enum Out<'a> {
    Rows(Epilogue<'a>),
    PackedSilu(PackSink),
}

/// What becomes of each finished row block of a tile linear (shared by its tasks).
#[derive(Clone, Copy)]
pub(super) struct Finish<'a> {
    kind: Kind,              // of the f32 output (`Out::Rows`)
    bias: Option<&'a [f32]>, // [n]
    sink: Option<PackSink>,  // `Out::PackedSilu`: the f32 blocks are then `None`
    n: usize,
    t: usize,
    t_pad: usize,
}

impl Finish<'_> {
    /// Row block `rb`'s accumulator `acc` `[32, t_pad]` is complete: its epilogue into `dst` `[rows, t]`, or, with
    /// no f32 output, SiLU(acc + bias) in `acc` itself, packed from there for the next linear.
    pub(super) fn row_block(&self, rb: usize, acc: &mut [f32], dst: Option<&mut [f32]>) {
        let (bias, rows) = (
            self.bias.map(|b| &b[rb * ROW_BLOCK..]),
            ROW_BLOCK.min(self.n - rb * ROW_BLOCK),
        );
        match (dst, self.sink) {
            (Some(dst), _) => epilogue(dst, acc, self.kind, bias, self.t, self.t_pad),
            (None, Some(sink)) => {
                for (i, row) in acc.chunks_mut(self.t_pad).take(rows).enumerate() {
                    let b = bias.map_or(0.0, |b| b[i]);
                    let row = &mut row[..self.t];
                    row.iter_mut().for_each(|v| *v += b);
                    crate::activation::silu_inplace(row);
                }
                sink.put(rb, acc, rows, self.t_pad);
            }
            (None, None) => unreachable!("linear_tiles gives f32 blocks exactly when there is no sink"),
        }
    }
}

/// `dst` `[n, t]` in blocks of `per` rows, each `Some`, or one `None` per block when there is no f32 output: the
/// tasks of a tile linear, on the pool.
pub(super) fn par_blocks(
    dst: Option<&mut [f32]>,
    n: usize,
    t: usize,
    per: usize,
) -> impl IndexedParallelIterator<Item = Option<&mut [f32]>> {
    match dst {
        Some(d) => rayon::iter::Either::Left(d[..n * t].par_chunks_mut(per * t).map(Some)),
        None => rayon::iter::Either::Right((0..n.div_ceil(per)).into_par_iter().map(|_| None)),
    }
}

/// [`par_blocks`] in order, on the calling thread (`Threads::Single`).
pub(super) fn seq_blocks(
    dst: Option<&mut [f32]>,
    n: usize,
    t: usize,
    per: usize,
) -> impl Iterator<Item = Option<&mut [f32]>> {
    match dst {
        Some(d) => rayon::iter::Either::Left(d[..n * t].chunks_mut(per * t).map(Some)),
        None => rayon::iter::Either::Right((0..n.div_ceil(per)).map(|_| None)),
    }
}

/// The tile kernels' loop nests behind [`linear_bf16_cm`] and its two variants.
fn linear_tiles(
    kernel: Bf16Kernel,
    out: Out<'_>,
    input: Input<'_>,
    w: Bf16Weights<'_>,
    bias: Option<&[f32]>, // [n]
    threads: Threads,
) {
    let (n, k) = (w.n, w.k);
    let t = match input {
        Input::F32(x, t) => {
            assert!(x.len() >= k * t, "linear_bf16_cm: x too small");
            t
        }
        Input::Packed(x) => {
            assert_eq!(x.k, k, "linear_bf16_cm_packed: x holds k = {}, W has k = {k}", x.k);
            x.t
        }
    };
    assert!(
        kernel.available() && kernel.packs_tiles(),
        "linear_bf16_cm: {} is not a tile kernel available on this CPU",
        kernel.name()
    );
    if let Out::Rows(out) = &out {
        assert!(out.out_len() >= n * t, "linear_bf16_cm: output too small");
    }
    assert!(bias.is_none_or(|b| b.len() >= n), "linear_bf16_cm: bias too small");
    if n == 0 || t == 0 {
        return;
    }
    let t_pad = round_up(t, COL_BLOCK);
    let n_pad = round_up(n, ROW_BLOCK);
    let k_pad = k_padded(k);
    let chunks = k_pad / K_CHUNK;
    let ld = w.ld();
    let (kind, mut dst, sink) = match out {
        Out::Rows(out) => (out_kind(&out), Some(out.into_dst(n * t)), None),
        Out::PackedSilu(sink) => (Kind::StoreSilu, None, Some(sink)),
    };
    let finish = Finish {
        kind,
        bias,
        sink,
        n,
        t,
        t_pad,
    };
    SCRATCH.with(|cell| {
        let (own, acc) = &mut *cell.borrow_mut();
        let xp: &[u16] = match input {
            Input::F32(x, _) => {
                // Grow only: shrinking and regrowing would zero the regrown part again on every call.
                own.grow(t_pad * k_pad);
                pack_x(own, x, k, t, k_pad, t_pad);
                own
            }
            Input::Packed(x) => x.bits(),
        };
        if kernel == Bf16Kernel::Amx {
            return amx::linear(dst, &finish, xp, &w, chunks, threads);
        }
        debug_assert_eq!(kernel, Bf16Kernel::Avx512Bf16);
        let kc_chunks = KC / K_CHUNK;
        // Rows rb·32 .. rb·32 + 32 of W, each read up to k_pad (Bf16Weights::new checked the bounds); f32 rows
        // (ld = k = k_pad) rounded into a per-thread copy of the k block first.
        // SAFETY: availability asserted above; slice sizes follow the layouts (module docs).
        let run = |acc: &mut [f32], rb: usize, c0: usize, c1: usize| unsafe {
            // The row block a thread most likely runs next (tasks are split into contiguous runs of blocks).
            let next = (rb + 1 < n_pad / ROW_BLOCK).then_some(NextPanel {
                w: &w,
                r0: (rb + 1) * ROW_BLOCK,
                c0,
                nc: c1 - c0,
            });
            match w.rows() {
                Rows::Bf16(bits) => {
                    let panel = &bits[rb * ROW_BLOCK * ld..(rb * ROW_BLOCK + ROW_BLOCK - 1) * ld + k_pad];
                    avx512::row_block(acc, panel, ld, xp, chunks, t_pad, c0, c1, next)
                }
                Rows::F32(f) => ROUNDED_ROWS.with(|cell| {
                    let rows = &mut *cell.borrow_mut();
                    rows.grow(ROW_BLOCK * k_pad);
                    avx512::round_rows(rows, f, k_pad, rb * ROW_BLOCK, c0, c1);
                    avx512::row_block(acc, &rows[..ROW_BLOCK * k_pad], k_pad, xp, chunks, t_pad, c0, c1, next)
                }),
            }
        };
        if chunks <= kc_chunks {
            // One k block: a row block's accumulator lives in a per-thread 32 × t_pad buffer that stays in L2,
            // rather than in an [n_pad, t_pad] one that goes out to memory and back (8 MiB at n = 4096).
            let task = |(rb, dst): (usize, Option<&mut [f32]>)| {
                ROW_ACC.with(|cell| {
                    let acc = &mut *cell.borrow_mut();
                    acc.grow(ROW_BLOCK * t_pad);
                    let acc = &mut acc[..ROW_BLOCK * t_pad];
                    run(acc, rb, 0, chunks);
                    finish.row_block(rb, acc, dst);
                })
            };
            match threads {
                Threads::Single => seq_blocks(dst, n, t, ROW_BLOCK).enumerate().for_each(task),
                Threads::Rayon(_) => par_blocks(dst, n, t, ROW_BLOCK).enumerate().for_each(task),
            }
            return;
        }
        acc.grow(n_pad * t_pad);
        let acc = &mut acc[..n_pad * t_pad];
        for c0 in (0..chunks).step_by(kc_chunks) {
            let c1 = (c0 + kc_chunks).min(chunks);
            let task = |(rb, (acc, dst)): (usize, (&mut [f32], Option<&mut [f32]>))| {
                run(acc, rb, c0, c1);
                if c1 == chunks {
                    finish.row_block(rb, acc, dst);
                }
            };
            let dst = dst.as_deref_mut();
            match threads {
                Threads::Single => {
                    let rows = acc.chunks_mut(ROW_BLOCK * t_pad).zip(seq_blocks(dst, n, t, ROW_BLOCK));
                    rows.enumerate().for_each(task)
                }
                Threads::Rayon(_) => {
                    let rows = acc
                        .par_chunks_mut(ROW_BLOCK * t_pad)
                        .zip(par_blocks(dst, n, t, ROW_BLOCK));
                    rows.enumerate().for_each(task)
                }
            }
        }
    });
}

/// Apply the epilogue to one row block: `dst` `[rows, t]` (rows ≤ 32) from `acc` `[32, t_pad]`.
pub(crate) fn epilogue(dst: &mut [f32], acc: &[f32], kind: Kind, bias: Option<&[f32]>, t: usize, t_pad: usize) {
    for (i, row) in dst.chunks_exact_mut(t).enumerate() {
        let b = bias.map_or(0.0, |b| b[i]);
        let a = &acc[i * t_pad..i * t_pad + t];
        match kind {
            Kind::Store => row.iter_mut().zip(a).for_each(|(y, &v)| *y = v + b),
            Kind::StoreSilu => {
                row.iter_mut().zip(a).for_each(|(y, &v)| *y = v + b);
                crate::activation::silu_inplace(row);
            }
            Kind::Accumulate(s) => row.iter_mut().zip(a).for_each(|(h, &v)| *h = (v + b).mul_add(s, *h)),
        }
    }
}

/// Scalar reference for [`linear_bf16_cm`]: x rounded to bf16 when `round_x` (tile kernels; [`linear_bf16_rows_cm`] does not round x),
/// products summed in f64.
pub fn linear_bf16_cm_ref(
    out: Epilogue<'_>,
    x: &[f32], // [k, t]
    w: Bf16Weights<'_>,
    bias: Option<&[f32]>, // [n]
    t: usize,
    round_x: bool,
) {
    let (n, k) = (w.n, w.k);
    let kind = out_kind(&out);
    let dst: &mut [f32] = match out {
        Epilogue::Store { y } | Epilogue::StoreSilu { y } => y,
        Epilogue::Accumulate { h, .. } => h,
    };
    for r in 0..n {
        for j in 0..t {
            let mut s = 0f64;
            for c in 0..k {
                let xv = x[c * t + j];
                let xv = if round_x { bf16_to_f32(bf16_from_f32(xv)) } else { xv };
                s += w.get(r, c) as f64 * xv as f64;
            }
            let v = s as f32 + bias.map_or(0.0, |b| b[r]);
            let d = &mut dst[r * t + j];
            match kind {
                Kind::Store => *d = v,
                Kind::StoreSilu => *d = (v as f64 / (1.0 + (-(v as f64)).exp())) as f32,
                Kind::Accumulate(s) => *d += s * v,
            }
        }
    }
}
