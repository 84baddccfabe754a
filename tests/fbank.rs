//! Front-end parity with transformers 4.52.1's `SeamlessM4TFeatureExtractor(padding_value=1.0, stride=2)`.
//! Goldens: `tests/fixtures/fbank/*.safetensors`, made by `scripts/make_fbank_goldens.py`.
//! Run with `--nocapture` to see the parity figures.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use w2vbert::audio::{self, fbank, Features, FEATURE_DIM, N_MELS};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

struct Golden {
    features: Vec<f32>,
    shape: Vec<usize>,
    mask: Vec<bool>,
    fbank_frames: Vec<usize>,
    /// One entry per utterance: {"file", optional "start", "len"}.
    inputs: Vec<serde_json::Value>,
}

fn golden(name: &str) -> Golden {
    let bytes = std::fs::read(fixture(&format!("fbank/{name}.safetensors"))).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let inputs = meta.metadata().as_ref().and_then(|m| m.get("inputs")).unwrap();
    let inputs: Vec<serde_json::Value> = serde_json::from_str(inputs).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f = st.tensor("features").unwrap();
    let features = f
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mask = st.tensor("mask").unwrap().data().iter().map(|&b| b != 0).collect();
    let frames = st.tensor("fbank_frames").unwrap();
    let fbank_frames = frames
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize)
        .collect();
    Golden {
        features,
        shape: f.shape().to_vec(),
        mask,
        fbank_frames,
        inputs,
    }
}

/// The 16 kHz input of one golden utterance: a whole file, or a `[start, start + len)` cut of it.
fn golden_input(spec: &serde_json::Value) -> (Vec<f32>, PathBuf) {
    let path = fixture(&format!("audio/{}", spec["file"].as_str().unwrap()));
    let x = audio::load_audio(&path).unwrap();
    match (spec.get("start"), spec.get("len")) {
        (Some(s), Some(l)) => {
            let (s, l) = (s.as_u64().unwrap() as usize, l.as_u64().unwrap() as usize);
            (x[s..s + l].to_vec(), path)
        }
        _ => (x, path),
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

fn check_single(name: &str) {
    let g = golden(name);
    let (x, path) = golden_input(&g.inputs[0]);
    let f = audio::features_from_samples(&x, &path).unwrap();
    assert_eq!(g.shape, vec![f.t, FEATURE_DIM], "{name}: T");
    assert_eq!(f.fbank_frames, g.fbank_frames[0], "{name}: F");
    assert_eq!(f.mask, g.mask, "{name}: mask");
    let (max, rel) = diff(&f.data, &g.features);
    println!(
        "{name}: T {} F {} max-abs {max:.3e} rel-L2 {rel:.3e} mask equal",
        f.t, f.fbank_frames
    );
    // Bit-identical here (log-mel and NumPy's pairwise statistics reproduced); 1e-7 leaves room for a 1-ulp
    // f64 -> f32 rounding flip of the spectrum that another FFT build could cause.
    assert!(rel <= 1e-7, "{name}: rel L2 {rel:e}, max-abs {max:e}");
}

#[test]
fn golden_arctic_a0007() {
    check_single("arctic_a0007");
}

#[test]
fn golden_espeak_soxr_16k() {
    check_single("espeak_16k_soxr");
}

#[test]
fn golden_odd_frame_count_masks_last_row() {
    let g = golden("arctic_odd");
    assert_eq!(g.fbank_frames[0] % 2, 1);
    assert!(!g.mask[g.mask.len() - 1]);
    check_single("arctic_odd");
}

#[test]
fn golden_even_frame_count() {
    let g = golden("arctic_even");
    assert_eq!(g.fbank_frames[0] % 2, 0);
    check_single("arctic_even");
}

#[test]
fn golden_padded_batch() {
    let g = golden("batch_odd_even");
    let items: Vec<Features> = g
        .inputs
        .iter()
        .map(|spec| {
            let (x, path) = golden_input(spec);
            audio::features_from_samples(&x, &path).unwrap()
        })
        .collect();
    let (data, mask, t_max) = audio::pad_batch(&items);
    assert_eq!(g.shape, vec![items.len(), t_max, FEATURE_DIM]);
    assert_eq!(mask, g.mask);
    let (max, rel) = diff(&data, &g.features);
    println!(
        "batch_odd_even: B {} T {t_max} max-abs {max:.3e} rel-L2 {rel:.3e} mask equal",
        items.len()
    );
    assert!(rel <= 1e-7, "batch: rel L2 {rel:e}, max-abs {max:e}");
}

/// Frames are independent; the fast path (realfft, sparse mel, rayon) must equal the naive DFT reference.
fn check_fast_vs_ref(x: &[f32]) {
    let frames = fbank::num_frames(x.len());
    let mut fast = vec![0.0f32; frames * N_MELS];
    let mut slow = vec![0.0f32; frames * N_MELS];
    fbank::log_mel(&mut fast, x, frames);
    fbank::log_mel_ref(&mut slow, x, frames);
    for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
        // Both are ln of the same f64 energy up to FFT rounding; 1e-4 absolute on log values.
        assert!(
            (a - b).abs() <= 1e-4,
            "frame {} bin {}: {a} vs {b}",
            i / N_MELS,
            i % N_MELS
        );
    }
}

fn noise(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * amp
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Lengths around the frame boundaries (0 frames, 1, ragged tails) and unaligned starts.
    #[test]
    fn fast_log_mel_matches_reference(n in 0usize..2400, offset in 0usize..3, seed in any::<u64>(), amp in 1e-3f32..1.0) {
        let buf = noise(n + offset, seed, amp);
        check_fast_vs_ref(&buf[offset..]);
    }

    /// Invariants of the whole front end: shape, T = ceil(F/2), mask count = floor(F/2), normalized bins
    /// have mean ~0 over the valid frames, and the features ignore a global gain (DC-free, log, normalized).
    /// At least 10 frames: with 2-3 frames a bin's variance can be ~1e-7, where f32 rounding of the
    /// log values is amplified ~3000x (true for HF too).
    #[test]
    fn feature_invariants(n in 1840usize..6000, offset in 0usize..3, seed in any::<u64>(), gain in 0.05f32..4.0) {
        let buf = noise(n + offset, seed, 0.5);
        let x = &buf[offset..];
        let f = audio::features_from_samples(x, Path::new("p.wav")).unwrap();
        let frames = fbank::num_frames(n);
        prop_assert_eq!(f.fbank_frames, frames);
        prop_assert_eq!(f.t, frames.div_ceil(2));
        prop_assert_eq!(f.data.len(), f.t * FEATURE_DIM);
        prop_assert_eq!(f.mask.iter().filter(|&&m| m).count(), frames / 2);
        for j in 0..N_MELS {
            let s: f64 = (0..frames).map(|i| f.data[i * N_MELS + j] as f64).sum();
            prop_assert!((s / frames as f64).abs() < 1e-4, "bin {} mean {}", j, s / frames as f64);
        }
        let scaled: Vec<f32> = x.iter().map(|v| v * gain).collect();
        let g = audio::features_from_samples(&scaled, Path::new("p.wav")).unwrap();
        let (max, _) = diff(&g.data, &f.data);
        prop_assert!(max < 2e-3, "gain changed features by {}", max);
    }
}

#[test]
fn features_identical_for_any_thread_count() {
    let x = audio::load_audio(&fixture("audio/arctic_a0007.wav")).unwrap();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let a = one.install(|| audio::features_from_samples(&x, Path::new("a")).unwrap());
    let b = three.install(|| audio::features_from_samples(&x, Path::new("a")).unwrap());
    assert_eq!(a, b);
}
