//! `torchaudio.transforms.Resample(orig_freq, new_freq)` with its defaults (`sinc_interp_hann`,
//! `lowpass_filter_width = 6`, `rolloff = 0.99`, kernel computed in f64 and cached as f32), written from
//! its definition (torchaudio 2.7 `functional.py`: `_get_sinc_resample_kernel`, `_apply_sinc_resample_kernel`).
//! IndexTTS2 runs it on the speaker prompt, 22050 → 16000 Hz (see [`super::load_indextts2_speaker_prompt`]);
//! `librosa.load`'s resampling (soxr HQ) is [`super::soxr`].
//!
//! The math, after reducing the rates by their gcd to `orig : new` (22050 : 16000 → 441 : 320):
//! - `base = min(orig, new) · rolloff` (cutoff, in reduced-rate units), `width = ceil(lpw · orig / base)`.
//! - A kernel of `new` rows (one per output phase j) and `K = 2·width + orig` columns k:
//!   `t = (−j/new + (k − width)/orig) · base`, clamped to `[−lpw, lpw]`;
//!   `kernel[j][k] = sinc(π t) · cos²(π t / (2 lpw)) · base / orig`, `sinc(x) = sin x / x`.
//!   torchaudio computes `j/new` in f32 (an int64 `arange` divided by an int gives the default dtype), the
//!   rest in f64, and stores the kernel as f32: [`kernel_entry`] does the same, in the same order.
//! - The input is zero-padded by `width` on the left and `width + orig` on the right and convolved with
//!   stride `orig`: output `n = f·new + j` is `Σ_k xpad[f·orig + k] · kernel[j][k]`, i.e. input time
//!   `n · orig / new` (no delay). Output length `ceil(new · len / orig)`.
//!
//! Columns whose `|t|` reaches `lpw` are clamped to the window's zero and round to 0 in f32, so each row has
//! only ~`2·lpw·orig/base` non-zero taps (17 of 459 for 22050 → 16000). [`SincKernel`] keeps, per row, a
//! window of `taps` (rounded up to a multiple of 8) columns that covers them, and each output is one
//! [`fma_chain`] over that window: bit for bit the sum PyTorch's conv1d computes over the full kernel row.

use super::soxr::MAX_RATE;
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::Path;

/// torchaudio's default `lowpass_filter_width`: zero crossings of the sinc kept on each side.
pub const LOWPASS_FILTER_WIDTH: u32 = 6;
/// torchaudio's default `rolloff`: cutoff relative to the lower Nyquist.
pub const ROLLOFF: f64 = 0.99;
/// Most entries of a compact table (`new · taps`): 64 MiB of f32. 22050 → 16000 needs 7680.
pub const MAX_TABLE: usize = 1 << 24;
/// Outputs per rayon task (each ~`taps` multiply-adds).
const OUT_PER_TASK: usize = 16_384;
const LANES: usize = 8;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The kernel's geometry, from the rates and the two filter parameters, computed as torchaudio does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SincGeometry {
    /// `orig_freq / gcd`: input samples per period (the convolution stride).
    pub orig: usize,
    /// `new_freq / gcd`: output samples per period (kernel rows).
    pub new: usize,
    /// `min(orig, new) · rolloff`.
    pub base: f64,
    /// `ceil(lpw · orig / base)`: padding and half the kernel span, in input samples.
    pub width: usize,
    /// `lowpass_filter_width`.
    pub lpw: u32,
}

impl SincGeometry {
    /// Columns of torchaudio's kernel: `2·width + orig`.
    pub fn kernel_len(&self) -> usize {
        2 * self.width + self.orig
    }

    /// Checked geometry for `from_rate → to_rate` (both non-zero, at most [`MAX_RATE`]). `path` names the file.
    pub fn new(from_rate: u32, to_rate: u32, lpw: u32, rolloff: f64, path: &Path) -> Result<Self> {
        if from_rate == 0 || to_rate == 0 || from_rate > MAX_RATE || to_rate > MAX_RATE {
            return Err(Error::audio(
                path,
                format!("cannot resample {from_rate} Hz -> {to_rate} Hz (rates must be 1..={MAX_RATE} Hz)"),
            ));
        }
        if lpw == 0 || !(rolloff > 0.0 && rolloff <= 1.0) {
            return Err(Error::audio(
                path,
                format!(
                    "torchaudio resampler: lowpass_filter_width {lpw} must be >= 1 and rolloff {rolloff} in (0, 1]"
                ),
            ));
        }
        let g = gcd(from_rate as u64, to_rate as u64);
        let (orig, new) = ((from_rate as u64 / g) as usize, (to_rate as u64 / g) as usize);
        let base = orig.min(new) as f64 * rolloff;
        let width = (lpw as f64 * orig as f64 / base).ceil() as usize;
        Ok(SincGeometry {
            orig,
            new,
            base,
            width,
            lpw,
        })
    }
}

