//! Every SIMD kernel against its scalar reference: random lengths (0 and ragged tails included),
//! unaligned starts (sub-slices at offset 0..3), extreme values, with a relative-or-absolute tolerance
//! derived from the operation's error bound. Deterministic tests below pin the edge cases. (The channel-major
//! kernels, with their rayon paths, are in channel_major.rs.)

mod common;

use common::{check_close, ulp_diff, Rng};
use proptest::prelude::*;
use w2vbert_kernels::{activation, math};
use wide::f32x8;

/// One f32 ulp relative (2⁻²³).
const ULP: f32 = f32::EPSILON;

/// A mixture that exercises both the ordinary range and the saturating ends of exp/σ.
fn act_value() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![
        4 => -10f32..10f32,
        3 => -90f32..90f32,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => prop_oneof![Just(80.0f32), Just(-80.0f32), Just(88.7f32), Just(-88.7f32), Just(-104.0f32), Just(100.0f32), Just(-100.0f32)],
    ]
}

/// `(n, offset, data[offset + n])`.
fn slice_with_offset(
    max_n: usize,
    elem: impl Strategy<Value = f32> + Clone,
) -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    (0..=max_n, 0usize..4)
        .prop_flat_map(move |(n, off)| (Just(n), Just(off), prop::collection::vec(elem.clone(), n + off)))
}

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

/// [`math::exp_f32x8`] over a slice, in place, eight lanes at a time (the ragged tail padded into one vector).
fn exp_slice(x: &mut [f32]) {
    for c in x.chunks_mut(8) {
        let mut a = [0f32; 8];
        a[..c.len()].copy_from_slice(c);
        let e = math::exp_f32x8(f32x8::from(a)).to_array();
        c.copy_from_slice(&e[..c.len()]);
    }
}

