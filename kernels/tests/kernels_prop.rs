//! Every SIMD kernel against its scalar reference: random lengths (0 and ragged tails included),
//! unaligned starts (sub-slices at offset 0..3), extreme values, with a relative-or-absolute tolerance
//! derived from the operation's error bound. Deterministic tests below pin the edge cases and check the
//! rayon paths give the same bits as the single-threaded ones.

mod common;

use common::{check_close, pool, ulp_diff, Rng};
use proptest::prelude::*;
use w2vbert_kernels::{activation, elementwise, math, norm, softmax};

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

proptest! {
    #[test]
    fn exp_matches_ref((n, off, v) in slice_with_offset(200, -110f32..95f32)) {
        let mut got = v[off..].to_vec();
        let mut want = got.clone();
        math::exp_inplace(&mut got);
        math::exp_inplace_ref(&mut want);
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
    fn glu_matches_ref(
        rows in 0usize..5,
        c in 0usize..40,
        (xoff, yoff) in (0usize..4, 0usize..4),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let mut x = rng.vec(xoff + rows * 2 * c, -90.0, 90.0);
        // Mix in ordinary magnitudes so both regimes appear in every case.
        for v in x.iter_mut().step_by(2) {
            *v /= 9.0;
        }
        let mut got = vec![f32::NAN; yoff + rows * c];
        let mut want = vec![f32::NAN; rows * c];
        activation::glu(&mut got[yoff..], &x[xoff..], rows, c);
        activation::glu_ref(&mut want, &x[xoff..], rows, c);
        check_close("glu", &got[yoff..], &want, |i| 1e-6 * want[i].abs() + 1e-36).map_err(fail)?;
        prop_assert!(got[..yoff].iter().all(|v| v.is_nan()), "glu wrote before y");
    }

    /// `gated` on any sub-range of the two halves is what `glu` computes there, bit for bit (the conv module
    /// splits GLU into row blocks).
    #[test]
    fn gated_on_any_span_is_glu(
        c in 1usize..80,
        (from, len) in (0usize..80, 0usize..80),
        seed in any::<u64>(),
    ) {
        let (from, len) = (from.min(c - 1), len.min(c - from.min(c - 1)));
        let mut rng = Rng::new(seed);
        let x = rng.vec(2 * c, -20.0, 20.0);
        let mut whole = vec![0f32; c];
        activation::glu(&mut whole, &x, 1, c);
        let mut part = vec![f32::NAN; len];
        activation::gated(&mut part, &x[from..c], &x[c + from..]);
        prop_assert!(part.iter().zip(&whole[from..]).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn softmax_matches_ref(
        rows in 0usize..5,
        n in 0usize..100,
        off in 0usize..4,
        scale in prop_oneof![Just(1.0f32), Just(10.0f32), Just(80.0f32)],
        shift in prop_oneof![Just(0.0f32), Just(-50.0f32), Just(1000.0f32)],
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = (0..off + rows * n).map(|_| shift + scale * rng.uniform(-1.0, 1.0)).collect();
        let mut got = x[off..].to_vec();
        let mut want = got.clone();
        softmax::softmax_rows_inplace(&mut got, rows, n);
        softmax::softmax_rows_ref(&mut want, rows, n);
        // Probabilities in [0, 1]: f32 sum of ≤ 100 terms and one exp each, so ~1e-6 relative; entries
        // far below the max only need to be tiny.
        check_close("softmax", &got, &want, |i| 2e-6 * want[i] + 1e-12).map_err(fail)?;
        // (n = 0 rows are empty: nothing to sum. Found by proptest, pinned in softmax_degenerate_rows.)
        for r in (0..rows).filter(|_| n > 0) {
            let s: f32 = got[r * n..(r + 1) * n].iter().sum();
            prop_assert!((s - 1.0).abs() < 1e-5, "row {} sums to {}", r, s);
        }
    }

    #[test]
    fn scaled_add_matches_ref(
        (n, off, h0) in slice_with_offset(100, -1e3f32..1e3f32),
        xoff in 0usize..4,
        alpha in prop_oneof![Just(0.5f32), Just(1.0f32), -3f32..3f32],
        seed in any::<u64>(),
    ) {
        let x = Rng::new(seed).vec(xoff + n, -1e3, 1e3);
        let mut got = h0[off..].to_vec();
        let mut want = got.clone();
        elementwise::scaled_add(&mut got, &x[xoff..], alpha);
        elementwise::scaled_add_ref(&mut want, &x[xoff..], alpha);
        // One fused rounding vs f64-then-f32 (double rounding): at most 1 ulp apart.
        check_close("scaled_add", &got, &want, |i| ULP * want[i].abs() + 1e-44).map_err(fail)?;
        if alpha == 0.5 {
            // The conformer's half step: the product is exact, so it must equal torch's h + 0.5·x bit for bit.
            let torch: Vec<f32> = h0[off..].iter().zip(&x[xoff..]).map(|(h, x)| h + 0.5 * x).collect();
            prop_assert_eq!(&got, &torch);
        }
    }

    #[test]
    fn add_matches_ref((n, off, h0) in slice_with_offset(100, -1e3f32..1e3f32), xoff in 0usize..4, seed in any::<u64>()) {
        let x = Rng::new(seed).vec(xoff + n, -1e3, 1e3);
        let mut got = h0[off..].to_vec();
        let mut want = got.clone();
        elementwise::add(&mut got, &x[xoff..]);
        elementwise::add_ref(&mut want, &x[xoff..]);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn layer_norm_matches_ref(
        rows in 0usize..5,
        d in prop_oneof![0usize..40, Just(160usize), 100usize..300, Just(1024usize)],
        (xoff, yoff, goff) in (0usize..4, 0usize..4, 0usize..4),
        offset in prop_oneof![Just(0.0f32), Just(1e4f32), Just(-3e3f32)],
        spread in prop_oneof![Just(1e-2f32), Just(1.0f32), Just(100.0f32)],
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = (0..xoff + rows * d).map(|_| offset + spread * rng.uniform(-1.0, 1.0)).collect();
        let gamma = rng.vec(goff + d, -2.0, 2.0);
        let beta = rng.vec(goff + d, -1.0, 1.0);
        let (g, b) = (&gamma[goff..], &beta[goff..]);
        let mut got = vec![f32::NAN; yoff + rows * d];
        let mut want = vec![0f32; rows * d];
        norm::layer_norm(&mut got[yoff..], &x[xoff..], g, b, 1e-5, rows, d);
        norm::layer_norm_ref(&mut want, &x[xoff..], g, b, 1e-5, rows, d);
        // |γ·x̂| ≤ |y| + |β|: the error scales with the normalized value, plus γ for rstd's own error.
        let tol = |i: usize| 1e-5 * (want[i].abs() + b[i % d].abs() + g[i % d].abs());
        check_close("layer_norm", &got[yoff..], &want, tol).map_err(fail)?;
        let mut inplace = x[xoff..].to_vec();
        norm::layer_norm_inplace(&mut inplace, g, b, 1e-5, rows, d);
        prop_assert_eq!(&inplace, &got[yoff..].to_vec(), "in-place differs from out-of-place");
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
    math::exp_inplace(&mut got);
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
    math::exp_inplace(&mut got);
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
    // The scalar version is the same arithmetic.
    for &x in &xs[3..] {
        assert_eq!(math::exp_f32(x).to_bits(), {
            let mut v = [x];
            math::exp_inplace(&mut v);
            v[0].to_bits()
        });
    }
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
    let x = [1.0f32, 1.0, -100.0, 100.0]; // rows = 1, c = 2: a = [1, 1], g = [-100, 100]
    let mut y = [f32::NAN; 2];
    activation::glu(&mut y, &x, 1, 2);
    assert_eq!(y, [0.0, 1.0]);
}

/// Pinned from proptest: rows of length 0 are a no-op (the row-sum property does not apply); a
/// length-1 row is exactly 1; an all -∞ row is NaN as in PyTorch.
#[test]
fn softmax_degenerate_rows() {
    let mut empty: [f32; 0] = [];
    softmax::softmax_rows_inplace(&mut empty, 3, 0);
    let mut one = [-5.0f32, 7.0, 1e30];
    softmax::softmax_rows_inplace(&mut one, 3, 1);
    assert_eq!(one, [1.0; 3]);
    let mut masked = [f32::NEG_INFINITY; 9];
    softmax::softmax_rows_inplace(&mut masked, 1, 9);
    assert!(masked.iter().all(|v| v.is_nan()));
}

/// Large LayerNorm (rows·d ≥ 2¹⁸ takes the rayon path): same bits as row-by-row single-threaded calls,
/// under pools of 1 and 4 threads, and within tolerance of the reference.
#[test]
fn layer_norm_parallel_is_bit_identical() {
    let (rows, d) = (300, 1024);
    let mut rng = Rng::new(7);
    let x: Vec<f32> = (0..rows * d).map(|_| 5.0 + rng.uniform(-3.0, 3.0)).collect();
    let gamma = rng.vec(d, 0.5, 1.5);
    let beta = rng.vec(d, -0.5, 0.5);
    let mut serial = vec![0f32; rows * d];
    for r in 0..rows {
        norm::layer_norm(
            &mut serial[r * d..(r + 1) * d],
            &x[r * d..(r + 1) * d],
            &gamma,
            &beta,
            1e-5,
            1,
            d,
        );
    }
    for threads in [1, 4] {
        let pool = pool(threads);
        let mut y = vec![0f32; rows * d];
        pool.install(|| norm::layer_norm(&mut y, &x, &gamma, &beta, 1e-5, rows, d));
        assert!(y == serial, "layer_norm with {threads} threads differs from serial");
        let mut yi = x.clone();
        pool.install(|| norm::layer_norm_inplace(&mut yi, &gamma, &beta, 1e-5, rows, d));
        assert!(
            yi == serial,
            "layer_norm_inplace with {threads} threads differs from serial"
        );
    }
    let mut want = vec![0f32; rows * d];
    norm::layer_norm_ref(&mut want, &x, &gamma, &beta, 1e-5, rows, d);
    check_close("layer_norm big", &serial, &want, |i| 1e-5 * (want[i].abs() + 2.0)).unwrap();
}

/// A constant row (zero variance) gives exactly beta, even on a large offset.
#[test]
fn layer_norm_constant_row_is_beta() {
    let d = 37;
    let x = vec![12345.678f32; 2 * d];
    let gamma = vec![3.0f32; d];
    let beta: Vec<f32> = (0..d).map(|j| j as f32 * 0.1).collect();
    let mut y = vec![0f32; 2 * d];
    norm::layer_norm(&mut y, &x, &gamma, &beta, 1e-5, 2, d);
    assert_eq!(&y[..d], &beta[..]);
    assert_eq!(&y[d..], &beta[..]);
}
