//! The channel-major (`[c, t]`, one channel per row) kernels against their scalar references: random sizes
//! (0 and ragged tails included), unaligned starts (sub-slices at offset 0..3), the rayon paths bit-identical
//! for any pool size.

mod common;

use common::{check_close, pool, Rng};
use proptest::prelude::*;
use w2vbert_kernels::gemm::{linear_cm, linear_cm_ref, Epilogue, Threads};
use w2vbert_kernels::{activation, conv, norm};

/// One f32 ulp relative (2⁻²³).
const ULP: f32 = f32::EPSILON;

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

proptest! {
    #[test]
    fn layer_norm_cm_matches_ref(
        c in prop_oneof![0usize..40, Just(160usize), 100usize..300],
        t in prop_oneof![0usize..20, 30usize..70],
        (xoff, yoff, goff) in (0usize..4, 0usize..4, 0usize..4),
        offset in prop_oneof![Just(0.0f32), Just(1e4f32), Just(-3e3f32)],
        spread in prop_oneof![Just(1e-2f32), Just(1.0f32), Just(100.0f32)],
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = (0..xoff + c * t).map(|_| offset + spread * rng.uniform(-1.0, 1.0)).collect();
        let gamma = rng.vec(goff + c, -2.0, 2.0);
        let beta = rng.vec(goff + c, -1.0, 1.0);
        let (g, b) = (&gamma[goff..], &beta[goff..]);
        let mut got = vec![f32::NAN; yoff + c * t + 3];
        let mut want = vec![0f32; c * t];
        norm::layer_norm_cm(&mut got[yoff..], &x[xoff..], g, b, 1e-5, c, t);
        norm::layer_norm_cm_ref(&mut want, &x[xoff..], g, b, 1e-5, c, t);
        // The error scales with |γ·x̂| ≤ |y| + |β|, plus γ for rstd's error.
        let tol = |i: usize| 1e-5 * (want[i].abs() + b[i / t.max(1)].abs() + g[i / t.max(1)].abs());
        check_close("layer_norm_cm", &got[yoff..yoff + c * t], &want, tol).map_err(fail)?;
        prop_assert!(got[..yoff].iter().chain(&got[yoff + c * t..]).all(|v| v.is_nan()), "wrote outside y");
        let mut inplace = x[xoff..].to_vec();
        norm::layer_norm_cm_inplace(&mut inplace, g, b, 1e-5, c, t);
        prop_assert_eq!(&inplace[..c * t], &got[yoff..yoff + c * t], "in-place differs from out-of-place");
    }

    #[test]
    fn depthwise_conv_cm_matches_ref(
        t in prop_oneof![0usize..40, 60usize..100],
        c in prop_oneof![0usize..20, 30usize..40],
        k in prop_oneof![0usize..5, Just(31usize), 32usize..45],
        (xoff, yoff, woff) in (0usize..4, 0usize..4, 0usize..4),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(xoff + c * t, -3.0, 3.0);
        let w = rng.vec(woff + c * k, -1.0, 1.0);
        let (xs, ws) = (&x[xoff..], &w[woff..]);
        let mut got = vec![f32::NAN; yoff + c * t + 3];
        let mut want = vec![0f32; c * t];
        conv::depthwise_conv1d_causal_cm_segments(&mut got[yoff..], xs, ws, c, t, k, &[t]);
        conv::depthwise_conv1d_causal_cm_ref(&mut want, xs, ws, c, t, k);
        // Error bound of a k-term f32 sum: k·ε·Σ|w·x|; Σ|w·x| is the reference run on |w|, |x|.
        let xa: Vec<f32> = xs.iter().map(|v| v.abs()).collect();
        let wa: Vec<f32> = ws.iter().map(|v| v.abs()).collect();
        let mut mag = vec![0f32; c * t];
        conv::depthwise_conv1d_causal_cm_ref(&mut mag, &xa, &wa, c, t, k);
        check_close("depthwise_conv_cm", &got[yoff..yoff + c * t], &want, |i| (k.max(1) as f32) * ULP * mag[i] + 1e-30)
            .map_err(fail)?;
        prop_assert!(got[..yoff].iter().chain(&got[yoff + c * t..]).all(|v| v.is_nan()), "wrote outside y");
        // Causality: output τ = 0 of each channel sees only x[ch, 0], through the last tap.
        if t > 0 && k > 0 {
            for ch in 0..c {
                prop_assert_eq!(got[yoff + ch * t], ws[ch * k + k - 1] * xs[ch * t]);
            }
        }
    }

    /// Packed segments: each segment's output is bit-identical to the kernel run on that segment alone (the
    /// causal window restarts at every segment start), and the segmented reference agrees within the bound.
    #[test]
    fn depthwise_conv_cm_segments_match_alone(
        segs in proptest::collection::vec(prop_oneof![0usize..5, 1usize..70], 1..6),
        c in prop_oneof![1usize..20, 30usize..40],
        k in prop_oneof![1usize..5, Just(31usize)],
        seed in any::<u64>(),
    ) {
        let t: usize = segs.iter().sum();
        let mut rng = Rng::new(seed);
        let x = rng.vec(c * t, -3.0, 3.0);
        let w = rng.vec(c * k, -1.0, 1.0);
        let mut got = vec![f32::NAN; c * t];
        conv::depthwise_conv1d_causal_cm_segments(&mut got, &x, &w, c, t, k, &segs);
        let mut want = vec![0f32; c * t];
        conv::depthwise_conv1d_causal_cm_segments_ref(&mut want, &x, &w, c, t, k, &segs);
        let mut s0 = 0;
        for &len in &segs {
            let xs: Vec<f32> = (0..c).flat_map(|ch| x[ch * t + s0..ch * t + s0 + len].to_vec()).collect();
            let mut alone = vec![0f32; c * len];
            conv::depthwise_conv1d_causal_cm_segments(&mut alone, &xs, &w, c, len, k, &[len]);
            for ch in 0..c {
                prop_assert_eq!(&got[ch * t + s0..ch * t + s0 + len], &alone[ch * len..(ch + 1) * len]);
            }
            s0 += len;
        }
        let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let wa: Vec<f32> = w.iter().map(|v| v.abs()).collect();
        let mut mag = vec![0f32; c * t];
        conv::depthwise_conv1d_causal_cm_segments_ref(&mut mag, &xa, &wa, c, t, k, &segs);
        check_close("depthwise_conv_cm_segments", &got, &want, |i| (k as f32) * ULP * mag[i] + 1e-30).map_err(fail)?;
    }

    #[test]
    fn linear_cm_matches_ref(
        n in prop_oneof![0usize..40, 250usize..600], // the latter: several of gemm::row_blocks' blocks
        k in 0usize..40,
        t in 0usize..40,
        (xoff, yoff, woff) in (0usize..4, 0usize..4, 0usize..4),
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(xoff + k * t, -1.0, 1.0);
        let w = rng.vec(woff + n * k, -1.0, 1.0);
        let b = rng.vec(n, -1.0, 1.0);
        let bias = with_bias.then_some(&b[..]);
        let (xs, ws) = (&x[xoff..], &w[woff..]);
        let mut got = vec![f32::NAN; yoff + n * t];
        let mut want = vec![0f32; n * t];
        linear_cm(Epilogue::Store { y: &mut got[yoff..] }, xs, ws, bias, n, k, t, Threads::Single);
        linear_cm_ref(Epilogue::Store { y: &mut want }, xs, ws, bias, n, k, t);
        let mut mag = vec![0f32; n * t];
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
        linear_cm_ref(Epilogue::Store { y: &mut mag }, &abs(xs), &abs(ws), bias.map(abs).as_deref(), n, k, t);
        check_close("linear_cm", &got[yoff..], &want, |i| 1e-5 * mag[i] + 1e-30).map_err(fail)?;
        let mut par = vec![f32::NAN; n * t];
        linear_cm(Epilogue::Store { y: &mut par }, xs, ws, bias, n, k, t, Threads::Rayon(2));
        prop_assert!(par.iter().zip(&got[yoff..]).all(|(a, b)| a.to_bits() == b.to_bits()), "threads change bits");
    }

    #[test]
    fn linear_cm_silu_is_silu_over_the_whole_output(
        n in prop_oneof![1usize..40, 250usize..600], // the latter: several of gemm::row_blocks' blocks
        k in 1usize..40,
        t in 1usize..40,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(k * t, -2.0, 2.0);
        let w = rng.vec(n * k, -1.0, 1.0);
        let b = rng.vec(n, -1.0, 1.0);
        let bias = with_bias.then_some(&b[..]);
        let mut want = vec![0f32; n * t];
        linear_cm(Epilogue::Store { y: &mut want }, &x, &w, bias, n, k, t, Threads::Single);
        activation::silu_inplace(&mut want);
        for threads in [1, 2] {
            let mut got = vec![f32::NAN; n * t];
            let out = Epilogue::StoreSilu { y: &mut got };
            pool(threads).install(|| linear_cm(out, &x, &w, bias, n, k, t, Threads::Rayon(0)));
            prop_assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{threads} threads");
        }
    }

    #[test]
    fn linear_cm_accumulate_matches_ref(
        n in prop_oneof![0usize..40, 250usize..600],
        k in 0usize..40,
        t in 0usize..40,
        (xoff, hoff) in (0usize..4, 0usize..4),
        with_bias in any::<bool>(),
        scale in prop_oneof![Just(0.5f32), Just(1.0f32), -2.0f32..2.0],
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(xoff + k * t, -1.0, 1.0);
        let w = rng.vec(n * k, -1.0, 1.0);
        let b = rng.vec(n, -1.0, 1.0);
        let h0 = rng.vec(n * t, -4.0, 4.0);
        let bias = with_bias.then_some(&b[..]);
        let xs = &x[xoff..];
        let mut got = vec![f32::NAN; hoff + n * t];
        got[hoff..].copy_from_slice(&h0);
        let mut want = h0.clone();
        linear_cm(Epilogue::Accumulate { h: &mut got[hoff..], scale }, xs, &w, bias, n, k, t, Threads::Single);
        linear_cm_ref(Epilogue::Accumulate { h: &mut want, scale }, xs, &w, bias, n, k, t);
        // Bound: |h0| plus |scale|·(Σ|w·x| + |b|), times a few ulps for the accumulation.
        let mut mag = vec![0f32; n * t];
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
        linear_cm_ref(Epilogue::Store { y: &mut mag }, &abs(xs), &abs(&w), bias.map(abs).as_deref(), n, k, t);
        check_close("linear_cm Accumulate", &got[hoff..], &want, |i| 1e-5 * (scale.abs() * mag[i] + h0[i].abs()) + 1e-30)
            .map_err(fail)?;
        prop_assert!(got[..hoff].iter().all(|v| v.is_nan()), "wrote before h");
        let mut par = h0.clone();
        linear_cm(Epilogue::Accumulate { h: &mut par, scale }, xs, &w, bias, n, k, t, Threads::Rayon(2));
        prop_assert!(par.iter().zip(&got[hoff..]).all(|(a, b)| a.to_bits() == b.to_bits()), "threads change bits");
    }
}

