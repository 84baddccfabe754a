//! Run-time CPU feature checks.
//!
//! The build baseline is x86-64-v3 (see `.cargo/config.toml`); `check_baseline` lets a binary refuse to
//! run with a clear message on an older CPU instead of dying on SIGILL. Wider paths (AVX-512 inside gemm,
//! bf16/AMX later) are selected at run time with the `has_*` functions.

/// Features the build baseline assumes, as `is_x86_feature_detected!` names them.
#[cfg(target_arch = "x86_64")]
pub const BASELINE: &[&str] = &["avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "lzcnt", "movbe"];

/// `Err` with a human-readable message naming the missing features when this CPU cannot run the build.
pub fn check_baseline() -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut missing = Vec::new();
        macro_rules! need {
            ($($f:tt),*) => { $( if !std::is_x86_feature_detected!($f) { missing.push($f); } )* };
        }
        need!("avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "lzcnt", "movbe");
        if !missing.is_empty() {
            return Err(format!(
                "this CPU lacks {} required by this build (baseline x86-64-v3: AVX2+FMA, Intel Haswell / AMD Zen or newer); \
                 rebuild without the target-cpu line in .cargo/config.toml to run on it",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// The SIMD baseline this build was compiled for, from the target features the compiler had on (not a
/// run-time check): "x86-64-v3" with `.cargo/config.toml`'s `target-cpu=x86-64-v3`, "x86-64" without it.
/// `describe()` prints it, so `--verbose` shows what a release artifact was really built with.
pub const BUILD_BASELINE: &str = if cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c",
    target_feature = "bmi2"
)) {
    "x86-64-v3"
} else if cfg!(target_arch = "x86_64") {
    "x86-64"
} else if cfg!(target_arch = "aarch64") {
    "aarch64"
} else {
    "generic"
};

/// AVX-512 F (the gemm crate's `x86-v4` kernels use it when present).
pub fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One line describing the SIMD paths this process will take (printed by the CLI with `--verbose`).
pub fn describe() -> String {
    format!(
        "simd: baseline {BUILD_BASELINE} (wide f32x8); gemm f32 {}",
        if has_avx512f() { "AVX-512 (x86-v4)" } else { "AVX2/FMA" }
    )
}
