//! The corpus runner's test helpers: the CLI on the small checkpoint, its JSON summary, output trees, a small
//! mixed corpus.

use super::{fixture, repo};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    super::cli()
}

pub fn tiny() -> PathBuf {
    repo().join("checkpoints/tiny-random")
}

pub fn audio(name: &str) -> PathBuf {
    fixture(&format!("audio/{name}"))
}

pub fn infer(args: &[&str], out: &Path) -> Output {
    bin()
        .args([
            "--checkpoint",
            tiny().to_str().unwrap(),
            "--threads",
            "1",
            "--json",
            "--output-dir",
        ])
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Every file below `dir` but the run's index files: relative path → bytes.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for e in walk(dir) {
        let name = e.file_name().unwrap().to_string_lossy();
        if name.starts_with("w2vbert-index.shard-") || name == "index.jsonl" {
            continue;
        }
        let rel = e.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        match std::fs::read(&e) {
            Ok(bytes) => {
                out.insert(rel, bytes);
            }
            // While a run is writing, a temp file can be renamed between the listing and the read.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => panic!("{}: {err}", e.display()),
        }
    }
    out
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

/// A small corpus: same file names in different folders, nested folders, a hidden file and a non-audio file
/// (both ignored), mixed formats.
pub fn corpus() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for (src, dst) in [
        ("arctic_a0007.wav", "spk1/utt.wav"),
        ("dec_s24.wav", "spk2/utt.wav"),
        ("dec.flac", "spk2/deeper/x.flac"),
        ("dec.mp3", "spk3/y.mp3"),
        ("dec_f32.wav", "top.wav"),
        ("dec_u8.wav", ".hidden.wav"),
    ] {
        let to = p.join(dst);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(audio(src), &to).unwrap();
    }
    std::fs::write(p.join("spk1/notes.txt"), "not audio").unwrap();
    d
}

pub const CORPUS_OUTPUTS: [&str; 5] = [
    "spk1/utt.npy",
    "spk2/deeper/x.npy",
    "spk2/utt.npy",
    "spk3/y.npy",
    "top.npy",
];
