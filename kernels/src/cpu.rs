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
        "simd: baseline x86-64-v3 (wide f32x8); gemm f32 {}",
        if has_avx512f() { "AVX-512 (x86-v4)" } else { "AVX2/FMA" }
    )
}
