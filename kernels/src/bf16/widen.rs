//! [`Bf16Kernel::WidenF32`](super::Bf16Kernel::WidenF32): bf16 weights `[n, k]` kept row-major as stored (a
//! bf16 checkpoint's mapping, or rounded once at load), widened to f32 one `[≤ 512, ≤ 512]` block at a time
//! into a per-thread buffer that stays in L2, and multiplied by the f32 gemm. x is not rounded; widening is
//! exact, so the result is the f32 linear of the bf16-rounded weights. f32 weights as stored (an f32
//! checkpoint's mapping, [`RowsFrom::F32`]) are rounded to bf16 as they are widened ([`widen_rounded`]): the
//! same bits as from a copy rounded at load, without the copy.
//!
//! The blocks are the f32 linear's own ([`gemm::linear_cm`] copies W block by block too, see
//! [`WeightRows::Blocks`]), so the result is bit for bit [`gemm::linear_cm`] on the widened weights (tested,
//! the model's depths included).

use super::{bf16_from_f32, bf16_to_f32, Epilogue, RowsFrom};
use crate::gemm::{self, Threads, WeightRows};

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

/// `epilogue(W · x + bias)` with W `[n, k]` row-major, bf16 or f32 rounded to bf16 as it is widened, x `[k, t]`
/// f32, the result `[n, t]`, bias `[n]`: the f32 linear's blocks ([`WeightRows::Blocks`]), filled by widening.
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
    let fill = |d: &mut [f32], r: usize, c0: usize| match w {
        RowsFrom::Bf16(bits) => widen(d, &bits[r * k + c0..][..d.len()]),
        RowsFrom::F32(f) => widen_rounded(d, &f[r * k + c0..][..d.len()]),
    };
    gemm::linear_cm_rows(dst, x, WeightRows::Blocks(&fill), bias, n, k, t, threads, kind)
}
