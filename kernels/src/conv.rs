//! Causal depthwise 1-D convolution over time (the conformer convolution module's `depthwise_conv`,
//! kernel 31, no bias, k-1 zeros of left padding only), on channel-major activations `[c, t]`:
//! `y[ch, τ] = Σ_{j<k} w[ch, j] · x[ch, τ - (k-1) + j]`, terms with a negative time index being zero.
//!
//! Each channel is one contiguous row and the conv is a 1-D causal filter per row. A row is copied once into a
//! scratch with k-1 leading zeros (the causal padding) and zeros after the end, then every output vector of 8
//! time steps is Σ_j w[ch, j] · (8 consecutive padded inputs starting at τ + j): a broadcast weight and an
//! unaligned load per tap, CM_VECS independent accumulators, summed over j in ascending order. Rows are
//! independent: rayon over blocks of rows, bit-identical for any thread count. The weights are PyTorch's
//! `[c, 1, k]`, read in place.

use rayon::prelude::*;
use wide::f32x8;

use crate::math::{fma8, load8, store8, LANES};

/// Below this many multiply-adds (c·t·k) the conv runs on the calling thread.
const PAR_MIN_MACS: usize = 1 << 21;

/// Output vectors per inner block (4 FMA chains in flight; 32 time steps).
const CM_VECS: usize = 4;
const CM_BLOCK_T: usize = CM_VECS * LANES;
/// Rows per rayon task.
const CM_ROWS_PER_TASK: usize = 16;

/// Causal depthwise conv, channel-major, on several sequences packed side by side along time:
/// `y[ch, τ] = Σ_{j<k} w[ch, j] · x[ch, τ - (k-1) + j]` within each segment (zero before its first column).
/// `segments` are the lengths of consecutive column ranges of `[c, t]` (summing to t; `&[t]` for one sequence), and
/// the causal window restarts at each segment's first column (its k-1 left zeros), so no value crosses a segment
/// boundary. Each segment's output is bit-identical to running it alone: a column's sum is the same taps in the
/// same order wherever it sits.
pub fn depthwise_conv1d_causal_cm_segments(
    y: &mut [f32], // [c, t]
    x: &[f32],     // [c, t]
    w: &[f32],     // [c, k] (PyTorch's [c, 1, k])
    c: usize,
    t: usize,
    k: usize,
    segments: &[usize], // lengths, Σ = t
) {
    assert!(
        y.len() >= c * t && x.len() >= c * t,
        "depthwise_conv1d_causal_cm_segments: x or y too small"
    );
    assert!(
        w.len() >= c * k,
        "depthwise_conv1d_causal_cm_segments: weights too small"
    );
    assert_eq!(
        segments.iter().sum::<usize>(),
        t,
        "depthwise_conv1d_causal_cm_segments: segment lengths must sum to t"
    );
    if t == 0 || c == 0 {
        return;
    }
    let (y, x) = (&mut y[..c * t], &x[..c * t]);
    if k == 0 {
        y.fill(0.0);
        return;
    }
    let longest = segments.iter().copied().max().unwrap_or(0);
    let t_pad = longest.div_ceil(CM_BLOCK_T) * CM_BLOCK_T;
    let scratch = || (vec![0f32; t_pad + k - 1], vec![0f32; t_pad]);
    let block = |(i, (yb, xb)): (usize, (&mut [f32], &[f32])), (xp, yp): &mut (Vec<f32>, Vec<f32>)| {
        let ch0 = i * CM_ROWS_PER_TASK;
        for (r, (yr, xr)) in yb.chunks_exact_mut(t).zip(xb.chunks_exact(t)).enumerate() {
            let wr = &w[(ch0 + r) * k..(ch0 + r + 1) * k];
            let mut s0 = 0;
            for &len in segments {
                let pad = len.div_ceil(CM_BLOCK_T) * CM_BLOCK_T;
                conv_row_cm(
                    &mut yr[s0..s0 + len],
                    &xr[s0..s0 + len],
                    wr,
                    &mut xp[..pad + k - 1],
                    &mut yp[..pad],
                );
                s0 += len;
            }
        }
    };
    let per = CM_ROWS_PER_TASK * t;
    if c * t * k >= PAR_MIN_MACS {
        y.par_chunks_mut(per)
            .zip(x.par_chunks(per))
            .enumerate()
            .for_each_init(scratch, |s, item| block(item, s));
    } else {
        let mut s = scratch();
        y.chunks_mut(per)
            .zip(x.chunks(per))
            .enumerate()
            .for_each(|item| block(item, &mut s));
    }
}

/// One channel: `y`, `x` `[t]`, `w` `[k]`; `xp` `[t_pad + k - 1]` and `yp` `[t_pad]` scratch (t_pad a multiple
/// of CM_BLOCK_T, ≥ t). `xp`'s zero padding is rewritten here, so the scratch may hold anything.
#[inline]
fn conv_row_cm(y: &mut [f32], x: &[f32], w: &[f32], xp: &mut [f32], yp: &mut [f32]) {
    let (t, k) = (x.len(), w.len());
    xp[..k - 1].fill(0.0);
    xp[k - 1..k - 1 + t].copy_from_slice(x);
    xp[k - 1 + t..].fill(0.0);
    for tb in (0..yp.len()).step_by(CM_BLOCK_T) {
        let mut acc = [f32x8::ZERO; CM_VECS];
        for (j, &wj) in w.iter().enumerate() {
            let wv = f32x8::splat(wj);
            let xs = &xp[tb + j..tb + j + CM_BLOCK_T];
            for (v, a) in acc.iter_mut().enumerate() {
                *a = fma8(load8(&xs[v * LANES..]), wv, *a);
            }
        }
        for (v, a) in acc.iter().enumerate() {
            store8(&mut yp[tb + v * LANES..], *a);
        }
    }
    y.copy_from_slice(&yp[..t]);
}

/// Scalar f64 reference for [`depthwise_conv1d_causal_cm_segments`]: each segment copied out and run alone
/// through [`depthwise_conv1d_causal_cm_ref`].
pub fn depthwise_conv1d_causal_cm_segments_ref(
    y: &mut [f32], // [c, t]
    x: &[f32],     // [c, t]
    w: &[f32],     // [c, k]
    c: usize,
    t: usize,
    k: usize,
    segments: &[usize], // lengths, Σ = t
) {
    let mut s0 = 0;
    for &len in segments {
        let xs: Vec<f32> = (0..c)
            .flat_map(|ch| x[ch * t + s0..ch * t + s0 + len].iter().copied())
            .collect();
        let mut ys = vec![0f32; c * len];
        depthwise_conv1d_causal_cm_ref(&mut ys, &xs, w, c, len, k);
        for ch in 0..c {
            y[ch * t + s0..ch * t + s0 + len].copy_from_slice(&ys[ch * len..(ch + 1) * len]);
        }
        s0 += len;
    }
}

/// Scalar f64 reference of one sequence (`[c, t]`, a single segment of
/// [`depthwise_conv1d_causal_cm_segments`]).
pub fn depthwise_conv1d_causal_cm_ref(
    y: &mut [f32], // [c, t]
    x: &[f32],     // [c, t]
    w: &[f32],     // [c, k]
    c: usize,
    t: usize,
    k: usize,
) {
    for ch in 0..c {
        for tau in 0..t {
            let mut s = 0f64;
            for j in 0..k {
                if tau + j + 1 >= k {
                    s += w[ch * k + j] as f64 * x[ch * t + tau + j + 1 - k] as f64;
                }
            }
            y[ch * t + tau] = s as f32;
        }
    }
}
