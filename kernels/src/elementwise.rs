//! Residual updates: `h += x` and the conformer's half-step `h += alpha · x` (alpha = 0.5 for the FFNs).
//!
//! `scaled_add` uses one fused multiply-add per element (one rounding instead of two), so it may differ
//! from PyTorch's `h + 0.5 * x` in the last bit when alpha is not a power of two; for alpha = 0.5 the
//! product is exact and both agree bit for bit.

use wide::f32x8;

use crate::math::{fma8, load8, store8, LANES};

/// `h[i] += alpha · x[i]`.
pub fn scaled_add(
    h: &mut [f32], // [n]
    x: &[f32],     // [n]
    alpha: f32,
) {
    assert_eq!(h.len(), x.len(), "scaled_add: length mismatch");
    let a = f32x8::splat(alpha);
    let body = h.len() - h.len() % LANES;
    let (hb, ht) = h.split_at_mut(body);
    let (xb, xt) = x.split_at(body);
    for (hc, xc) in hb.chunks_exact_mut(LANES).zip(xb.chunks_exact(LANES)) {
        store8(hc, fma8(load8(xc), a, load8(hc)));
    }
    for (hv, &xv) in ht.iter_mut().zip(xt) {
        *hv = xv.mul_add(alpha, *hv);
    }
}

/// f64 reference for [`scaled_add`].
pub fn scaled_add_ref(
    h: &mut [f32], // [n]
    x: &[f32],     // [n]
    alpha: f32,
) {
    for (hv, &xv) in h.iter_mut().zip(x) {
        *hv = (*hv as f64 + alpha as f64 * xv as f64) as f32;
    }
}

/// `h[i] += x[i]`.
pub fn add(
    h: &mut [f32], // [n]
    x: &[f32],     // [n]
) {
    assert_eq!(h.len(), x.len(), "add: length mismatch");
    let body = h.len() - h.len() % LANES;
    let (hb, ht) = h.split_at_mut(body);
    let (xb, xt) = x.split_at(body);
    for (hc, xc) in hb.chunks_exact_mut(LANES).zip(xb.chunks_exact(LANES)) {
        store8(hc, load8(hc) + load8(xc));
    }
    for (hv, &xv) in ht.iter_mut().zip(xt) {
        *hv += xv;
    }
}

/// Scalar reference for [`add`] (f32 addition is exactly rounded: the two must agree bit for bit).
pub fn add_ref(
    h: &mut [f32], // [n]
    x: &[f32],     // [n]
) {
    for (hv, &xv) in h.iter_mut().zip(x) {
        *hv += xv;
    }
}
