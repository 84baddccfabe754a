//! The online-softmax row kernels of `attention.rs` against their scalar references.

use proptest::prelude::*;
use w2vbert_kernels::attention::{
    exp_f32x8, exp_ref, exp_sub_sum, exp_sub_sum_ref, max_of, max_of_ref, transpose_block, transpose_block_ref,
};
use wide::f32x8;

/// Distance from `y` to the exact `exp(x)` in units of the f32 ulp at the exact value.
fn ulp_error(x: f32, y: f32) -> f64 {
    let exact = (x as f64).exp();
    let e32 = exact as f32;
    let ulp = (f32::from_bits(e32.to_bits() + 1) - e32) as f64;
    (y as f64 - exact).abs() / ulp
}

fn exp8(x: f32) -> f32 {
    exp_f32x8(f32x8::splat(x)).to_array()[0]
}

#[test]
fn exp_is_within_2_ulp_over_the_normal_range() {
    // Dense sweep of every result that is a normal float, plus the reduction boundaries around k·ln2/2.
    let (lo, hi) = (-87.336_5_f32, 88.722_f32);
    let n = 2_000_000;
    let mut worst = (0.0, 0.0f32);
    for s in 0..=n {
        let x = lo + (hi - lo) * (s as f32 / n as f32);
        let e = ulp_error(x, exp8(x));
        if e > worst.0 {
            worst = (e, x);
        }
    }
    for k in -250..=255 {
        let b = k as f32 * std::f32::consts::LN_2 / 2.0;
        for x in [
            b,
            f32::from_bits(b.to_bits() + 1),
            f32::from_bits(b.to_bits().wrapping_sub(1)),
        ] {
            if x > lo && x < hi {
                let e = ulp_error(x, exp8(x));
                worst = if e > worst.0 { (e, x) } else { worst };
            }
        }
    }
    eprintln!("exp_f32x8 worst error: {:.3} ulp at x = {}", worst.0, worst.1);
    assert!(worst.0 <= 2.0, "exp: {} ulp at x = {}", worst.0, worst.1);
}

#[test]
fn exp_special_values() {
    assert_eq!(exp8(0.0), 1.0);
    assert_eq!(exp8(-0.0), 1.0);
    assert_eq!(exp8(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp8(f32::MIN), 0.0);
    assert_eq!(exp8(-100.0), 0.0);
    assert_eq!(exp8(-87.5), 0.0); // subnormal result: flushed, like exp_ref
    assert_eq!(exp_ref(-87.5), 0.0);
    assert_eq!(exp8(89.0), f32::INFINITY);
    assert_eq!(exp8(f32::MAX), f32::INFINITY);
    assert_eq!(exp8(f32::INFINITY), f32::INFINITY);
    assert!(exp8(88.72).is_finite());
    // Lanes are independent.
    let xs = [-1.0, 0.5, -80.0, 3.0, f32::NEG_INFINITY, 10.0, -0.125, 70.0];
    let y = exp_f32x8(f32x8::new(xs)).to_array();
    for (x, y) in xs.iter().zip(y) {
        assert_eq!(y, exp8(*x));
    }
}

proptest! {
    #[test]
    fn exp_matches_ref(x in -120.0f32..100.0) {
        let (y, r) = (exp8(x), exp_ref(x));
        if r == 0.0 || y == 0.0 {
            // Only at the flush threshold may one side flush and the other not (value < 1.2e-38).
            prop_assert!(y.max(r) < 1.2e-38, "x={x} y={y} ref={r}");
        } else if r.is_infinite() {
            prop_assert_eq!(y, r);
        } else {
            prop_assert!(ulp_error(x, y) <= 2.0, "x={x} y={y} ref={r}");
        }
    }

    #[test]
    fn max_of_matches_ref(
        x in prop::collection::vec(-1e6f32..1e6, 0..80),
        off in 0usize..4,
        neg_inf in prop::collection::vec(any::<bool>(), 80),
    ) {
        let mut x = x;
        for (v, &n) in x.iter_mut().zip(&neg_inf) {
            if n && *v > 5e5 { *v = f32::NEG_INFINITY; }
        }
        let off = off.min(x.len());
        let s = &x[off..];
        prop_assert_eq!(max_of(s).to_bits(), max_of_ref(s).to_bits());
    }

    #[test]
    fn exp_sub_sum_matches_ref(
        x in prop::collection::vec(-60.0f32..30.0, 0..80),
        off in 0usize..4,
        masked in prop::collection::vec(any::<bool>(), 80),
    ) {
        let mut x = x;
        for (v, &m) in x.iter_mut().zip(&masked) {
            if m && *v < -40.0 { *v = f32::NEG_INFINITY; }
        }
        let off = off.min(x.len());
        let m = max_of_ref(&x[off..]).max(-50.0);
        let mut a = x.clone();
        let mut b = x.clone();
        let sa = exp_sub_sum(&mut a[off..], m);
        let sb = exp_sub_sum_ref(&mut b[off..], m);
        for (p, r) in a[off..].iter().zip(&b[off..]) {
            prop_assert!((p - r).abs() <= 3e-7 * r.abs() + 1e-37, "p={p} ref={r}");
        }
        prop_assert!((sa - sb).abs() <= 1e-6 * sb.abs() + 1e-37, "sum {sa} vs {sb}");
        prop_assert_eq!(&a[..off], &x[..off]);
    }

    #[test]
    fn transpose_block_matches_ref(
        rows in 0usize..40,
        cols in 0usize..40,
        lds_pad in 0usize..5,
        ldd_pad in 0usize..5,
        src_off in 0usize..4,
        dst_off in 0usize..4,
        seed in any::<u32>(),
    ) {
        let (lds, ldd) = (cols + lds_pad, rows + ldd_pad);
        let src: Vec<f32> = (0..src_off + rows * lds).map(|x| (x as u32 ^ seed) as f32).collect();
        // NaN sentinels: anything the kernel should not write stays NaN in both.
        let mut a = vec![f32::NAN; dst_off + cols * ldd];
        let mut b = a.clone();
        transpose_block(&mut a[dst_off..], ldd, &src[src_off..], lds, rows, cols);
        transpose_block_ref(&mut b[dst_off..], ldd, &src[src_off..], lds, rows, cols);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        prop_assert_eq!(bits(&a), bits(&b));
    }
}
