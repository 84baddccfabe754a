//! librosa's resampler: libsoxr, called exactly as python-soxr 1.1 calls it for
//! `soxr.resample(x, in_rate, out_rate, quality="soxr_hq")`, then `librosa.util.fix_length` to
//! `ceil(n · out_rate / in_rate)` samples, as `librosa.resample(res_type="soxr_hq")` (librosa 0.11) does.
//!
//! python-soxr (`csoxr_split_ch` / `csoxr_divide_proc` in `soxr_ext.cpp`):
//! ```text
//! io_spec      = soxr_io_spec(FLOAT32, FLOAT32)            # float32 in and out, scale 1, no dither flags
//! quality_spec = soxr_quality_spec(SOXR_HQ, 0)             # SOXR_20_BITQ, linear phase, rolloff small
//! soxr = soxr_create(in_rate, out_rate, channels, &err, &io_spec, &quality_spec, NULL)   # default runtime
//! olen    = (size_t)(ilen * out_rate / in_rate + 1)
//! div_len = (size_t)max(1000., 48000 * in_rate / out_rate)
//! for idx in 0, div_len, ..: soxr_process(soxr, x + idx, min(div_len, ilen - idx), NULL, y + pos, olen - pos, &odone)
//! soxr_process(soxr, NULL, 0, NULL, y + pos, olen - pos, &odone)   # flush
//! ```
//! librosa resamples mono (channels averaged first), so this takes one channel. libsoxr comes from the
//! `media-soxr-sys` crate, which builds libsoxr 0.1.3 from source with CMake. libsoxr is LGPL-2.1: see the
//! README.
//!
//! Engines. libsoxr has two for HQ float32: `cr32s` (SIMD: pffft, SSE on x86, NEON on ARM) and `cr32` (scalar,
//! fft4g). python-soxr's wheels run `cr32s`, and so does this build on x86-64, where the output is bit-identical
//! to librosa's (tests/rate_goldens.rs). On aarch64 libsoxr's own CMake would leave `cr32s` out (its SIMD test
//! tries NEON flags only when the processor name starts with "arm") and its run-time choice would not pick it
//! anyway (it misspells `__aarch64__`); .cargo/config.toml therefore has the `cmake` crate configure libsoxr for
//! aarch64-unknown-linux-gnu through scripts/cmake-libsoxr-neon.sh: `cr32s` only, and FMA contraction off, as
//! x86-64's build computes. The output is then x86-64's bit for bit, except where libsoxr itself has SSE-only
//! code: its half-band decimator (`half-fir.h`, used when the input rate is at least 4x the output rate, e.g.
//! 64 kHz and up to 16 kHz) sums in another order elsewhere (docs/platforms.md). [`engine`] names the engine a
//! build runs. Apple targets are not configured so (their C build cannot be run here): `cr32` there.
//!
//! Threads. libsoxr's process-wide mutable state is the FFT tables of its fft4g transforms (`fft4g_cache.h`:
//! bit-reversal and twiddle tables in statics, grown by `realloc` whenever a longer transform is asked for, and
//! guarded by reader/writer locks that exist only in an OpenMP build; media-soxr-sys builds it with
//! `WITH_OPENMP=OFF`, and `ccrw2.h` compiles them to nothing) and the variable-rate engine's tables. `cr32`
//! transforms with `fft4g32`, in `soxr_create` (the filter) and in `soxr_process`, so two threads resampling at
//! once could free the tables under each other (segfaults and wrong output under qemu-aarch64 while aarch64 ran
//! `cr32`). `cr32s` keeps its pffft set-up per resampler, and at linear phase (HQ, flags 0) reaches neither
//! table: the double fft4g serves only `lsx_fir_to_phase` (other phase responses) and the 64-bit engines.
//! [`ffi_guard`] therefore takes one process-wide lock around every libsoxr call when, and only when, the engine
//! is not `cr32s`: decided at run time by [`engine`], so that a build without the wrapper (a crate depending on
//! this one, whose build does not read this repository's .cargo/config.toml; a target dir built before it; macOS)
//! is still safe, only serialized (resampling is ~1 % of a run's time next to the encoder). x86-64 and aarch64
//! Linux built here take no lock. tests/soxr_threads.rs resamples from several threads at once and compares with
//! a single-threaded run.

