//! Run-time CPU feature checks, per architecture.
//!
//! The build baseline is what the compiler was allowed to assume: on x86-64, x86-64-v3 (AVX2 + FMA, set in
//! `.cargo/config.toml`); on aarch64, ARMv8-A with NEON (ASIMD, part of every aarch64 target). `wide` picks its
//! f32x8 implementation at compile time from that baseline (two 128-bit NEON halves on aarch64).
//! [`check_baseline`] lets a binary refuse to run with a clear message on a CPU below it instead of dying on
//! SIGILL. Wider paths (AVX-512 inside gemm, AVX512-BF16, AMX) are selected at run time with the `has_*`
//! functions and `bf16::best_kernel`.

/// The build baseline's name with what it means, as `--verbose` prints it.
pub fn baseline() -> &'static str {
    match BUILD_BASELINE {
        "x86-64-v3" => "x86-64-v3 (AVX2 + FMA; wide f32x8 in one ymm register)",
        "x86-64" => "x86-64 (SSE2; built without the x86-64-v3 line of .cargo/config.toml)",
        "aarch64" => "aarch64 NEON/ASIMD (ARMv8-A; wide f32x8 as two 128-bit halves)",
        _ => "portable (no SIMD baseline)",
    }
}

/// Features the build assumes that this CPU lacks (named as `is_*_feature_detected!` names them).
fn missing_baseline() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut missing = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        // Only what this build was compiled to assume: a build without target-cpu=x86-64-v3 runs anywhere.
        macro_rules! need {
            ($($f:tt),*) => { $( if cfg!(target_feature = $f) && !std::is_x86_feature_detected!($f) { missing.push($f); } )* };
        }
        need!("avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "lzcnt", "movbe");
    }
    #[cfg(target_arch = "aarch64")]
    {
        if !std::arch::is_aarch64_feature_detected!("neon") {
            missing.push("neon");
        }
    }
    missing
}

/// `Err` with a human-readable message naming the missing features when this CPU cannot run the build.
pub fn check_baseline() -> Result<(), String> {
    let missing = missing_baseline();
    if missing.is_empty() {
        return Ok(());
    }
    let hint = if cfg!(target_arch = "x86_64") {
        "AVX2+FMA, Intel Haswell / AMD Zen or newer; rebuild without the target-cpu line in .cargo/config.toml \
         to run on it"
    } else {
        "every aarch64 CPU that runs Linux or macOS has it"
    };
    Err(format!(
        "this CPU lacks {} required by this build (baseline {}: {hint})",
        missing.join(", "),
        baseline()
    ))
}

/// The SIMD baseline this build was compiled for, from the target features the compiler had on (not a
/// run-time check): "x86-64-v3" with `.cargo/config.toml`'s `target-cpu=x86-64-v3`, "x86-64" without it,
/// "aarch64". `describe()` prints it (via [`baseline`]), so `--verbose` shows what a release artifact was really
/// built with; the Python module exports it.
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

/// The f32 matmul path the gemm crate takes on this CPU (it dispatches at run time: gemm-common 0.19).
fn gemm_path() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        if has_avx512f() {
            "AVX-512 (x86-v4)"
        } else {
            "AVX2/FMA (x86-v3)"
        }
    } else if cfg!(target_arch = "aarch64") {
        "NEON"
    } else {
        "scalar"
    }
}

/// One line describing the SIMD paths this process will take (printed by the CLI with `--verbose`).
pub fn describe() -> String {
    format!("simd: baseline {}; gemm f32 {}", baseline(), gemm_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_cpu_runs_the_build_and_describe_names_its_architecture() {
        check_baseline().unwrap();
        let d = describe();
        // .ci/platforms.sh reads this line to check which gemm path an emulated CPU took.
        println!("{d}");
        let want = match std::env::consts::ARCH {
            "x86_64" => "x86-64",
            "aarch64" => "aarch64 NEON",
            _ => "portable",
        };
        assert!(d.contains(want), "{d}");
        if cfg!(target_arch = "aarch64") {
            assert!(!d.contains("x86"), "{d}");
        }
    }
}
