//! `w2vbert-infer --features-only` from outside: its .npy files against the HF goldens, and its errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn bin() -> Command {
    common::cli()
}

/// `features` [T, 160] and T of a single-utterance golden.
fn golden(name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(fixture(&format!("fbank/{name}.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f = st.tensor("features").unwrap();
    let data = f
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (data, f.shape().to_vec())
}

#[test]
fn features_only_matches_goldens() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("new/sub"); // created by the CLI
    let status = bin()
        .arg("--features-only")
        .arg(fixture("audio/arctic_a0007.wav"))
        .arg(fixture("audio/espeak_16k_soxr.flac"))
        .arg("--output-dir")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    for (stem, golden_name) in [("arctic_a0007", "arctic_a0007"), ("espeak_16k_soxr", "espeak_16k_soxr")] {
        let (data, shape) = w2vbert::output::read_npy(&dir.join(format!("{stem}.npy"))).unwrap();
        let (want, want_shape) = golden(golden_name);
        assert_eq!(shape, want_shape, "{stem}");
        let max = data
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max <= 1e-4, "{stem}: max-abs {max}");
    }
}

#[test]
fn duplicate_stems_fail_before_any_work() {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .arg("--features-only")
        .arg(fixture("audio/arctic_a0007.wav"))
        .arg(fixture("audio/dec.mp3"))
        .arg(fixture("audio/dec.ogg"))
        .arg("--output-dir")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dec.mp3") && err.contains("dec.ogg") && err.contains("same file stem"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn error_in_third_input_keeps_the_first_two_and_writes_nothing_partial() {
    let out = tempfile::tempdir().unwrap();
    let bad = out.path().join("broken.wav");
    std::fs::write(&bad, b"RIFF....WAVEjunkjunkjunk").unwrap();
    let dir = out.path().join("o");
    let o = bin()
        .arg("--features-only")
        .arg(fixture("audio/dec_s24.wav"))
        .arg(fixture("audio/dec_f32.wav"))
        .arg(&bad)
        .arg(fixture("audio/arctic_a0007.wav"))
        .arg(fixture("audio/dec.flac"))
        .arg("--output-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("broken.wav"), "{err}");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["dec_f32.npy", "dec_s24.npy"]);
}

#[test]
fn missing_and_too_short_inputs_name_the_file() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("nope.wav");
    let o = bin()
        .arg("--features-only")
        .arg(&missing)
        .arg("--output-dir")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.wav"));

    // 300 samples of 16-bit PCM at 16 kHz.
    let short = out.path().join("short.wav");
    let mut d = std::fs::read(fixture("audio/dec_wavex.wav")).unwrap();
    d.truncate(d.len() - (4800 - 300) * 2);
    // Patch the RIFF and data sizes of the WAVE_FORMAT_EXTENSIBLE header (data chunk last, 600 bytes).
    let n = d.len() as u32;
    d[4..8].copy_from_slice(&(n - 8).to_le_bytes());
    let data_at = d.windows(4).position(|w| w == b"data").unwrap();
    d[data_at + 4..data_at + 8].copy_from_slice(&600u32.to_le_bytes());
    std::fs::write(&short, &d).unwrap();
    let o = bin()
        .arg("--features-only")
        .arg(&short)
        .arg("--output-dir")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("short.wav") && err.contains("too short"), "{err}");
    assert!(!out.path().join("short.npy").exists());
}

#[test]
fn without_features_only_the_default_checkpoint_is_required() {
    // Run from an empty directory so the default `checkpoints/w2v-bert-2.0` cannot exist: the error says what to
    // download, and nothing is written.
    let out = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let o = bin()
        .current_dir(cwd.path())
        .arg(fixture("audio/arctic_a0007.wav"))
        .arg("--output-dir")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("checkpoints/w2v-bert-2.0") && err.contains("facebook/w2v-bert-2.0"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}
