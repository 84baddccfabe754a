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
//! Amx and Avx512Bf16 read the same weights, packed once at load into AMX tiles ([`PackedBf16`]), and compute,
//! per output element, pairwise products of bf16 values (x rounded to nearest even when packed, like
//! `torch.autocast`) summed in f32; they differ from each other and from [`linear_bf16_cm_ref`] (f64 sums of
//! the same bf16 products) only in the f32 summation order. WidenF32 multiplies the bf16 weights by the
//! unrounded f32 x.
//!
//! Layouts (element = bf16 as `u16`):
//! - weights [`PackedBf16`]: `[n_pad/16 row tiles][k_pad/32 chunks][16 rows][32]`, i.e. one contiguous 1 KiB
//!   AMX A-tile per (row tile, chunk); n padded to 32, k to 32, with zeros.
//! - activations (packed per call): `[t_pad/16 column tiles][k_pad/2 pairs][16 columns][2]`, the VNNI pair
//!   layout: element `(2p + e, j)` of x sits in column tile j/16 at pair row p, column j%16, slot e, so every
//!   AMX B-tile (16 pair rows × 16 columns) is a contiguous 1 KiB. t padded to 32 with zeros.
//!
//! Work is split over 32-row blocks of W: each output element is computed by one task in a fixed order, so
//! the result does not depend on the thread count (nor does WidenF32's, split like the f32 linears).

mod amx;
mod avx512;
mod widen;

pub use avx512::dot_vs_fma;
pub use widen::{linear_bf16_rows_cm, widen};

use crate::alignedbuf::AlignedBuf;
use crate::gemm::Threads;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Rows of W per task (two AMX row tiles).
pub const ROW_BLOCK: usize = 32;
/// Columns of x per block (two AMX column tiles).
pub const COL_BLOCK: usize = 32;
/// k values per AMX chunk / tile row.
pub const K_CHUNK: usize = 32;
/// k values per cache block: at k = 4096 (the FFN's second linear) a thread's halves of W and of x would not
/// fit its L2 together; 1024 keeps W's row half (≤ 1 MiB at n = 1024) and x's slice (1 MiB at t = 512) there.
pub const KC: usize = 1024;

fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
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

    /// Whether the kernel multiplies tiles of [`PackedBf16`] by x rounded to bf16 ([`linear_bf16_cm`]: Amx,
    /// Avx512Bf16), or bf16 rows as stored by x as it is ([`linear_bf16_rows_cm`]: WidenF32).
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

/// A `[n, k]` weight matrix in bf16, packed into AMX tiles (module docs).
#[derive(Clone)]
pub struct PackedBf16 {
    pub n: usize,
    pub k: usize,
    k_pad: usize,
    data: AlignedBuf<u16>, // [n_pad/16][k_pad/32][16][32], page-aligned
}

impl PackedBf16 {
    /// Pack an f32 `[n, k]` row-major matrix, rounding each value to bf16.
    pub fn from_f32(w: &[f32] /* [n, k] */, n: usize, k: usize) -> Self {
        assert!(w.len() >= n * k, "PackedBf16: matrix smaller than [{n}, {k}]");
        Self::pack(n, k, |dst, row, c0| {
            for (d, &s) in dst.iter_mut().zip(&w[row * k + c0..]) {
                *d = bf16_from_f32(s);
            }
        })
    }

    /// Pack a bf16 `[n, k]` row-major matrix (e.g. read from a bf16 checkpoint) without rounding.
    pub fn from_bf16(w: &[u16] /* [n, k] */, n: usize, k: usize) -> Self {
        assert!(w.len() >= n * k, "PackedBf16: matrix smaller than [{n}, {k}]");
        Self::pack(n, k, |dst, row, c0| {
            let len = dst.len();
            dst.copy_from_slice(&w[row * k + c0..row * k + c0 + len])
        })
    }

