//! Causal depthwise 1-D convolution over time (the conformer convolution module's `depthwise_conv`,
//! kernel 31, no bias, 30 zeros of left padding only).
//!
//! `y[τ, ch] = Σ_{j<k} w[ch, j] · x[τ - (k-1) + j, ch]`, terms with a negative time index being zero.
//! Activations are time-major `[t, c]`, so consecutive channels are contiguous: the kernel vectorizes
//! across channels with weights packed per 64-channel block as `[k, 64]` (a row of eight channels'
//! tap-j weights is one load). It walks tiles of 32 time steps; inside a tile, channel blocks of 64 whose
//! input window is first copied to a contiguous scratch (see `TILE_T`); 64 channels × 31 taps of
//! weights (8 KB) plus the 62-row window (16 KB) stay in L1. Each output is summed over j in ascending
//! order by the same code whatever the time split, so the result is bit-identical for any thread count.

use rayon::prelude::*;
use wide::f32x8;

use crate::math::{load8, store8, LANES};

/// Channels per block: 8 vectors of accumulators (8 independent FMA chains hide the FMA latency).
const BLOCK_VECS: usize = 8;
const BLOCK_CH: usize = BLOCK_VECS * LANES;
/// Output time steps per tile (and per rayon task). The tile's input window, (TILE_T + k - 1) rows of one
/// 64-channel block, is copied into a contiguous scratch: read in place, those rows sit c·4 bytes apart
/// (4 KiB for c = 1024), all alias to the same few L1 sets and thrash (measured 5× slower).
const TILE_T: usize = 32;
/// Below this many multiply-adds (t·c·k) the conv runs on the calling thread.
const PAR_MIN_MACS: usize = 1 << 21;

/// Width of the channel block starting at `ch0`.
#[inline]
fn block_width(ch0: usize, c: usize) -> usize {
    BLOCK_CH.min(c - ch0)
}

/// Packs PyTorch's depthwise weight `[c, 1, k]` (read as `[c, k]`) into the layout the kernel reads:
/// channel blocks of 64 (the last one narrower), each block `[k, width]` contiguous, i.e. block `b`
/// starts at `64·b·k` and holds `w[64·b + i, j]` at `j·width + i`. Do it once at load time and call
/// [`depthwise_conv1d_causal_packed`].
pub fn pack_weights(
    wp: &mut [f32], // [c·k], packed as above
    w: &[f32],      // [c, k]
    c: usize,
    k: usize,
) {
    assert!(wp.len() >= c * k && w.len() >= c * k, "pack_weights: slice too small");
    for ch0 in (0..c).step_by(BLOCK_CH) {
        let bw = block_width(ch0, c);
        let blk = &mut wp[ch0 * k..(ch0 + bw) * k];
        for i in 0..bw {
            for j in 0..k {
                blk[j * bw + i] = w[(ch0 + i) * k + j];
            }
        }
    }
}

/// Causal depthwise conv with the checkpoint's `[c, k]` weights (packs them into a temporary; engines
/// that call it per layer should pack once and use [`depthwise_conv1d_causal_packed`]).
pub fn depthwise_conv1d_causal(
    y: &mut [f32], // [t, c]
    x: &[f32],     // [t, c]
    w: &[f32],     // [c, k]
    t: usize,
    c: usize,
    k: usize,
) {
    let mut wp = vec![0f32; c * k];
    pack_weights(&mut wp, w, c, k);
    depthwise_conv1d_causal_packed(y, x, &wp, t, c, k);
}

/// Causal depthwise conv with weights packed by [`pack_weights`].
pub fn depthwise_conv1d_causal_packed(
    y: &mut [f32], // [t, c]
    x: &[f32],     // [t, c]
    wp: &[f32],    // [c·k], packed
    t: usize,
    c: usize,
    k: usize,
) {
    assert!(
        y.len() >= t * c && x.len() >= t * c,
        "depthwise_conv1d_causal: x or y too small"
    );
    assert!(wp.len() >= k * c, "depthwise_conv1d_causal: weights too small");
    if t == 0 || c == 0 {
        return;
    }
    let (y, x, wp) = (&mut y[..t * c], &x[..t * c], &wp[..k * c]);
    if k == 0 {
        y.fill(0.0);
        return;
    }
    let scratch_len = (TILE_T + k - 1) * BLOCK_CH;
    if t * c * k >= PAR_MIN_MACS && t > TILE_T {
        y.par_chunks_mut(TILE_T * c).enumerate().for_each(|(b, yt)| {
            let mut scratch = vec![0f32; scratch_len];
            conv_tile(yt, x, wp, b * TILE_T, c, k, &mut scratch);
        });
    } else {
        let mut scratch = vec![0f32; scratch_len];
        for (b, yt) in y.chunks_mut(TILE_T * c).enumerate() {
            conv_tile(yt, x, wp, b * TILE_T, c, k, &mut scratch);
        }
    }
}

