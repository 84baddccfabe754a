//! The fused attention's kernels against their scalar references: the column kernels of its online softmax, the
//! outer-product matmul (`outer_acc`) and the block transpose (the vector exp they use is `math::exp_f32x8`,
//! tested in kernels_prop.rs).

use proptest::prelude::*;
use w2vbert_kernels::attention::{
    col_max, col_max_ref, exp_sub_cols, exp_sub_cols_ref, outer_acc, outer_acc_ref, transpose_block,
    transpose_block_ref, Strided, P_BLOCK,
};

/// `[n, ld]` score rows from a flat draw, some set to -∞ (masked keys), for `r` columns (a multiple of 8).
fn scores(x: &[f32], masked: &[bool], n: usize, ld: usize) -> Vec<f32> {
    (0..n * ld)
        .map(|i| {
            if masked[i % masked.len()] && x[i % x.len()] < -40.0 {
                f32::NEG_INFINITY
            } else {
                x[i % x.len()]
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn col_max_matches_ref(
        x in prop::collection::vec(-1e6f32..1e6, 1..80),
        masked in prop::collection::vec(any::<bool>(), 1..80),
        n in 0usize..40,
        lanes in 1usize..5,
        pad in 0usize..5,
        start in -1e6f32..1e6,
    ) {
        let (r, ld) = (8 * lanes, 8 * lanes + pad);
        let s = scores(&x, &masked, n, ld);
        let (mut a, mut b) = (vec![start; r], vec![start; r]);
        col_max(&mut a, &s, ld, n);
        col_max_ref(&mut b, &s, ld, n);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn exp_sub_cols_matches_ref(
        x in prop::collection::vec(-60.0f32..30.0, 1..80),
        masked in prop::collection::vec(any::<bool>(), 1..80),
        n in 0usize..40,
        lanes in 1usize..5,
        pad in 0usize..5,
    ) {
        let (r, ld) = (8 * lanes, 8 * lanes + pad);
        let s = scores(&x, &masked, n, ld);
        let mut m = vec![-50f32; r];
        col_max_ref(&mut m, &s, ld, n);
        let (mut a, mut b) = (s.clone(), s.clone());
        let (mut sa, mut sb) = (vec![0f32; r], vec![0f32; r]);
        exp_sub_cols(&mut a, ld, n, &m, &mut sa);
        exp_sub_cols_ref(&mut b, ld, n, &m, &mut sb);
        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
            if i % ld < r {
                prop_assert!((p - q).abs() <= 3e-7 * q.abs() + 1e-37, "[{i}] {p} vs ref {q}");
            } else {
                prop_assert_eq!(p.to_bits(), s[i].to_bits(), "padding column {} written", i % ld);
            }
        }
        for (p, q) in sa.iter().zip(&sb) {
            prop_assert!((p - q).abs() <= 1e-6 * q.abs() + 1e-37, "sum {p} vs ref {q}");
        }
    }

    /// Any m (every tile height and remainder), p across [`P_BLOCK`] boundaries, r in 16s, any strides of b.
    #[test]
    fn outer_acc_matches_ref(
        m in 0usize..30,
        p in 0usize..(2 * P_BLOCK + 3),
        vecs in 1usize..10,
        sa in 1usize..4,
        sp_pad in 0usize..3,
        accumulate in any::<bool>(),
        seed in any::<u32>(),
    ) {
        let r = 16 * vecs;
        let (ldo, ldx, sp) = (r + 1, r + 2, sa * m.max(1) + sp_pad);
        let val = |i: usize, k: u32| (((i as u32).wrapping_mul(2654435761) ^ seed ^ k) % 2001) as f32 / 1000.0 - 1.0;
        let b: Vec<f32> = (0..m * sa + p * sp + 1).map(|i| val(i, 1)).collect();
        let x: Vec<f32> = (0..p.max(1) * ldx).map(|i| val(i, 2)).collect();
        let old: Vec<f32> = (0..m * ldo).map(|i| val(i, 3)).collect();
        let bs = Strided { data: &b, sa, sp };
        let (mut got, mut want) = (old.clone(), old.clone());
        outer_acc(&mut got, ldo, bs, &x, ldx, m, p, r, 0.3, accumulate);
        outer_acc_ref(&mut want, ldo, bs, &x, ldx, m, p, r, 0.3, accumulate);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if i % ldo < r {
                prop_assert!((g - w).abs() <= 1e-6 * (p as f32 + 2.0), "[{i}] {g} vs ref {w}");
            } else {
                prop_assert_eq!(g.to_bits(), old[i].to_bits(), "padding column {} written", i % ldo);
            }
        }
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
