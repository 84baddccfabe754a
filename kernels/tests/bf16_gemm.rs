//! `bf16::linear_bf16_cm` (every tile microkernel this CPU has) and `bf16::linear_bf16_rows_cm` (WidenF32)
//! against the f64 reference over awkward shapes, every epilogue, with and without bias; thread count must not
//! change a single bit.
//!
//! Both sides multiply the same operands (bf16-rounded x for the tile kernels, f32 x for WidenF32); they differ only in f32 vs f64 summation, so the
//! tolerance is 1e-5 · Σ|w||x| (+ the old value for the accumulate epilogue). A wrong index, a missed k chunk
//! or a mis-packed pair is off by O(Σ|w||x|).

mod common;

use common::{check_close, epilogue, pool, Kind, Rng};
use proptest::prelude::*;
use w2vbert_kernels::bf16::{
    bf16_from_f32, bf16_from_f32_slice, bf16_to_f32, linear_bf16_cm, linear_bf16_cm_packed,
    linear_bf16_cm_packed_silu_into, linear_bf16_cm_ref, linear_bf16_rows_cm, owned_rows, tiles_read_in_place,
    Bf16Kernel, Bf16Weights, PackedX, RowsFrom,
};
use w2vbert_kernels::gemm::{linear_cm, Threads};

const KERNELS: [Bf16Kernel; 3] = [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16, Bf16Kernel::WidenF32];

/// One case's operands: W `[n, k]` (`w`, with ties and denormals among its values) rounded to bf16 (`bits`),
/// x `[k, t]`, bias `[n]`, and the output's old contents `[n, t]` (what the accumulate epilogue adds to).
struct Operands {
    w: Vec<f32>,
    bits: Vec<u16>,
    x: Vec<f32>,
    bias: Vec<f32>,
    old: Vec<f32>,
}

impl Operands {
    fn new(n: usize, k: usize, t: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut w = rng.vec(n * k, -1.0, 1.0);
        // Exact ties (rounded to even, up and down) and a denormal (kept by the rounding, not flushed).
        for (i, v) in [
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0xbf81_8000),
            f32::from_bits(0x0000_8001),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(x) = w.get_mut(i * 7) {
                *x = v;
            }
        }
        let x = rng.vec(k * t, -2.0, 2.0);
        let bias = rng.vec(n, -1.0, 1.0);
        let old = rng.vec(n * t, -3.0, 3.0);
        let bits = w.iter().map(|&v| bf16_from_f32(v)).collect();
        Operands { w, bits, x, bias, old }
    }
}