use crate::error::{Error, Result};
use media_soxr_sys as sys;
use std::ffi::CStr;
use std::path::Path;

/// f32s every output buffer handed to libsoxr extends past the room it is told of. libsoxr 0.1.3 reads one
/// pointer (8 bytes) at the output address even for interleaved output (`soxr.c`, `soxr_output_no_callback`:
/// `((soxr_bufs_t)out)[u]`, a value it then does not use), so a call with room for fewer than two f32s read past
/// the allocation: found by fuzzing (ASan heap-buffer-overflow; `fuzz/regressions/audio/
/// wav_9ch_1mhz_soxr_reads_a_pointer_past_a_1_sample_output`). The room told, and so every output, is unchanged.
const OUT_SLACK: usize = 2;

/// Highest rate accepted on either side (libsoxr itself takes any positive rate; this bounds the buffers).
pub const MAX_RATE: u32 = 1_536_000;

/// Whether this repository builds libsoxr with its SIMD engine `cr32s` for the target: x86-64 (libsoxr's own
/// SSE code) and aarch64 Linux (NEON, through `scripts/cmake-libsoxr-neon.sh`, named in `.cargo/config.toml`).
/// Elsewhere (macOS: not configured for it) libsoxr runs `cr32`, another FFT and so other roundings.
pub const SIMD_ENGINE_BUILT: bool = cfg!(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_os = "linux")
));

/// The engine libsoxr runs for every resampler made here (HQ, float32 in and out): `"cr32s"` where the build
/// has its SIMD engine (x86-64; aarch64 Linux built from this repository), else `"cr32"`. Asked once, of a
/// resampler created with both rates 0: libsoxr then picks its engine, as `soxr_engine` reports it, but sets up
/// no stage (`soxr_create` does that only for a non-zero rate ratio), so the question runs no FFT and touches no
/// shared state.
pub fn engine() -> &'static str {
    static ENGINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        let (io, q) = hq_mono_f32_specs();
        let mut err: sys::soxr_error_t = std::ptr::null();
        // SAFETY: as in `Soxr::hq_mono_f32`; rates 0 make libsoxr stop before any stage set-up. `soxr_engine`
        // returns a static NUL-terminated name; the resampler is deleted once.
        unsafe {
            let s = sys::soxr_create(0.0, 0.0, 1, &mut err, &io, &q, std::ptr::null());
            if s.is_null() {
                return "unknown".into();
            }
            let name = CStr::from_ptr(sys::soxr_engine(s)).to_string_lossy().into_owned();
            sys::soxr_delete(s);
            name
        }
    })
}

/// The lock held around each libsoxr call where libsoxr's FFT tables are process-wide and unlocked: whenever
/// [`engine`] is not `cr32s` (module docs, "Threads"). `None` (no lock) with `cr32s`, which shares nothing.
/// Every libsoxr call goes through here, and so first through [`engine`]: none runs while the engine is asked.
fn ffi_guard() -> Option<std::sync::MutexGuard<'static, ()>> {
    if engine() == "cr32s" {
        return None;
    }
    static LIBSOXR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // The lock guards no Rust data: a panic while holding it leaves nothing half-updated on our side.
    Some(LIBSOXR.lock().unwrap_or_else(|e| e.into_inner()))
}

/// `soxr_io_spec(f32, f32)` and `soxr_quality_spec(SOXR_HQ, 0)`, python-soxr's specs for `quality="soxr_hq"`.
fn hq_mono_f32_specs() -> (sys::soxr_io_spec_t, sys::soxr_quality_spec_t) {
    // SAFETY: plain constructors of by-value specs.
    unsafe {
        (
            sys::soxr_io_spec(
                sys::soxr_datatype_t::SOXR_FLOAT32_I,
                sys::soxr_datatype_t::SOXR_FLOAT32_I,
            ),
            // soxr.h: `#define SOXR_HQ SOXR_20_BITQ` (bindgen does not carry the alias).
            sys::soxr_quality_spec(sys::SOXR_20_BITQ as _, 0),
        )
    }
}

/// libsoxr's message for a non-null `soxr_error_t`.
fn message(err: sys::soxr_error_t) -> String {
    // SAFETY: libsoxr's errors are static NUL-terminated strings.
    unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned()
}

