//! Shared helpers of the kernel tests: a seeded RNG (tests stay reproducible without a rand dependency),
//! a relative-or-absolute comparison that names the first element out of tolerance, and a rayon pool of a
//! given size (thread-count tests).
#![allow(dead_code)]

/// SplitMix64: small, seeded, good enough to fill test matrices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `Err` naming the first `i` where `got[i]` and `want[i]` differ by more than `tol(i)` (NaN must match
/// NaN, infinities must match exactly).
pub fn check_close(what: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g.is_nan() && w.is_nan() || g == w {
            continue;
        }
        let t = tol(i);
        // A NaN difference (NaN on one side only) fails too.
        if (g - w).abs() > t || (g - w).is_nan() {
            return Err(format!(
                "{what}: element {i} of {}: got {g:e}, want {w:e}, |diff| {:e} > tol {t:e}",
                got.len(),
                (g - w).abs()
            ));
        }
    }
    Ok(())
}

/// Distance in units in the last place between two finite f32 of the same sign (or zeros).
pub fn ulp_diff(a: f32, b: f32) -> u32 {
    // Map to a monotonic integer line so that the difference counts representable floats in between.
    fn key(x: f32) -> i64 {
        let b = x.to_bits() as i32 as i64;
        if b < 0 {
            i32::MIN as i64 - b
        } else {
            b
        }
    }
    (key(a) - key(b)).unsigned_abs() as u32
}

/// A rayon pool of `threads` threads, for running a kernel under a given thread count (`pool(n).install(…)`).
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// A proptest config of `cases` cases, or of `PROPTEST_CASES` when that is set (proptest's own variable, which
/// its default config honours but an explicit case count would override): the AVX2-only CI step runs these
/// tests under `qemu-x86_64 -cpu EPYC-Milan`, where each case costs ~50× its native time, with fewer cases.
pub fn cases(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::Config {
        cases,
        ..Default::default()
    }
}

/// The three epilogues of the linears, for tests that sweep them.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Store,
    Silu,
    Accumulate,
}

pub const KINDS: [Kind; 3] = [Kind::Store, Kind::Silu, Kind::Accumulate];

/// `kind` writing into `buf` (the residual's scale 0.5).
pub fn epilogue(kind: Kind, buf: &mut [f32]) -> w2vbert_kernels::gemm::Epilogue<'_> {
    use w2vbert_kernels::gemm::Epilogue;
    match kind {
        Kind::Store => Epilogue::Store { y: buf },
        Kind::Silu => Epilogue::StoreSilu { y: buf },
        Kind::Accumulate => Epilogue::Accumulate { h: buf, scale: 0.5 },
    }
}
