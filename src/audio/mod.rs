//! Audio front end: decode → mono → 16 kHz → SeamlessM4T fbank (SPEC §1).
//!
//! - [`decode`]: symphonia; WAV (8/16/24/32-bit PCM, f32/f64, extensible), FLAC, MP3, OGG/Vorbis. Channels
//!   are averaged (librosa's `to_mono`; HF's extractor would keep only the first channel).
//! - [`soxr`]: libsoxr HQ exactly as librosa 0.11 runs it through python-soxr (`librosa.load(sr=16000)`),
//!   bit-identical to librosa's output. libsoxr is LGPL-2.1 (README).
//! - [`torchaudio_resample`]: `torchaudio.transforms.Resample` (Hann-windowed sinc), which IndexTTS2 applies to
//!   the speaker prompt after loading it at 22.05 kHz ([`Preprocess::Indextts2SpeakerPrompt`]).
//! - [`fbank`]: the log-mel features, per-bin normalization, stride-2 stacking and the mask.

pub mod contain;
pub mod decode;
pub mod fbank;
mod header;
pub mod soxr;
pub mod torchaudio_resample;

pub use fbank::{FEATURE_DIM, N_MELS, PADDING_VALUE, SAMPLE_RATE, STRIDE};

use crate::error::{Error, Result};
use std::path::Path;

/// Longest input accepted, in seconds: decoders stop and refuse past it (README "Resource use"). Activation
/// memory grows linearly with length (~137 MB per minute at full size, fp32: 50 frames/s × 11,424 f32), but
/// attention time grows with its square (a 10-minute file is T = 30,000 frames), and HF's own attention would
/// need T² memory long before this. It also bounds what a tiny file claiming a very low sample rate becomes
/// at 16 kHz.
pub const MAX_AUDIO_SECONDS: u32 = 600;

/// Fewest 16 kHz samples that give the 2 fbank frames the ddof=1 normalization needs.
pub const MIN_SAMPLES: usize = fbank::FRAME_LEN + fbank::HOP;

/// The features of one utterance, exactly as `SeamlessM4TFeatureExtractor(padding_value=1.0, stride=2)`
/// returns them for that utterance alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// `[t, 160]`, row-major. For odd `fbank_frames` the second half of the last row is [`PADDING_VALUE`].
    pub data: Vec<f32>,
    /// Rows: `ceil(fbank_frames / 2)`.
    pub t: usize,
    /// `[t]`, true = valid. For odd `fbank_frames` the last row is masked (false) yet present in `data`.
    pub mask: Vec<bool>,
    /// F: fbank frames (10 ms hop) before stacking.
    pub fbank_frames: usize,
}

/// The first non-finite sample, as an error naming the file; `what` says which signal it was found in.
fn check_finite(x: &[f32], path: &Path, what: &str) -> Result<()> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::audio(
            path,
            format!("{what} sample {i} is {} (NaN/Inf samples are not accepted)", x[i]),
        )),
    }
}

/// Decode `path`, average its channels, resample to 16 kHz: `[n]` mono samples, nominal range ±1.
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
    Preprocess::Direct16k.load(path)
}

/// Name given to in-memory audio in error messages (where a file would be named).
pub const IN_MEMORY: &str = "<in-memory audio>";

/// In-memory interleaved `[frames, channels]` samples at `sample_rate` → `[n]` mono 16 kHz samples, by the same
/// steps [`load_audio`] takes after decoding (average of channels, then [`soxr::resample`]); a file and the
/// same samples given here give the same result bit for bit. `source` names the input in errors.
pub fn samples_to_16k(interleaved: &[f32], channels: usize, sample_rate: u32, source: &Path) -> Result<Vec<f32>> {
    if channels == 0 || !interleaved.len().is_multiple_of(channels) {
        return Err(Error::audio(
            source,
            format!(
                "{} interleaved samples do not split into {channels} channel(s)",
                interleaved.len()
            ),
        ));
    }
    mono_16k(interleaved, channels, sample_rate, source, "input")
}

/// [`samples_to_16k`] then [`features_from_samples`], the input named [`IN_MEMORY`] in errors: what a file's
/// decoded samples go through, for samples held in memory.
pub fn features_from_interleaved(interleaved: &[f32], channels: usize, sample_rate: u32) -> Result<Features> {
    let source = Path::new(IN_MEMORY);
    features_from_samples(&samples_to_16k(interleaved, channels, sample_rate, source)?, source)
}

/// Check finite, average the channels, resample to 16 kHz. `what` says in errors which signal was checked.
fn mono_16k(interleaved: &[f32], channels: usize, sample_rate: u32, source: &Path, what: &str) -> Result<Vec<f32>> {
    check_finite(interleaved, source, what)?;
    let mono = decode::downmix(interleaved, channels);
    soxr::resample(&mono, sample_rate, SAMPLE_RATE, source)
}

