//! SeamlessM4T log-mel filter bank (SPEC §1), as transformers 4.52.1's `SeamlessM4TFeatureExtractor`
//! computes it with `audio_utils.spectrogram` and `mel_filter_bank`.
//!
//! Stages, each a plain function: [`log_mel`] (16 kHz samples → `[F, 80]` log-mel, frames in parallel) →
//! [`normalize_per_bin`] (per mel bin over time, in place) → [`stack_frames`] (`[F, 80]` → `[T, 160]` + mask).
//! [`log_mel_ref`] is the slow obvious version (naive DFT, dense mel matrix built from the formula), kept
//! beside the fast one for the property tests.

use rayon::prelude::*;
use realfft::RealFftPlanner;
use std::sync::OnceLock;

pub const SAMPLE_RATE: u32 = 16_000;
pub const FRAME_LEN: usize = 400;
pub const HOP: usize = 160;
pub const FFT_LEN: usize = 512;
/// One-sided spectrum bins of the 512-point FFT.
pub const N_BINS: usize = FFT_LEN / 2 + 1;
pub const N_MELS: usize = 80;
/// Frames stacked per output row (the w2v-bert-2.0 preprocessor's `stride`).
pub const STRIDE: usize = 2;
/// Width of one output row: `STRIDE * N_MELS`.
pub const FEATURE_DIM: usize = STRIDE * N_MELS;
/// HF's `mel_floor`, f32 epsilon.
pub const MEL_FLOOR: f64 = 1.192092955078125e-07;
/// The preprocessor's `padding_value`: the value of padding frames (after normalization).
pub const PADDING_VALUE: f32 = 1.0;
const PREEMPH: f64 = 0.97;
/// Frames per rayon task: a frame is ~10 µs of work, so hand out a few at a time.
const FRAMES_PER_TASK: usize = 16;

/// Number of fbank frames of `n` samples: `1 + (n - 400) / 160`, 0 when `n < 400` (no centering).
pub fn num_frames(n: usize) -> usize {
    if n < FRAME_LEN {
        0
    } else {
        1 + (n - FRAME_LEN) / HOP
    }
}

/// Kaldi mel scale, as HF's `hertz_to_mel(mel_scale="kaldi")`.
fn hz_to_mel(f: f64) -> f64 {
    1127.0 * (1.0 + f / 700.0).ln()
}

/// The 82 filter edge points in mel, as `np.linspace(mel(20), mel(8000), 82)` computes them.
fn mel_edges() -> [f64; N_MELS + 2] {
    let (lo, hi) = (hz_to_mel(20.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    let step = (hi - lo) / (N_MELS + 1) as f64;
    let mut c = [0.0; N_MELS + 2];
    for (i, v) in c.iter_mut().enumerate() {
        *v = i as f64 * step + lo;
    }
    c[N_MELS + 1] = hi;
    c
}

/// Mel position of FFT bin `k` (bin width 16000 / 512 = 31.25 Hz).
fn bin_mel(k: usize) -> f64 {
    hz_to_mel(SAMPLE_RATE as f64 / FFT_LEN as f64 * k as f64)
}

/// The triangular mel filter bank, sparse: filter j is `weights[j]` over bins `first[j]..first[j] + len`.
pub struct MelBank {
    first: Vec<usize>,
    weights: Vec<Vec<f64>>,
}

impl MelBank {
    fn new() -> Self {
        let c = mel_edges();
        let mut first = Vec::with_capacity(N_MELS);
        let mut weights = Vec::with_capacity(N_MELS);
        for j in 0..N_MELS {
            // HF: max(0, min((m - c[j]) / (c[j+1] - c[j]), (c[j+2] - m) / (c[j+2] - c[j+1]))).
            let w: Vec<(usize, f64)> = (0..N_BINS)
                .map(|k| {
                    let m = bin_mel(k);
                    let down = (m - c[j]) / (c[j + 1] - c[j]);
                    let up = (c[j + 2] - m) / (c[j + 2] - c[j + 1]);
                    (k, down.min(up).max(0.0))
                })
                .filter(|&(_, v)| v > 0.0)
                .collect();
            first.push(w.first().map_or(0, |&(k, _)| k));
            weights.push(w.into_iter().map(|(_, v)| v).collect());
        }
        MelBank { first, weights }
    }

    /// The one bank, built once per process.
    pub fn get() -> &'static MelBank {
        static BANK: OnceLock<MelBank> = OnceLock::new();
        BANK.get_or_init(MelBank::new)
    }

    /// `out[j] = max(floor, Σ_k power[k] · filter_j[k])`, then natural log, as f32.
    /// out: [80], power: [257]
    fn apply_log(&self, out: &mut [f32], power: &[f64]) {
        for ((o, &f), w) in out.iter_mut().zip(&self.first).zip(&self.weights) {
            let s: f64 = power[f..f + w.len()].iter().zip(w).map(|(p, w)| p * w).sum();
            *o = s.max(MEL_FLOOR).ln() as f32;
        }
    }
}

/// Povey window `(0.5 - 0.5 cos(2πn / 399))^0.85`, as `np.hanning(400) ** 0.85`.
fn povey_window() -> &'static [f64; FRAME_LEN] {
    static WIN: OnceLock<[f64; FRAME_LEN]> = OnceLock::new();
    WIN.get_or_init(|| {
        let mut w = [0.0; FRAME_LEN];
        for (n, v) in w.iter_mut().enumerate() {
            let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / (FRAME_LEN - 1) as f64).cos();
            *v = hann.powf(0.85);
        }
        w
    })
}

