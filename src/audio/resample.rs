//! Band-limited resampling of mono audio to 16 kHz: a polyphase windowed-sinc filter evaluated at exact
//! rational positions, with f32x8 dot products.
//!
//! Output k sits exactly at input time `τ_k = k · from / to` (as in soxr; no delay, no fractional shift).
//! With `g = gcd(from, to)`, `up = to / g`, `down = from / g`, `τ_k = i + q / up` with `q = k·down mod up`,
//! so only `up` distinct sub-filters ("phases") exist: 320 for 22050 → 16000, 160 for 44100 → 16000, 1 for
//! 48000 → 16000. The table holds exactly those (at most [`MAX_PHASES`]; beyond, the nearest of
//! `MAX_PHASES` evenly spaced phases is used) and is built directly from the filter formula in f64.
//!
//! The filter is the one rubato 0.16 builds for `SincInterpolator::new(taps, phases, fc, BlackmanHarris2)`
//! (the unit tests read rubato's taps back: equal to f32 rounding, ≤ 3e-8), tuned to resemble soxr "HQ" (librosa's
//! `load(sr=16000)`), which is flat to ~0.925, −3 dB near 0.951 and −113 dB at 1.0 of the lower Nyquist:
//!
//! `h(t) = BH(t)² · sinc(fc · t) / S`, `t` in input samples, `t ∈ [−taps/2, taps/2)`, where
//! `BH(t) = 0.35875 + 0.48829 cos φ + 0.14128 cos 2φ + 0.01168 cos 3φ`, `φ = 2π t / taps` (the periodic
//! Blackman–Harris window centred on 0), `sinc(x) = sin(πx) / (πx)`, and `S` makes the mean DC gain of the
//! sub-filters 1 (`S = Σ` over all phases and taps `/ phases`).
//!
//! Output length is librosa's `ceil(n · to / from)`; the signal is zero outside `[0, n)`.

use crate::error::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use wide::f32x8;

/// Filter taps counted at the lower of the two rates (the transition band is ~14/FILTER_LEN_LOW wide
/// on each side of the cutoff, relative to the lower Nyquist). With [`CUTOFF`], fitted to soxr HQ on
/// espeak_22050.wav: waveform relative L2 ~1.9e-4 against librosa (over a grid of 240..400 × 0.94..0.97).
pub const FILTER_LEN_LOW: usize = 260;
/// Cutoff (−6 dB point) relative to the lower Nyquist.
pub const CUTOFF: f32 = 0.957;
/// Most sub-filters kept; ratios needing more use the nearest one (timing error ≤ 1/2048 sample).
pub const MAX_PHASES: usize = 1024;
/// Highest accepted rate (either side). The filter length grows with the input rate: at this rate it
/// is ~25k taps; beyond it a corrupt header could ask for gigabytes of filter table.
pub const MAX_RATE: u32 = 1_536_000;
/// Output samples per rayon task (each costs `taps` multiply-adds: ~1.5 M per task at 22.05 kHz).
const OUT_PER_TASK: usize = 4096;
/// Tables kept in the process-wide cache; a batch rarely has more than a few distinct rates.
const CACHE_CAP: usize = 16;

const LANES: usize = 8;

// Blackman–Harris coefficients (rubato's `blackman_harris`), for the window centred on t = 0.
const BH: [f64; 4] = [0.35875, 0.48829, 0.14128, 0.01168];

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The polyphase filter of one conversion. Row `r` (`0..phases`) holds `h(j + 1 − taps/2 − (r+1)/phases)`
/// for `j in 0..taps`: it computes an output at input time `i + (r+1)/phases` from input samples
/// `i + 1 − taps/2 .. i + 1 + taps/2` (a phase of 0 is phase `phases` one sample earlier, so every row
/// stays inside the window's support `[−taps/2, taps/2)`).
#[derive(Debug, Clone, PartialEq)]
pub struct PolyphaseFilter {
    /// `[phases, taps]`, row-major.
    pub table: Vec<f32>,
    /// Taps per sub-filter, a multiple of 8.
    pub taps: usize,
    /// Sub-filters: `min(up, MAX_PHASES)`.
    pub phases: usize,
}

/// Cache key: the rates and the exact filter parameters.
type Key = (u32, u32, usize, u32);

