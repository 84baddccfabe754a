//! Row softmax (max-subtracted), in place.
//!
//! Three passes over a row that sits in L1: max, then `e = exp(x - max)` stored back while summing, then
//! scale by `1 / sum`. A row whose entries are all -∞ gives NaN, as in PyTorch (callers that mask whole
//! rows handle that themselves).

use wide::f32x8;

use crate::math::{exp_f32x8, load8, load_partial, store8, store_partial, LANES};

/// `x[r, :] = softmax(x[r, :])` for every row.
pub fn softmax_rows_inplace(
    x: &mut [f32], // [rows, n]
    rows: usize,
    n: usize,
) {
    assert!(x.len() >= rows * n, "softmax_rows_inplace: x too small");
    if n == 0 {
        return;
    }
    for row in x[..rows * n].chunks_exact_mut(n) {
        softmax_row(row);
    }
}

fn softmax_row(row: &mut [f32] /* [n], n > 0 */) {
    let n = row.len();
    let body = n - n % LANES;

    let mut vmax = f32x8::splat(f32::NEG_INFINITY);
    for j in (0..body).step_by(LANES) {
        vmax = vmax.fast_max(load8(&row[j..]));
    }
    let mut max = vmax.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max);
    for &v in &row[body..] {
        max = max.max(v);
    }

    let m = f32x8::splat(max);
    let mut vsum = f32x8::ZERO;
    for j in (0..body).step_by(LANES) {
        let e = exp_f32x8(load8(&row[j..]) - m);
        vsum += e;
        store8(&mut row[j..], e);
    }
    let mut sum = vsum.reduce_add();
    if body < n {
        // Padding lanes are -∞, so they contribute exp(-∞) = 0 to the sum.
        let e = exp_f32x8(load_partial(&row[body..], f32::NEG_INFINITY) - m);
        sum += e.reduce_add();
        store_partial(&mut row[body..], e);
    }

    let inv = f32x8::splat(1.0 / sum);
    for j in (0..body).step_by(LANES) {
        let v = load8(&row[j..]) * inv;
        store8(&mut row[j..], v);
    }
    let inv = 1.0 / sum;
    for v in &mut row[body..] {
        *v *= inv;
    }
}

/// Scalar f64 reference for [`softmax_rows_inplace`].
pub fn softmax_rows_ref(
    x: &mut [f32], // [rows, n]
    rows: usize,
    n: usize,
) {
    for r in 0..rows {
        let row = &mut x[r * n..(r + 1) * n];
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for (v, e) in row.iter_mut().zip(e) {
            *v = (e / sum) as f32;
        }
    }
}
