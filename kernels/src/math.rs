//! Vectorized `exp` and the small load/store helpers the elementwise kernels share.
//!
//! `wide::f32x8::exp` is not used: it returns 0 (not ∞) for x ≥ 87.3, which would make σ(-100) = 1.
//! [`exp_f32x8`] is Cephes' `expf` scheme: `n = round(x·log2 e)`, `r = x - n·ln 2` (ln 2 split in two so
//! the reduction is exact to ~2⁻³⁵), `exp(r) = 1 + r + r²·P(r)` with a degree-5 minimax `P` on
//! |r| ≤ ln2/2, then the result is scaled by 2ⁿ. The scale is applied as two factors `2^(n>>1)·2^(n-(n>>1))`
//! so that both are normal floats over the whole clamped range: results below 2⁻¹²⁶ come out as correctly
//! scaled subnormals and results above f32::MAX as +∞, with no special cases. Error ≤ 2 ulp on normal
//! results (checked against f64 in the property tests).

use wide::{f32x8, i32x8};

/// Lanes in an `f32x8`.
pub const LANES: usize = 8;

const LOG2_E: f32 = std::f32::consts::LOG2_E;
// ln 2 = LN2_HI + LN2_LO; LN2_HI has 12 significant bits so n·LN2_HI is exact for |n| < 2¹².
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
// Cephes expf coefficients: exp(r) ≈ 1 + r + r²·(P0 r⁵ + … + P5), |r| ≤ ln2/2.
const P0: f32 = 1.987_569_1e-4;
const P1: f32 = 1.398_2e-3;
const P2: f32 = 8.333_452e-3;
const P3: f32 = 4.166_579_6e-2;
const P4: f32 = 1.666_666_5e-1;
const P5: f32 = 0.5; // Cephes' 5.0000001201e-1 rounds to 0.5 in f32
                     // Inputs are clamped to [X_MIN, X_MAX]: exp(-104) < 2⁻¹⁵⁰ rounds to 0 and exp(89) > f32::MAX is ∞, so the
                     // clamp changes no result while keeping n within [-151, 129] (both scale factors stay normal).
const X_MIN: f32 = -104.0;
const X_MAX: f32 = 89.0;

/// `2^n` for integer `n` in [-126, 127], built directly in the exponent field.
#[inline(always)]
fn pow2i(n: i32x8) -> f32x8 {
    bytemuck::cast::<i32x8, f32x8>((n + i32x8::splat(127)) << 23)
}

/// e^x for eight lanes: ≤ 2 ulp for normal results, subnormal results scaled correctly, +∞ above
/// ~88.72, 0 below ~-103.97, NaN in → NaN out. Reusable by any kernel (softmax, attention, σ).
#[inline(always)]
pub fn exp_f32x8(x: f32x8) -> f32x8 {
    // fast_max/fast_min (vmaxps/vminps) turn a NaN `x` into the constant; NaN is restored at the end.
    let xc = x.fast_max(f32x8::splat(X_MIN)).fast_min(f32x8::splat(X_MAX));
    let nf = (xc * f32x8::splat(LOG2_E)).round();
    let r = nf.mul_neg_add(f32x8::splat(LN2_HI), xc);
    let r = nf.mul_neg_add(f32x8::splat(LN2_LO), r);
    let mut p = f32x8::splat(P0);
    p = p.mul_add(r, f32x8::splat(P1));
    p = p.mul_add(r, f32x8::splat(P2));
    p = p.mul_add(r, f32x8::splat(P3));
    p = p.mul_add(r, f32x8::splat(P4));
    p = p.mul_add(r, f32x8::splat(P5));
    let e = p.mul_add(r * r, r) + f32x8::ONE;
    let n = nf.round_int();
    let n1 = n >> 1;
    let n2 = n - n1;
    let y = e * pow2i(n1) * pow2i(n2);
    x.is_nan().blend(x, y)
}

/// Scalar e^x with exactly the lane arithmetic of [`exp_f32x8`] (same result bit for bit).
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    let mut a = [0f32; LANES];
    a[0] = x;
    exp_f32x8(f32x8::from(a)).to_array()[0]
}

/// Reference e^x: f64 `exp`, rounded once to f32.
pub fn exp_ref(x: f32) -> f32 {
    (x as f64).exp() as f32
}

/// Vectorized e^x over a slice, in place (`x: [n]`). Tail lanes go through the same vector code.
pub fn exp_inplace(x: &mut [f32]) {
    map_inplace(x, exp_f32x8);
}

/// Scalar reference for [`exp_inplace`].
pub fn exp_inplace_ref(x: &mut [f32]) {
    for v in x {
        *v = exp_ref(*v);
    }
}

/// Loads the first 8 elements of `s` (unaligned). `s.len() >= 8` is the caller's invariant.
#[inline(always)]
pub(crate) fn load8(s: &[f32]) -> f32x8 {
    let a: &[f32; LANES] = s[..LANES].try_into().expect("load8: slice of 8");
    f32x8::from(*a)
}

/// Stores `v` into the first 8 elements of `s` (unaligned).
#[inline(always)]
pub(crate) fn store8(s: &mut [f32], v: f32x8) {
    s[..LANES].copy_from_slice(v.as_array_ref());
}

/// Loads `s` (fewer than 8 elements) into the low lanes, padding with `fill`.
#[inline(always)]
pub(crate) fn load_partial(s: &[f32], fill: f32) -> f32x8 {
    let mut a = [fill; LANES];
    a[..s.len()].copy_from_slice(s);
    f32x8::from(a)
}

/// Stores the low `s.len()` lanes of `v` into `s` (fewer than 8 elements).
#[inline(always)]
pub(crate) fn store_partial(s: &mut [f32], v: f32x8) {
    let n = s.len();
    s.copy_from_slice(&v.as_array_ref()[..n]);
}

/// `x[i] = f(x[i])` lane-wise over the whole slice. The ragged tail is padded into one vector, so every
/// element gets the same arithmetic whatever its position (results do not depend on slice offsets).
#[inline(always)]
pub(crate) fn map_inplace(x: &mut [f32], f: impl Fn(f32x8) -> f32x8) {
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        store8(c, f(load8(c)));
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        store_partial(tail, f(load_partial(tail, 0.0)));
    }
}