/// `kernel[j][k]` exactly as torchaudio computes it (f64, same operation order) and caches it (f32). Any `k`
/// is accepted; torchaudio's kernel has `k in 0..kernel_len()`.
pub fn kernel_entry(g: &SincGeometry, j: usize, k: i64) -> f32 {
    let pi = std::f64::consts::PI;
    let lpw = g.lpw as f64;
    let idx = (k - g.width as i64) as f64 / g.orig as f64;
    // `torch.arange(0, -new, -1)` is int64; dividing it by the int `new` gives float32.
    let tj = -(j as f32) / g.new as f32;
    let t = ((tj as f64 + idx) * g.base).clamp(-lpw, lpw);
    let c = (t * pi / lpw / 2.0).cos();
    let window = c * c;
    let t = t * pi;
    let sinc = if t == 0.0 { 1.0 } else { t.sin() / t };
    (sinc * (window * (g.base / g.orig as f64))) as f32
}

/// torchaudio's whole kernel, `[new, 2·width + orig]` row-major: the reference the compact table is cut from.
pub fn kernel_ref(g: &SincGeometry) -> Vec<f32> {
    let k_len = g.kernel_len();
    let mut out = vec![0.0f32; g.new * k_len];
    for (j, row) in out.chunks_exact_mut(k_len).enumerate() {
        for (k, v) in row.iter_mut().enumerate() {
            *v = kernel_entry(g, j, k as i64);
        }
    }
    out
}

/// Scalar reference for [`resample_torchaudio_with`]: torchaudio's padding, full kernel and strided
/// convolution, literally, with f64 accumulation. Output `[ceil(new · len / orig)]`.
pub fn resample_torchaudio_ref(x: &[f32], g: &SincGeometry) -> Vec<f32> {
    let kernel = kernel_ref(g);
    let k_len = g.kernel_len();
    // [width + len + width + orig]
    let mut xpad = vec![0.0f32; g.width + x.len() + g.width + g.orig];
    xpad[g.width..g.width + x.len()].copy_from_slice(x);
    let frames = (xpad.len() - k_len) / g.orig + 1;
    let target = (x.len() * g.new).div_ceil(g.orig);
    let mut out = Vec::with_capacity(frames * g.new);
    for f in 0..frames {
        let seg = &xpad[f * g.orig..f * g.orig + k_len];
        for row in kernel.chunks_exact(k_len) {
            out.push(seg.iter().zip(row).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() as f32);
        }
    }
    out.truncate(target);
    out
}

/// The non-zero part of torchaudio's kernel: row j's columns `start[j] .. start[j] + taps` (columns outside
/// `0..kernel_len()` are 0, as in torchaudio's kernel, which has none there).
#[derive(Debug, Clone, PartialEq)]
pub struct SincKernel {
    pub geometry: SincGeometry,
    /// `[new, taps]`, row-major.
    pub table: Vec<f32>,
    /// `[new]`: first kernel column of each row (may be slightly negative).
    pub start: Vec<i64>,
    /// Columns kept per row, a multiple of 8 (the extra columns are 0).
    pub taps: usize,
}

impl SincKernel {
    /// Build the compact table. Row j is centred on column `width + j·orig/new`; its taps are non-zero only
    /// within `lpw·orig/base` (≤ width) of it, and one extra column each side absorbs rounding.
    pub fn new(g: SincGeometry, path: &Path) -> Result<Self> {
        let reach = g.lpw as f64 * g.orig as f64 / g.base;
        let span = |j: usize| {
            let c = g.width as f64 + j as f64 * g.orig as f64 / g.new as f64;
            ((c - reach).floor() as i64 - 1, (c + reach).ceil() as i64 + 1)
        };
        let longest = (0..g.new).map(|j| span(j).1 - span(j).0 + 1).max().unwrap_or(1);
        let taps = (longest as usize).div_ceil(LANES) * LANES;
        if g.new.saturating_mul(taps) > MAX_TABLE {
            return Err(Error::audio(
                path,
                format!(
                    "torchaudio resampler: {} phases x {taps} taps exceeds {MAX_TABLE} table entries",
                    g.new
                ),
            ));
        }
        let k_len = g.kernel_len() as i64;
        let mut table = vec![0.0f32; g.new * taps];
        let mut start = Vec::with_capacity(g.new);
        for (j, row) in table.chunks_exact_mut(taps).enumerate() {
            let lo = span(j).0;
            for (m, v) in row.iter_mut().enumerate() {
                let k = lo + m as i64;
                *v = if (0..k_len).contains(&k) {
                    kernel_entry(&g, j, k)
                } else {
                    0.0
                };
            }
            start.push(lo);
        }
        Ok(SincKernel {
            geometry: g,
            table,
            start,
            taps,
        })
    }

