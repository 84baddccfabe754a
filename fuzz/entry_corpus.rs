//! Fuzz entry points for the corpus runner's readers (issue 7): the `.npy` reader and the complete-output
//! validators that decide what a resumed run skips, and the manifest parser. Shared by the cargo-fuzz targets
//! and `tests/fuzz_corpus.rs`, like `entry.rs`. These readers take paths, so each input is first written to a
//! per-process scratch file (tmpfs when /dev/shm exists).

#![allow(dead_code)]

use std::path::{Component, Path, PathBuf};
use w2vbert::{corpus, output};

/// `<scratch dir>/<name>` holding `data`; the directory is per process, reused across inputs.
fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("w2vbert-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// An `.npy` output: the header-only completeness check and the full reader must agree, and an accepted file
/// holds exactly the elements its shape claims.
pub fn npy(data: &[u8]) {
    let p = scratch("out.npy", data);
    let checked = output::check_npy(&p).map_err(|e| e.to_string());
    let read = output::read_npy(&p).map_err(|e| e.to_string());
    if let Ok((values, shape)) = &read {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        assert_eq!(
            n,
            Some(values.len()),
            "read_npy: shape {shape:?} for {} values",
            values.len()
        );
        assert_eq!(
            checked.as_ref().ok(),
            Some(shape),
            "read_npy accepted what check_npy refused"
        );
    }
    if let Ok(shape) = &checked {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        assert!(
            n.is_some_and(|n| n <= data.len() / 4),
            "check_npy: shape {shape:?} in {} bytes",
            data.len()
        );
    }
}

/// A `.safetensors` output's completeness check: accepted tensors fit in the file.
pub fn safetensors_check(data: &[u8]) {
    let p = scratch("out.safetensors", data);
    if let Ok(tensors) = output::check_safetensors(&p) {
        for (name, shape) in tensors {
            let n = shape.iter().try_fold(4usize, |a, &d| a.checked_mul(d));
            assert!(
                n.is_some_and(|n| n <= data.len()),
                "{name}: shape {shape:?} in {} bytes",
                data.len()
            );
        }
    }
}

/// A manifest (path list or fairseq TSV): every accepted entry's output file lies inside the output directory
/// (only plain names below it; `rel` itself may end in a name like `..` that the extension makes `...npy`).
pub fn manifest(data: &[u8]) {
    let p = scratch("list.tsv", data);
    let Ok(inputs) = corpus::read_manifest(&p, corpus::DEFAULT_MANIFEST_KEY) else {
        return;
    };
    let out_dir = Path::new("/out");
    for i in &inputs {
        let o = i.output_path(out_dir, "npy");
        let below = o.strip_prefix(out_dir).expect("output below the output dir");
        assert!(
            below.components().all(|c| matches!(c, Component::Normal(_))),
            "output {o:?} of {:?} is not plainly inside {out_dir:?}",
            i.path
        );
    }
}
