//! Causal depthwise 1-D convolution over time (the conformer convolution module's `depthwise_conv`,
//! kernel 31, no bias, 30 zeros of left padding only).
//!
//! `y[τ, ch] = Σ_{j<k} w[ch, j] · x[τ - (k-1) + j, ch]`, terms with a negative time index being zero.
//! Activations are time-major `[t, c]`, so consecutive channels are contiguous: the kernel vectorizes
//! across channels with weights transposed to `[k, c]` (a row of eight channels' tap-j weights is then
//! one load). It walks channel blocks of 64 (8 vectors = 8 independent FMA chains to hide latency; 64
//! channels × 31 taps of weights plus the 31-row input window are ~16 KB, in L1) and, inside a block,
//! every time step. Each output is summed over j in ascending order by the same code whatever the time
//! split, so the result is bit-identical for any thread count.

use rayon::prelude::*;
use wide::f32x8;

use crate::math::{load8, store8, LANES};

/// Channels per block: 8 vectors of accumulators.
const BLOCK_VECS: usize = 8;
const BLOCK_CH: usize = BLOCK_VECS * LANES;
/// Below this many multiply-adds (t·c·k) the conv runs on the calling thread.
const PAR_MIN_MACS: usize = 1 << 21;
/// Time steps per rayon task.
const PAR_T_BLOCK: usize = 32;

/// Transposes PyTorch's depthwise weight `[c, 1, k]` (read as `[c, k]`) into the `[k, c]` layout the
/// kernel wants. Do it once at load time and call [`depthwise_conv1d_causal_kc`].
pub fn transpose_weights(
    wt: &mut [f32], // [k, c]
    w: &[f32],      // [c, k]
    c: usize,
    k: usize,
) {
    assert!(
        wt.len() >= c * k && w.len() >= c * k,
        "transpose_weights: slice too small"
    );
    for ch in 0..c {
        for j in 0..k {
            wt[j * c + ch] = w[ch * k + j];
        }
    }
}

/// Causal depthwise conv with the checkpoint's `[c, k]` weights (transposes them into a temporary;
/// engines that call it per layer should transpose once and use [`depthwise_conv1d_causal_kc`]).
pub fn depthwise_conv1d_causal(
    y: &mut [f32], // [t, c]
    x: &[f32],     // [t, c]
    w: &[f32],     // [c, k]
    t: usize,
    c: usize,
    k: usize,
) {
    let mut wt = vec![0f32; c * k];
    transpose_weights(&mut wt, w, c, k);
    depthwise_conv1d_causal_kc(y, x, &wt, t, c, k);
}

/// Causal depthwise conv with weights already transposed to `[k, c]`.
pub fn depthwise_conv1d_causal_kc(
    y: &mut [f32], // [t, c]
    x: &[f32],     // [t, c]
    wt: &[f32],    // [k, c]
    t: usize,
    c: usize,
    k: usize,
) {
    assert!(
        y.len() >= t * c && x.len() >= t * c,
        "depthwise_conv1d_causal: x or y too small"
    );
    assert!(
        wt.len() >= k * c,
        "depthwise_conv1d_causal: weights too small"
    );
    if t == 0 || c == 0 {
        return;
    }
    let (y, x, wt) = (&mut y[..t * c], &x[..t * c], &wt[..k * c]);
    if k == 0 {
        y.fill(0.0);
        return;
    }
    if t * c * k >= PAR_MIN_MACS && t > PAR_T_BLOCK {
        y.par_chunks_mut(PAR_T_BLOCK * c)
            .enumerate()
            .for_each(|(b, yb)| conv_rows(yb, x, wt, b * PAR_T_BLOCK, c, k));
    } else {
        conv_rows(y, x, wt, 0, c, k);
    }
}

/// Output rows `t0 .. t0 + yb.len()/c` into `yb` (`[rows, c]`), reading the whole `x` (`[t, c]`).
fn conv_rows(yb: &mut [f32], x: &[f32], wt: &[f32], t0: usize, c: usize, k: usize) {
    let rows = yb.len() / c;
    let mut ch = 0;
    while ch + BLOCK_CH <= c {
        for r in 0..rows {
            conv_point::<BLOCK_VECS>(&mut yb[r * c + ch..], x, wt, t0 + r, ch, c, k);
        }
        ch += BLOCK_CH;
    }
    while ch + LANES <= c {
        for r in 0..rows {
            conv_point::<1>(&mut yb[r * c + ch..], x, wt, t0 + r, ch, c, k);
        }
        ch += LANES;
    }
    // Channel tail (< 8): same order of summation, scalar FMAs.
    for r in 0..rows {
        let tau = t0 + r;
        let j0 = (k - 1).saturating_sub(tau);
        for cc in ch..c {
            let mut acc = 0f32;
            for j in j0..k {
                let s = tau + j + 1 - k;
                acc = x[s * c + cc].mul_add(wt[j * c + cc], acc);
            }
            yb[r * c + cc] = acc;
        }
    }
}

/// `NV·8` channels starting at `ch` of output time `tau`, written to `out[..NV·8]`.
#[inline(always)]
fn conv_point<const NV: usize>(
    out: &mut [f32],
    x: &[f32],
    wt: &[f32],
    tau: usize,
    ch: usize,
    c: usize,
    k: usize,
) {
    let mut acc = [f32x8::ZERO; NV];
    // Taps with j < k-1-τ read before time 0: zero padding, skipped.
    for j in (k - 1).saturating_sub(tau)..k {
        let xs = &x[(tau + j + 1 - k) * c + ch..];
        let ws = &wt[j * c + ch..];
        for (v, a) in acc.iter_mut().enumerate() {
            *a = load8(&xs[v * LANES..]).mul_add(load8(&ws[v * LANES..]), *a);
        }
    }
    for (v, a) in acc.iter().enumerate() {
        store8(&mut out[v * LANES..], *a);
    }
}

/// Scalar f64 reference for [`depthwise_conv1d_causal`] (weights `[c, k]`, as in the checkpoint).
pub fn depthwise_conv1d_causal_ref(
    y: &mut [f32], // [t, c]
    x: &[f32],     // [t, c]
    w: &[f32],     // [c, k]
    t: usize,
    c: usize,
    k: usize,
) {
    for tau in 0..t {
        for ch in 0..c {
            let mut s = 0f64;
            for j in 0..k {
                // Input time τ - (k-1) + j; negative means left padding.
                if tau + j + 1 >= k {
                    s += w[ch * k + j] as f64 * x[(tau + j + 1 - k) * c + ch] as f64;
                }
            }
            y[tau * c + ch] = s as f32;
        }
    }
}