/// Runs every available kernel on one case; `Err` names the kernel and the first bad element.
fn run_case(n: usize, k: usize, t: usize, kind: Kind, with_bias: bool, seed: u64) -> Result<usize, String> {
    let Operands {
        w: w32,
        bits,
        x,
        bias,
        old,
    } = Operands::new(n, k, t, seed);
    // What the model holds for a tile kernel: a copy (zero-padded unless n and k are multiples of 32) ...
    let (own, ld) = owned_rows(Bf16Kernel::Amx, RowsFrom::Bf16(&bits), n, k);
    let packed = Bf16Weights::new(&own, n, k, ld);
    // ... or, when they are, the bits where they lie (a checkpoint's mapping), here 2 bytes off any alignment.
    let shifted: Vec<u16> = std::iter::once(0).chain(bits.iter().copied()).collect();
    let in_place = tiles_read_in_place(n, k).then(|| Bf16Weights::new(&shifted[1..], n, k, k));
    // ... or the f32 weights as stored, rounded by the tile kernel as it copies them.
    let from_f32 = tiles_read_in_place(n, k).then(|| Bf16Weights::from_f32(&w32, n, k));
    let b = with_bias.then_some(bias.as_slice());
    let want = [true, false].map(|round_x| {
        let mut want = old.clone();
        linear_bf16_cm_ref(epilogue(kind, &mut want), &x, packed, b, t, round_x);
        want
    });
    // Σ|w||x| per output element, on the bf16-rounded operands.
    let mag: Vec<f32> = (0..n * t)
        .map(|i| {
            let (r, j) = (i / t.max(1), i % t.max(1));
            (0..k).map(|c| (packed.get(r, c) * x[c * t + j]).abs()).sum::<f32>()
        })
        .collect();
    let mut ran = 0;
    let run_on = |w: Bf16Weights<'_>, kernel: Bf16Kernel, out: &mut [f32], threads| {
        let out = epilogue(kind, out);
        if kernel.packs_tiles() {
            linear_bf16_cm(kernel, out, &x, w, b, t, threads)
        } else {
            linear_bf16_rows_cm(out, &x, RowsFrom::Bf16(&bits), b, n, k, t, threads)
        }
    };
    let run = |kernel, out: &mut [f32], threads| run_on(packed, kernel, out, threads);
    for kernel in KERNELS.into_iter().filter(|k| k.available()) {
        let mut got = old.clone();
        run(kernel, &mut got, Threads::Rayon(2));
        let want = &want[usize::from(!kernel.packs_tiles())];
        check_close(&format!("{kernel:?} {kind:?} n{n} k{k} t{t}"), &got, want, |i| {
            1e-5 * mag[i] + 1e-6 * old[i].abs() + 1e-6
        })?;
        let mut single = old.clone();
        run(kernel, &mut single, Threads::Single);
        if single.iter().zip(&got).any(|(a, b)| a.to_bits() != b.to_bits()) {
            return Err(format!("{kernel:?} n{n} k{k} t{t}: 1 thread and 2 threads differ"));
        }
        if let (Some(w), true) = (in_place, kernel.packs_tiles()) {
            let mut there = old.clone();
            run_on(w, kernel, &mut there, Threads::Rayon(2));
            if there.iter().zip(&got).any(|(a, b)| a.to_bits() != b.to_bits()) {
                return Err(format!(
                    "{kernel:?} n{n} k{k} t{t}: the weights in place and a copy differ"
                ));
            }
        }
        if !kernel.packs_tiles() {
            // WidenF32 reads f32 rows of any shape, rounding them as it widens.
            for threads in [Threads::Single, Threads::Rayon(2)] {
                let mut rounded = old.clone();
                linear_bf16_rows_cm(
                    epilogue(kind, &mut rounded),
                    &x,
                    RowsFrom::F32(&w32),
                    b,
                    n,
                    k,
                    t,
                    threads,
                );
                if rounded.iter().zip(&got).any(|(a, b)| a.to_bits() != b.to_bits()) {
                    return Err(format!(
                        "{kernel:?} n{n} k{k} t{t} {threads:?}: f32 weights rounded as they are widened and rounded bits differ"
                    ));
                }
            }
        }
        if let (Some(w), true) = (from_f32, kernel.packs_tiles()) {
            for threads in [Threads::Single, Threads::Rayon(2)] {
                let mut rounded = old.clone();
                run_on(w, kernel, &mut rounded, threads);
                if rounded.iter().zip(&got).any(|(a, b)| a.to_bits() != b.to_bits()) {
                    return Err(format!(
                        "{kernel:?} n{n} k{k} t{t} {threads:?}: f32 weights rounded in the kernel and a rounded copy differ"
                    ));
                }
            }
        }
        ran += 1;
    }
    Ok(ran)
}

#[test]
fn bf16_rounding_is_nearest_even() {
    for bits in [
        0u32,
        1,
        0x7fff,
        0x8000,
        0x8001,
        0x1_8000,
        0x3f80_8000,
        0x3f81_8000,
        0x7f7f_ffff,
    ] {
        let x = f32::from_bits(bits);
        let want = half::bf16::from_f32(x).to_bits();
        assert_eq!(bf16_from_f32(x), want, "{bits:#x}");
        assert_eq!(bf16_from_f32(-x), half::bf16::from_f32(-x).to_bits(), "-{bits:#x}");
    }
    assert!(bf16_to_f32(bf16_from_f32(f32::NAN)).is_nan());
    let mut rng = Rng::new(7);
    for _ in 0..100_000 {
        let x = f32::from_bits(rng.next_u64() as u32);
        if x.is_nan() {
            continue;
        }
        assert_eq!(
            bf16_from_f32(x),
            half::bf16::from_f32(x).to_bits(),
            "{:#x}",
            x.to_bits()
        );
    }
}

