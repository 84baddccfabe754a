//! IndexTTS2's speaker-prompt audio path against torchaudio 2.7.1 + transformers 4.52.1.
//! Goldens: `tests/fixtures/speaker_prompt/*.safetensors`, made by `scripts/make_speaker_prompt_goldens.py`
//! (see its docstring for every tensor). Run with `--nocapture` to see the parity figures.

mod common;

use std::path::{Path, PathBuf};
use w2vbert::audio::{self, decode, torchaudio_resample, FEATURE_DIM};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

struct Golden {
    bytes: Vec<u8>,
    name: String,
}

impl Golden {
    fn open(name: &str) -> Golden {
        let path = fixture(&format!("speaker_prompt/{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Golden {
            bytes,
            name: name.into(),
        }
    }

    fn raw(&self, key: &str) -> Vec<u8> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(key).unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name));
        t.data().to_vec()
    }

    fn f32s(&self, key: &str) -> Vec<f32> {
        let b = self.raw(key);
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn f64s(&self, key: &str) -> Vec<f64> {
        let b = self.raw(key);
        b.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn usize(&self, key: &str) -> usize {
        let b = self.raw(key);
        i64::from_le_bytes(b[..8].try_into().unwrap()) as usize
    }
}

/// (max-abs, relative L2) of `a` against reference `b`.
fn diff(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let (mut max, mut num, mut den) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let d = (x as f64 - y as f64).abs();
        max = max.max(d);
        num += d * d;
        den += (y as f64) * (y as f64);
    }
    (max, (num / den.max(1e-300)).sqrt())
}

/// Mono samples of a fixture at its own rate (the 16-bit PCM values / 32768, as soundfile reads them).
fn native(rel: &str) -> (Vec<f32>, u32) {
    let d = decode::decode_file(&fixture(rel)).unwrap();
    (decode::downmix(&d.interleaved, d.channels), d.sample_rate)
}

/// Our torchaudio-style resampler against `torchaudio.transforms.Resample` on short cuts, sample by sample.
#[test]
fn resampler_matches_torchaudio() {
    let g = Golden::open("resample_cases");
    let (esp, sr) = native("audio/espeak_22050.wav");
    assert_eq!(sr, 22_050);
    let (arctic, sr) = native("audio/arctic_a0007.wav");
    assert_eq!(sr, 16_000);
    for (key, x, from, to) in [
        ("espeak_22050_to_16000", &esp[..33_075], 22_050u32, 16_000u32),
        ("arctic_16000_to_22050", &arctic[..8_000], 16_000, 22_050),
        ("arctic_48000_to_16000", &arctic[..24_000], 48_000, 16_000),
    ] {
        let want = g.f32s(key);
        let ours = torchaudio_resample::resample_torchaudio(x, from, to, Path::new(key)).unwrap();
        assert_eq!(ours.len(), want.len(), "{key}: length");
        let (max, rel) = diff(&ours, &want);
        println!("{key}: {} samples, max-abs {max:.2e}, rel L2 {rel:.2e}", want.len());
        assert!(rel <= 1e-6 && max <= 1e-6, "{key}: max-abs {max:.2e}, rel L2 {rel:.2e}");
    }
}

/// Compare one file's whole speaker-prompt path (waveform summary, fbank rows, per-row sums) with a golden.
fn check_path(golden: &str, input: &Path) {
    let g = Golden::open(golden);
    let w = audio::load_indextts2_speaker_prompt(input).unwrap();
    assert_eq!(w.len(), g.usize("wave_len"), "{golden}: 16 kHz length");
    let mid = g.usize("wave_mid_start");
    let n = w.len();
    let mut worst = (0.0f64, 0.0f64);
    for (key, ours) in [
        ("wave_head", &w[..2048]),
        ("wave_mid", &w[mid..mid + 2048]),
        ("wave_tail", &w[n - 2048..]),
    ] {
        let (max, rel) = diff(ours, &g.f32s(key));
        println!("{golden}: {key}: max-abs {max:.2e}, rel L2 {rel:.2e}");
        worst = (worst.0.max(max), worst.1.max(rel));
    }
    assert!(worst.0 <= 1e-6 && worst.1 <= 1e-6, "{golden}: waveform {worst:?}");
    let sum: f64 = w.iter().map(|&v| v as f64).sum();
    let sumsq: f64 = w.iter().map(|&v| (v as f64).powi(2)).sum();
    let (gsum, gsumsq) = (g.f64s("wave_sum")[0], g.f64s("wave_sumsq")[0]);
    println!(
        "{golden}: waveform sum {sum:.6} vs {gsum:.6}, sum of squares rel diff {:.2e}",
        (sumsq - gsumsq).abs() / gsumsq
    );
    assert!(
        (sumsq - gsumsq).abs() <= 1e-6 * gsumsq,
        "{golden}: sum of squares {sumsq} vs {gsumsq}"
    );
    assert!(
        (sum - gsum).abs() <= 1e-6 * (n as f64 * gsumsq).sqrt(),
        "{golden}: sum {sum} vs {gsum}"
    );

    let f = audio::features_from_samples(&w, input).unwrap();
    assert_eq!(f.t, g.usize("features_t"), "{golden}: T");
    assert_eq!(f.fbank_frames, g.usize("fbank_frames"), "{golden}: F");
    let mask: Vec<bool> = g.raw("mask").iter().map(|&b| b != 0).collect();
    assert_eq!(f.mask, mask, "{golden}: mask");
    let rows = 64;
    for (key, ours) in [
        ("features_head", &f.data[..rows * FEATURE_DIM]),
        ("features_tail", &f.data[(f.t - rows) * FEATURE_DIM..]),
    ] {
        let (max, rel) = diff(ours, &g.f32s(key));
        println!("{golden}: {key}: max-abs {max:.2e}, rel L2 {rel:.2e}");
        assert!(max <= 1e-4, "{golden}: {key}: max-abs {max:.2e}");
    }
    // Every row: |Σx − Σy| ≤ 160·δ and |Σx² − Σy²| ≤ δ·Σ|x + y| for elementwise error δ = 1e-4.
    let (gs, gss) = (g.f64s("row_sum"), g.f64s("row_sumsq"));
    let (mut wsum, mut wsq) = (0.0f64, 0.0f64);
    for (r, row) in f.data.chunks_exact(FEATURE_DIM).enumerate() {
        let s: f64 = row.iter().map(|&v| v as f64).sum();
        let ss: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum();
        let abs2: f64 = row.iter().map(|&v| 2.0 * (v as f64).abs() + 1e-4).sum();
        let (ds, dss) = ((s - gs[r]).abs(), (ss - gss[r]).abs());
        assert!(ds <= 160.0 * 1e-4, "{golden}: row {r}: sum {s} vs {}", gs[r]);
        assert!(
            dss <= 1e-4 * abs2,
            "{golden}: row {r}: sum of squares {ss} vs {}",
            gss[r]
        );
        wsum = wsum.max(ds / 160.0);
        wsq = wsq.max(dss / abs2);
    }
    println!(
        "{golden}: all {} rows: mean-abs of row-sum error / 160 ≤ {wsum:.2e}, sum-of-squares bound ratio {wsq:.2e}",
        f.t
    );
}