proptest! {
    #![proptest_config(common::cases(24))]

    /// The linears split W's rows one block per thread ([`block_rows`]), so the split changes with the pool; the
    /// bits must not. Depths past gemm's 512-deep `kc` blocks (two and three blocks, even and ragged), widths
    /// around its 64-wide tiles, row counts around `MIN_BLOCK_ROWS`.
    #[test]
    fn linears_are_bit_identical_for_1_to_4_threads(
        n in prop_oneof![1usize..140, 250usize..600],
        k in prop_oneof![1usize..64, 500usize..560, 1000usize..1100],
        t in prop_oneof![1usize..5, 60usize..70],
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(k * t, -1.0, 1.0);
        let w = rng.vec(n * k, -1.0, 1.0);
        let b = rng.vec(n, -1.0, 1.0);
        let h0 = rng.vec(n * t, -4.0, 4.0);
        let run = |threads: usize| {
            pool(threads).install(|| {
                let mut y = vec![0f32; n * t];
                linear_cm(Epilogue::Store { y: &mut y }, &x, &w, Some(&b), n, k, t, Threads::Rayon(0));
                let mut h = h0.clone();
                linear_cm(Epilogue::Accumulate { h: &mut h, scale: 0.5 }, &x, &w, Some(&b), n, k, t, Threads::Rayon(0));
                (y, h)
            })
        };
        let (y1, h1) = run(1);
        for threads in 2..=4 {
            let (y, h) = run(threads);
            prop_assert!(y.iter().zip(&y1).all(|(a, b)| a.to_bits() == b.to_bits()), "linear_cm, {threads} threads");
            prop_assert!(h.iter().zip(&h1).all(|(a, b)| a.to_bits() == b.to_bits()), "accumulate, {threads} threads");
        }
    }
}