/// The slice form (what loading rounds weights with) is the scalar rounding at every index, NaN included and
/// whatever the length modulo the vector width.
#[test]
fn bf16_slice_rounding_is_the_scalar_rounding() {
    let mut rng = Rng::new(11);
    for n in [0usize, 1, 7, 8, 15, 16, 17, 63, 64, 65, 1000] {
        let mut src: Vec<f32> = (0..n).map(|_| f32::from_bits(rng.next_u64() as u32)).collect();
        if n > 3 {
            src[3] = f32::NAN;
        }
        let mut got = vec![0xdead_u16; n];
        bf16_from_f32_slice(&mut got, &src);
        for (i, (&g, &x)) in got.iter().zip(&src).enumerate() {
            assert_eq!(g, bf16_from_f32(x), "n = {n}, index {i}, {:#x}", x.to_bits());
        }
    }
}

#[test]
fn model_shapes_and_awkward_sizes() {
    let mut kernels_run = 0;
    for &(n, k, t) in &[
        (1, 1, 1),
        (31, 33, 17),
        (32, 32, 32),
        (33, 63, 65),
        (64, 160, 50),
        (96, 1000, 31),
        (128, 1024, 100),
        (40, 2050, 33),
        (160, 300, 530), // AMX: two tasks, two column groups, two k blocks of unequal length
        (64, 288, 1100), // AMX: three column groups reading the micro-panels packed in the first
        (64, 2080, 40),  // AVX512-BF16: three k blocks, the last one chunk long
        (600, 70, 20),   // WidenF32: two row blocks on one thread
        (1100, 1030, 9), // WidenF32: three row blocks, three depth blocks
    ] {
        for kind in [Kind::Store, Kind::Silu, Kind::Accumulate] {
            kernels_run = run_case(n, k, t, kind, true, (n * 31 + k * 7 + t) as u64).unwrap();
        }
        run_case(n, k, t, Kind::Store, false, 3).unwrap();
    }
    eprintln!("bf16 kernels checked on this CPU: {kernels_run}");
}