/// librosa's default `load` rate, at which IndexTTS2 reads the speaker prompt.
pub const LIBROSA_DEFAULT_RATE: u32 = 22_050;
/// IndexTTS2 keeps the first 15 s of the speaker prompt: `int(15 * 22050)` samples at 22.05 kHz.
pub const SPEAKER_PROMPT_SAMPLES: usize = 15 * LIBROSA_DEFAULT_RATE as usize;

/// How a file becomes the 16 kHz mono signal the fbank reads: which IndexTTS2 input it mirrors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preprocess {
    /// `librosa.load(path, sr=16000)`: channels averaged, one soxr HQ resample straight to 16 kHz.
    /// IndexTTS2's emotion prompt and MaskGCT read audio this way. [`load_audio`].
    #[default]
    Direct16k,
    /// IndexTTS2's speaker prompt (`infer_v2.py`): `librosa.load(path)` at 22.05 kHz, the first 15 s, then
    /// `torchaudio.transforms.Resample(22050, 16000)`. [`load_indextts2_speaker_prompt`].
    Indextts2SpeakerPrompt,
}

impl Preprocess {
    /// Decode `path` and produce 16 kHz mono samples this way.
    pub fn load(self, path: &Path) -> Result<Vec<f32>> {
        self.to_16k(decode::decode_file_with(path, self.at_limit())?, path)
    }

    /// [`Preprocess::load`] for callers that keep only a prefix shorter than [`MAX_AUDIO_SECONDS`] (the CLI's
    /// `--max-seconds`): a longer file is decoded up to the limit instead of refused. The cut itself is the
    /// caller's, after resampling (as IndexTTS2 cuts its prompt), so the kept samples equal a full decode's.
    pub fn load_prefix(self, path: &Path) -> Result<Vec<f32>> {
        self.to_16k(decode::decode_file_with(path, decode::AtLimit::Stop)?, path)
    }

    /// [`Preprocess::load`] on a file's bytes held in memory; `source` names it (and hints the format).
    pub fn load_bytes(self, bytes: Vec<u8>, source: &Path) -> Result<Vec<f32>> {
        self.to_16k(decode::decode_bytes_with(bytes, source, self.at_limit())?, source)
    }

    /// Past [`MAX_AUDIO_SECONDS`]: the speaker prompt keeps only its first 15 s, so decoding just stops there;
    /// the direct path would use it all, so it is refused.
    fn at_limit(self) -> decode::AtLimit {
        match self {
            Preprocess::Direct16k => decode::AtLimit::Refuse,
            Preprocess::Indextts2SpeakerPrompt => decode::AtLimit::Stop,
        }
    }

    /// Decoded audio → mono → 16 kHz, this way.
    fn to_16k(self, d: decode::Decoded, path: &Path) -> Result<Vec<f32>> {
        match self {
            Preprocess::Direct16k => mono_16k(&d.interleaved, d.channels, d.sample_rate, path, "decoded"),
            Preprocess::Indextts2SpeakerPrompt => {
                check_finite(&d.interleaved, path, "decoded")?;
                let mono = decode::downmix(&d.interleaved, d.channels);
                speaker_prompt_from_mono(&mono, d.sample_rate, path)
            }
        }
    }
}

/// IndexTTS2's speaker-prompt audio path, as `infer_v2.py` runs it:
/// ```text
/// audio, sr = librosa.load(path)                    # 22050 Hz: mean of channels, soxr HQ (skipped at 22050)
/// audio = audio[:, :int(15 * sr)]                   # first 15 s
/// audio_16k = torchaudio.transforms.Resample(sr, 16000)(audio)
/// ```
/// Here: decode → mean of channels → [`soxr::resample`] to 22050 Hz (libsoxr HQ as librosa runs it; identity
/// for 22.05 kHz files, as in librosa) → first [`SPEAKER_PROMPT_SAMPLES`] → [`torchaudio_resample`] to 16 kHz.
/// Returns `[min(n22, 330750) · 320 / 441, rounded up]` samples at 16 kHz.
pub fn load_indextts2_speaker_prompt(path: &Path) -> Result<Vec<f32>> {
    Preprocess::Indextts2SpeakerPrompt.load(path)
}

/// [`load_indextts2_speaker_prompt`] after decoding: mono `samples` at `sample_rate` → 16 kHz. `source` names
/// the input in errors.
pub fn speaker_prompt_from_mono(samples: &[f32], sample_rate: u32, source: &Path) -> Result<Vec<f32>> {
    let mut x = soxr::resample(samples, sample_rate, LIBROSA_DEFAULT_RATE, source)?;
    x.truncate(SPEAKER_PROMPT_SAMPLES);
    torchaudio_resample::resample_torchaudio(&x, LIBROSA_DEFAULT_RATE, SAMPLE_RATE, source)
}