    /// `fill(dst, row, c0)` writes W[row, c0 .. c0 + dst.len()] (at most one 32-wide chunk) into `dst`.
    fn pack(n: usize, k: usize, fill: impl Fn(&mut [u16], usize, usize) + Sync) -> Self {
        let (n_pad, k_pad) = (round_up(n, ROW_BLOCK), round_up(k.max(1), K_CHUNK));
        let mut data = AlignedBuf::zeroed(n_pad * k_pad);
        // One task per 16-row tile row: rows read in order, each 32-value run written to its tile.
        data.par_chunks_mut(16 * k_pad).enumerate().for_each(|(rt, tile_row)| {
            for r in 0..16.min(n.saturating_sub(rt * 16)) {
                for (chunk, c0) in (0..k).step_by(K_CHUNK).enumerate() {
                    let len = K_CHUNK.min(k - c0);
                    let at = chunk * 512 + r * K_CHUNK;
                    fill(&mut tile_row[at..at + len], rt * 16 + r, c0);
                }
            }
        });
        PackedBf16 { n, k, k_pad, data }
    }

    /// `W[r, c]` as f32 (exact), for references and tests.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let chunks = self.k_pad / K_CHUNK;
        bf16_to_f32(self.data[((r / 16) * chunks + c / K_CHUNK) * 512 + (r % 16) * K_CHUNK + c % K_CHUNK])
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 2
    }
}

/// What happens to `acc = W · x` (`[n, t]`) on its way out.
pub enum Epilogue<'a> {
    /// `y = acc + bias`
    Store { y: &'a mut [f32] /* [n, t] */ },
    /// `y = silu(acc + bias)`
    StoreSilu { y: &'a mut [f32] /* [n, t] */ },
    /// `h += scale · (acc + bias)` (residual branch; the conformer's ½ rides here)
    Accumulate {
        h: &'a mut [f32], /* [n, t] */
        scale: f32,
    },
}

impl<'a> Epilogue<'a> {
    pub(crate) fn out_len(&self) -> usize {
        match self {
            Epilogue::Store { y } | Epilogue::StoreSilu { y } => y.len(),
            Epilogue::Accumulate { h, .. } => h.len(),
        }
    }

    /// The output buffer, `[n, t]` of it.
    pub(crate) fn into_dst(self, len: usize) -> &'a mut [f32] {
        match self {
            Epilogue::Store { y } | Epilogue::StoreSilu { y } => &mut y[..len],
            Epilogue::Accumulate { h, .. } => &mut h[..len],
        }
    }
}

/// x `[k, t]` f32 row-major → bf16 pair layout `[t_pad/16][k_pad/2][16][2]` (module docs).
fn pack_x(xp: &mut [u16], x: &[f32] /* [k, t] */, k: usize, t: usize, k_pad: usize, t_pad: usize) {
    let xp = &mut xp[..t_pad * k_pad];
    xp.fill(0);
    let block = k_pad * COL_BLOCK; // elements per 32-column block (two column tiles)
    let pairs = k_pad / 2;
    xp.par_chunks_mut(block).enumerate().for_each(|(jb, dst)| {
        let j0 = jb * COL_BLOCK;
        let cols = COL_BLOCK.min(t - j0);
        if avx512::available() && cols == COL_BLOCK {
            // SAFETY: AVX-512 BW/BF16 checked; every row c < k reads x[c*t + j0 .. + 32] in bounds.
            unsafe { avx512::pack_x_block(dst, x, k, t, j0, pairs) };
            return;
        }
        for c in 0..k {
            let (p, e) = (c / 2, c % 2);
            let row = &x[c * t + j0..c * t + j0 + cols];
            for (j, &v) in row.iter().enumerate() {
                dst[((j / 16) * pairs + p) * 32 + (j % 16) * 2 + e] = bf16_from_f32(v);
            }
        }
    });
}

thread_local! {
    /// Packed x and the `[n_pad, t_pad]` f32 accumulator, reused across calls on the calling thread.
    static SCRATCH: std::cell::RefCell<(AlignedBuf<u16>, AlignedBuf<f32>)> =
        std::cell::RefCell::new((AlignedBuf::zeroed(0), AlignedBuf::zeroed(0)));
}