proptest! {
    #[test]
    fn exp_matches_ref((n, off, v) in slice_with_offset(200, -110f32..95f32)) {
        let mut got = v[off..].to_vec();
        let want: Vec<f32> = got.iter().map(|&x| math::exp_ref(x)).collect();
        exp_slice(&mut got);
        prop_assert_eq!(got.len(), n);
        // 2 ulp on normal results; subnormal results to 2 subnormal steps.
        check_close("exp", &got, &want, |i| 2.0 * ULP * want[i].abs() + 3e-45).map_err(fail)?;
    }

    #[test]
    fn silu_matches_ref((_n, off, v) in slice_with_offset(200, act_value())) {
        let mut got = v[off..].to_vec();
        let mut want = got.clone();
        activation::silu_inplace(&mut got);
        activation::silu_inplace_ref(&mut want);
        // Relative 1e-6; absolute 1e-36 covers x < -88.7 where e^(-x) overflows and x·σ(x) is -0 here
        // but a denormal-range -1e-37.. in f64.
        check_close("silu", &got, &want, |i| 1e-6 * want[i].abs() + 1e-36).map_err(fail)?;
        for &g in &got {
            prop_assert!(!g.is_nan());
        }
    }

    #[test]
    fn gated_matches_ref(
        n in 0usize..200,
        (aoff, goff, yoff) in (0usize..4, 0usize..4, 0usize..4),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let mut a = rng.vec(aoff + n, -90.0, 90.0);
        let mut g = rng.vec(goff + n, -90.0, 90.0);
        // Mix in ordinary magnitudes so both regimes appear in every case.
        for v in a.iter_mut().chain(g.iter_mut()).step_by(2) {
            *v /= 9.0;
        }
        let mut got = vec![f32::NAN; yoff + n + 3];
        let mut want = vec![f32::NAN; n];
        activation::gated(&mut got[yoff..yoff + n], &a[aoff..], &g[goff..]);
        activation::gated_ref(&mut want, &a[aoff..], &g[goff..]);
        check_close("gated", &got[yoff..yoff + n], &want, |i| 1e-6 * want[i].abs() + 1e-36).map_err(fail)?;
        prop_assert!(got[..yoff].iter().chain(&got[yoff + n..]).all(|v| v.is_nan()), "gated wrote outside y");
    }

    /// `gated` on any sub-range of the two halves is what it computes there on the whole, bit for bit (the conv
    /// module splits GLU into row blocks).
    #[test]
    fn gated_on_any_span_is_the_whole(
        c in 1usize..80,
        (from, len) in (0usize..80, 0usize..80),
        seed in any::<u64>(),
    ) {
        let (from, len) = (from.min(c - 1), len.min(c - from.min(c - 1)));
        let mut rng = Rng::new(seed);
        let x = rng.vec(2 * c, -20.0, 20.0);
        let mut whole = vec![0f32; c];
        activation::gated(&mut whole, &x[..c], &x[c..]);
        let mut part = vec![f32::NAN; len];
        activation::gated(&mut part, &x[from..c], &x[c + from..]);
        prop_assert!(part.iter().zip(&whole[from..]).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

/// exp over a dense grid of the whole finite-result range: at most 2 ulp from the f64 value on normal
/// results, exact saturation at both ends.
#[test]
fn exp_dense_grid_within_2_ulp() {
    let mut worst = (0u32, 0f32);
    let n = 1 << 20;
    let xs: Vec<f32> = (0..n).map(|i| -87.3 + (88.7 + 87.3) * i as f32 / n as f32).collect();
    let mut got = xs.clone();
    exp_slice(&mut got);
    for (&x, &g) in xs.iter().zip(&got) {
        let u = ulp_diff(g, math::exp_ref(x));
        if u > worst.0 {
            worst = (u, x);
        }
    }
    eprintln!("exp: worst {} ulp at x = {}", worst.0, worst.1);
    assert!(worst.0 <= 2, "exp: {} ulp at x = {}", worst.0, worst.1);
}

#[test]
fn exp_special_values() {
    let xs = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.0,
        -0.0,
        88.72,
        88.73,
        89.0,
        1000.0,
        -87.0,
        -95.0,
        -103.0,
        -104.0,
        -1000.0,
    ];
    let mut got = xs.to_vec();
    exp_slice(&mut got);
    assert_eq!(got[0], f32::INFINITY);
    assert_eq!(got[1], 0.0);
    assert!(got[2].is_nan());
    assert_eq!(got[3], 1.0);
    assert_eq!(got[4], 1.0);
    assert!(got[5].is_finite() && ulp_diff(got[5], math::exp_ref(88.72)) <= 2);
    for &g in &got[6..9] {
        assert_eq!(g, f32::INFINITY);
    }
    // Subnormal results come out correctly scaled, not flushed.
    for (i, &x) in xs.iter().enumerate().skip(9).take(3) {
        let want = math::exp_ref(x);
        assert!(
            (got[i] - want).abs() <= 2.0 * ULP * want + 3e-45,
            "exp({x}) = {:e}, want {want:e}",
            got[i]
        );
        assert!(got[i] > 0.0);
    }
    assert!(got[12] <= 1.5e-45 && got[13] == 0.0);
}

/// σ and SiLU saturate without NaN: σ(-100) = 0, σ(100) = 1, silu(-100) = -0 (or tiny).
#[test]
fn activations_saturate() {
    let mut s = [-100.0f32, 100.0, -1e30, 1e30, f32::NEG_INFINITY];
    activation::silu_inplace(&mut s);
    assert!(s[0] <= 0.0 && s[0] > -1e-30, "silu(-100) = {}", s[0]);
    assert_eq!(s[1], 100.0);
    assert!(s[2] == 0.0 && s[3] == 1e30);
    // silu(-∞) = -∞·0 is NaN in PyTorch as well; just make sure finite inputs never give NaN above.
    let mut y = [f32::NAN; 2];
    activation::gated(&mut y, &[1.0, 1.0], &[-100.0, 100.0]);
    assert_eq!(y, [0.0, 1.0]);
}
