//! SiLU and GLU (the conformer's feed-forward and convolution-module activations).
//!
//! Both are written as `a / (1 + e^(-g))` (one true division, no reciprocal approximation), which is
//! accurate to a few ulp and saturates cleanly: for g → -∞, e^(-g) = +∞ and the quotient is ±0 (never NaN
//! for finite `a`); for g → +∞, e^(-g) = 0 and the quotient is `a`.

use wide::f32x8;

#[cfg(target_arch = "x86_64")]
use crate::math::exp_f32x16;
use crate::math::{exp_f32x8, load8, load_partial, map_inplace, store8, store_partial, LANES};

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

/// [`gate`] on sixteen lanes (AVX-512 F): the same operations, so bit for bit the same result per lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn gate16(a: std::arch::x86_64::__m512, g: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let e = exp_f32x16(_mm512_sub_ps(_mm512_setzero_ps(), g)); // -g is 0 - g in wide
    _mm512_div_ps(a, _mm512_add_ps(_mm512_set1_ps(1.0), e))
}

/// `y[j] = a[j] · σ(g[j])` over the whole 16-lane blocks (AVX-512 F); returns how many elements it did.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn gated16(y: *mut f32, a: *const f32, g: *const f32, n: usize) -> usize {
    use std::arch::x86_64::*;
    let done = n - n % 16;
    for j in (0..done).step_by(16) {
        // SAFETY: the caller gives n valid elements behind each pointer (y may be a or g: each lane is read
        // before it is written).
        unsafe { _mm512_storeu_ps(y.add(j), gate16(_mm512_loadu_ps(a.add(j)), _mm512_loadu_ps(g.add(j)))) };
    }
    done
}

/// How many leading elements the AVX-512 path did (0 without AVX-512).
#[inline]
fn gated_wide(y: *mut f32, a: *const f32, g: *const f32, n: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx512f() {
        // SAFETY: AVX-512 F checked; the callers pass n valid elements.
        return unsafe { gated16(y, a, g, n) };
    }
    let _ = (y, a, g, n);
    0
}

/// SiLU in place: `x = x · σ(x)` (`x: [n]`, any layout). Sixteen lanes at a time on AVX-512 cores, eight
/// otherwise, with the same result bit for bit.
pub fn silu_inplace(x: &mut [f32] /* [n] */) {
    let p = x.as_mut_ptr();
    let done = gated_wide(p, p, p, x.len());
    map_inplace(&mut x[done..], |v| gate(v, v));
}

/// Scalar f64 reference for [`silu_inplace`].
pub fn silu_inplace_ref(x: &mut [f32] /* [n] */) {
    for v in x {
        *v = gate_ref(*v, *v);
    }
}

/// torch `GLU(dim = channels)` on its two halves given apart: `y[j] = a[j] · σ(g[j])` (`y, a, g: [n]`; GLU's
/// value half a, gate half g), so a caller can split the work anywhere: every element gets the same arithmetic
/// wherever it sits (16 lanes on AVX-512 cores, 8 otherwise, the tail padded into one vector; the same bits).
pub fn gated(y: &mut [f32], a: &[f32], g: &[f32]) {
    let n = y.len();
    assert!(a.len() >= n && g.len() >= n, "gated: a or g shorter than y");
    let done = gated_wide(y.as_mut_ptr(), a.as_ptr(), g.as_ptr(), n);
    let body = n - n % LANES;
    for j in (done..body).step_by(LANES) {
        store8(&mut y[j..], gate(load8(&a[j..]), load8(&g[j..])));
    }
    if body < n {
        // Tail through the same vector arithmetic (padding a = 0, g = 0 gives 0, harmless).
        let v = gate(load_partial(&a[body..n], 0.0), load_partial(&g[body..n], 0.0));
        store_partial(&mut y[body..], v);
    }
}

/// Scalar f64 reference for [`gated`].
pub fn gated_ref(y: &mut [f32] /* [n] */, a: &[f32] /* [n] */, g: &[f32] /* [n] */) {
    for ((yv, &av), &gv) in y.iter_mut().zip(a).zip(g) {
        *yv = gate_ref(av, gv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919) % 2001) as f32 * 0.07 - 70.0).collect()
    }

    /// SiLU and GLU on the AVX-512 path (where this CPU has it) give the 8-lane path's values bit for bit.
    #[test]
    fn silu_and_gated_are_the_8_lane_path_bit_for_bit() {
        for n in [0, 1, 8, 15, 16, 17, 33, 500, 1001] {
            let x = values(n);
            let mut got = x.clone();
            silu_inplace(&mut got);
            let mut want = x.clone();
            map_inplace(&mut want, |v| gate(v, v));
            assert!(
                got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "silu, n = {n}"
            );

            let g: Vec<f32> = x.iter().rev().copied().collect();
            let mut y = vec![0f32; n];
            gated(&mut y, &x, &g);
            for j in 0..n {
                let mut a = [0f32; LANES];
                let mut b = [0f32; LANES];
                a[0] = x[j];
                b[0] = g[j];
                let want = gate(f32x8::from(a), f32x8::from(b)).to_array()[0];
                assert_eq!(y[j].to_bits(), want.to_bits(), "gated, n = {n}, j = {j}");
            }
        }
    }
}
