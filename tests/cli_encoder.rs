//! `w2vbert-infer` end to end (audio file → fbank → encoder → normalization → file) on the shipped
//! checkpoints/tiny-random, against HF goldens made from the same wav; and its error behaviour.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use w2vbert::output::read_npy;

fn bin() -> Command {
    common::cli()
}

fn tiny() -> PathBuf {
    repo().join("checkpoints/tiny-random")
}

fn arctic() -> PathBuf {
    fixture("audio/arctic_a0007.wav")
}

fn run(args: &[&str], inputs: &[&Path], out: &Path) -> Output {
    let mut c = bin();
    c.args(args).args(inputs).arg("--output-dir").arg(out);
    c.output().expect("run w2vbert-infer")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The front end alone is within 1e-4 of HF (tests/fbank.rs); through 17 layers that stays far below this.
const E2E_TOL: f64 = 1e-4;

#[test]
fn default_run_writes_semantic_features_matching_hf() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["--checkpoint", tiny().to_str().unwrap()], &[&arctic()], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let (got, shape) = read_npy(&dir.path().join("arctic_a0007.npy")).unwrap();
    let golden = open(&fixture("encoder/tiny-random/golden.safetensors"));
    let (want, wshape) = golden_of(&golden, "single_even.semantic");
    assert_eq!(shape, wshape);
    let (rel, mx) = (rel_l2(&got, &want), max_abs(&got, &want));
    println!("semantic (tiny-random, arctic_a0007): rel L2 {rel:.2e}, max-abs {mx:.2e}");
    assert!(rel <= E2E_TOL, "semantic features differ from HF: rel L2 {rel:.3e}");
    // The normalization really happened: raw hidden_states[17] is far from the semantic features.
    let (h17, _) = golden_of(&golden, "single_even.hidden_states.17");
    assert!(rel_l2(&got, &h17) > 0.1);
}

fn golden_of(w: &w2vbert::weights::Weights, name: &str) -> (Vec<f32>, Vec<usize>) {
    common::golden(w, name)
}

#[test]
fn no_normalize_writes_raw_layer_17() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &["--checkpoint", tiny().to_str().unwrap(), "--no-normalize"],
        &[&arctic()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (got, _) = read_npy(&dir.path().join("arctic_a0007.npy")).unwrap();
    let golden = open(&fixture("encoder/tiny-random/golden.safetensors"));
    let (want, _) = golden_of(&golden, "single_even.hidden_states.17");
    let rel = rel_l2(&got, &want);
    assert!(rel <= E2E_TOL, "hidden_states[17] differs from HF: rel L2 {rel:.3e}");
}

#[test]
fn several_layers_go_to_one_safetensors_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &["--checkpoint", tiny().to_str().unwrap(), "--layers", "0,17,24,17"],
        &[&arctic()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = open(&dir.path().join("arctic_a0007.safetensors"));
    // A repeated index is written once: hidden_states.{0,17,24}, semantic, mask.
    assert_eq!(out.names().len(), 5, "{:?}", out.names());
    let golden = open(&fixture("encoder/tiny-random/golden.safetensors"));
    for k in [0, 17, 24] {
        let (got, shape) = golden_of(&out, &format!("hidden_states.{k}"));
        let (want, wshape) = golden_of(&golden, &format!("single_even.hidden_states.{k}"));
        assert_eq!(shape, wshape);
        let rel = rel_l2(&got, &want);
        assert!(rel <= E2E_TOL, "hidden_states[{k}]: rel L2 {rel:.3e}");
    }
    let (sem, _) = golden_of(&out, "semantic");
    let (want, _) = golden_of(&golden, "single_even.semantic");
    assert!(rel_l2(&sem, &want) <= E2E_TOL);
    let (mask, _) = golden_of(&out, "mask");
    let (wmask, _) = golden_of(&golden, "single_even.mask");
    assert_eq!(mask, wmask);
}

#[test]
fn missing_weights_say_what_to_download_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let o = run(
        &["--checkpoint", empty.path().to_str().unwrap()],
        &[&arctic()],
        dir.path(),
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("facebook/w2v-bert-2.0") && e.contains("model.safetensors"),
        "{e}"
    );
    assert!(!dir.path().join("arctic_a0007.npy").exists());
}

