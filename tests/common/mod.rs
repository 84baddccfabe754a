//! Helpers shared by the integration tests: golden files and meaningful comparisons.
#![allow(dead_code)]

pub mod convert;
pub mod corpus;

use std::path::{Path, PathBuf};
use w2vbert::weights::Weights;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests").join("fixtures").join(rel)
}

/// A golden tensor and its shape.
pub fn golden(w: &Weights, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = w
        .get_any_shape(name)
        .unwrap_or_else(|e| panic!("golden {}: {e}", w.path().display()));
    (t.data().to_vec(), t.shape().to_vec())
}

pub fn open(path: &Path) -> Weights {
    Weights::open(path).unwrap_or_else(|e| panic!("{e}"))
}

/// ‖a - b‖₂ / ‖b‖₂ (b is the reference), computed in f64.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

pub fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += (x as f64).powi(2);
        bb += (y as f64).powi(2);
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// Rewrite the safetensors file `src` as f32 into `dst`: `edit(name, shape)` returns the shape to store the
/// tensor's values under (the same one, or a wrong one), or None to drop the tensor.
pub fn rewrite_weights(src: &Path, dst: &Path, edit: impl Fn(&str, &[usize]) -> Option<Vec<usize>>) {
    let w = open(src);
    let kept: Vec<(String, Vec<usize>, Vec<f32>)> = w
        .names()
        .into_iter()
        .filter_map(|n| {
            let t = w.get_any_shape(n).unwrap();
            edit(n, t.shape()).map(|s| (n.to_string(), s, t.data().to_vec()))
        })
        .collect();
    let views: Vec<(String, Vec<usize>, &[f32])> =
        kept.iter().map(|(n, s, d)| (n.clone(), s.clone(), &d[..])).collect();
    w2vbert::output::write_safetensors(dst, &views).unwrap();
}

/// The CLI binary as a `Command`. Under emulation (`.ci/platforms.sh` runs the aarch64 suite under qemu-aarch64,
/// where the kernel cannot start an aarch64 binary by itself) `W2VBERT_CLI_RUNNER` names the emulator command,
/// e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`, and the binary is started through it, as cargo's `runner`
/// starts the test binaries.
pub fn cli() -> std::process::Command {
    let exe = env!("CARGO_BIN_EXE_w2vbert-infer");
    match std::env::var("W2VBERT_CLI_RUNNER") {
        Ok(r) if !r.trim().is_empty() => {
            let mut words = r.split_whitespace();
            let mut c = std::process::Command::new(words.next().unwrap());
            c.args(words).arg(exe);
            c
        }
        _ => std::process::Command::new(exe),
    }
}