/// The packed-input routes are the plain one bit for bit: a linear reading its input packed (`PackedX::pack`)
/// writes what the plain linear writes from f32; one that only packs its SiLU output
/// (`linear_bf16_cm_packed_silu_into`) leaves what `PackedX::pack` makes of the plain linear's, and the next linear
/// reading that (`linear_bf16_cm_packed`) gives what it gives on the f32 output; `PackedX::pack` then the packed
/// linear likewise. The same two `PackedX` serve every case in turn, larger ones first, so stale
/// values from an earlier case would show; row counts that leave a partial row block, partial column blocks, two
/// column groups, 1 and 2 threads, every tile kernel this CPU has.
#[test]
fn packed_inputs_are_the_f32_inputs_bit_for_bit() {
    let (mut input, mut next) = (PackedX::default(), PackedX::default());
    let mut kernels_run = 0;
    for &(n, k, m, t) in &[
        (130, 200, 40, 530),
        (64, 96, 33, 65),
        (33, 40, 20, 31),
        (32, 32, 32, 32),
        (1, 5, 3, 7),
    ] {
        let a = Operands::new(n, k, t, (n + k + t) as u64);
        let b = Operands::new(m, n, t, (m * n) as u64);
        for kernel in KERNELS.into_iter().filter(|k| k.available() && k.packs_tiles()) {
            let (wa, lda) = owned_rows(kernel, RowsFrom::Bf16(&a.bits), n, k);
            let (wb, ldb) = owned_rows(kernel, RowsFrom::Bf16(&b.bits), m, n);
            let (wa, wb) = (Bf16Weights::new(&wa, n, k, lda), Bf16Weights::new(&wb, m, n, ldb));
            for threads in [Threads::Single, Threads::Rayon(2)] {
                let case = format!("{kernel:?} n{n} k{k} m{m} t{t} {threads:?}");
                let (mut y, mut z) = (vec![0f32; n * t], b.old.clone());
                linear_bf16_cm(
                    kernel,
                    epilogue(Kind::Silu, &mut y),
                    &a.x,
                    wa,
                    Some(&a.bias),
                    t,
                    threads,
                );
                linear_bf16_cm(
                    kernel,
                    epilogue(Kind::Accumulate, &mut z),
                    &y,
                    wb,
                    Some(&b.bias),
                    t,
                    threads,
                );
                let (mut y2, mut z2) = (vec![0f32; n * t], b.old.clone());
                input.pack(&a.x, k, t);
                let out = epilogue(Kind::Silu, &mut y2);
                linear_bf16_cm_packed(kernel, out, &input, wa, Some(&a.bias), threads);
                let mut want = PackedX::default();
                want.pack(&y, n, t);
                linear_bf16_cm_packed_silu_into(kernel, &mut next, &input, wa, Some(&a.bias), threads);
                assert!(want.bits() == next.bits(), "{case}: the linear that only packs differs");
                linear_bf16_cm_packed(
                    kernel,
                    epilogue(Kind::Accumulate, &mut z2),
                    &next,
                    wb,
                    Some(&b.bias),
                    threads,
                );
                let same = |p: &[f32], q: &[f32]| p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits());
                assert!(same(&y, &y2), "{case}: the linear reading its input packed differs");
                assert!(same(&z, &z2), "{case}: the linear reading the packed output differs");
                let mut z3 = vec![0f32; m * t];
                next.pack(&y, n, t);
                linear_bf16_cm_packed(kernel, epilogue(Kind::Store, &mut z3), &next, wb, None, threads);
                let mut z4 = vec![0f32; m * t];
                linear_bf16_cm(kernel, epilogue(Kind::Store, &mut z4), &y, wb, None, t, threads);
                assert!(same(&z3, &z4), "{case}: PackedX::pack then the packed linear differs");
            }
            kernels_run += 1;
        }
    }
    eprintln!("tile kernels checked on this CPU: {kernels_run}");
}

/// WidenF32 widens W one `[≤ 512, ≤ 512]` block at a time into the blocks the f32 linear copies W into, and
/// runs the same gemm calls on them: that must be exactly the f32 linear on the widened weights, on every CPU,
/// for every epilogue, at depths past 512 (the model's 1024 and 4096, and uneven ones), row counts that split
/// into several blocks, one column (gemv: the f32 linear reads W in place there), and any thread count.
#[test]
fn widen_kernel_is_the_f32_linear_bit_for_bit() {
    for &(n, k, t) in &[
        (1024, 1024, 50),
        (1100, 4096, 33),
        (600, 1100, 17),
        (130, 2050, 70),
        (70, 513, 9),
        (64, 600, 64), // gemm's small-size path: depth blocks of 512, then 88
        (300, 1500, 2),
        (1200, 700, 1), // one column: gemv, all of k at once
        (5, 3, 4),
    ] {
        let Operands { bits, x, bias, old, .. } = Operands::new(n, k, t, (n * 13 + k * 5 + t) as u64);
        let wide: Vec<f32> = bits.iter().map(|&b| bf16_to_f32(b)).collect();
        for (kind, b) in [
            (Kind::Store, Some(bias.as_slice())),
            (Kind::Store, None),
            (Kind::Silu, Some(bias.as_slice())),
            (Kind::Accumulate, Some(bias.as_slice())),
            (Kind::Accumulate, None),
        ] {
            let mut want = old.clone();
            let th = Threads::Rayon(0);
            pool(2).install(|| linear_cm(epilogue(kind, &mut want), &x, &wide, b, n, k, t, th));
            let mut first: Option<Vec<f32>> = None;
            for threads in [1, 2, 3] {
                let mut got = old.clone();
                pool(threads).install(|| {
                    linear_bf16_rows_cm(epilogue(kind, &mut got), &x, RowsFrom::Bf16(&bits), b, n, k, t, th)
                });
                if let Some(f) = &first {
                    assert!(
                        f.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "n{n} k{k} t{t} {kind:?}: {threads} threads differ from 1"
                    );
                }
                first.get_or_insert_with(|| got.clone());
                let bad = got.iter().zip(&want).position(|(g, w)| g.to_bits() != w.to_bits());
                assert!(
                    bad.is_none(),
                    "n{n} k{k} t{t} {kind:?} bias {} on {threads} threads: element {} is {} where the f32 linear gives {}",
                    b.is_some(),
                    bad.unwrap(),
                    got[bad.unwrap()],
                    want[bad.unwrap()]
                );
            }
        }
    }
}

