//! Vectorized `exp`, the one fused multiply-add every vector kernel uses ([`fma8`], [`fnma8`]), and the small
//! load/store helpers the elementwise kernels share.
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

/// `a·b + c` on eight lanes with ONE rounding, on every target. `wide` 0.7's `f32x8::mul_add` fuses only on
/// x86 with FMA; elsewhere (NEON, x86 without FMA) it rounds the product and then the sum, while the scalar tails
/// of the kernels use `f32::mul_add` (always fused), so a result would depend on whether an element sits in a
/// vector body or a tail. Every vector kernel calls this instead:
/// - x86-64 with FMA (the x86-64-v3 build baseline): `wide`'s `vfmadd` (x86 results unchanged, bit for bit);
/// - aarch64: NEON `fmla` (`vfmaq_f32`) on the two 128-bit halves;
/// - anything else: `f32::mul_add` per lane (fused in software where the CPU has no FMA: slow, but exact).
#[inline(always)]
pub fn fma8(a: f32x8, b: f32x8, c: f32x8) -> f32x8 {
    #[cfg(all(target_arch = "x86_64", target_feature = "fma"))]
    {
        a.mul_add(b, c)
    }
    #[cfg(target_arch = "aarch64")]
    {
        use core::arch::aarch64::{vfmaq_f32, vld1q_f32, vst1q_f32};
        let (a, b, c) = (a.to_array(), b.to_array(), c.to_array());
        let mut r = [0f32; LANES];
        for h in [0, 4] {
            // SAFETY: NEON is part of the aarch64 baseline; each pointer covers 4 f32 inside an 8-f32 array.
            unsafe {
                let v = vfmaq_f32(
                    vld1q_f32(c[h..].as_ptr()),
                    vld1q_f32(a[h..].as_ptr()),
                    vld1q_f32(b[h..].as_ptr()),
                );
                vst1q_f32(r[h..].as_mut_ptr(), v);
            }
        }
        f32x8::from(r)
    }
    #[cfg(not(any(all(target_arch = "x86_64", target_feature = "fma"), target_arch = "aarch64")))]
    {
        let (a, b, c) = (a.to_array(), b.to_array(), c.to_array());
        f32x8::from(std::array::from_fn::<f32, LANES, _>(|i| a[i].mul_add(b[i], c[i])))
    }
}

/// `c - a·b` on eight lanes with one rounding, on every target (see [`fma8`]): `-(a·b) + c` fused, which is
/// exactly what x86's `vfnmadd` and NEON's `fmls` compute.
#[inline(always)]
pub fn fnma8(a: f32x8, b: f32x8, c: f32x8) -> f32x8 {
    #[cfg(all(target_arch = "x86_64", target_feature = "fma"))]
    {
        a.mul_neg_add(b, c)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "fma")))]
    {
        fma8(-a, b, c)
    }
}

/// `2^n` for integer `n` in [-126, 127], built directly in the exponent field.
#[inline(always)]
fn pow2i(n: i32x8) -> f32x8 {
    bytemuck::cast::<i32x8, f32x8>((n + i32x8::splat(127)) << 23)
}

/// e^x for eight lanes: ≤ 2 ulp for normal results, subnormal results scaled correctly, +∞ above
/// ~88.72, 0 below ~-103.97, NaN in → NaN out. Reusable by any kernel (attention's softmax, σ).
#[inline(always)]
pub fn exp_f32x8(x: f32x8) -> f32x8 {
    // fast_max/fast_min (vmaxps/vminps) turn a NaN `x` into the constant; NaN is restored at the end.
    let xc = x.fast_max(f32x8::splat(X_MIN)).fast_min(f32x8::splat(X_MAX));
    let nf = (xc * f32x8::splat(LOG2_E)).round();
    let r = fnma8(nf, f32x8::splat(LN2_HI), xc);
    let r = fnma8(nf, f32x8::splat(LN2_LO), r);
    let mut p = f32x8::splat(P0);
    p = fma8(p, r, f32x8::splat(P1));
    p = fma8(p, r, f32x8::splat(P2));
    p = fma8(p, r, f32x8::splat(P3));
    p = fma8(p, r, f32x8::splat(P4));
    p = fma8(p, r, f32x8::splat(P5));
    let e = fma8(p, r * r, r) + f32x8::ONE;
    let n = nf.round_int();
    let n1 = n >> 1;
    let n2 = n - n1;
    let y = e * pow2i(n1) * pow2i(n2);
    x.is_nan().blend(x, y)
}

