//! [`Bf16Kernel::WidenF32`](super::Bf16Kernel::WidenF32): bf16 weights `[n, k]` kept row-major as stored (a
//! bf16 checkpoint's mapping, or rounded once at load), widened to f32 one `[≤ ROWS, ≤ DEPTH]` block at a time
//! into a per-thread buffer that stays in L2, and multiplied by the f32 gemm. x is not rounded; widening is
//! exact, so the result is the f32 linear of the bf16-rounded weights. f32 weights as stored (an f32
//! checkpoint's mapping, [`RowsFrom::F32`]) are rounded to bf16 as they are widened ([`widen_rounded`]): the
//! same bits as from a copy rounded at load, without the copy.
//!
//! The blocks follow gemm's own: gemm sums over k in depth blocks of at most 512 ([`gemm_depth_block`]),
//! adding each block's products into the output in order. One gemm call per such block, each adding into y, is
//! therefore the same sum in the same order as one call over all of k: bit for bit [`gemm::linear_cm`] on the
//! widened weights (tested, the model's depths included).
//!
//! Before, whole `[256, k]` row blocks were widened (4 MiB at k = 4096, more than L2) and gemm packed x once per
//! 256 rows. At 10 s, bf16 checkpoint, against that: CPU time 0.990 and 0.984 (B lower in 11 and 15 of 20
//! interleaved pairs), wall 1.010 and 0.995: a 1–2 % gain in CPU, within the noise in wall time.

use super::{bf16_from_f32, bf16_to_f32, Epilogue, Kind, RowsFrom};
use crate::alignedbuf::AlignedBuf;
use crate::gemm::{self, Threads};
use std::cell::RefCell;

/// Most rows of W widened at once: `[512, 512]` f32 is 1 MiB, which L2 holds beside gemm's packed x.
const ROWS: usize = 512;
/// Most columns of W widened at once: gemm's largest depth block (module docs).
const DEPTH: usize = 512;

thread_local! {
    /// One block of W widened to f32 (`[≤ ROWS, ≤ DEPTH]`), reused across calls on the calling thread.
    static WIDE: RefCell<AlignedBuf<f32>> = RefCell::new(AlignedBuf::zeroed(0));
}

/// `dst[i] = src[i]` widened from bf16 (exact). Written so that it vectorizes (a shift per lane).
pub fn widen(dst: &mut [f32], src: &[u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16_to_f32(s);
    }
}

/// `dst[i] = src[i]` rounded to bf16 (nearest even, as [`bf16_from_f32`] and a copy rounded at load) and
/// widened back: what [`widen`] gives from the rounded bits. Branch-free but for NaN's select: it vectorizes.
pub fn widen_rounded(dst: &mut [f32], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16_to_f32(bf16_from_f32(s));
    }
}

/// The depth block gemm sums at a time when it multiplies `[rows, k]` by `[k, t]` (gemm-common 0.19,
/// `gemm_basic_generic`): all of k for one column (its gemv); `min(k, 512)` when both sides are ≤ 64 (its
/// small-size path); otherwise k cut into ⌈k / 512⌉ equal blocks (`kernel_params` on this Xeon's and Zen 4's
/// L1 caches).
fn gemm_depth_block(rows: usize, k: usize, t: usize) -> usize {
    let k = k.max(1);
    if t == 1 {
        k
    } else if rows <= 64 && t <= 64 {
        k.min(DEPTH)
    } else {
        k.div_ceil(k.div_ceil(DEPTH))
    }
}

/// `epilogue(W · x + bias)` with W `[n, k]` row-major, bf16 or f32 rounded to bf16 as it is widened, x `[k, t]`
/// f32, the result `[n, t]`, bias `[n]`.
/// Split over the threads like the f32 linears ([`gemm::row_blocks`]), each thread's rows cut into equal
/// blocks of at most `ROWS` (t > 1). Every such block has more than 64 rows whatever the thread count (when
/// n does), and a single column is gemv for any rows, so each block's depth blocks, and the result, do not
/// depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn linear_bf16_rows_cm(
    out: Epilogue<'_>,
    x: &[f32],            // [k, t]
    w: RowsFrom<'_>,      // [n, k]
    bias: Option<&[f32]>, // [n]
    n: usize,
    k: usize,
    t: usize,
    threads: Threads,
) {
    assert!(w.len() >= n * k, "linear_bf16_rows_cm: w too small");
    assert!(x.len() >= k * t, "linear_bf16_rows_cm: x too small");
    assert!(out.out_len() >= n * t, "linear_bf16_rows_cm: output too small");
    assert!(bias.is_none_or(|b| b.len() >= n), "linear_bf16_rows_cm: bias too small");
    let kind = super::out_kind(&out);
    let dst = out.into_dst(n * t);
    let residual = match kind {
        Kind::Accumulate(s) => Some(s),
        Kind::Store | Kind::StoreSilu => None,
    };
    let scale = residual.unwrap_or(1.0);
    gemm::row_blocks(dst, n, t, threads, |r0, yb| {
        let rows = yb.len() / t;
        // A single column (gemv) sums all of k at once: widen whole rows then, fewer of them.
        let most = if t == 1 { (ROWS * DEPTH / k.max(1)).max(1) } else { ROWS };
        let sub = rows.div_ceil(rows.div_ceil(most));
        WIDE.with(|cell| {
            let wide = &mut *cell.borrow_mut();
            for (i, yb) in yb.chunks_mut(sub * t).enumerate() {
                let (s0, rows) = (r0 + i * sub, yb.len() / t);
                let depth = gemm_depth_block(rows, k, t);
                wide.grow(rows * depth);
                let mut add = gemm::seed_bias(yb, bias.map(|b| &b[s0..s0 + rows]), t, residual);
                // k = 0 still makes one (empty) call, which zeroes a store without bias.
                for c0 in (0..k.max(1)).step_by(depth) {
                    let kc = depth.min(k - c0);
                    let wide = &mut wide[..rows * kc];
                    for (r, d) in wide.chunks_exact_mut(kc.max(1)).enumerate() {
                        let at = (s0 + r) * k + c0;
                        match w {
                            RowsFrom::Bf16(bits) => widen(d, &bits[at..][..kc]),
                            RowsFrom::F32(f) => widen_rounded(d, &f[at..][..kc]),
                        }
                    }
                    gemm::matmul(
                        yb,
                        t,
                        wide,
                        kc,
                        1,
                        &x[c0 * t..],
                        t,
                        1,
                        rows,
                        kc,
                        t,
                        scale,
                        add,
                        Threads::Single,
                    );
                    add = true;
                }
                if let Kind::StoreSilu = kind {
                    crate::activation::silu_inplace(yb);
                }
            }
        })
    });
}
