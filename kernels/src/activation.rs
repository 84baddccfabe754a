//! SiLU and GLU (the conformer's feed-forward and convolution-module activations).
//!
//! Both are written as `a / (1 + e^(-g))` (one true division, no reciprocal approximation), which is
//! accurate to a few ulp and saturates cleanly: for g → -∞, e^(-g) = +∞ and the quotient is ±0 (never NaN
//! for finite `a`); for g → +∞, e^(-g) = 0 and the quotient is `a`.

use wide::f32x8;

/// The vectorized exp shared by σ, softmax and attention (documented in [`crate::math`]).
pub use crate::math::exp_f32x8;
use crate::math::{load8, load_partial, map_inplace, store8, store_partial, LANES};

/// `a · σ(g) = a / (1 + e^(-g))` for eight lanes.
#[inline(always)]
fn gate(a: f32x8, g: f32x8) -> f32x8 {
    a / (f32x8::ONE + exp_f32x8(-g))
}

/// f64 reference of `a · σ(g)`.
#[inline]
fn gate_ref(a: f32, g: f32) -> f32 {
    let (a, g) = (a as f64, g as f64);
    (a / (1.0 + (-g).exp())) as f32
}

/// SiLU in place: `x = x · σ(x)` (`x: [n]`, any layout).
pub fn silu_inplace(x: &mut [f32] /* [n] */) {
    map_inplace(x, |v| gate(v, v));
}

/// Scalar f64 reference for [`silu_inplace`].
pub fn silu_inplace_ref(x: &mut [f32] /* [n] */) {
    for v in x {
        *v = gate_ref(*v, *v);
    }
}

/// torch `GLU(dim = channels)`: `y[r, j] = x[r, j] · σ(x[r, c + j])` for `j < c`.
pub fn glu(
    y: &mut [f32], // [rows, c]
    x: &[f32],     // [rows, 2c]: value half a = [.., 0..c], gate half g = [.., c..2c]
    rows: usize,
    c: usize,
) {
    assert!(y.len() >= rows * c, "glu: y too small");
    assert!(x.len() >= rows * 2 * c, "glu: x too small");
    if c == 0 {
        return;
    }
    for (yr, xr) in y[..rows * c].chunks_exact_mut(c).zip(x.chunks_exact(2 * c)) {
        let (a, g) = xr.split_at(c);
        gated(yr, a, g);
    }
}

/// `y[j] = a[j] · σ(g[j])`: GLU on its two halves given apart (`y, a, g: [n]`), so a caller can split the work
/// anywhere; every element is computed exactly as [`glu`] computes it.
pub fn gated(y: &mut [f32], a: &[f32], g: &[f32]) {
    let n = y.len();
    assert!(a.len() >= n && g.len() >= n, "gated: a or g shorter than y");
    let body = n - n % LANES;
    for j in (0..body).step_by(LANES) {
        store8(&mut y[j..], gate(load8(&a[j..]), load8(&g[j..])));
    }
    if body < n {
        // Tail through the same vector arithmetic (padding a = 0, g = 0 gives 0, harmless).
        let v = gate(load_partial(&a[body..n], 0.0), load_partial(&g[body..n], 0.0));
        store_partial(&mut y[body..], v);
    }
}

/// Scalar f64 reference for [`glu`].
pub fn glu_ref(
    y: &mut [f32], // [rows, c]
    x: &[f32],     // [rows, 2c]
    rows: usize,
    c: usize,
) {
    for r in 0..rows {
        for j in 0..c {
            y[r * c + j] = gate_ref(x[r * 2 * c + j], x[r * 2 * c + c + j]);
        }
    }
}
