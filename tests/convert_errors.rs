//! `convert`'s failures: a missing or misshapen source tensor, an f16 overflow midway, an existing output without
//! `--force` (and foreign files, never replaced), an unwritable path, bad layer counts, missing stats, a bad
//! `--dtype`, a trimmed checkpoint asked for a dropped layer: each an error naming the file and the tensor or
//! field, and nothing left at the output path (no partial checkpoint, no temporary directory beside it).
//!
//! Sources: checkpoints/tiny-random and copies of tests/fixtures/encoder/h64 with one tensor edited.

mod common;

use common::convert::*;
use common::*;
use std::path::Path;
use w2vbert::convert::{convert, ConvertOptions, OutDtype, StatsChoice};
use w2vbert::pipeline::{Extractor, Request};

#[test]
fn asking_a_trimmed_checkpoint_for_a_dropped_layer_is_a_clear_error() {
    let (_tmp, out) = converted(&tiny(), &opts(17, OutDtype::F32));
    let request = Request {
        hidden_states: vec![24],
        normalized: None,
    };
    let err = Extractor::load(&out, &request, None).err().unwrap().to_string();
    assert!(
        err.contains("hidden_states[24]") && err.contains("num_hidden_layers = 17"),
        "{err}"
    );
}

/// A copy of h64 whose `model.safetensors` is rewritten by `edit` (name → (dtype, shape, bytes)).
fn h64_copy_with(edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>)) -> tempfile::TempDir {
    let src = fixture("encoder/h64");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.path().join("model.safetensors")).unwrap();
    dir
}

/// Nothing at `out`, and no temporary directory left beside it.
fn assert_nothing_written(out: &Path) {
    assert!(!out.exists(), "{} was created", out.display());
    let parent = out.parent().unwrap();
    if parent.exists() {
        let left: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind in {}: {left:?}", parent.display());
    }
}

#[test]
fn missing_or_misshapen_source_tensor_is_an_error_naming_file_and_tensor() {
    let gone = "encoder.layers.1.conv_module.depthwise_conv.weight";
    let src = h64_copy_with(|t| t.retain(|(n, ..)| n != gone));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sub").join("out");
    let err = convert(src.path(), &out, &opts(2, OutDtype::F16))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(gone) && err.contains("model.safetensors") && err.contains("missing"),
        "{err}"
    );
    assert!(!out.exists() && !out.parent().unwrap().exists());
    // Keeping only layer 0 does not need it.
    convert(src.path(), &out, &opts(1, OutDtype::F16)).unwrap();

    let bad = "encoder.layers.0.self_attn.linear_q.bias";
    let src = h64_copy_with(|t| {
        let e = t.iter_mut().find(|(n, ..)| n == bad).unwrap();
        e.2 = vec![64];
        e.3.truncate(64 * 4);
    });
    let out = tmp.path().join("out2");
    let err = convert(src.path(), &out, &opts(1, OutDtype::F32))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(bad) && err.contains("[128]") && err.contains("[64]"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn f16_overflow_fails_midway_and_leaves_no_partial_checkpoint() {
    // The last projection matrix in name order (the ones written in f16) gets a value past f16's range: the error
    // comes while writing, after earlier tensors are already on disk in the temporary directory.
    let last = "encoder.layers.2.self_attn.linear_v.weight";
    let src = h64_copy_with(|t| {
        let e = t.iter_mut().find(|(n, ..)| n == last).unwrap();
        e.3[4..8].copy_from_slice(&1.0e6f32.to_le_bytes());
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let err = convert(src.path(), &out, &opts(3, OutDtype::F16))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(last) && err.contains("overflows f16") && err.contains("index 1"),
        "{err}"
    );
    assert_nothing_written(&out);
    // bf16 has f32's range.
    convert(src.path(), &out, &opts(3, OutDtype::Bf16)).unwrap();
}

#[test]
fn existing_output_needs_force_and_foreign_files_are_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    convert(&tiny(), &out, &opts(17, OutDtype::F16)).unwrap();
    let err = convert(&tiny(), &out, &opts(17, OutDtype::Bf16))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--force") && err.contains("already holds a checkpoint"),
        "{err}"
    );
    assert_eq!(
        open(&out.join("model.safetensors")).storage_dtype(),
        Some(safetensors::Dtype::F16)
    );

    let forced = ConvertOptions {
        force: true,
        ..opts(17, OutDtype::Bf16)
    };
    convert(&tiny(), &out, &forced).unwrap();
    assert_eq!(
        open(&out.join("model.safetensors")).storage_dtype(),
        Some(safetensors::Dtype::BF16)
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["out"], "nothing left beside the output");

    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let err = convert(&tiny(), &out, &forced).unwrap_err().to_string();
    assert!(err.contains("notes.txt") && err.contains("refusing"), "{err}");
    assert!(out.join("notes.txt").exists());

    // An empty directory is simply filled.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    convert(&tiny(), &empty, &opts(17, OutDtype::F32)).unwrap();
    assert!(empty.join("model.safetensors").is_file());

    // Never onto the source.
    let err = convert(&out, &out, &forced).unwrap_err().to_string();
    assert!(err.contains("is the source checkpoint"), "{err}");
}

#[test]
fn unwritable_output_is_an_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("out");
    let err = convert(&tiny(), &out, &opts(17, OutDtype::F32))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn bad_layer_counts_and_missing_stats_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for layers in [0, 25] {
        let err = convert(&tiny(), &out, &opts(layers, OutDtype::F32))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("num_hidden_layers = 24") && err.contains("config.json"),
            "{err}"
        );
    }
    // A 17-layer conversion of a source without stats must be told what to do.
    let src = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(tiny().join(f), src.path().join(f)).unwrap();
    }
    let err = convert(src.path(), &out, &opts(17, OutDtype::F32)).unwrap_err();
    assert!(matches!(err, w2vbert::Error::NotFound { .. }), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("wav2vec2bert_stats.safetensors") && err.contains("stats_pt_to_safetensors.py"),
        "{err}"
    );
    let no_stats = ConvertOptions {
        stats: StatsChoice::Omit,
        ..opts(17, OutDtype::F32)
    };
    let s = convert(src.path(), &out, &no_stats).unwrap();
    assert!(s.stats_from.is_none() && !out.join("wav2vec2bert_stats.safetensors").exists());
    // Bad stats are caught before anything is written.
    std::fs::write(src.path().join("bad_stats.safetensors"), b"not safetensors").unwrap();
    let out2 = tmp.path().join("out2");
    let bad = ConvertOptions {
        stats: StatsChoice::File(src.path().join("bad_stats.safetensors")),
        ..opts(17, OutDtype::F32)
    };
    let err = convert(src.path(), &out2, &bad).unwrap_err().to_string();
    assert!(err.contains("bad_stats.safetensors"), "{err}");
    assert!(!out2.exists());
}

#[test]
fn cli_convert_rejects_a_bad_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ck");
    let o = cli()
        .args(["convert", "--checkpoint"])
        .arg(tiny())
        .args(["--dtype", "f64", "--output-dir"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("f64") && stderr.contains("f32, f16 or bf16"),
        "{stderr}"
    );
    assert!(!out.exists());
}