/// A libsoxr resampler, deleted on drop.
struct Soxr(sys::soxr_t);

impl Drop for Soxr {
    fn drop(&mut self) {
        let _g = ffi_guard();
        // SAFETY: created by soxr_create, deleted once.
        unsafe { sys::soxr_delete(self.0) }
    }
}

impl Soxr {
    /// `soxr_create(in, out, 1, &err, &io_spec(f32, f32), &quality_spec(SOXR_HQ, 0), NULL)`.
    fn hq_mono_f32(from_rate: f64, to_rate: f64) -> std::result::Result<Self, String> {
        let _g = ffi_guard();
        let (io, q) = hq_mono_f32_specs();
        // SAFETY: soxr_create copies what it needs from the specs; a resampler it returns is deleted once.
        unsafe {
            let mut err: sys::soxr_error_t = std::ptr::null();
            let s = sys::soxr_create(from_rate, to_rate, 1, &mut err, &io, &q, std::ptr::null());
            if !err.is_null() {
                if !s.is_null() {
                    sys::soxr_delete(s);
                }
                return Err(message(err));
            }
            if s.is_null() {
                return Err("soxr_create returned no resampler".into());
            }
            Ok(Soxr(s))
        }
    }

    /// `soxr_process` of `input` (`None`: end of input, flush) into `out` but its last [`OUT_SLACK`] f32s;
    /// returns the samples written.
    fn process(&mut self, input: Option<&[f32]>, out: &mut [f32]) -> std::result::Result<usize, String> {
        let room = out
            .len()
            .checked_sub(OUT_SLACK)
            .expect("output buffers carry OUT_SLACK");
        let (ip, ilen) = match input {
            Some(x) => (x.as_ptr() as sys::soxr_in_t, x.len()),
            None => (std::ptr::null(), 0),
        };
        let mut odone = 0usize;
        let _g = ffi_guard();
        // SAFETY: `ip` points to `ilen` f32 (or is null with 0 for the flush), `out` to `room` writable f32
        // plus OUT_SLACK more for libsoxr's pointer-sized read; the resampler was created for one f32 channel.
        let err = unsafe {
            sys::soxr_process(
                self.0,
                ip,
                ilen,
                std::ptr::null_mut(),
                out.as_mut_ptr() as sys::soxr_out_t,
                room,
                &mut odone,
            )
        };
        if err.is_null() {
            Ok(odone)
        } else {
            Err(message(err))
        }
    }
}

/// `python-soxr.resample(x, from_rate, to_rate, quality="soxr_hq")` for mono float32: libsoxr's own output
/// length (about `n · to / from`), before librosa's `fix_length`.
/// x: [n] → [≈ n · to_rate / from_rate]
pub fn soxr_hq(x: &[f32], from_rate: u32, to_rate: u32) -> std::result::Result<Vec<f32>, String> {
    let (fr, tr) = (from_rate as f64, to_rate as f64);
    let olen = (x.len() as f64 * tr / fr + 1.0) as usize;
    let div_len = (1000f64).max(48000.0 * fr / tr) as usize;
    let mut y = vec![0.0f32; olen + OUT_SLACK];
    let mut s = Soxr::hq_mono_f32(fr, tr)?;
    let mut pos = 0;
    for chunk in x.chunks(div_len) {
        pos += s.process(Some(chunk), &mut y[pos..])?;
    }
    pos += s.process(None, &mut y[pos..])?;
    y.truncate(pos);
    Ok(y)
}

