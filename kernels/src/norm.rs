//! PyTorch `LayerNorm` over the channels: `y = (x - mean) / sqrt(var + eps) · gamma + beta`, biased var, on
//! channel-major activations `[c, t]` (row = one channel over time), normalized over the c rows of each column.
//!
//! Statistics use the corrected two-pass algorithm (Chan, Golub & LeVeque): a first pass gives an
//! approximate mean `m0`; a second sums `x - m0` and `(x - m0)²`, whose terms are small and nearly exact
//! even when the column sits on a large offset (1e4 + noise), so `mean = m0 + Σ(x-m0)/c` and
//! `var = Σ(x-m0)²/c - (Σ(x-m0)/c)²` lose nothing to cancellation. The output subtracts `m0` and then the
//! small correction, so the mean is never rounded to f32 as a whole either.
//!
//! Vectorized across time: a tile of CM_TILE columns is reduced over all rows (c × CM_TILE values, 128 KiB for
//! c = 1024: stays in L2 across the two passes), giving per-column `m0`, `delta`, `rstd`; the affine pass then
//! streams whole rows. Each column's statistics are computed by the same lane arithmetic whatever the tile split
//! or thread count (a ragged last tile is copied to a zero-padded scratch and run through the same code), so the
//! output is bit-identical for any rayon pool size.

use rayon::prelude::*;
use wide::f32x8;

use crate::math::{fma8, load8, store8, LANES};

/// Below this many elements the rayon fork/join costs more than it saves.
const PAR_MIN_ELEMS: usize = 1 << 18;
/// Elements per rayon task (whole rows).
const PAR_CHUNK_ELEMS: usize = 1 << 15;

/// Columns (time steps) per statistics tile: 4 vectors, so pass 2's accumulators fit in registers.
const CM_VECS: usize = 4;
const CM_TILE: usize = CM_VECS * LANES;
/// Rows summed into a partial before it is added to the column total: the f32 rounding error grows with
/// `CM_ROWS + c / CM_ROWS` instead of `c`.
const CM_ROWS: usize = 32;

/// Per-column statistics of a `[c, t]` block: `m0` (first-pass mean), `delta` (correction), `rstd`.
struct ColStats {
    m0: Vec<f32>,
    delta: Vec<f32>,
    rstd: Vec<f32>,
}

/// Statistics of `CM_TILE` columns of `x` (`[c, ≥ CM_TILE]`, row stride `ld`) into `m0`/`delta`/`rstd` `[CM_TILE]`.
#[inline]
fn cm_stats_tile(m0: &mut [f32], delta: &mut [f32], rstd: &mut [f32], x: &[f32], ld: usize, c: usize, eps: f32) {
    let inv_c = f32x8::splat(1.0 / c as f32);
    let col = |r: usize, v: usize| load8(&x[r * ld + v * LANES..]);

    // Pass 1: approximate mean.
    let mut tot = [f32x8::ZERO; CM_VECS];
    for r0 in (0..c).step_by(CM_ROWS) {
        let mut part = [f32x8::ZERO; CM_VECS];
        for r in r0..(r0 + CM_ROWS).min(c) {
            for (v, p) in part.iter_mut().enumerate() {
                *p += col(r, v);
            }
        }
        for (tv, p) in tot.iter_mut().zip(part) {
            *tv += p;
        }
    }
    let vm0 = tot.map(|s| s * inv_c);

    // Pass 2: sums of the centred values and of their squares.
    let (mut t1, mut t2) = ([f32x8::ZERO; CM_VECS], [f32x8::ZERO; CM_VECS]);
    for r0 in (0..c).step_by(CM_ROWS) {
        let (mut p1, mut p2) = ([f32x8::ZERO; CM_VECS], [f32x8::ZERO; CM_VECS]);
        for r in r0..(r0 + CM_ROWS).min(c) {
            for v in 0..CM_VECS {
                let d = col(r, v) - vm0[v];
                p1[v] += d;
                p2[v] = fma8(d, d, p2[v]);
            }
        }
        for v in 0..CM_VECS {
            t1[v] += p1[v];
            t2[v] += p2[v];
        }
    }
    for v in 0..CM_VECS {
        let dl = t1[v] * inv_c;
        let var = (t2[v] * inv_c - dl * dl).fast_max(f32x8::ZERO);
        let rs = f32x8::ONE / (var + f32x8::splat(eps)).sqrt();
        store8(&mut m0[v * LANES..], vm0[v]);
        store8(&mut delta[v * LANES..], dl);
        store8(&mut rstd[v * LANES..], rs);
    }
}

/// One tile's `(index, ((m0, delta), rstd))` as the zipped chunk iterators hand it over.
type StatsTile<'a> = (usize, ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]));