    /// Resample mono `x` (`[len]`) → `[ceil(new · len / orig)]`.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let g = &self.geometry;
        let out_len = (x.len() as u128 * g.new as u128).div_ceil(g.orig as u128) as usize;
        // Input sample s at wave[pad + s]. Output n = f·new + j reads samples from f·orig + start[j] − width,
        // which is ≥ −width − 2 and, since n·orig/new < len, ends before len + taps.
        let pad = g.width + self.taps + 2;
        let mut wave = vec![0.0f32; pad + x.len() + pad];
        wave[pad..pad + x.len()].copy_from_slice(x);
        let per_task = OUT_PER_TASK.div_ceil(g.new).max(1) * g.new;
        let mut out = vec![0.0f32; out_len];
        out.par_chunks_mut(per_task).enumerate().for_each(|(task, chunk)| {
            let f0 = task * per_task / g.new;
            for (i, o) in chunk.iter_mut().enumerate() {
                let (f, j) = (f0 + i / g.new, i % g.new);
                let s0 = (pad + f * g.orig) as i64 + self.start[j] - g.width as i64;
                let s0 = s0 as usize;
                *o = fma_chain(
                    &wave[s0..s0 + self.taps],
                    &self.table[j * self.taps..(j + 1) * self.taps],
                );
            }
        });
        out
    }
}

/// `torchaudio.transforms.Resample(from_rate, to_rate)(x)` for mono `x` (`[len]`), torchaudio's defaults.
/// Equal rates return `x` unchanged (as torchaudio does). `path` only names the file in errors.
pub fn resample_torchaudio(x: &[f32], from_rate: u32, to_rate: u32, path: &Path) -> Result<Vec<f32>> {
    resample_torchaudio_with(x, from_rate, to_rate, LOWPASS_FILTER_WIDTH, ROLLOFF, path)
}

/// [`resample_torchaudio`] with explicit `lowpass_filter_width` and `rolloff` (`sinc_interp_hann`).
pub fn resample_torchaudio_with(
    x: &[f32],
    from_rate: u32,
    to_rate: u32,
    lowpass_filter_width: u32,
    rolloff: f64,
    path: &Path,
) -> Result<Vec<f32>> {
    let g = SincGeometry::new(from_rate, to_rate, lowpass_filter_width, rolloff, path)?;
    if from_rate == to_rate {
        return Ok(x.to_vec());
    }
    let out = SincKernel::new(g, path)?.apply(x);
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::audio(
            path,
            format!("torchaudio-style resampling produced a non-finite sample at {i}"),
        ));
    }
    Ok(out)
}