/// `librosa.resample(x, orig_sr=from_rate, target_sr=to_rate, res_type="soxr_hq")` on mono float32:
/// [`soxr_hq`], then zero-padded or cut to `ceil(n · to_rate / from_rate)` (librosa's `fix_length`). The same
/// rate returns `x` unchanged, as librosa does. `path` names the input in errors.
/// x: [n] → [ceil(n · to_rate / from_rate)]
pub fn resample(x: &[f32], from_rate: u32, to_rate: u32, path: &Path) -> Result<Vec<f32>> {
    for (what, r) in [("input", from_rate), ("output", to_rate)] {
        if r == 0 || r > MAX_RATE {
            return Err(Error::audio(
                path,
                format!("{what} sample rate {r} Hz is outside 1..={MAX_RATE} Hz"),
            ));
        }
    }
    if from_rate == to_rate {
        return Ok(x.to_vec());
    }
    // librosa: int(np.ceil(n * (float(target_sr) / orig_sr))).
    let n_out = (x.len() as f64 * (to_rate as f64 / from_rate as f64)).ceil() as usize;
    let mut y = soxr_hq(x, from_rate, to_rate)
        .map_err(|e| Error::audio(path, format!("libsoxr {from_rate} -> {to_rate} Hz: {e}")))?;
    y.resize(n_out, 0.0);
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_is_one_of_libsoxrs_hq_float_engines() {
        assert!(["cr32s", "cr32"].contains(&engine()), "{}", engine());
        assert_eq!(ffi_guard().is_none(), engine() == "cr32s");
    }

    /// Where this repository builds libsoxr's SIMD engine (module docs, "Engines"), it must be there: without it
    /// the output leaves x86-64's / librosa's bits and every call takes the lock. A target dir whose libsoxr was
    /// built before .cargo/config.toml named the wrapper keeps it (media-soxr-sys' build script does not rerun):
    /// `cargo clean --release --target aarch64-unknown-linux-gnu -p media-soxr-sys` (.ci/platforms.sh does it).
    #[test]
    fn this_build_runs_the_simd_engine() {
        let want = if SIMD_ENGINE_BUILT { "cr32s" } else { "cr32" };
        assert_eq!(
            engine(),
            want,
            "libsoxr was not built as SIMD_ENGINE_BUILT says (an aarch64 libsoxr built before \
             scripts/cmake-libsoxr-neon.sh? cargo clean -p media-soxr-sys for that target)"
        );
    }

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
            })
            .collect()
    }

    #[test]
    fn length_is_librosas_ceil_and_same_rate_is_identity() {
        let x = noise(12_345, 1);
        for (from, to) in [
            (44_100u32, 16_000u32),
            (8_000, 16_000),
            (22_050, 16_000),
            (16_000, 22_050),
        ] {
            let y = resample(&x, from, to, Path::new("a.wav")).unwrap();
            let want = (x.len() as f64 * (to as f64 / from as f64)).ceil() as usize;
            assert_eq!(y.len(), want, "{from} -> {to}");
            assert!(y.iter().all(|v| v.is_finite()));
        }
        assert_eq!(resample(&x, 16_000, 16_000, Path::new("a")).unwrap(), x);
        assert!(resample(&[], 44_100, 16_000, Path::new("a")).unwrap().is_empty());
    }

    #[test]
    fn bad_rates_are_errors_naming_the_file() {
        for (from, to) in [(0u32, 16_000u32), (16_000, 0), (MAX_RATE + 1, 16_000)] {
            let e = resample(&[0.0; 10], from, to, Path::new("dir/x.wav"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("dir/x.wav") && e.contains("sample rate"), "{e}");
        }
    }

    #[test]
    fn passband_sine_survives_with_the_right_amplitude_and_phase() {
        // 1 kHz at 44.1 kHz → 16 kHz: soxr HQ is linear phase with its delay removed, so the output is the same
        // sine sampled at 16 kHz (away from the edges), to ~1e-5.
        let f = 1000.0f64;
        let x: Vec<f32> = (0..44_100)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / 44_100.0).sin()) as f32)
            .collect();
        let y = resample(&x, 44_100, 16_000, Path::new("s")).unwrap();
        let worst = (2000..14_000)
            .map(|k| (y[k] as f64 - 0.5 * (2.0 * std::f64::consts::PI * f * k as f64 / 16_000.0).sin()).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "worst {worst}");
    }

    #[test]
    fn chunked_feeding_equals_one_shot() {
        // python-soxr feeds `div_len` samples at a time; libsoxr's output must not depend on that.
        let x = noise(100_000, 7);
        let y = soxr_hq(&x, 48_000, 16_000).unwrap();
        let mut s = Soxr::hq_mono_f32(48_000.0, 16_000.0).unwrap();
        let mut z = vec![0.0f32; y.len() + 1 + OUT_SLACK];
        let mut pos = s.process(Some(&x), &mut z).unwrap();
        pos += s.process(None, &mut z[pos..]).unwrap();
        z.truncate(pos);
        assert_eq!(y, z);
    }
}
