//! PyTorch `LayerNorm` over the last dim: `y = (x - mean) / sqrt(var + eps) · gamma + beta`, biased var.
//!
//! Statistics use the corrected two-pass algorithm (Chan, Golub & LeVeque): a first pass gives an
//! approximate mean `m0`; a second sums `x - m0` and `(x - m0)²`, whose terms are small and nearly exact
//! even when the row sits on a large offset (1e4 + noise), so `mean = m0 + Σ(x-m0)/d` and
//! `var = Σ(x-m0)²/d - (Σ(x-m0)/d)²` lose nothing to cancellation. The output subtracts `m0` and then the
//! small correction, so the mean is never rounded to f32 as a whole either. A row of d = 1024 stays in L1
//! across the three passes.
//!
//! Every row is computed by the same code whatever the thread split, so the output is bit-identical for
//! any rayon pool size.

use rayon::prelude::*;
use wide::f32x8;

use crate::math::{load8, store8, LANES};

/// Below this many elements the rayon fork/join costs more than it saves.
const PAR_MIN_ELEMS: usize = 1 << 18;
/// Elements per rayon task (whole rows).
const PAR_CHUNK_ELEMS: usize = 1 << 15;

/// LayerNorm of every row of `x` into `y`.
pub fn layer_norm(
    y: &mut [f32], // [rows, d]
    x: &[f32],     // [rows, d]
    gamma: &[f32], // [d]
    beta: &[f32],  // [d]
    eps: f32,
    rows: usize,
    d: usize,
) {
    assert!(
        y.len() >= rows * d && x.len() >= rows * d,
        "layer_norm: x or y too small"
    );
    assert!(
        gamma.len() >= d && beta.len() >= d,
        "layer_norm: gamma or beta too small"
    );
    if d == 0 || rows == 0 {
        return;
    }
    let (gamma, beta) = (&gamma[..d], &beta[..d]);
    let row = |(yr, xr): (&mut [f32], &[f32])| {
        yr.copy_from_slice(xr);
        ln_row_inplace(yr, gamma, beta, eps);
    };
    let (y, x) = (&mut y[..rows * d], &x[..rows * d]);
    if rows * d >= PAR_MIN_ELEMS {
        let per = (PAR_CHUNK_ELEMS / d).max(1) * d;
        y.par_chunks_mut(per)
            .zip(x.par_chunks(per))
            .for_each(|(yc, xc)| yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)).for_each(row));
    } else {
        y.chunks_exact_mut(d).zip(x.chunks_exact(d)).for_each(row);
    }
}

/// LayerNorm of every row of `x`, in place.
pub fn layer_norm_inplace(
    x: &mut [f32], // [rows, d]
    gamma: &[f32], // [d]
    beta: &[f32],  // [d]
    eps: f32,
    rows: usize,
    d: usize,
) {
    assert!(x.len() >= rows * d, "layer_norm_inplace: x too small");
    assert!(
        gamma.len() >= d && beta.len() >= d,
        "layer_norm_inplace: gamma or beta too small"
    );
    if d == 0 || rows == 0 {
        return;
    }
    let (gamma, beta) = (&gamma[..d], &beta[..d]);
    let x = &mut x[..rows * d];
    if rows * d >= PAR_MIN_ELEMS {
        let per = (PAR_CHUNK_ELEMS / d).max(1) * d;
        x.par_chunks_mut(per)
            .for_each(|c| c.chunks_exact_mut(d).for_each(|r| ln_row_inplace(r, gamma, beta, eps)));
    } else {
        x.chunks_exact_mut(d).for_each(|r| ln_row_inplace(r, gamma, beta, eps));
    }
}

/// One row: `row`, `gamma`, `beta` all `[d]`, d > 0.
#[inline]
fn ln_row_inplace(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let d = row.len();
    let body = d - d % LANES;
    let inv_d = 1.0 / d as f32;

    // Pass 1: approximate mean (two accumulators to overlap the add latency).
    let (mut s0, mut s1) = (f32x8::ZERO, f32x8::ZERO);
    let mut j = 0;
    while j + 2 * LANES <= body {
        s0 += load8(&row[j..]);
        s1 += load8(&row[j + LANES..]);
        j += 2 * LANES;
    }
    if j < body {
        s0 += load8(&row[j..]);
    }
    let mut s = (s0 + s1).reduce_add();
    for &v in &row[body..] {
        s += v;
    }
    let m0 = s * inv_d;

    // Pass 2: sums of the centred values and of their squares.
    let vm0 = f32x8::splat(m0);
    // Two accumulator pairs: the FMA chain, not the loads, would otherwise set the pace.
    let (mut a1, mut a2, mut b1, mut b2) = (f32x8::ZERO, f32x8::ZERO, f32x8::ZERO, f32x8::ZERO);
    let mut j = 0;
    while j + 2 * LANES <= body {
        let c = load8(&row[j..]) - vm0;
        let e = load8(&row[j + LANES..]) - vm0;
        a1 += c;
        a2 = c.mul_add(c, a2);
        b1 += e;
        b2 = e.mul_add(e, b2);
        j += 2 * LANES;
    }
    if j < body {
        let c = load8(&row[j..]) - vm0;
        a1 += c;
        a2 = c.mul_add(c, a2);
    }
    let (mut c1, mut c2) = ((a1 + b1).reduce_add(), (a2 + b2).reduce_add());
    for &v in &row[body..] {
        let c = v - m0;
        c1 += c;
        c2 = c.mul_add(c, c2);
    }
    let delta = c1 * inv_d;
    let var = (c2 * inv_d - delta * delta).max(0.0);
    let rstd = 1.0 / (var + eps).sqrt();

    // Pass 3: y = ((x - m0) - delta) · rstd · gamma + beta.
    let (vd, vr) = (f32x8::splat(delta), f32x8::splat(rstd));
    for j in (0..body).step_by(LANES) {
        let xh = (load8(&row[j..]) - vm0 - vd) * vr;
        store8(&mut row[j..], xh.mul_add(load8(&gamma[j..]), load8(&beta[j..])));
    }
    for j in body..d {
        let xh = (row[j] - m0 - delta) * rstd;
        row[j] = xh.mul_add(gamma[j], beta[j]);
    }
}

/// f64 reference for [`layer_norm`] (exact two-pass statistics in f64, one rounding at the end).
pub fn layer_norm_ref(
    y: &mut [f32], // [rows, d]
    x: &[f32],     // [rows, d]
    gamma: &[f32], // [d]
    beta: &[f32],  // [d]
    eps: f32,
    rows: usize,
    d: usize,
) {
    for r in 0..rows {
        let xr = &x[r * d..(r + 1) * d];
        let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for j in 0..d {
            let xh = (xr[j] as f64 - mean) * rstd;
            y[r * d + j] = (xh * gamma[j] as f64 + beta[j] as f64) as f32;
        }
    }
}