/// A copy of tiny-random in a temp dir, optionally without its stats or with a replaced file.
fn tiny_copy(skip: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "wav2vec2bert_stats.safetensors"] {
        if !skip.contains(&f) {
            std::fs::copy(tiny().join(f), d.path().join(f)).unwrap();
        }
    }
    d
}

#[test]
fn missing_stats_is_an_error_unless_no_normalize() {
    let ck = tiny_copy(&["wav2vec2bert_stats.safetensors"]);
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["--checkpoint", ck.path().to_str().unwrap()], &[&arctic()], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("wav2vec2bert_stats"), "{}", stderr(&o));
    assert!(!dir.path().join("arctic_a0007.npy").exists());
    let o = run(
        &["--checkpoint", ck.path().to_str().unwrap(), "--no-normalize"],
        &[&arctic()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn misshaped_stats_name_the_tensor() {
    let ck = tiny_copy(&["wav2vec2bert_stats.safetensors"]);
    let bad = ck.path().join("wav2vec2bert_stats.safetensors");
    let mean = [0f32; 32];
    let var = [1f32; 64];
    w2vbert::output::write_safetensors(
        &bad,
        &[("mean".into(), vec![32], &mean[..]), ("var".into(), vec![64], &var[..])],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["--checkpoint", ck.path().to_str().unwrap()], &[&arctic()], dir.path());
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("mean") && e.contains("wav2vec2bert_stats.safetensors"),
        "{e}"
    );
}

#[test]
fn truncated_weights_are_a_clear_error() {
    let ck = tiny_copy(&["model.safetensors"]);
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    std::fs::write(ck.path().join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["--checkpoint", ck.path().to_str().unwrap()], &[&arctic()], dir.path());
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("model.safetensors") && !e.contains("panicked"), "{e}");
}

#[test]
fn a_missing_layer_tensor_is_named() {
    // Drop one tensor of layer 3 from the checkpoint: loading must name it.
    let ck = tiny_copy(&["model.safetensors"]);
    let drop = "encoder.layers.3.self_attn.distance_embedding.weight";
    rewrite_weights(
        &tiny().join("model.safetensors"),
        &ck.path().join("model.safetensors"),
        |n, s| (n != drop).then(|| s.to_vec()),
    );
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["--checkpoint", ck.path().to_str().unwrap()], &[&arctic()], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains(drop), "{}", stderr(&o));
    // hidden_states[3] needs only layers 0..3: it must not touch layer 3 and therefore succeeds.
    let o = run(
        &[
            "--checkpoint",
            ck.path().to_str().unwrap(),
            "--layer",
            "3",
            "--no-normalize",
        ],
        &[&arctic()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn layer_out_of_range_and_unnormalizable_layer_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "--checkpoint",
            tiny().to_str().unwrap(),
            "--layer",
            "25",
            "--no-normalize",
        ],
        &[&arctic()],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("num_hidden_layers = 24"), "{}", stderr(&o));
    let o = run(
        &["--checkpoint", tiny().to_str().unwrap(), "--layer", "8"],
        &[&arctic()],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--no-normalize"), "{}", stderr(&o));
}

#[test]
fn a_bad_input_fails_without_partial_output_and_keeps_earlier_files() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("broken.wav");
    std::fs::write(&bad, b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
    let o = run(
        &["--checkpoint", tiny().to_str().unwrap()],
        &[&arctic(), &bad],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("broken.wav"), "{}", stderr(&o));
    assert!(dir.path().join("arctic_a0007.npy").exists());
    assert!(!dir.path().join("broken.npy").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn verbose_says_how_the_weights_are_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &["--checkpoint", tiny().to_str().unwrap(), "--verbose"],
        &[&arctic()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.contains("layers loaded"))
        .unwrap_or_else(|| panic!("no load line in:\n{err}"));
    // Linux: the share of the mapped file pages held as 2 MiB pages (README, "Loading").
    if cfg!(target_os = "linux") {
        let pct = line
            .split("file pages mapped ")
            .nth(1)
            .and_then(|r| r.split(", ").nth(1))
            .and_then(|r| r.split(" %").next())
            .and_then(|p| p.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no mapping figures in: {line}"));
        assert!((0.0..=100.0).contains(&pct), "{line}");
    }
}