/// Real size (c = 1024, t = 300 ≥ 2¹⁸ elements: the rayon paths) with a ragged last tile: same bits under
/// pools of 1, 2 and 3 threads, equal to a column-by-column computation, and within tolerance of the reference.
#[test]
fn layer_norm_cm_parallel_is_bit_identical() {
    let (c, t) = (1024, 301);
    let mut rng = Rng::new(7);
    let x: Vec<f32> = (0..c * t).map(|_| 5.0 + rng.uniform(-3.0, 3.0)).collect();
    let gamma = rng.vec(c, 0.5, 1.5);
    let beta = rng.vec(c, -0.5, 0.5);
    let run = |threads: usize| {
        let mut y = vec![0f32; c * t];
        pool(threads).install(|| norm::layer_norm_cm(&mut y, &x, &gamma, &beta, 1e-5, c, t));
        let mut yi = x.clone();
        pool(threads).install(|| norm::layer_norm_cm_inplace(&mut yi, &gamma, &beta, 1e-5, c, t));
        assert!(y == yi, "in-place differs with {threads} threads");
        y
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(
            run(threads) == one,
            "layer_norm_cm with {threads} threads differs from 1 thread"
        );
    }
    // A single column on its own (the ragged-tile path) gives the same bits as inside the big call.
    for j in [0, 37, 300] {
        let col: Vec<f32> = (0..c).map(|r| x[r * t + j]).collect();
        let mut y = vec![0f32; c];
        norm::layer_norm_cm(&mut y, &col, &gamma, &beta, 1e-5, c, 1);
        assert!((0..c).all(|r| y[r] == one[r * t + j]), "column {j} alone differs");
    }
    let mut want = vec![0f32; c * t];
    norm::layer_norm_cm_ref(&mut want, &x, &gamma, &beta, 1e-5, c, t);
    check_close("layer_norm_cm big", &one, &want, |i| 1e-5 * (want[i].abs() + 2.0)).unwrap();
}

