//! The online-softmax row kernels of `attention.rs` against their scalar references (the vector exp they
//! use is `math::exp_f32x8`, tested in kernels_prop.rs).

use proptest::prelude::*;
use w2vbert_kernels::attention::{
    exp_sub_sum, exp_sub_sum_ref, max_of, max_of_ref, transpose_block, transpose_block_ref,
};

proptest! {
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
