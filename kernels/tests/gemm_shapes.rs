//! `gemm::matmul` / `gemm::linear_cm` against the f64 triple loop over awkward shapes.
//!
//! m, k, n sweep {0, 1, 7, 63, 64, 65, 257} (all 343 combinations). Each combination also draws one
//! operand layout (row-major, transposed, padded leading dimension), accumulate on/off, a scale and
//! Threads::Single or Rayon(2), cycling so every variant meets every size class. Model-sized products
//! are checked on a sparse sample of rows so the test stays fast. Tolerance: 1e-5 · Σ|a||b| (+ |old c|),
//! i.e. relative to the magnitude a correct f32 sum can lose precision against, while a wrong index or
//! a missed block is off by O(Σ|a||b|). Padding outside the `[m, n]` view of `c` must stay untouched.

mod common;

use common::{check_close, epilogue, Rng, KINDS};
use proptest::prelude::*;
use w2vbert_kernels::gemm::{linear_cm, linear_cm_ref, matmul, matmul_ref, Epilogue, Threads};

const SIZES: [usize; 7] = [0, 1, 7, 63, 64, 65, 257];
const SENTINEL: f32 = -7.25e9;

#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    Transposed,
    Padded,
}

/// Storage for a `rows × cols` operand in `layout`: (buffer length, row stride, col stride).
fn strides(layout: Layout, rows: usize, cols: usize) -> (usize, usize, usize) {
    match layout {
        Layout::RowMajor => (rows * cols, cols, 1),
        Layout::Transposed => (rows * cols, 1, rows.max(1)),
        Layout::Padded => (rows * (cols + 3), cols + 3, 1),
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    la: Layout,
    lb: Layout,
    ldc_pad: usize,
    scale: f32,
    accumulate: bool,
    threads: Threads,
}

/// Runs `matmul` for `case` and compares the rows listed in `rows` (all when `None`) with `matmul_ref`.
fn run_case(case: Case, rows: Option<&[usize]>, seed: u64) -> Result<(), String> {
    let Case {
        m,
        k,
        n,
        la,
        lb,
        ldc_pad,
        scale,
        accumulate,
        threads,
    } = case;
    let mut rng = Rng::new(seed);
    let (alen, a_rs, a_cs) = strides(la, m, k);
    let (blen, b_rs, b_cs) = strides(lb, k, n);
    let a = rng.vec(alen, -1.0, 1.0);
    let b = rng.vec(blen, -1.0, 1.0);
    let ldc = n + ldc_pad;
    let mut c0 = vec![SENTINEL; m * ldc];
    for i in 0..m {
        for j in 0..n {
            c0[i * ldc + j] = rng.uniform(-4.0, 4.0);
        }
    }
    let mut c = c0.clone();
    matmul(
        &mut c, ldc, &a, a_rs, a_cs, &b, b_rs, b_cs, m, k, n, scale, accumulate, threads,
    );

    let all: Vec<usize> = (0..m).collect();
    let (abs_a, abs_b): (Vec<f32>, Vec<f32>) =
        (a.iter().map(|v| v.abs()).collect(), b.iter().map(|v| v.abs()).collect());
    for &i in rows.unwrap_or(&all) {
        // One output row through the reference: a's row i starts at i·a_rs whatever the layout.
        let mut want = c0[i * ldc..i * ldc + n].to_vec();
        matmul_ref(
            &mut want,
            n,
            a.get(i * a_rs..).unwrap_or(&[]),
            a_rs,
            a_cs,
            &b,
            b_rs,
            b_cs,
            1,
            k,
            n,
            scale,
            accumulate,
        );
        let mut mag = vec![0f32; n];
        matmul_ref(
            &mut mag,
            n,
            abs_a.get(i * a_rs..).unwrap_or(&[]),
            a_rs,
            a_cs,
            &abs_b,
            b_rs,
            b_cs,
            1,
            k,
            n,
            1.0,
            false,
        );
        let old = &c0[i * ldc..i * ldc + n];
        let tol = |j: usize| 1e-5 * (scale.abs() * mag[j] + if accumulate { old[j].abs() } else { 0.0 }) + 1e-30;
        check_close(&format!("{case:?} row {i}"), &c[i * ldc..i * ldc + n], &want, tol)?;
        if c[i * ldc + n..(i + 1) * ldc].iter().any(|&v| v != SENTINEL) {
            return Err(format!("{case:?}: row {i} padding overwritten"));
        }
    }
    Ok(())
}

#[test]
fn matmul_awkward_shapes_all_variants() {
    let layouts = [Layout::RowMajor, Layout::Transposed, Layout::Padded];
    let mut idx = 0usize;
    for &m in &SIZES {
        for &k in &SIZES {
            for &n in &SIZES {
                // Cycle the variants with co-prime periods so each one meets every size class.
                let case = Case {
                    m,
                    k,
                    n,
                    la: layouts[idx % 3],
                    lb: layouts[(idx / 3) % 3],
                    ldc_pad: [0, 5][idx % 2],
                    scale: [1.0, 0.125, -2.5, 1.0, 0.5][idx % 5],
                    accumulate: idx % 7 < 3,
                    threads: if idx % 4 < 2 {
                        Threads::Single
                    } else {
                        Threads::Rayon(2)
                    },
                };
                if let Err(e) = run_case(case, None, idx as u64) {
                    panic!("{e}");
                }
                idx += 1;
            }
        }
    }
}

/// The conformer's projection shapes at T = 500, `x · Wᵀ` with W read in place as `[n, k]`
/// (b transposed), both thread settings; 6 sampled rows each (edges included).
#[test]
fn matmul_model_shapes_sampled_rows() {
    let shapes = [
        (500, 1024, 4096),
        (500, 4096, 1024),
        (500, 1024, 2048),
        (300, 160, 1024),
    ];
    for (s, &(m, k, n)) in shapes.iter().enumerate() {
        for threads in [Threads::Single, Threads::Rayon(2)] {
            let case = Case {
                m,
                k,
                n,
                la: Layout::RowMajor,
                lb: Layout::Transposed,
                ldc_pad: 0,
                scale: 1.0,
                accumulate: s % 2 == 1,
                threads,
            };
            let rows = [0, 1, m / 3, m / 2 + 7, m - 2, m - 1];
            if let Err(e) = run_case(case, Some(&rows), 99 + s as u64) {
                panic!("{e}");
            }
        }
    }
}

/// `linear_cm` (bias or not, both thread settings) against `linear_cm_ref` on the sweep sizes.
#[test]
fn linear_cm_awkward_shapes() {
    let mut rng = Rng::new(5);
    let mut idx = 0;
    for &n in &SIZES {
        for &k in &SIZES {
            for &t in &SIZES {
                let x = rng.vec(k * t, -1.0, 1.0);
                let w = rng.vec(n * k, -1.0, 1.0);
                let bias = rng.vec(n, -1.0, 1.0);
                let bias = if idx % 2 == 0 { Some(&bias[..]) } else { None };
                let threads = if idx % 3 == 0 {
                    Threads::Rayon(2)
                } else {
                    Threads::Single
                };
                let mut y = vec![f32::NAN; n * t];
                let mut want = vec![0f32; n * t];
                linear_cm(Epilogue::Store { y: &mut y }, &x, &w, bias, n, k, t, threads);
                linear_cm_ref(Epilogue::Store { y: &mut want }, &x, &w, bias, n, k, t);
                let (xa, wa): (Vec<f32>, Vec<f32>) =
                    (x.iter().map(|v| v.abs()).collect(), w.iter().map(|v| v.abs()).collect());
                let ba = bias.map(|b| b.iter().map(|v| v.abs()).collect::<Vec<_>>());
                let mut mag = vec![0f32; n * t];
                linear_cm_ref(Epilogue::Store { y: &mut mag }, &xa, &wa, ba.as_deref(), n, k, t);
                let what = format!("linear_cm n={n} k={k} t={t} bias={} {threads:?}", bias.is_some());
                if let Err(e) = check_close(&what, &y, &want, |i| 1e-5 * mag[i] + 1e-30) {
                    panic!("{e}");
                }
                idx += 1;
            }
        }
    }
}

/// `linear_cm` where it copies W block by block (t > 1): several `[≤ 512, ≤ 512]` blocks of rows and of depth
/// (uneven depths past 512 and 1024), every epilogue, against `linear_cm_ref`; and where it reads
/// W in place (one column). 1, 2 and 3 threads give the same bits. A block's rows or columns taken from the
/// wrong place, or a depth block added twice or not at all, is off by O(Σ|w||x|).
#[test]
fn linear_cm_copied_blocks_match_ref() {
    let mut rng = Rng::new(11);
    // Small t keeps it cheap under qemu (.ci/platforms.sh runs it emulated): the blocks are over rows and depth.
    for &(n, k, t) in &[(1100, 1030, 5), (530, 1536, 3), (600, 700, 1), (70, 513, 65)] {
        let x = rng.vec(k * t, -1.0, 1.0);
        let w = rng.vec(n * k, -1.0, 1.0);
        let bias = rng.vec(n, -1.0, 1.0);
        let old = rng.vec(n * t, -2.0, 2.0);
        let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<f32>>();
        let mut mag = vec![0f32; n * t];
        linear_cm_ref(
            Epilogue::Store { y: &mut mag },
            &abs(&x),
            &abs(&w),
            Some(&abs(&bias)),
            n,
            k,
            t,
        );
        for kind in KINDS {
            let mut want = old.clone();
            linear_cm_ref(epilogue(kind, &mut want), &x, &w, Some(&bias), n, k, t);
            let mut first: Option<Vec<f32>> = None;
            for threads in [1, 2, 3] {
                let mut got = old.clone();
                common::pool(threads).install(|| {
                    linear_cm(
                        epilogue(kind, &mut got),
                        &x,
                        &w,
                        Some(&bias),
                        n,
                        k,
                        t,
                        Threads::Rayon(0),
                    )
                });
                let what = format!("linear_cm n={n} k={k} t={t} epilogue {kind:?} on {threads} threads");
                if let Err(e) = check_close(&what, &got, &want, |i| 1e-5 * (mag[i] + old[i].abs()) + 1e-30) {
                    panic!("{e}");
                }
                let first = first.get_or_insert_with(|| got.clone());
                assert!(
                    first.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{what}: differs from 1 thread"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(common::cases(64))]
    /// Random small shapes and strides, beyond the fixed sweep.
    #[test]
    fn matmul_random_small(
        (m, k, n) in (0usize..40, 0usize..40, 0usize..40),
        (la, lb) in (0usize..3, 0usize..3),
        ldc_pad in 0usize..4,
        accumulate in any::<bool>(),
        scale in -2f32..2f32,
        rayon in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let layouts = [Layout::RowMajor, Layout::Transposed, Layout::Padded];
        let case = Case {
            m, k, n, la: layouts[la], lb: layouts[lb], ldc_pad, scale, accumulate,
            threads: if rayon { Threads::Rayon(2) } else { Threads::Single },
        };
        run_case(case, None, seed).map_err(TestCaseError::fail)?;
    }
}