fn cache() -> &'static Mutex<HashMap<Key, Arc<PolyphaseFilter>>> {
    static TABLES: OnceLock<Mutex<HashMap<Key, Arc<PolyphaseFilter>>>> = OnceLock::new();
    TABLES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Taps at the input rate and the cutoff relative to the input Nyquist, from the values at the lower rate.
fn filter_geometry(from_rate: u32, to_rate: u32, filter_len_low: usize, cutoff: f32) -> (usize, f64) {
    let low = from_rate.min(to_rate) as f64;
    let taps = ((filter_len_low as f64 * from_rate as f64 / low).ceil() as usize)
        .div_ceil(LANES)
        .max(1)
        * LANES;
    // Rounded through f32 as rubato takes it, so the two tables are the same filter.
    let fc = (cutoff as f64 * low / from_rate as f64) as f32 as f64;
    (taps, fc)
}

/// `h(t) · S` straight from the formula (one sin and three cos per tap): the reference for [`build_table`].
fn h_unnormalized_ref(t: f64, taps: usize, fc: f64) -> f64 {
    let tau = 2.0 * std::f64::consts::PI;
    let phi = tau * t / taps as f64;
    let bh = BH[0] + BH[1] * phi.cos() + BH[2] * (2.0 * phi).cos() + BH[3] * (3.0 * phi).cos();
    let x = std::f64::consts::PI * fc * t;
    let sinc = if t == 0.0 { 1.0 } else { x.sin() / x };
    bh * bh * sinc
}

/// Scalar reference for [`build_table`]: every tap from [`h_unnormalized_ref`], f64 throughout.
pub fn build_table_ref(taps: usize, phases: usize, fc: f64) -> Vec<f64> {
    let half = (taps / 2) as f64;
    let mut table = vec![0.0f64; phases * taps];
    for (r, row) in table.chunks_exact_mut(taps).enumerate() {
        let u = (r + 1) as f64 / phases as f64;
        for (j, v) in row.iter_mut().enumerate() {
            *v = h_unnormalized_ref(j as f64 + 1.0 - half - u, taps, fc);
        }
    }
    let s = table.iter().sum::<f64>() / phases as f64;
    table.iter_mut().for_each(|v| *v /= s);
    table
}

/// The `[phases, taps]` table, normalized, as f32. `t = m − u` with integer `m = j + 1 − taps/2` and
/// fraction `u = (r+1)/phases`: the cosines and sines of `m` and `u` are computed once each (taps + phases
/// calls instead of 4 · taps · phases) and combined with the angle-addition formulas; cos 2φ and cos 3φ
/// come from cos φ (Chebyshev). All in f64: errors stay ~1e-15 absolute, far below the f32 storage.
pub fn build_table(taps: usize, phases: usize, fc: f64) -> Vec<f32> {
    let pi = std::f64::consts::PI;
    let (alpha, beta) = (2.0 * pi / taps as f64, pi * fc);
    let half = (taps / 2) as f64;
    // Per tap j (m = j + 1 - half): cos/sin of α·m (window) and β·m (sinc).
    let m: Vec<f64> = (0..taps).map(|j| j as f64 + 1.0 - half).collect();
    let (cam, sam): (Vec<f64>, Vec<f64>) = m.iter().map(|&m| ((alpha * m).cos(), (alpha * m).sin())).unzip();
    let (cbm, sbm): (Vec<f64>, Vec<f64>) = m.iter().map(|&m| ((beta * m).cos(), (beta * m).sin())).unzip();
    let mut table = vec![0.0f64; phases * taps];
    for (r, row) in table.chunks_exact_mut(taps).enumerate() {
        let u = (r + 1) as f64 / phases as f64;
        let (cau, sau) = ((alpha * u).cos(), (alpha * u).sin());
        let (cbu, sbu) = ((beta * u).cos(), (beta * u).sin());
        for (j, v) in row.iter_mut().enumerate() {
            let t = m[j] - u;
            // cos(α(m − u)) and sin(β(m − u)).
            let c1 = cam[j] * cau + sam[j] * sau;
            let c2 = 2.0 * c1 * c1 - 1.0;
            let c3 = c1 * (2.0 * c2 - 1.0);
            let bh = BH[0] + BH[1] * c1 + BH[2] * c2 + BH[3] * c3;
            let s = sbm[j] * cbu - cbm[j] * sbu;
            // t = 0 only for the last row (u = 1) at m = 1.
            let sinc = if t == 0.0 { 1.0 } else { s / (beta * t) };
            *v = bh * bh * sinc;
        }
    }
    let s = table.iter().sum::<f64>() / phases as f64;
    table.iter().map(|&v| (v / s) as f32).collect()
}