/// One frame, time domain, in place: ×2^15, DC removal, pre-emphasis (HF's first-sample rule), window.
/// `buf[..400]` is filled from `x`, `buf[400..512]` zeroed.
/// buf: [512], x: [400]
fn prepare_frame(buf: &mut [f64], x: &[f32]) {
    let win = povey_window();
    // Kaldi compliance: HF scales the f32 waveform by 2^15 (exact in f32) and promotes to f64.
    for (b, &s) in buf.iter_mut().zip(x) {
        *b = s as f64 * 32768.0;
    }
    let mean = buf[..FRAME_LEN].iter().sum::<f64>() / FRAME_LEN as f64;
    for b in &mut buf[..FRAME_LEN] {
        *b -= mean;
    }
    // y[i] = x[i] - 0.97 x[i-1] with the original x[i-1]: walk backwards so x[i-1] is not yet changed.
    for i in (1..FRAME_LEN).rev() {
        buf[i] -= PREEMPH * buf[i - 1];
    }
    buf[0] *= 1.0 - PREEMPH;
    for (b, w) in buf.iter_mut().zip(win) {
        *b *= w;
    }
    buf[FRAME_LEN..].fill(0.0);
}

/// HF stores the spectrum as complex64 and then takes `np.abs(.., dtype=float64) ** 2`.
fn power_of(re: f64, im: f64) -> f64 {
    let a = (re as f32 as f64).hypot(im as f32 as f64);
    a * a
}

/// Log-mel filter bank energies of 16 kHz samples, frames in parallel.
/// out: [frames, 80] with `frames = num_frames(x.len())`, x: [n] (nominal ±1)
pub fn log_mel(out: &mut [f32], x: &[f32], frames: usize) {
    debug_assert_eq!(frames, num_frames(x.len()));
    debug_assert_eq!(out.len(), frames * N_MELS);
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(FFT_LEN);
    let bank = MelBank::get();
    out.par_chunks_mut(N_MELS * FRAMES_PER_TASK).enumerate().for_each_init(
        || {
            (
                fft.make_input_vec(),
                fft.make_output_vec(),
                fft.make_scratch_vec(),
                vec![0.0f64; N_BINS],
            )
        },
        |(buf, spec, scratch, power), (task, rows)| {
            for (i, row) in rows.chunks_exact_mut(N_MELS).enumerate() {
                let start = (task * FRAMES_PER_TASK + i) * HOP;
                prepare_frame(buf, &x[start..start + FRAME_LEN]);
                // Lengths are fixed by the plan, so this cannot fail.
                if fft.process_with_scratch(buf, spec, scratch).is_err() {
                    row.fill(f32::NAN);
                    continue;
                }
                for (p, c) in power.iter_mut().zip(spec.iter()) {
                    *p = power_of(c.re, c.im);
                }
                bank.apply_log(row, power);
            }
        },
    );
}