/// `epilogue(W · x + bias)` for channel-major activations: `x` `[k, t]` (one input channel per row), the
/// result `[n, t]`. `bias` `[n]`. Runs `kernel` (which must be [`Bf16Kernel::available`]).
///
/// Loop nest: k blocks of [`KC`] (so a thread's slices of W and x stay in its L2 together) × 32-row blocks
/// (the parallel loop) × 32-column blocks (inside the microkernel call). The f32 accumulator lives in a
/// `[n_pad, t_pad]` scratch between k blocks; each row block's epilogue runs right after its last k block.
pub fn linear_bf16_cm(
    kernel: Bf16Kernel,
    out: Epilogue<'_>,
    x: &[f32], // [k, t]
    w: &PackedBf16,
    bias: Option<&[f32]>, // [n]
    t: usize,
    threads: Threads,
) {
    let (n, k) = (w.n, w.k);
    assert!(
        kernel.available() && kernel.packs_tiles(),
        "linear_bf16_cm: {} is not a tile kernel available on this CPU",
        kernel.name()
    );
    assert!(x.len() >= k * t, "linear_bf16_cm: x too small");
    assert!(out.out_len() >= n * t, "linear_bf16_cm: output too small");
    assert!(bias.is_none_or(|b| b.len() >= n), "linear_bf16_cm: bias too small");
    if n == 0 || t == 0 {
        return;
    }
    let t_pad = round_up(t, COL_BLOCK);
    let n_pad = round_up(n, ROW_BLOCK);
    let chunks = w.k_pad / K_CHUNK;
    let kind = out_kind(&out);
    let dst = out.into_dst(n * t);
    SCRATCH.with(|cell| {
        let (xp, acc) = &mut *cell.borrow_mut();
        // Grow only: shrinking and regrowing would zero the regrown part again on every call.
        xp.grow(t_pad * w.k_pad);
        acc.grow(n_pad * t_pad);
        pack_x(xp, x, k, t, w.k_pad, t_pad);
        let acc = &mut acc[..n_pad * t_pad];
        let xp: &[u16] = xp;
        let kc_chunks = KC / K_CHUNK;
        for c0 in (0..chunks).step_by(kc_chunks) {
            let c1 = (c0 + kc_chunks).min(chunks);
            let task = |(rb, (acc, dst)): (usize, (&mut [f32], &mut [f32]))| {
                let panel = &w.data[rb * 2 * chunks * 512..(rb * 2 + 2) * chunks * 512];
                // SAFETY: availability asserted above; slice sizes follow the packed layouts (module docs).
                unsafe {
                    match kernel {
                        Bf16Kernel::Amx => amx::row_block(acc, panel, xp, chunks, t_pad, c0, c1),
                        Bf16Kernel::Avx512Bf16 => avx512::row_block(acc, panel, xp, chunks, t_pad, c0, c1),
                        Bf16Kernel::WidenF32 => unreachable!("asserted above"),
                    }
                }
                if c1 == chunks {
                    epilogue(dst, acc, kind, bias.map(|b| &b[rb * ROW_BLOCK..]), t, t_pad);
                }
            };
            let rows = acc.chunks_mut(ROW_BLOCK * t_pad).zip(dst.chunks_mut(ROW_BLOCK * t));
            match threads {
                Threads::Single => rows.enumerate().for_each(task),
                Threads::Rayon(_) => {
                    let rows = acc
                        .par_chunks_mut(ROW_BLOCK * t_pad)
                        .zip(dst.par_chunks_mut(ROW_BLOCK * t));
                    rows.enumerate().for_each(task)
                }
            }
        }
    });
}

/// The epilogue without its buffer (so tasks can share it while each writes its own rows).
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Store,
    StoreSilu,
    Accumulate(f32),
}

pub(crate) fn out_kind(out: &Epilogue<'_>) -> Kind {
    match out {
        Epilogue::Store { .. } => Kind::Store,
        Epilogue::StoreSilu { .. } => Kind::StoreSilu,
        Epilogue::Accumulate { scale, .. } => Kind::Accumulate(*scale),
    }
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
    w: &PackedBf16,
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