/// The filter for `from_rate → to_rate`, from the process-wide cache or built (and cached) now.
fn filter(from_rate: u32, to_rate: u32, filter_len_low: usize, cutoff: f32) -> Arc<PolyphaseFilter> {
    let key = (from_rate, to_rate, filter_len_low, cutoff.to_bits());
    // A poisoned lock only means another thread panicked mid-insert of a complete Arc: the map is intact.
    if let Some(f) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Arc::clone(f);
    }
    let g = gcd(from_rate as u64, to_rate as u64);
    let phases = ((to_rate as u64 / g) as usize).min(MAX_PHASES);
    let (taps, fc) = filter_geometry(from_rate, to_rate, filter_len_low, cutoff);
    let f = Arc::new(PolyphaseFilter {
        table: build_table(taps, phases, fc),
        taps,
        phases,
    });
    let mut map = cache().lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= CACHE_CAP {
        map.clear();
    }
    map.insert(key, Arc::clone(&f));
    f
}

/// `Σ a[i] · b[i]` with f32x8 fused multiply-adds (4 independent accumulators, then one, then a scalar
/// tail). The summation order depends only on the length, so the result is deterministic.
pub fn dot(
    a: &[f32], // [n]
    b: &[f32], // [n]
) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    let load = |s: &[f32]| -> f32x8 {
        let v: [f32; LANES] = s[..LANES].try_into().expect("dot: slice of 8");
        f32x8::from(v)
    };
    let n = a.len();
    let mut acc = [f32x8::ZERO; 4];
    let body4 = n - n % (4 * LANES);
    for (ca, cb) in a[..body4]
        .chunks_exact(4 * LANES)
        .zip(b[..body4].chunks_exact(4 * LANES))
    {
        for ((s, xa), xb) in acc.iter_mut().zip(ca.chunks_exact(LANES)).zip(cb.chunks_exact(LANES)) {
            *s = load(xa).mul_add(load(xb), *s);
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    let body = n - n % LANES;
    for (ca, cb) in a[body4..body]
        .chunks_exact(LANES)
        .zip(b[body4..body].chunks_exact(LANES))
    {
        s = load(ca).mul_add(load(cb), s);
    }
    let mut total = s.reduce_add();
    for (&x, &y) in a[body..].iter().zip(&b[body..]) {
        total = x.mul_add(y, total);
    }
    total
}

/// f64 reference for [`dot`].
pub fn dot_ref(
    a: &[f32], // [n]
    b: &[f32], // [n]
) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() as f32
}

/// Fill `out` (`[out_len]`) from the zero-padded input `wave` (`[pad + n + pad]`, input sample s at
/// `wave[pad + s]`). Output k: `τ_k = k·down/up = i + q/up`; with `q' = round(q · phases / up)` (= q when
/// `phases == up`), row `q' − 1` over input samples from `i + 1 − taps/2`, or for `q' = 0` (and `q' =
/// phases` after rounding up) row `phases − 1` one sample earlier.
fn run_phases(
    out: &mut [f32], // [out_len]
    wave: &[f32],    // [pad + n + pad]
    f: &PolyphaseFilter,
    pad: usize,
    (up, down): (u64, u64),
) {
    let (taps, phases) = (f.taps, f.phases as u64);
    let half = taps / 2;
    out.par_chunks_mut(OUT_PER_TASK).enumerate().for_each(|(task, chunk)| {
        // Exact start of the task (u128: k · down may exceed u64 for long inputs), then step by down / up.
        let k0 = (task * OUT_PER_TASK) as u128 * down as u128;
        let mut i = (k0 / up as u128) as usize;
        let mut rem = (k0 % up as u128) as u64;
        let (step_i, step_rem) = ((down / up) as usize, down % up);
        for o in chunk.iter_mut() {
            let q = if phases == up {
                rem
            } else {
                (rem * phases + up / 2) / up
            };
            // Input sample index (in `wave`) of tap 0, and the table row.
            let (start, row) = if q == 0 {
                (pad + i - half, phases - 1)
            } else if q == phases {
                (pad + i + 1 - half, phases - 1)
            } else {
                (pad + i + 1 - half, q - 1)
            };
            let h = &f.table[row as usize * taps..(row as usize + 1) * taps];
            *o = dot(&wave[start..start + taps], h);
            i += step_i;
            rem += step_rem;
            if rem >= up {
                rem -= up;
                i += 1;
            }
        }
    });
}