/// Slow obvious log-mel: naive DFT, dense mel matrix straight from the SPEC formula, one frame at a time.
/// out: [frames, 80], x: [n]
pub fn log_mel_ref(out: &mut [f32], x: &[f32], frames: usize) {
    let c = mel_edges();
    let mut dense = vec![0.0f64; N_BINS * N_MELS]; // [257, 80]
    for k in 0..N_BINS {
        let m = bin_mel(k);
        for j in 0..N_MELS {
            let v = ((m - c[j]) / (c[j + 1] - c[j])).min((c[j + 2] - m) / (c[j + 2] - c[j + 1]));
            dense[k * N_MELS + j] = v.max(0.0);
        }
    }
    let mut buf = vec![0.0f64; FFT_LEN];
    let mut power = vec![0.0f64; N_BINS];
    for f in 0..frames {
        let frame = &x[f * HOP..f * HOP + FRAME_LEN];
        let mean = frame.iter().map(|&s| s as f64 * 32768.0).sum::<f64>() / FRAME_LEN as f64;
        for n in 0..FRAME_LEN {
            let cur = frame[n] as f64 * 32768.0 - mean;
            let prev = if n == 0 {
                cur
            } else {
                frame[n - 1] as f64 * 32768.0 - mean
            };
            let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / 399.0).cos();
            buf[n] = (cur - PREEMPH * prev) * hann.powf(0.85);
        }
        for (k, p) in power.iter_mut().enumerate() {
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for (n, &b) in buf[..FRAME_LEN].iter().enumerate() {
                let ang = -2.0 * std::f64::consts::PI * ((k * n) % FFT_LEN) as f64 / FFT_LEN as f64;
                re += b * ang.cos();
                im += b * ang.sin();
            }
            *p = power_of(re, im);
        }
        for j in 0..N_MELS {
            let s: f64 = (0..N_BINS).map(|k| power[k] * dense[k * N_MELS + j]).sum();
            out[f * N_MELS + j] = s.max(MEL_FLOOR).ln() as f32;
        }
    }
}

/// NumPy's float32 `pairwise_sum` (numpy/core/src/umath/loops_utils.h.src, 1.26): below 8 values a plain
/// loop; up to 128, eight interleaved f32 accumulators combined as `((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`, then
/// the remainder in order; above 128, split at `n/2` rounded down to a multiple of 8 and recurse.
/// NumPy runs it for `add.reduce` along a contiguous axis, as `0 + pairwise_sum(all)`.
/// a: [n]
pub fn numpy_pairwise_sum(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0f32, |r, &v| r + v)
    } else if n <= 128 {
        let mut r: [f32; 8] = a[..8].try_into().expect("8 values");
        let body = n - n % 8;
        for c in a[8..body].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(c) {
                *acc += v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[body..] {
            res += v;
        }
        res
    } else {
        let n2 = n / 2 - (n / 2) % 8;
        numpy_pairwise_sum(&a[..n2]) + numpy_pairwise_sum(&a[n2..])
    }
}

/// Per-mel-bin normalization over time, in place: `(x - mean) / sqrt(var_ddof1 + 1e-7)`, bit for bit as
/// transformers 4.52.1 computes it with NumPy 1.26.
///
/// HF's `x` is `spectrogram(..).T`: the transpose of a C-contiguous `[80, F]` array, so frames are the
/// *contiguous* axis and `x.mean(0)` / `x.var(0, ddof=1)` reduce each bin with NumPy's float32 pairwise sum
/// ([`numpy_pairwise_sum`]). `np.var` (`_methods._var`): `mean = sum(x) / n`, `d = x - mean`, `d = d * d`,
/// `var = sum(d) / (n - 1)`, all f32; then `(x - mean) / sqrt(var + f32(1e-7))`. Needs `frames >= 2`.
/// feats: [frames, 80]
pub fn normalize_per_bin(feats: &mut [f32], frames: usize) {
    debug_assert_eq!(feats.len(), frames * N_MELS);
    let n = frames as f32;
    let denom = frames.saturating_sub(1) as f32;
    let mut col = vec![0.0f32; frames];
    let mut mean = [0.0f32; N_MELS];
    let mut std_dev = [0.0f32; N_MELS];
    for j in 0..N_MELS {
        for (c, row) in col.iter_mut().zip(feats.chunks_exact(N_MELS)) {
            *c = row[j];
        }
        let m = (0.0 + numpy_pairwise_sum(&col)) / n;
        for c in col.iter_mut() {
            let d = *c - m;
            *c = d * d;
        }
        let var = (0.0 + numpy_pairwise_sum(&col)) / denom;
        mean[j] = m;
        std_dev[j] = (var + 1e-7f32).sqrt();
    }
    for row in feats.chunks_exact_mut(N_MELS) {
        for ((v, &m), &sd) in row.iter_mut().zip(&mean).zip(&std_dev) {
            *v = (*v - m) / sd;
        }
    }
}

