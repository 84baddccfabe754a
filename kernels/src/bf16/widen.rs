//! [`Bf16Kernel::WidenF32`](super::Bf16Kernel::WidenF32): bf16 weights `[n, k]` kept row-major as stored (a
//! bf16 checkpoint's mapping, or rounded once at load), widened to f32 one [`WIDEN_ROWS`]-row block at a time
//! into a per-thread buffer that stays in L2, and multiplied by the f32 gemm. x is not rounded; widening is
//! exact, so the result is the f32 linear of the bf16-rounded weights.

use super::{bf16_to_f32, Epilogue};
use crate::alignedbuf::AlignedBuf;
use crate::gemm::{self, row_blocks_of, Threads};
use std::cell::RefCell;

/// Rows of W widened per task: `[256, k]` f32 is 1 MiB at k = 1024 (4 MiB at 4096), within reach of L2, where
/// the gemm that follows reads it.
const WIDEN_ROWS: usize = 256;

thread_local! {
    /// One row block of W widened to f32 (`[WIDEN_ROWS, k]`), reused across calls on the calling thread.
    static WIDE: RefCell<AlignedBuf<f32>> = RefCell::new(AlignedBuf::zeroed(0));
}

/// `dst[i] = src[i]` widened from bf16 (exact). Written so that it vectorizes (a shift per lane).
pub fn widen(dst: &mut [f32], src: &[u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16_to_f32(s);
    }
}

/// `epilogue(W · x + bias)` with W `[n, k]` bf16 row-major, x `[k, t]` f32, the result `[n, t]`, bias `[n]`.
/// Parallel over gemm's row blocks; like the f32 linears, the result does not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn linear_bf16_rows_cm(
    out: Epilogue<'_>,
    x: &[f32],            // [k, t]
    w: &[u16],            // [n, k]
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
    row_blocks_of(dst, n, t, WIDEN_ROWS, threads, |r0, yb| {
        let rows = yb.len() / t;
        let b = bias.map(|b| &b[r0..r0 + rows]);
        WIDE.with(|cell| {
            let wide = &mut *cell.borrow_mut();
            wide.grow(WIDEN_ROWS * k);
            let wide = &mut wide[..rows * k];
            widen(wide, &w[r0 * k..(r0 + rows) * k]);
            match kind {
                super::Kind::Store => gemm::linear_cm(yb, x, wide, b, rows, k, t, Threads::Single),
                super::Kind::StoreSilu => {
                    let silu = crate::activation::silu_inplace;
                    gemm::linear_cm_then(yb, x, wide, b, rows, k, t, Threads::Single, silu)
                }
                super::Kind::Accumulate(scale) => {
                    gemm::linear_cm_accumulate(yb, x, wide, b, scale, rows, k, t, Threads::Single)
                }
            }
        })
    });
}