/// `Σ a[i] · b[i]` as one chain of f32 fused multiply-adds in index order, starting from 0: the order in which
/// PyTorch's CPU `conv1d` accumulates each output of torchaudio's resampling convolution (checked against
/// torch 2.7.1 on every output of espeak_22050.wav, 1 and 2 threads). Kernel columns that are exactly 0 leave
/// such a chain unchanged, so the compact window gives the full convolution's result bit for bit.
pub fn fma_chain(
    a: &[f32], // [n]
    b: &[f32], // [n]
) -> f32 {
    assert_eq!(a.len(), b.len(), "fma_chain: length mismatch");
    a.iter().zip(b).fold(0.0f32, |acc, (&x, &y)| x.mul_add(y, acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(12_345);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    fn geo(from: u32, to: u32) -> SincGeometry {
        SincGeometry::new(from, to, LOWPASS_FILTER_WIDTH, ROLLOFF, Path::new("t")).unwrap()
    }

    #[test]
    fn geometry_of_the_speaker_prompt_ratio() {
        let g = geo(22_050, 16_000);
        assert_eq!((g.orig, g.new, g.width, g.kernel_len()), (441, 320, 9, 459));
        assert!((g.base - 316.8).abs() < 1e-12);
        let k = SincKernel::new(g, Path::new("t")).unwrap();
        assert_eq!(k.taps, 24);
    }

    /// The compact table is torchaudio's kernel: every kept entry equal, every dropped entry exactly 0.
    #[test]
    fn compact_table_holds_every_nonzero_kernel_entry() {
        for (from, to, lpw, rolloff) in [
            (22_050u32, 16_000u32, 6u32, 0.99f64),
            (16_000, 22_050, 6, 0.99),
            (48_000, 16_000, 6, 0.99),
            (44_100, 16_000, 6, 0.99),
            (8_000, 16_000, 6, 0.99),
            (22_050, 16_000, 16, 0.9),
            (7, 3, 2, 0.5),
        ] {
            let g = SincGeometry::new(from, to, lpw, rolloff, Path::new("t")).unwrap();
            let full = kernel_ref(&g);
            let k = SincKernel::new(g, Path::new("t")).unwrap();
            let k_len = g.kernel_len() as i64;
            let mut kept = 0usize;
            for j in 0..g.new {
                for c in 0..k_len {
                    let v = full[j * k_len as usize + c as usize];
                    let m = c - k.start[j];
                    if (0..k.taps as i64).contains(&m) {
                        assert_eq!(k.table[j * k.taps + m as usize], v, "{from}->{to} row {j} col {c}");
                        kept += (v != 0.0) as usize;
                    } else {
                        assert_eq!(v, 0.0, "{from}->{to}: row {j} col {c} dropped but non-zero");
                    }
                }
            }
            assert!(kept > 0);
        }
    }

    /// The fast path (compact table, FMA chains, rayon tasks) against torchaudio's literal convolution.
    #[test]
    fn fast_path_matches_the_full_convolution() {
        for (from, to, n) in [
            (22_050u32, 16_000u32, 20_000usize),
            (16_000, 22_050, 3_001),
            (48_000, 16_000, 7_777),
            (44_100, 16_000, 9_000),
            (8_000, 16_000, 1),
            (22_050, 16_000, 0),
            (22_050, 16_000, 440),
        ] {
            let x = noise(n, from as u64 + n as u64);
            let fast = resample_torchaudio(&x, from, to, Path::new("t")).unwrap();
            let slow = resample_torchaudio_ref(&x, &geo(from, to));
            assert_eq!(fast.len(), slow.len(), "{from}->{to} n {n}");
            assert_eq!(fast.len(), (n * to as usize).div_ceil(from as usize));
            let worst = fast
                .iter()
                .zip(&slow)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            // Inputs within ±0.5, Σ|kernel row| ≈ 1.3: f32 accumulation of ~20 products is ~1e-7.
            assert!(worst < 1e-6, "{from}->{to} n {n}: max |fast - ref| {worst}");
        }
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let x = noise(22_050 * 3 + 7, 3);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| resample_torchaudio(&x, 22_050, 16_000, Path::new("t")).unwrap())
        };
        let one = run(1);
        assert!(one.len() > 2 * OUT_PER_TASK);
        assert_eq!(one, run(3));
    }

    /// Passband sines come through at the right time (output n at input time n · from / to).
    #[test]
    fn passband_sines_survive_at_the_right_time() {
        let tau = 2.0 * std::f64::consts::PI;
        let sig = |t: f64| (tau * 440.0 * t).sin() * 0.5 + (tau * 2_900.0 * t + 0.3).cos() * 0.25;
        for (fi, fo) in [(22_050u32, 16_000u32), (16_000, 22_050), (48_000, 16_000)] {
            let n = fi as usize;
            let x: Vec<f32> = (0..n).map(|i| sig(i as f64 / fi as f64) as f32).collect();
            let y = resample_torchaudio(&x, fi, fo, Path::new("t")).unwrap();
            let mut err = 0.0f64;
            for (i, v) in y.iter().enumerate().skip(200).take(y.len() - 400) {
                err = err.max((*v as f64 - sig(i as f64 / fo as f64)).abs());
            }
            // A 6-zero-crossing Hann sinc ripples by ~1e-3 in the passband.
            assert!(err < 5e-3, "{fi}->{fo}: max error {err}");
        }
    }

    #[test]
    fn bad_parameters_are_errors_naming_the_file() {
        let x = [0.0f32; 4];
        for (from, to, lpw, rolloff) in [
            (0u32, 16_000u32, 6u32, 0.99f64),
            (MAX_RATE + 1, 16_000, 6, 0.99),
            (22_050, 16_000, 0, 0.99),
            (22_050, 16_000, 6, 0.0),
            (22_050, 16_000, 6, f64::NAN),
            // 1 536 000 : 1 535 999 needs 1.5 M phases × 16 taps.
            (MAX_RATE, MAX_RATE - 1, 6, 0.99),
        ] {
            let e = resample_torchaudio_with(&x, from, to, lpw, rolloff, Path::new("bad.wav"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("bad.wav"), "{e}");
        }
        assert_eq!(resample_torchaudio(&x, 16_000, 16_000, Path::new("a")).unwrap(), x);
    }

    proptest! {
        /// Fast vs reference over lengths including 0 and ragged ends, on an unaligned slice.
        #[test]
        fn fast_matches_reference_any_length(n in 0usize..2_000, off in 0usize..3, seed in 0u64..1_000) {
            let buf = noise(n + 3, seed);
            let x = &buf[off..off + n];
            let fast = resample_torchaudio(x, 22_050, 16_000, Path::new("t")).unwrap();
            let slow = resample_torchaudio_ref(x, &geo(22_050, 16_000));
            prop_assert_eq!(fast.len(), slow.len());
            for (a, b) in fast.iter().zip(&slow) {
                prop_assert!((a - b).abs() < 1e-6, "{} vs {}", a, b);
            }
        }
    }
}