/// A constant column (zero variance) gives exactly beta, even on a large offset.
#[test]
fn layer_norm_cm_constant_column_is_beta() {
    let (c, t) = (37, 11);
    let x = vec![12345.678f32; c * t];
    let gamma = vec![3.0f32; c];
    let beta: Vec<f32> = (0..c).map(|j| j as f32 * 0.1).collect();
    let mut y = vec![0f32; c * t];
    norm::layer_norm_cm(&mut y, &x, &gamma, &beta, 1e-5, c, t);
    for r in 0..c {
        assert!(y[r * t..(r + 1) * t].iter().all(|&v| v == beta[r]), "row {r}");
    }
}

/// Real conformer size (c = 1024, t = 500, k = 31) takes the rayon path: same bits under pools of 1, 2 and 3
/// threads, and within tolerance of the reference.
#[test]
fn depthwise_conv_cm_parallel_is_bit_identical() {
    let (t, c, k) = (501, 1024, 31);
    let mut rng = Rng::new(11);
    let x = rng.vec(c * t, -2.0, 2.0);
    let w = rng.vec(c * k, -0.3, 0.3);
    let run = |threads: usize| {
        let mut y = vec![0f32; c * t];
        pool(threads).install(|| conv::depthwise_conv1d_causal_cm_segments(&mut y, &x, &w, c, t, k, &[t]));
        y
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(
            run(threads) == one,
            "depthwise conv cm with {threads} threads differs from 1 thread"
        );
    }
    let mut want = vec![0f32; c * t];
    conv::depthwise_conv1d_causal_cm_ref(&mut want, &x, &w, c, t, k);
    // Σ|w·x| ≤ 31 · 0.3 · 2.
    check_close("depthwise conv cm big", &one, &want, |_| 31.0 * ULP * 31.0 * 0.6).unwrap();
    // Causality: the first output of each channel only sees x[ch, 0], through the last tap.
    for ch in 0..c {
        assert_eq!(one[ch * t], w[ch * k + k - 1] * x[ch * t]);
    }
}
