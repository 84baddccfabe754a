//! Every input rate and format against librosa 0.11 + python-soxr 1.1 + soundfile (libsndfile 1.2.2) +
//! transformers 4.52.1: decoded samples, the 16 kHz waveform (`librosa.load(sr=16000)`), the fbank, and semantic
//! features on checkpoints/tiny-random; the 44.1 / 48 kHz cases also through IndexTTS2's speaker-prompt path.
//! Goldens: `tests/fixtures/rates/`, made by `scripts/make_rate_goldens.py` (see its docstring).
//!
//! `cargo test --release --test rate_goldens -- --nocapture` prints the table.

mod common;

use common::{fixture, max_abs, rel_l2, repo};
use std::path::Path;
use w2vbert::audio::{self, decode, Preprocess};
use w2vbert::pipeline::{Extractor, Request};

struct Golden(Vec<u8>);

impl Golden {
    fn tensor(&self, key: &str) -> Option<(Vec<u8>, Vec<usize>)> {
        let st = safetensors::SafeTensors::deserialize(&self.0).unwrap();
        st.tensor(key).ok().map(|t| (t.data().to_vec(), t.shape().to_vec()))
    }
    fn f32s(&self, key: &str) -> Option<Vec<f32>> {
        self.tensor(key).map(|(b, _)| {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
    }
    fn i64s(&self, key: &str) -> Vec<i64> {
        let (b, _) = self.tensor(key).unwrap_or_else(|| panic!("no {key}"));
        b.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// Measured figures of one path (direct 16 kHz or speaker prompt) of one case.
struct Row {
    case: String,
    wave: (f64, f64),
    len_ok: bool,
    fbank: f64,
    fbank_on_ref_wave: f64,
    semantic: f64,
}

fn check_path(case: &str, g: &Golden, prefix: &str, path: &Path, pre: Preprocess, ex: &Extractor) -> Row {
    let want = g.f32s(&format!("{prefix}wave16k")).unwrap();
    let wave = pre.load(path).unwrap();
    let len_ok = wave.len() == want.len();
    let wave_d = if len_ok {
        (rel_l2(&wave, &want), max_abs(&wave, &want))
    } else {
        (f64::INFINITY, f64::INFINITY)
    };
    let feats = g.f32s(&format!("{prefix}features")).unwrap();
    let mask: Vec<bool> = g
        .tensor(&format!("{prefix}mask"))
        .unwrap()
        .0
        .iter()
        .map(|&b| b != 0)
        .collect();
    let f_ref = audio::features_from_samples(&want, path).unwrap();
    assert_eq!(f_ref.mask, mask, "{case}: mask");
    let fbank_on_ref_wave = rel_l2(&f_ref.data, &feats);
    let (fbank, semantic) = if len_ok {
        let f = audio::features_from_samples(&wave, path).unwrap();
        let sem = ex.run(&f).unwrap().semantic.unwrap();
        let want_sem = g.f32s(&format!("{prefix}semantic")).unwrap();
        (rel_l2(&f.data, &feats), rel_l2(&sem, &want_sem))
    } else {
        (f64::INFINITY, f64::INFINITY)
    };
    Row {
        case: format!("{case}{}", if prefix.is_empty() { "" } else { " (speaker prompt)" }),
        wave: wave_d,
        len_ok,
        fbank,
        fbank_on_ref_wave,
        semantic,
    }
}

#[test]
fn every_rate_and_format_matches_librosa_and_hf() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("rates/manifest.json")).unwrap()).unwrap();
    let ex = Extractor::load(&repo().join("checkpoints/tiny-random"), &Request::semantic(), None).unwrap();
    let mut rows = Vec::new();
    let mut decode_rows = Vec::new();
    for (case, spec) in manifest["cases"].as_object().unwrap() {
        let path = fixture(spec["file"].as_str().unwrap());
        let g = Golden(std::fs::read(fixture(&format!("rates/{case}.safetensors"))).unwrap());
        let fmt = spec["format"].as_str().unwrap().to_string();

        // Decoding: sample count always, samples where the golden keeps soundfile's decode.
        let d = decode::decode_file(&path).unwrap();
        assert_eq!(d.sample_rate as u64, spec["rate"].as_u64().unwrap(), "{case}: rate");
        assert_eq!(
            d.channels as u64,
            spec["channels"].as_u64().unwrap(),
            "{case}: channels"
        );
        let frames = g.i64s("frames")[0] as usize;
        let dec = g.f32s("decoded").map(|want| {
            assert_eq!(d.interleaved.len(), want.len(), "{case}: decoded samples vs soundfile");
            (rel_l2(&d.interleaved, &want), max_abs(&d.interleaved, &want))
        });
        decode_rows.push((case.clone(), fmt.clone(), d.frames(), frames, dec));

        rows.push((fmt.clone(), check_path(case, &g, "", &path, Preprocess::Direct16k, &ex)));
        if spec["prompt"].as_bool().unwrap() {
            let r = check_path(case, &g, "prompt.", &path, Preprocess::Indextts2SpeakerPrompt, &ex);
            rows.push((fmt, r));
        }
    }

    println!("\ndecoding vs soundfile (libsndfile 1.2.2)");
    println!(
        "{:<22} {:<22} {:>9} {:>9} {:>10} {:>10}",
        "case", "format", "frames", "sf", "rel L2", "max-abs"
    );
    for (case, fmt, ours, want, dec) in &decode_rows {
        let (r, m) = dec.map_or(("-".into(), "-".into()), |(r, m)| {
            (format!("{r:.2e}"), format!("{m:.2e}"))
        });
        println!("{case:<22} {fmt:<22} {ours:>9} {want:>9} {r:>10} {m:>10}");
    }
    println!("\n16 kHz waveform vs librosa.load, fbank and tiny-checkpoint semantic features vs HF");
    println!(
        "{:<40} {:>9} {:>9} {:>4} {:>9} {:>9} {:>9}",
        "case", "wave rel", "wave max", "len", "fbank", "fbank*", "semantic"
    );
    for (_, r) in &rows {
        println!(
            "{:<40} {:>9.2e} {:>9.2e} {:>4} {:>9.2e} {:>9.2e} {:>9.2e}",
            r.case,
            r.wave.0,
            r.wave.1,
            if r.len_ok { "ok" } else { "BAD" },
            r.fbank,
            r.fbank_on_ref_wave,
            r.semantic
        );
    }
    println!("(fbank*: our fbank on librosa's own 16 kHz waveform, i.e. the fbank's share alone)\n");

    for (case, fmt, ours, want, dec) in &decode_rows {
        assert_eq!(ours, want, "{case}: decoded frame count vs soundfile");
        let lossy = fmt.starts_with("MP3") || fmt.starts_with("OGG");
        let (r, m) = dec.unwrap_or((0.0, 0.0));
        if lossy {
            assert!(
                r <= LOSSY_DECODE_REL && m <= LOSSY_DECODE_MAX,
                "{case}: decode rel {r:e} max {m:e}"
            );
        } else {
            assert_eq!((r, m), (0.0, 0.0), "{case}: lossless decode differs from soundfile");
        }
    }
    for (fmt, r) in &rows {
        assert!(r.len_ok, "{}: 16 kHz length", r.case);
        let lossy = fmt.starts_with("MP3") || fmt.starts_with("OGG");
        // Both paths are bit-identical on lossless input on x86-64 and aarch64 Linux: libsoxr as librosa runs it,
        // and for the speaker prompt also torchaudio's convolution (PyTorch's FMA order). Where libsoxr's build
        // lacks its SIMD engine it runs another one ([`SOXR_OTHER_ENGINE_REL`]).
        let wave_tol = if lossy { LOSSY_DECODE_REL } else { SOXR_ENGINE_REL };
        assert!(r.wave.0 <= wave_tol, "{}: waveform rel L2 {:e}", r.case, r.wave.0);
        assert!(
            r.fbank_on_ref_wave <= FBANK_REL,
            "{}: fbank rel L2 {:e}",
            r.case,
            r.fbank_on_ref_wave
        );
        let fbank_tol = if r.wave.0 == 0.0 {
            FBANK_REL
        } else if lossy {
            LOSSY_FBANK_REL
        } else {
            SOXR_OTHER_ENGINE_FBANK_REL
        };
        assert!(r.fbank <= fbank_tol, "{}: fbank rel L2 {:e}", r.case, r.fbank);
        let semantic_tol = if r.wave.0 == 0.0 || lossy {
            SEMANTIC_REL
        } else {
            SOXR_OTHER_ENGINE_FBANK_REL
        };
        assert!(
            r.semantic <= semantic_tol,
            "{}: semantic rel L2 {:e}",
            r.case,
            r.semantic
        );
    }
}

/// symphonia's MP3 / Vorbis decoders against libsndfile's (mpg123 / libvorbis) differ in the float rounding of
/// the synthesis filter bank: measured rel L2 2e-7..5e-7, max-abs <= 5e-7 (about 2^-21), same sample counts.
const LOSSY_DECODE_REL: f64 = 2e-6;
const LOSSY_DECODE_MAX: f64 = 2e-6;
/// The waveform on lossless input: bit-identical wherever libsoxr runs its `cr32s` engine (pffft) as librosa's
/// python-soxr wheels do: x86-64 (SSE), and aarch64 Linux (NEON), where scripts/cmake-libsoxr-neon.sh builds it
/// with FMA contraction off (src/audio/soxr.rs, "Engines"). Measured under qemu-aarch64: 0 on every lossless case
/// (it was rel L2 2.3e-7..3.1e-7 with the scalar `cr32` engine before). The lib test
/// `this_build_runs_the_simd_engine` checks the engine itself (`soxr::SIMD_ENGINE_BUILT` names these targets). No rate here
/// takes libsoxr's half-band decimator, whose SSE-only code sums in another order on aarch64 (input at least 4x
/// the output rate, e.g. 64 kHz and up: rel L2 1.3e-7..1.6e-7 from x86-64, docs/platforms.md).
const SOXR_ENGINE_REL: f64 = if audio::soxr::SIMD_ENGINE_BUILT {
    0.0
} else {
    SOXR_OTHER_ENGINE_REL
};
/// Targets whose libsoxr build has no SIMD engine (macOS: not configured for it, and not run here) run `cr32`
/// (fft4g in place of pffft: another FFT, so another rounding of each sample). Measured while aarch64 Linux ran
/// it (qemu-aarch64): rel L2 2.3e-7..3.1e-7, i.e. a few ulp of f32 per sample.
const SOXR_OTHER_ENGINE_REL: f64 = 1e-6;
/// What that waveform difference did downstream (aarch64 Linux with `cr32`, qemu-aarch64): fbank rel L2 up to
/// 6.2e-2 (wav16_8000; espeak_22050 1.47e-2, wav16_11025 1.43e-2; every other case < 1e-5) and tiny-checkpoint
/// semantic up to 5.0e-2, while our fbank on librosa's own waveform stays exact (fbank*, checked against
/// [`FBANK_REL`] on every target). The worst cases are the low rates, upsampled: the mel bins above their Nyquist
/// (4 kHz for 8 kHz input) hold only the resampler's stopband residue, whose value is pure rounding, different for
/// another FFT; the per-bin variance normalization then scales those bins to unit variance. Applies only where
/// the waveform is not bit-identical ([`SOXR_ENGINE_REL`] > 0), only for lossless input resampled by libsoxr.
const SOXR_OTHER_ENGINE_FBANK_REL: f64 = 1e-1;
/// The fbank of a lossy file carries that decode difference (measured 6e-6..8e-6).
const LOSSY_FBANK_REL: f64 = 2e-5;
/// Our fbank on librosa's own waveform: bit-identical on every case (measured 0); 1e-7 as in tests/fbank.rs.
const FBANK_REL: f64 = 1e-7;
/// checkpoints/tiny-random (f16 weights, 24 layers): measured 3.6e-7..6.2e-7 on exact fbanks (the encoder's own
/// share), up to 3.4e-6 on lossy files.
const SEMANTIC_REL: f64 = 1e-5;