#[test]
fn espeak_22050_speaker_prompt_matches_indextts2() {
    // Already 22.05 kHz: librosa does not resample, nor do we; 9.09 s, so no cut.
    check_path("espeak_22050", &fixture("audio/espeak_22050.wav"));
}

/// 16-bit PCM mono WAV: the 44-byte canonical header, then the samples.
fn write_wav_i16(path: &Path, samples: &[i16], rate: u32) {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

/// espeak ‖ reversed(espeak), 18.2 s at 22.05 kHz, rebuilt exactly as the script builds it: the path keeps
/// the first 330750 samples (15 s) → 240000 at 16 kHz, and its tail shows where the cut fell.
#[test]
fn long_prompt_is_cut_to_15_s_as_indextts2_does() {
    let (esp, _) = native("audio/espeak_22050.wav");
    let pcm: Vec<i16> = esp.iter().map(|&v| (v * 32768.0) as i16).collect();
    assert!(pcm.iter().zip(&esp).all(|(&p, &v)| p as f32 / 32768.0 == v));
    let mut long = pcm.clone();
    long.extend(pcm.iter().rev());
    assert!(long.len() > audio::SPEAKER_PROMPT_SAMPLES);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concat_18s.wav");
    write_wav_i16(&path, &long, 22_050);
    assert_eq!(audio::load_indextts2_speaker_prompt(&path).unwrap().len(), 240_000);
    check_path("concat_18s", &path);
}

/// The CLI flag selects the same path; without it the audio is read the librosa(sr=16000) way.
#[test]
fn cli_flag_selects_the_speaker_prompt_path() {
    let out = tempfile::tempdir().unwrap();
    let input = fixture("audio/espeak_22050.wav");
    let run = |flag: bool, dir: &Path| {
        let mut c = common::cli();
        c.arg("--features-only").arg(&input).arg("--output-dir").arg(dir);
        if flag {
            c.arg("--indextts2-speaker-prompt");
        }
        assert!(c.status().unwrap().success());
        w2vbert::output::read_npy(&dir.join("espeak_22050.npy")).unwrap()
    };
    let (data, shape) = run(true, &out.path().join("sp"));
    let g = Golden::open("espeak_22050");
    assert_eq!(shape, vec![g.usize("features_t"), FEATURE_DIM]);
    let (max, _) = diff(&data[..64 * FEATURE_DIM], &g.f32s("features_head"));
    assert!(max <= 1e-4, "CLI features_head max-abs {max:.2e}");
    let (plain, _) = run(false, &out.path().join("plain"));
    let (max, _) = diff(&plain, &data);
    assert!(
        max > 1e-3,
        "the default path should differ from the speaker-prompt path (max-abs {max:.2e})"
    );
}

#[test]
fn short_speaker_prompt_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.wav");
    write_wav_i16(&path, &[100, -200, 300, 5, 7], 22_050);
    let w = audio::load_indextts2_speaker_prompt(&path).unwrap();
    assert_eq!(w.len(), 4); // ceil(5 · 320 / 441)
    let e = audio::features_from_file_with(&path, audio::Preprocess::Indextts2SpeakerPrompt)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tiny.wav") && e.contains("too short"), "{e}");
}