#[test]
fn owned_rows_keep_every_weight_and_pad_with_zeros() {
    for (n, k) in [(37, 70), (64, 96), (1, 1)] {
        let w: Vec<f32> = (0..n * k).map(|i| i as f32 * 1.003 - 1000.0).collect();
        let h: Vec<u16> = w.iter().map(|&v| bf16_from_f32(v)).collect();
        for kernel in KERNELS {
            let (p, ld) = owned_rows(kernel, RowsFrom::F32(&w), n, k);
            let (q, ld_q) = owned_rows(kernel, RowsFrom::Bf16(&h), n, k);
            assert_eq!(
                (&p[..], ld),
                (&q[..], ld_q),
                "{kernel:?} [{n}, {k}]: rounding at load vs a bf16 copy"
            );
            let tiles = kernel.packs_tiles();
            let padded = tiles && !tiles_read_in_place(n, k);
            assert_eq!(
                ld,
                if padded { k.div_ceil(32) * 32 } else { k },
                "{kernel:?} [{n}, {k}]"
            );
            let rows = if padded { n.div_ceil(32) * 32 } else { n };
            assert_eq!(p.len(), rows * ld, "{kernel:?} [{n}, {k}]");
            for (i, &v) in p.iter().enumerate() {
                let (r, c) = (i / ld, i % ld);
                let want = if r < n && c < k { h[r * k + c] } else { 0 };
                assert_eq!(v, want, "{kernel:?} [{n}, {k}] at ({r}, {c})");
            }
            if tiles {
                Bf16Weights::new(&p, n, k, ld); // the kernels' bounds and padding checks accept it
            }
        }
    }
}

#[test]
#[should_panic(expected = "padding columns")]
fn weights_with_nonzero_padding_are_refused() {
    let (n, k, ld) = (2, 3, 32);
    let mut bits = vec![0u16; 31 * ld + 32];
    bits[5] = bf16_from_f32(1.0); // row 0, column 5 ≥ k
    Bf16Weights::new(&bits, n, k, ld);
}

#[test]
fn model_shaped_weights_are_read_in_place() {
    // Multiples of 32 (as every projection of the model): the kernels read the rows as given, no copy.
    // (160, 288, 530): more than one AMX task group (4 row blocks), k block (8 chunks) and column group (16
    // blocks), with ragged last ones.
    for (n, k, t) in [(64, 96, 40), (96, 160, 33), (32, 1024, 17), (160, 288, 530)] {
        assert!(tiles_read_in_place(n, k));
        for kind in [Kind::Store, Kind::Silu, Kind::Accumulate] {
            run_case(n, k, t, kind, true, (n * k + t) as u64).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(common::cases(48))]
    #[test]
    fn matches_reference(n in 1usize..80, k in 1usize..300, t in 1usize..90, kind in 0usize..3, bias: bool,
                         seed: u64) {
        let kind = [Kind::Store, Kind::Silu, Kind::Accumulate][kind];
        run_case(n, k, t, kind, bias, seed).map_err(TestCaseError::fail)?;
    }
}