/// Output rows `t0 .. t0 + rows` (`yt: [rows, c]`, rows ≤ TILE_T) from the whole `x` (`[t, c]`).
fn conv_tile(yt: &mut [f32], x: &[f32], wp: &[f32], t0: usize, c: usize, k: usize, scratch: &mut [f32]) {
    let rows = yt.len() / c;
    // Input rows s0 .. t0 + rows feed this tile; earlier taps are the zero padding.
    let s0 = (t0 + 1).saturating_sub(k);
    let n_in = t0 + rows - s0;
    for ch0 in (0..c).step_by(BLOCK_CH) {
        let bw = block_width(ch0, c);
        let xs = &mut scratch[..n_in * bw];
        for (i, row) in xs.chunks_exact_mut(bw).enumerate() {
            let s = s0 + i;
            row.copy_from_slice(&x[s * c + ch0..s * c + ch0 + bw]);
        }
        let wb = &wp[ch0 * k..(ch0 + bw) * k]; // [k, bw]
        for r in 0..rows {
            let tau = t0 + r;
            let out = &mut yt[r * c + ch0..r * c + ch0 + bw];
            // Taps j < k-1-τ read before time 0: skipped. Tap j reads input time τ + j + 1 - k, which
            // sits at scratch row τ + j + 1 - k - s0.
            let j0 = (k - 1).saturating_sub(tau);
            let base = tau + 1 - k.min(tau + 1) - s0; // scratch row of tap j0
            if bw == BLOCK_CH {
                conv_point::<BLOCK_VECS>(out, xs, wb, base, j0, k, bw, 0);
            } else {
                let mut v = 0;
                while v + LANES <= bw {
                    conv_point::<1>(&mut out[v..], xs, wb, base, j0, k, bw, v);
                    v += LANES;
                }
                // Channel tail (< 8): same summation order, scalar FMAs.
                for i in v..bw {
                    let mut acc = 0f32;
                    for (jj, j) in (j0..k).enumerate() {
                        acc = xs[(base + jj) * bw + i].mul_add(wb[j * bw + i], acc);
                    }
                    out[i] = acc;
                }
            }
        }
    }
}

/// `NV·8` channels at column `col` of a block of width `bw`: `out[..NV·8] = Σ_{j=j0..k} xs[row(j)]·wb[j]`
/// with `row(j0) = base` and rows consecutive.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn conv_point<const NV: usize>(
    out: &mut [f32],
    xs: &[f32], // [rows_in, bw]
    wb: &[f32], // [k, bw]
    base: usize,
    j0: usize,
    k: usize,
    bw: usize,
    col: usize,
) {
    let mut acc = [f32x8::ZERO; NV];
    for (jj, j) in (j0..k).enumerate() {
        let xr = &xs[(base + jj) * bw + col..(base + jj) * bw + col + NV * LANES];
        let wr = &wb[j * bw + col..j * bw + col + NV * LANES];
        for (v, a) in acc.iter_mut().enumerate() {
            *a = load8(&xr[v * LANES..]).mul_add(load8(&wr[v * LANES..]), *a);
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

// ---------------------------------------------------------------------------------------------------------
// Channel-major causal depthwise conv: activations `[c, t]`, so each channel is one contiguous row and the
// conv is a 1-D causal filter per row. A row is copied once into a scratch with k-1 leading zeros (the causal
// padding) and zeros after the end, then every output vector of 8 time steps is Σ_j w[ch, j] · (8 consecutive
// padded inputs starting at τ + j): a broadcast weight and an unaligned load per tap, CM_VECS independent
// accumulators. Padding terms add w·0 = 0 exactly, so every output is the same ascending-j FMA chain as the
// time-major kernel. Rows are independent: rayon over blocks of rows, bit-identical for any thread count.
// ---------------------------------------------------------------------------------------------------------

/// Output vectors per inner block (4 FMA chains in flight; 32 time steps).
const CM_VECS: usize = 4;
const CM_BLOCK_T: usize = CM_VECS * LANES;
/// Rows per rayon task.
const CM_ROWS_PER_TASK: usize = 16;

/// Causal depthwise conv, channel-major: `y[ch, τ] = Σ_{j<k} w[ch, j] · x[ch, τ - (k-1) + j]` (zero before 0).
pub fn depthwise_conv1d_causal_cm(
    y: &mut [f32], // [c, t]
    x: &[f32],     // [c, t]
    w: &[f32],     // [c, k] (PyTorch's [c, 1, k])
    c: usize,
    t: usize,
    k: usize,
) {
    assert!(
        y.len() >= c * t && x.len() >= c * t,
        "depthwise_conv1d_causal_cm: x or y too small"
    );
    assert!(w.len() >= c * k, "depthwise_conv1d_causal_cm: weights too small");
    if t == 0 || c == 0 {
        return;
    }
    let (y, x) = (&mut y[..c * t], &x[..c * t]);
    if k == 0 {
        y.fill(0.0);
        return;
    }
    let t_pad = t.div_ceil(CM_BLOCK_T) * CM_BLOCK_T;
    let scratch = || (vec![0f32; t_pad + k - 1], vec![0f32; t_pad]);
    let block = |(i, (yb, xb)): (usize, (&mut [f32], &[f32])), (xp, yp): &mut (Vec<f32>, Vec<f32>)| {
        let ch0 = i * CM_ROWS_PER_TASK;
        for (r, (yr, xr)) in yb.chunks_exact_mut(t).zip(xb.chunks_exact(t)).enumerate() {
            conv_row_cm(yr, xr, &w[(ch0 + r) * k..(ch0 + r + 1) * k], xp, yp);
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
                *a = load8(&xs[v * LANES..]).mul_add(wv, *a);
            }
        }
        for (v, a) in acc.iter().enumerate() {
            store8(&mut yp[tb + v * LANES..], *a);
        }
    }
    y.copy_from_slice(&yp[..t]);
}

/// Scalar f64 reference for [`depthwise_conv1d_causal_cm`].
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