/// Resample mono `x` (`[n]` at `from_rate` Hz) to `[ceil(n · to_rate / from_rate)]` at `to_rate` Hz.
/// `path` only names the file in errors.
pub fn resample(x: &[f32], from_rate: u32, to_rate: u32, path: &Path) -> Result<Vec<f32>> {
    resample_with(x, from_rate, to_rate, FILTER_LEN_LOW, CUTOFF, path)
}

/// [`resample`] with explicit filter parameters (taps at the lower rate, cutoff relative to its Nyquist).
pub fn resample_with(
    x: &[f32],
    from_rate: u32,
    to_rate: u32,
    filter_len_low: usize,
    cutoff: f32,
    path: &Path,
) -> Result<Vec<f32>> {
    if from_rate == 0 || to_rate == 0 || from_rate > MAX_RATE || to_rate > MAX_RATE {
        return Err(Error::audio(
            path,
            format!("cannot resample {from_rate} Hz -> {to_rate} Hz (rates must be 1..={MAX_RATE} Hz)"),
        ));
    }
    if from_rate == to_rate || x.is_empty() {
        return Ok(x.to_vec());
    }
    let g = gcd(from_rate as u64, to_rate as u64);
    let (up, down) = (to_rate as u64 / g, from_rate as u64 / g);
    let out_len = (x.len() as u128 * up as u128).div_ceil(down as u128) as usize;
    let f = filter(from_rate, to_rate, filter_len_low, cutoff);
    // Zero padding: every index stays in range and the outside of the signal is silence.
    let pad = f.taps + 2;
    let mut wave = vec![0.0f32; x.len() + 2 * pad];
    wave[pad..pad + x.len()].copy_from_slice(x);
    let mut out = vec![0.0f32; out_len];
    run_phases(&mut out, &wave, &f, pad, (up, down));
    if out.iter().any(|v| !v.is_finite()) {
        return Err(Error::audio(path, "resampling produced non-finite samples"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whole-resampler reference, no table: output k = Σ_s x[s] · h(s − τ_k) over the window's support
    /// `s − τ_k ∈ [−taps/2, taps/2)`, with `τ_k = k · from / to` exact and h from the formula, all in f64.
    fn resample_ref(x: &[f32], from_rate: u32, to_rate: u32) -> Vec<f32> {
        let g = gcd(from_rate as u64, to_rate as u64);
        let (up, down) = ((to_rate as u64 / g) as i128, (from_rate as u64 / g) as i128);
        let phases = (up as usize).min(MAX_PHASES);
        let (taps, fc) = filter_geometry(from_rate, to_rate, FILTER_LEN_LOW, CUTOFF);
        let half = (taps / 2) as i128;
        // The normalization S: the same set of t as the table's, summed, over phases.
        let s = build_table_unnormalized_sum(taps, phases, fc);
        let out_len = (x.len() as i128 * up + down - 1) / down;
        (0..out_len)
            .map(|k| {
                // τ = num / up; the first s with s − τ ≥ −taps/2 is ceil((num − half·up) / up).
                let num = k * down;
                let a = num - half * up;
                let lo = a.div_euclid(up) + i128::from(a.rem_euclid(up) != 0);
                let mut acc = 0.0f64;
                let mut sidx = lo;
                while sidx * up < num + half * up {
                    if sidx >= 0 && (sidx as usize) < x.len() {
                        let t = (sidx * up - num) as f64 / up as f64;
                        acc += x[sidx as usize] as f64 * h_unnormalized_ref(t, taps, fc);
                    }
                    sidx += 1;
                }
                (acc / s) as f32
            })
            .collect()
    }

    fn build_table_unnormalized_sum(taps: usize, phases: usize, fc: f64) -> f64 {
        let half = (taps / 2) as f64;
        let mut s = 0.0;
        for r in 0..phases {
            for j in 0..taps {
                s += h_unnormalized_ref(j as f64 + 1.0 - half - (r + 1) as f64 / phases as f64, taps, fc);
            }
        }
        s / phases as f64
    }

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// The fast path (cached f32 table, f32x8 dots, stepped positions, rayon tasks) against the formula
    /// evaluated directly at every exact output time, for up- and downsampling. (Ratios with more than
    /// MAX_PHASES phases round the time, which the reference does not: the sine test covers those.)
    #[test]
    fn matches_the_direct_formula() {
        for (fi, fo, n) in [
            (22_050u32, 16_000u32, 9_000usize),
            (8_000, 16_000, 3_001),
            (48_000, 16_000, 7_777),
            (11_025, 16_000, 5_000),
            (44_100, 16_000, 10_000),
        ] {
            let x = noise(n, fi as u64);
            let fast = resample(&x, fi, fo, Path::new("n.wav")).unwrap();
            let slow = resample_ref(&x, fi, fo);
            assert_eq!(fast.len(), slow.len());
            let mut worst = 0.0f32;
            for (a, b) in fast.iter().zip(&slow) {
                worst = worst.max((a - b).abs());
            }
            println!("{fi}->{fo}: max |fast - ref| {worst:.2e}");
            // Inputs are within ±0.5 and Σ|h| ≈ 2: f32 table and accumulation errors are ~1e-7 here.
            assert!(worst < 2e-6, "{fi}->{fo}: max |fast - ref| {worst}");
        }
    }

    /// The table built with angle-addition formulas equals the formula evaluated tap by tap.
    #[test]
    fn table_matches_its_reference() {
        for (taps, phases, fc) in [
            (360usize, 320usize, 0.694_603_2f64),
            (16, 7, 0.8),
            (8, 1, 0.33),
            (720, 160, 0.347),
        ] {
            let fast = build_table(taps, phases, fc);
            let slow = build_table_ref(taps, phases, fc);
            let peak = slow.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                // f32 storage: half an ulp of the value, plus f64 noise far below it.
                assert!(
                    (*a as f64 - b).abs() <= b.abs() * 6e-8 + peak * 1e-13,
                    "taps {taps} phases {phases}: entry {i}: {a} vs {b}"
                );
            }
        }
    }

    /// Same filter as rubato 0.16's `SincInterpolator` (what this module used before): its taps are read
    /// back through `get_sinc_interpolated` on a unit impulse. Row r here is rubato's sub-index r.
    #[test]
    fn table_is_rubatos_filter() {
        use rubato::sinc_interpolator::{ScalarInterpolator, SincInterpolator};
        use rubato::WindowFunction;
        for (from, to) in [(22_050u32, 16_000u32), (8_000, 16_000), (44_100, 16_000)] {
            let f = filter(from, to, FILTER_LEN_LOW, CUTOFF);
            let (taps, fc) = filter_geometry(from, to, FILTER_LEN_LOW, CUTOFF);
            let ri = ScalarInterpolator::<f64>::new(taps, f.phases, fc as f32, WindowFunction::BlackmanHarris2);
            let mut impulse = vec![0.0f64; 2 * taps + 1];
            impulse[taps] = 1.0;
            let peak = f.table.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
            let mut worst = 0.0f64;
            for r in 0..f.phases {
                for j in 0..taps {
                    let theirs = ri.get_sinc_interpolated(&impulse, taps - j, r);
                    worst = worst.max((f.table[r * taps + j] as f64 - theirs).abs());
                }
            }
            println!("{from}->{to}: table vs rubato max-abs {worst:.2e} (peak tap {peak:.3})");
            assert!(
                worst <= peak * 1e-7,
                "{from}->{to}: max |ours - rubato| {worst} (peak {peak})"
            );
        }
    }

    #[test]
    fn filters_are_cached_per_conversion() {
        let a = filter(22_050, 16_000, FILTER_LEN_LOW, CUTOFF);
        let b = filter(22_050, 16_000, FILTER_LEN_LOW, CUTOFF);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((a.taps, a.phases, a.table.len()), (360, 320, 360 * 320));
        let c = filter(22_050, 16_000, FILTER_LEN_LOW, 0.95);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(filter(48_000, 16_000, FILTER_LEN_LOW, CUTOFF).phases, 1);
        assert_eq!(filter(16_001, 16_000, FILTER_LEN_LOW, CUTOFF).phases, MAX_PHASES);
    }

    /// Each output is computed alone: any thread count gives the same bits.
    #[test]
    fn output_does_not_depend_on_thread_count() {
        let x = noise(22_050 * 2 + 13, 7);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| resample(&x, 22_050, 16_000, Path::new("t.wav")).unwrap())
        };
        let one = run(1);
        assert!(one.len() > 4 * OUT_PER_TASK);
        assert_eq!(one, run(3));
    }

    #[test]
    fn absurd_rates_are_errors_naming_the_file() {
        let x = [0.0f32; 10];
        let e = resample(&x, MAX_RATE + 1, 16_000, Path::new("huge.wav"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("huge.wav") && e.contains("Hz"), "{e}");
        assert!(resample(&x, MAX_RATE, 16_000, Path::new("ok.wav")).is_ok());
    }

    proptest! {
        /// The f32x8 dot against f64, over lengths 0..300 (ragged tails) and unaligned starts. Any f32
        /// summation order of n products is within γ_n = n·ε/(1 − n·ε) of Σ|a·b| (Higham, §3.1).
        #[test]
        fn dot_matches_reference(n in 0usize..300, oa in 0usize..3, ob in 0usize..3, seed in 0u64..1_000) {
            let a = noise(n + 3, seed);
            let b = noise(n + 3, seed + 7_919);
            let (a, b) = (&a[oa..oa + n], &b[ob..ob + n]);
            let fast = dot(a, b) as f64;
            let exact: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let mag: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum();
            let eps = f32::EPSILON as f64 / 2.0;
            let bound = (n as f64 + 1.0) * eps * mag + f32::MIN_POSITIVE as f64;
            prop_assert!((fast - exact).abs() <= bound, "n {}: {} vs {} (bound {})", n, fast, exact, bound);
            prop_assert!((dot_ref(a, b) as f64 - exact).abs() <= exact.abs() * eps + 1e-30);
        }
    }

    /// Sines well inside the passband come through nearly unchanged, at the right time (no delay or
    /// fractional shift), with librosa's output length; for up- and downsampling.
    #[test]
    fn passband_sines_survive_at_the_right_time() {
        for (fi, fo) in [
            (22_050u32, 16_000u32),
            (44_100, 16_000),
            (48_000, 16_000),
            (8_000, 16_000),
            (11_025, 16_000),
            // More than MAX_PHASES phases: positions rounded to the nearest of 1024.
            (44_101, 16_000),
            (16_001, 16_000),
        ] {
            let tau = 2.0 * std::f64::consts::PI;
            let sig = |t: f64| (tau * 440.0 * t).sin() * 0.5 + (tau * 2_900.0 * t + 0.3).cos() * 0.25;
            let n = fi as usize + 17;
            let x: Vec<f32> = (0..n).map(|i| sig(i as f64 / fi as f64) as f32).collect();
            let y = resample(&x, fi, fo, Path::new("t.wav")).unwrap();
            assert_eq!(y.len(), (n as u64 * fo as u64).div_ceil(fi as u64) as usize);
            // Skip the edges, where the input was cut off.
            let mut err = 0.0f64;
            for (i, v) in y.iter().enumerate().skip(1000).take(y.len() - 2000) {
                err = err.max((*v as f64 - sig(i as f64 / fo as f64)).abs());
            }
            assert!(err < 1e-3, "{fi}->{fo}: max error {err}");
        }
    }

    /// An impulse at an input time that maps to a whole output sample comes out symmetric about it
    /// (linear phase, exact timing).
    #[test]
    fn impulse_response_is_symmetric_about_the_exact_time() {
        let mut x = vec![0.0f32; 441 * 40];
        x[441 * 20] = 1.0;
        let y = resample(&x, 22_050, 16_000, Path::new("i.wav")).unwrap();
        let c = 320 * 20;
        for d in 1..200 {
            assert!(
                (y[c - d] - y[c + d]).abs() < 1e-6,
                "asymmetric at ±{d}: {} vs {}",
                y[c - d],
                y[c + d]
            );
        }
        assert!(y[c] > y[c - 1] && y[c] > y[c + 1]);
    }

    #[test]
    fn same_rate_is_identity_and_zero_rate_is_an_error() {
        let x = [0.1f32, -0.2, 0.3];
        assert_eq!(resample(&x, 16_000, 16_000, Path::new("a")).unwrap(), x.to_vec());
        let e = resample(&x, 0, 16_000, Path::new("named.wav")).unwrap_err().to_string();
        assert!(e.contains("named.wav"), "{e}");
    }
}