/// [`exp_f32x8`] on sixteen lanes with AVX-512 F (a zmm register): the same operations in the same order on
/// every lane, so each result is bit for bit the one `exp_f32x8` gives (tested); on AVX-512 cores it halves the
/// instructions of the exp-heavy loops (attention's softmax, SiLU).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn exp_f32x16(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let s = _mm512_set1_ps;
    // vmaxps/vminps return the second operand for a NaN lane, as fast_max/fast_min do; NaN is restored below.
    let xc = _mm512_min_ps(_mm512_max_ps(x, s(X_MIN)), s(X_MAX));
    let nf = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(xc, s(LOG2_E)));
    let r = _mm512_fnmadd_ps(nf, s(LN2_HI), xc);
    let r = _mm512_fnmadd_ps(nf, s(LN2_LO), r);
    let mut p = s(P0);
    p = _mm512_fmadd_ps(p, r, s(P1));
    p = _mm512_fmadd_ps(p, r, s(P2));
    p = _mm512_fmadd_ps(p, r, s(P3));
    p = _mm512_fmadd_ps(p, r, s(P4));
    p = _mm512_fmadd_ps(p, r, s(P5));
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), s(1.0));
    // nf is an integer in [-151, 129]: the conversion is exact (round_int's NaN and overflow fix-ups never apply).
    let n = _mm512_cvtps_epi32(nf);
    let n1 = _mm512_srai_epi32::<1>(n);
    let n2 = _mm512_sub_epi32(n, n1);
    let pow2i = |n| _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127))));
    let y = _mm512_mul_ps(_mm512_mul_ps(e, pow2i(n1)), pow2i(n2));
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
}

/// Scalar reference for [`exp_f32x8`]: f64 `exp`, rounded once to f32.
pub fn exp_ref(x: f32) -> f32 {
    (x as f64).exp() as f32
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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// [`exp_f32x16`] is [`exp_f32x8`] bit for bit: special values, the clamp and overflow edges, subnormal
    /// results, a sweep of bit patterns over the whole range, and a dense sweep of [-105, 90].
    #[test]
    fn exp_f32x16_is_exp_f32x8_bit_for_bit() {
        if !crate::cpu::has_avx512f() {
            eprintln!("no AVX-512 F on this CPU: exp_f32x16 is never called here");
            return;
        }
        let mut xs = vec![
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            88.72,
            88.73,
            89.0,
            89.5,
            -87.3,
            -103.9,
            -104.0,
            -104.5,
            -150.0,
            1e-30,
            -1e-30,
            f32::MAX,
            f32::MIN,
        ];
        let mut bits = 0u32;
        while let Some(b) = bits.checked_add(65_521) {
            xs.push(f32::from_bits(b));
            bits = b;
        }
        // Densely over the range where results are finite and non-zero.
        xs.extend((0..200_000).map(|i| -105.0 + i as f32 * 0.000_975_3));
        for chunk in xs.chunks(16) {
            let mut a = [0f32; 16];
            a[..chunk.len()].copy_from_slice(chunk);
            let mut wide16 = [0f32; 16];
            // SAFETY: AVX-512 F checked above; 16 f32 each way.
            unsafe {
                use std::arch::x86_64::*;
                _mm512_storeu_ps(wide16.as_mut_ptr(), exp_f32x16(_mm512_loadu_ps(a.as_ptr())));
            }
            for (h, half) in a.chunks(8).enumerate() {
                let lanes: [f32; 8] = half.try_into().unwrap();
                let want = exp_f32x8(f32x8::from(lanes)).to_array();
                for (l, w) in want.iter().enumerate() {
                    let got = wide16[h * 8 + l];
                    assert_eq!(got.to_bits(), w.to_bits(), "exp({}) = {got} vs {w}", lanes[l]);
                }
            }
        }
    }
}

#[cfg(test)]
mod fma_tests {
    use super::*;

    /// [`fma8`] / [`fnma8`] round once on every lane, as `f32::mul_add` does: a = b = 1 + 2⁻¹², c = -1 gives
    /// a·b - 1 = 2⁻¹¹ + 2⁻²⁴ fused, but 2⁻¹¹ if the product is rounded first (its 2⁻²⁴ is a tie to even).
    #[test]
    fn fma8_and_fnma8_round_once_on_every_lane() {
        let a = 1.0 + f32::EPSILON * 2048.0; // 1 + 2⁻¹²
        let fused = a.mul_add(a, -1.0);
        assert_eq!(fused, 2f32.powi(-11) + 2f32.powi(-24));
        assert_ne!(fused, a * a - 1.0, "the test values must tell fused from unfused");
        for lane in 0..LANES {
            let mut va = [0.5f32; LANES];
            let mut vc = [0.25f32; LANES];
            va[lane] = a;
            vc[lane] = -1.0;
            let (va, vc) = (f32x8::from(va), f32x8::from(vc));
            assert_eq!(
                fma8(va, va, vc).to_array()[lane].to_bits(),
                fused.to_bits(),
                "fma8 lane {lane}"
            );
            // c - a·b with c = 1: 1 - a² = -(2⁻¹¹ + 2⁻²⁴) fused.
            let got = fnma8(va, va, f32x8::ONE).to_array()[lane];
            assert_eq!(got.to_bits(), (-a).mul_add(a, 1.0).to_bits(), "fnma8 lane {lane}");
            assert_eq!(
                fma8(va, va, vc).to_array()[(lane + 1) % LANES],
                0.5f32.mul_add(0.5, 0.25)
            );
        }
    }
}