/// Stack frame pairs into rows: row t = [frame 2t ‖ frame 2t+1]; an odd last frame is paired with a
/// frame of [`PADDING_VALUE`]. Row t is valid iff frame 2t+1 is a real frame (HF's mask rule), so for odd
/// `frames` the last row is masked yet present.
/// out: [ceil(frames/2), 160], mask: [ceil(frames/2)], feats: [frames, 80]
pub fn stack_frames(out: &mut [f32], mask: &mut [bool], feats: &[f32], frames: usize) {
    let t = frames.div_ceil(STRIDE);
    debug_assert_eq!(out.len(), t * FEATURE_DIM);
    debug_assert_eq!(mask.len(), t);
    out[..feats.len()].copy_from_slice(&feats[..frames * N_MELS]);
    out[frames * N_MELS..].fill(PADDING_VALUE);
    for (i, m) in mask.iter_mut().enumerate() {
        *m = STRIDE * i + 1 < frames;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values from NumPy 1.26.4 itself (`np.add.reduce` of the same float32 arrays); a sequential f32
    /// sum gives 16777216 and 9458637 instead.
    #[test]
    fn pairwise_sum_is_numpys() {
        let mut a = vec![1.0f32; 9];
        a[0] = 16_777_216.0;
        assert_eq!(numpy_pairwise_sum(&a), 16_777_224.0);
        // 300 values: exercises the recursive split (n > 128) and the ragged tail.
        let b: Vec<f32> = (0..300u32)
            .map(|i| ((i * 7919 % 1000) as f64 / 7.0 + if i % 37 == 0 { 1_048_576.0 } else { 0.0 }) as f32)
            .collect();
        assert_eq!(numpy_pairwise_sum(&b), 9_458_634.0);
        assert_eq!(numpy_pairwise_sum(&[]), 0.0);
        assert_eq!(numpy_pairwise_sum(&[0.5, 0.25, 0.125]), 0.875);
    }

    #[test]
    fn frame_count_rule() {
        assert_eq!(num_frames(0), 0);
        assert_eq!(num_frames(399), 0);
        assert_eq!(num_frames(400), 1);
        assert_eq!(num_frames(559), 1);
        assert_eq!(num_frames(560), 2);
        assert_eq!(num_frames(16_000), 98);
    }

    #[test]
    fn mel_bank_is_sparse_and_covers_the_band() {
        let bank = MelBank::get();
        let widest = bank.weights.iter().map(Vec::len).max().unwrap_or(0);
        assert!(widest < 40, "widest filter spans {widest} bins");
        assert!(bank.weights.iter().all(|w| !w.is_empty()));
        // Filters move up monotonically.
        assert!(bank.first.windows(2).all(|p| p[0] <= p[1]));
    }

    #[test]
    fn stacking_and_mask_for_odd_and_even_frame_counts() {
        for frames in [2usize, 3, 4, 7] {
            let feats: Vec<f32> = (0..frames * N_MELS).map(|i| i as f32).collect();
            let t = frames.div_ceil(2);
            let mut out = vec![0.0; t * FEATURE_DIM];
            let mut mask = vec![false; t];
            stack_frames(&mut out, &mut mask, &feats, frames);
            assert_eq!(&out[..feats.len()], &feats[..]);
            assert!(out[feats.len()..].iter().all(|&v| v == PADDING_VALUE));
            let valid = mask.iter().filter(|&&m| m).count();
            assert_eq!(valid, frames / 2);
            assert_eq!(mask[t - 1], frames % 2 == 0);
        }
    }
}