/// Features of mono 16 kHz `samples`. `source` names the input in errors (too short, NaN/Inf).
pub fn features_from_samples(samples: &[f32], source: &Path) -> Result<Features> {
    check_finite(samples, source, "audio")?;
    let frames = fbank::num_frames(samples.len());
    if frames < 2 {
        return Err(Error::audio(
            source,
            format!(
                "audio too short: {} samples at 16 kHz ({:.3} s) give {frames} fbank frame(s); \
                 at least {MIN_SAMPLES} samples (2 frames) are needed",
                samples.len(),
                samples.len() as f64 / SAMPLE_RATE as f64
            ),
        ));
    }
    let mut mel = vec![0.0f32; frames * N_MELS];
    fbank::log_mel(&mut mel, samples, frames);
    fbank::normalize_per_bin(&mut mel, frames);
    let t = frames.div_ceil(STRIDE);
    let mut data = vec![0.0f32; t * FEATURE_DIM];
    let mut mask = vec![false; t];
    fbank::stack_frames(&mut data, &mut mask, &mel, frames);
    // Finite samples can still overflow the f32 power spectrum (float audio far outside ±1; HF's extractor,
    // which scales by 2^15 in f32, overflows too): refused rather than handed on as NaN features.
    if data.iter().any(|v| !v.is_finite()) {
        let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        return Err(Error::audio(
            source,
            format!("fbank features overflow: peak sample magnitude {peak:e} (audio is expected within about ±1)"),
        ));
    }
    Ok(Features {
        data,
        t,
        mask,
        fbank_frames: frames,
    })
}

/// [`load_audio`] then [`features_from_samples`].
pub fn features_from_file(path: &Path) -> Result<Features> {
    features_from_file_with(path, Preprocess::Direct16k)
}

/// [`Preprocess::load`] then [`features_from_samples`].
pub fn features_from_file_with(path: &Path, pre: Preprocess) -> Result<Features> {
    let samples = pre.load(path)?;
    features_from_samples(&samples, path)
}

/// [`features_from_file_with`] on a file's bytes held in memory; `source` names it (and hints the format).
pub fn features_from_bytes(bytes: Vec<u8>, source: &Path, pre: Preprocess) -> Result<Features> {
    let samples = pre.load_bytes(bytes, source)?;
    features_from_samples(&samples, source)
}

/// Pad utterances to one batch as HF pads them: rows past an utterance's `t` are [`PADDING_VALUE`] and masked.
/// Returns (features `[b, t_max, 160]`, mask `[b, t_max]`, `t_max`).
pub fn pad_batch(items: &[Features]) -> (Vec<f32>, Vec<bool>, usize) {
    let t_max = items.iter().map(|f| f.t).max().unwrap_or(0);
    let mut data = vec![PADDING_VALUE; items.len() * t_max * FEATURE_DIM];
    let mut mask = vec![false; items.len() * t_max];
    for (i, f) in items.iter().enumerate() {
        let rows = f.t.min(t_max);
        let at = i * t_max * FEATURE_DIM;
        data[at..at + rows * FEATURE_DIM].copy_from_slice(&f.data[..rows * FEATURE_DIM]);
        mask[i * t_max..i * t_max + rows].copy_from_slice(&f.mask[..rows]);
    }
    (data, mask, t_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speechy(n: usize, seed: u32) -> Vec<f32> {
        // Deterministic broadband signal (no pure tones: near-constant bins amplify differences).
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let noise = (s as f32 / u32::MAX as f32) - 0.5;
                noise * 0.2 + 0.3 * (i as f32 * 0.031).sin() * (i as f32 * 0.0007).cos()
            })
            .collect()
    }

    #[test]
    fn pad_batch_pads_with_ones_and_masks() {
        let a = features_from_samples(&speechy(16_000, 1), Path::new("a")).unwrap();
        let b = features_from_samples(&speechy(5_000, 2), Path::new("b")).unwrap();
        let (data, mask, t_max) = pad_batch(&[a.clone(), b.clone()]);
        assert_eq!(t_max, a.t.max(b.t));
        assert_eq!(data.len(), 2 * t_max * FEATURE_DIM);
        assert_eq!(&data[..a.t * FEATURE_DIM], &a.data[..]);
        let bb = &data[t_max * FEATURE_DIM..];
        assert_eq!(&bb[..b.t * FEATURE_DIM], &b.data[..]);
        assert!(bb[b.t * FEATURE_DIM..].iter().all(|&v| v == PADDING_VALUE));
        assert_eq!(&mask[t_max..t_max + b.t], &b.mask[..]);
        assert!(mask[t_max + b.t..].iter().all(|&m| !m));
        assert_eq!(pad_batch(&[]), (vec![], vec![], 0));
    }

    #[test]
    fn too_short_and_non_finite_are_errors_naming_the_source() {
        let src = Path::new("dir/clip.wav");
        for n in [0usize, 1, 399, 400, 559] {
            let e = features_from_samples(&speechy(n, 3), src).unwrap_err().to_string();
            assert!(e.contains("dir/clip.wav") && e.contains("too short"), "{e}");
        }
        assert!(features_from_samples(&speechy(MIN_SAMPLES, 3), src).is_ok());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = speechy(4000, 4);
            x[1234] = bad;
            let e = features_from_samples(&x, src).unwrap_err().to_string();
            assert!(e.contains("dir/clip.wav") && e.contains("1234"), "{e}");
        }
    }
}