/// Column statistics of `x` `[c, t]` (c, t > 0).
fn cm_stats(x: &[f32], c: usize, t: usize, eps: f32) -> ColStats {
    let padded = t.div_ceil(CM_TILE) * CM_TILE;
    let mut s = ColStats {
        m0: vec![0.0; padded],
        delta: vec![0.0; padded],
        rstd: vec![0.0; padded],
    };
    let tile = |(j, ((m0, dl), rs)): StatsTile| {
        let j0 = j * CM_TILE;
        if j0 + CM_TILE <= t {
            cm_stats_tile(m0, dl, rs, &x[j0..], t, c, eps);
        } else {
            // Ragged last tile: zero-padded copy, same arithmetic per column.
            let w = t - j0;
            let mut buf = vec![0f32; c * CM_TILE];
            for (r, row) in buf.chunks_exact_mut(CM_TILE).enumerate() {
                row[..w].copy_from_slice(&x[r * t + j0..r * t + t]);
            }
            cm_stats_tile(m0, dl, rs, &buf, CM_TILE, c, eps);
        }
    };
    if c * t >= PAR_MIN_ELEMS {
        s.m0.par_chunks_mut(CM_TILE)
            .zip(s.delta.par_chunks_mut(CM_TILE))
            .zip(s.rstd.par_chunks_mut(CM_TILE))
            .enumerate()
            .for_each(tile);
    } else {
        s.m0.chunks_mut(CM_TILE)
            .zip(s.delta.chunks_mut(CM_TILE))
            .zip(s.rstd.chunks_mut(CM_TILE))
            .enumerate()
            .for_each(tile);
    }
    s
}

/// `row[j] = ((x[j] - m0[j]) - delta[j]) · rstd[j] · g + b` over one channel row `[t]`, where x is `src`'s
/// row, or `row` itself when `src` is None (in place).
#[inline]
fn cm_apply_row(row: &mut [f32], src: Option<&[f32]>, s: &ColStats, g: f32, b: f32) {
    let t = row.len();
    let body = t - t % LANES;
    let (vg, vb) = (f32x8::splat(g), f32x8::splat(b));
    for j in (0..body).step_by(LANES) {
        let x = load8(&src.unwrap_or(row)[j..]);
        let xh = (x - load8(&s.m0[j..]) - load8(&s.delta[j..])) * load8(&s.rstd[j..]);
        store8(&mut row[j..], fma8(xh, vg, vb));
    }
    for j in body..t {
        let xh = (src.unwrap_or(row)[j] - s.m0[j] - s.delta[j]) * s.rstd[j];
        row[j] = xh.mul_add(g, b);
    }
}

/// Affine pass over every row of `y` `[c, t]`, from `x` `[c, t]` (None: y holds x, in place).
fn cm_apply(y: &mut [f32], x: Option<&[f32]>, s: &ColStats, gamma: &[f32], beta: &[f32], c: usize, t: usize) {
    let y = &mut y[..c * t];
    let per = (PAR_CHUNK_ELEMS / t).max(1) * t;
    let rows = |(i, yc): (usize, &mut [f32])| {
        let r0 = i * (PAR_CHUNK_ELEMS / t).max(1);
        for (r, row) in yc.chunks_exact_mut(t).enumerate() {
            let src = x.map(|x| &x[(r0 + r) * t..(r0 + r + 1) * t]);
            cm_apply_row(row, src, s, gamma[r0 + r], beta[r0 + r]);
        }
    };
    if c * t >= PAR_MIN_ELEMS {
        y.par_chunks_mut(per).enumerate().for_each(rows);
    } else {
        y.chunks_mut(per).enumerate().for_each(rows);
    }
}

/// Channel-major LayerNorm: `y[:, j] = LN(x[:, j])` for every column j (statistics over the c rows).
pub fn layer_norm_cm(
    y: &mut [f32], // [c, t]
    x: &[f32],     // [c, t]
    gamma: &[f32], // [c]
    beta: &[f32],  // [c]
    eps: f32,
    c: usize,
    t: usize,
) {
    assert!(y.len() >= c * t && x.len() >= c * t, "layer_norm_cm: x or y too small");
    assert!(
        gamma.len() >= c && beta.len() >= c,
        "layer_norm_cm: gamma or beta too small"
    );
    if c == 0 || t == 0 {
        return;
    }
    let s = cm_stats(x, c, t, eps);
    cm_apply(y, Some(x), &s, gamma, beta, c, t);
}

/// Channel-major LayerNorm in place (`x: [c, t]`).
pub fn layer_norm_cm_inplace(
    x: &mut [f32], // [c, t]
    gamma: &[f32], // [c]
    beta: &[f32],  // [c]
    eps: f32,
    c: usize,
    t: usize,
) {
    assert!(x.len() >= c * t, "layer_norm_cm_inplace: x too small");
    assert!(
        gamma.len() >= c && beta.len() >= c,
        "layer_norm_cm_inplace: gamma or beta too small"
    );
    if c == 0 || t == 0 {
        return;
    }
    let s = cm_stats(x, c, t, eps);
    cm_apply(x, None, &s, gamma, beta, c, t);
}

/// f64 reference for [`layer_norm_cm`] (exact two-pass statistics per column, one rounding at the end).
pub fn layer_norm_cm_ref(
    y: &mut [f32], // [c, t]
    x: &[f32],     // [c, t]
    gamma: &[f32], // [c]
    beta: &[f32],  // [c]
    eps: f32,
    c: usize,
    t: usize,
) {
    for j in 0..t {
        let mean = (0..c).map(|r| x[r * t + j] as f64).sum::<f64>() / c as f64;
        let var = (0..c).map(|r| (x[r * t + j] as f64 - mean).powi(2)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for r in 0..c {
            let xh = (x[r * t + j] as f64 - mean) * rstd;
            y[r * t + j] = (xh * gamma[r] as f64 + beta[r] as f64) as f32;
        }
    }
}
