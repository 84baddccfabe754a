//! `convert`: trimmed / f16 / bf16 checkpoints. An f32 conversion computes bit-identical hidden states (and
//! semantic features) to the full source; f16 / bf16 ones stay within stated bounds of f32; the file holds
//! exactly the tensors the loader needs. Its failures (an error naming the file / tensor, nothing left at the
//! output path): convert_errors.rs.
//!
//! Sources: checkpoints/tiny-random (24 layers, F16 storage, stats), tests/fixtures/encoder/h64 (3 layers, F32)
//! and h24 (3 layers, BF16), with the golden files' input features (`single_odd`: odd length, padded last row).

mod common;

use common::convert::*;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::convert::{encoder_tensors, OutDtype};
use w2vbert::model::inventory::is_layer_projection;
use w2vbert::model::{Precision, Wav2Vec2BertModel};
use w2vbert::pipeline::{Extractor, Request};
use w2vbert::weights::Weights;

/// The `single_odd` input of a golden file: features [t, 160] and mask [t].
fn input(golden_dir: &str) -> (Vec<f32>, Vec<bool>, usize) {
    let g = open(&fixture(&format!("encoder/{golden_dir}/golden.safetensors")));
    let (x, shape) = golden(&g, "single_odd.input_features");
    let (m, _) = golden(&g, "single_odd.mask");
    assert!(m.contains(&0.0), "the case should have a padded row");
    (x, m.iter().map(|&v| v != 0.0).collect(), shape[0])
}

/// Hidden states 0..=layers of the checkpoint in `dir`, loading only `layers` layers.
fn hidden_states(dir: &Path, layers: usize, golden_dir: &str) -> Vec<Vec<f32>> {
    let model = Wav2Vec2BertModel::load(dir, layers).unwrap_or_else(|e| panic!("{e}"));
    let (x, mask, t) = input(golden_dir);
    let wanted: Vec<usize> = (0..=layers).collect();
    model.forward(&x, &mask, t, &wanted).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A 16-bit conversion writes the layers' projection matrices in `dtype` (10 per layer) and every other tensor
/// in f32.
fn assert_dtypes(w: &Weights, dtype: OutDtype) {
    let mut projections = 0;
    for n in w.names() {
        let want = if is_layer_projection(n) {
            projections += 1;
            dtype.dtype()
        } else {
            safetensors::Dtype::F32
        };
        assert_eq!(w.dtype(n), Some(want), "{n}");
    }
    let layers: usize = w.metadata().unwrap()["w2vbert.layers"].parse().unwrap();
    assert_eq!(projections, 10 * layers);
}

#[test]
fn encoder_tensor_list_is_the_hf_checkpoint_minus_spec_augment() {
    // tiny-random was saved by transformers 4.52.1 (scripts/): its names and shapes for all 24 layers are
    // exactly encoder_tensors() plus the SpecAugment `masked_spec_embed`.
    let cfg = Wav2Vec2BertConfig::load(&tiny().join("config.json")).unwrap();
    let w = open(&tiny().join("model.safetensors"));
    let mut want: BTreeSet<(String, Vec<usize>)> = encoder_tensors(&cfg, 24).into_iter().collect();
    want.insert(("masked_spec_embed".into(), vec![cfg.hidden_size]));
    let have: BTreeSet<(String, Vec<usize>)> = w
        .names()
        .into_iter()
        .map(|n| (n.to_string(), w.shape(n).unwrap().to_vec()))
        .collect();
    assert_eq!(have, want);
}

#[test]
fn f32_conversion_is_bit_identical_to_the_full_checkpoint() {
    // F16, F32 and BF16 sources: widening is exact and F32 is copied byte for byte.
    for (src, golden_dir, layers) in [
        (tiny(), "tiny-random", 17),
        (fixture("encoder/h64"), "h64", 2),
        (fixture("encoder/h24"), "h24", 3),
    ] {
        let (_tmp, out) = converted(&src, &opts(layers, OutDtype::F32));
        let full = hidden_states(&src, layers, golden_dir);
        let trimmed = hidden_states(&out, layers, golden_dir);
        for (k, (a, b)) in full.iter().zip(&trimmed).enumerate() {
            assert!(bits(a) == bits(b), "{}: hidden_states[{k}] differs", src.display());
        }
    }
}

#[test]
fn same_dtype_conversion_copies_bytes_and_semantic_features_are_bit_identical() {
    // tiny-random is stored in F16: an f16 conversion is a byte copy, an f32 one an exact widening. Both give
    // the full checkpoint's semantic features bit for bit, through the pipeline and its default stats file.
    let request = Request {
        hidden_states: (0..=17).collect(),
        normalized: Some(17),
    };
    let (x, mask, t) = input("tiny-random");
    let f = w2vbert::audio::Features {
        data: x,
        mask,
        t,
        fbank_frames: 2 * t - 1,
    };
    let want = Extractor::load(&tiny(), &request, None).unwrap().run(&f).unwrap();
    for dtype in [OutDtype::F32, OutDtype::F16] {
        let (_tmp, out) = converted(&tiny(), &opts(17, dtype));
        let got = Extractor::load(&out, &request, None).unwrap().run(&f).unwrap();
        assert!(bits(got.semantic.as_ref().unwrap()) == bits(want.semantic.as_ref().unwrap()));
        for ((k, a), (_, b)) in got.hidden_states.iter().zip(&want.hidden_states) {
            assert!(bits(a) == bits(b), "{dtype}: hidden_states[{k}] differs");
        }
    }
}

#[test]
fn bf16_conversion_under_bf16_precision_is_the_source_under_bf16_bit_for_bit() {
    // `--precision bf16` rounds the projections of any checkpoint to bf16 (nearest even) and holds the rest in
    // f32; a bf16 conversion stores exactly that, so it changes the load, not one output bit (F16, F32 and BF16
    // sources; whichever bf16 kernel this CPU takes).
    let request = Request {
        hidden_states: vec![0, 1, 2],
        normalized: None,
    };
    for (src, golden_dir) in [
        (tiny(), "tiny-random"),
        (fixture("encoder/h64"), "h64"),
        (fixture("encoder/h24"), "h24"),
    ] {
        let (x, mask, t) = input(golden_dir);
        let f = w2vbert::audio::Features {
            data: x,
            mask,
            t,
            fbank_frames: 2 * t - 1,
        };
        let run = |dir: &Path| {
            let ex = Extractor::load_with(dir, &request, None, Precision::Bf16).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                ex.precision(),
                Precision::Bf16,
                "{}: bf16 unavailable here",
                dir.display()
            );
            ex.run(&f).unwrap()
        };
        let want = run(&src);
        let (_tmp, out) = converted(&src, &opts(2, OutDtype::Bf16));
        let got = run(&out);
        for ((k, a), (_, b)) in got.hidden_states.iter().zip(&want.hidden_states) {
            assert!(bits(a) == bits(b), "{golden_dir}: hidden_states[{k}] differs");
        }
    }
}

/// Bounds for a 16-bit checkpoint against its f32 source at the deepest hidden state, on these small random
/// models (measured: see the printed table; README has the full-size figures).
const F16_REL_L2: f64 = 2e-3;
const BF16_REL_L2: f64 = 2e-2;
const MIN_COSINE_F16: f64 = 0.99999;
const MIN_COSINE_BF16: f64 = 0.9998;

#[test]
fn f16_and_bf16_conversions_stay_close_to_f32() {
    for (src, golden_dir, layers) in [
        (fixture("encoder/h64"), "h64", 3),
        (tiny(), "tiny-random", 17),
        (fixture("encoder/h24"), "h24", 3),
    ] {
        let reference = hidden_states(&src, layers, golden_dir);
        let want = &reference[layers];
        for (dtype, max_rel, min_cos) in [
            (OutDtype::F16, F16_REL_L2, MIN_COSINE_F16),
            (OutDtype::Bf16, BF16_REL_L2, MIN_COSINE_BF16),
        ] {
            let (_tmp, out) = converted(&src, &opts(layers, dtype));
            assert_dtypes(&open(&out.join("model.safetensors")), dtype);
            let got = &hidden_states(&out, layers, golden_dir)[layers];
            let (rel, mx, cos) = (rel_l2(got, want), max_abs(got, want), cosine(got, want));
            println!(
                "{golden_dir} {dtype} hidden_states[{layers}] vs source: rel L2 {rel:.2e}, max-abs {mx:.2e}, cosine {cos:.7}"
            );
            assert!(
                rel <= max_rel && cos >= min_cos,
                "{golden_dir} {dtype}: rel L2 {rel:.3e}, cosine {cos}"
            );
        }
    }
}

#[test]
fn trimmed_checkpoint_holds_exactly_the_needed_tensors_config_and_stats() {
    let (_tmp, out) = converted(&tiny(), &opts(17, OutDtype::Bf16));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["config.json", "model.safetensors", "wav2vec2bert_stats.safetensors"]
    );

    let src_cfg = Wav2Vec2BertConfig::load(&tiny().join("config.json")).unwrap();
    let cfg = Wav2Vec2BertConfig::load(&out.join("config.json")).unwrap();
    assert_eq!(cfg.num_hidden_layers, 17);
    assert_eq!(cfg.torch_dtype.as_deref(), Some("bfloat16"));
    assert_eq!(
        Wav2Vec2BertConfig {
            num_hidden_layers: 24,
            torch_dtype: None,
            ..cfg
        },
        src_cfg
    );

    let w = open(&out.join("model.safetensors"));
    let mut want: BTreeSet<(String, Vec<usize>)> = encoder_tensors(&src_cfg, 17).into_iter().collect();
    want.insert(("masked_spec_embed".into(), vec![64]));
    let have: BTreeSet<(String, Vec<usize>)> = w
        .names()
        .into_iter()
        .map(|n| (n.to_string(), w.shape(n).unwrap().to_vec()))
        .collect();
    assert_eq!(have, want);
    assert_dtypes(&w, OutDtype::Bf16);
    assert!(!w.contains("encoder.layers.17.final_layer_norm.weight"));
    let meta = w.metadata().unwrap();
    assert_eq!(meta["format"], "pt");
    assert_eq!(meta["w2vbert.layers"], "17");
    assert_eq!(meta["w2vbert.dtype"], "BF16");
    assert_eq!(meta["w2vbert.source_dtype"], "F16");
    assert_eq!(meta["w2vbert.source_layers"], "24");
    assert_eq!(meta["w2vbert.stats"], "wav2vec2bert_stats.safetensors");

    // The stats are the source's values, in f32.
    let s = open(&out.join("wav2vec2bert_stats.safetensors"));
    let src_s = open(&tiny().join("wav2vec2bert_stats.safetensors"));
    for name in ["mean", "var"] {
        assert_eq!(s.dtype(name), Some(safetensors::Dtype::F32));
        let a = s.get(name, &[64]).unwrap();
        let b = src_s.get(name, &[64]).unwrap();
        assert!(bits(a.data()) == bits(b.data()), "{name}");
    }
    // A task head's `wav2vec2_bert.` prefix would be removed; tiny-random has none, and none is added.
    assert!(w.names().iter().all(|n| !n.starts_with("wav2vec2_bert.")));
}

#[test]
fn dtype_names() {
    for (s, d) in [
        ("f32", OutDtype::F32),
        ("float16", OutDtype::F16),
        ("BF16", OutDtype::Bf16),
    ] {
        assert_eq!(s.parse::<OutDtype>().unwrap(), d);
    }
    let err = "f64".parse::<OutDtype>().unwrap_err();
    assert!(err.contains("f64") && err.contains("f32, f16 or bf16"), "{err}");
}

fn bin() -> Command {
    common::cli()
}

#[test]
fn cli_convert_then_infer_gives_the_same_semantic_features() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    let o = bin()
        .args(["convert", "--checkpoint"])
        .arg(tiny())
        .args(["--layers", "17", "--dtype", "f32", "--output-dir"])
        .arg(&ck)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("17 of 24 layers") && stderr.contains("stats:"),
        "{stderr}"
    );

    let wav = fixture("audio/arctic_a0007.wav");
    let mut outs = Vec::new();
    for (name, checkpoint) in [("full", tiny()), ("trimmed", ck.clone())] {
        let dir = tmp.path().join(name);
        let o = bin()
            .arg("--checkpoint")
            .arg(&checkpoint)
            .arg(&wav)
            .arg("--output-dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outs.push(w2vbert::output::read_npy(&dir.join("arctic_a0007.npy")).unwrap());
    }
    assert_eq!(outs[0].1, outs[1].1);
    assert!(bits(&outs[0].0) == bits(&outs[1].0));

    // Without --force the same command now fails, and says why.
    let o = bin()
        .args(["convert", "--checkpoint"])
        .arg(tiny())
        .arg("--output-dir")
        .arg(&ck)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
}

#[test]
fn converted_weights_reopen_with_the_reader_used_at_inference() {
    // The streaming writer's output passes every check of the reader (tiling, offsets, header alignment).
    let (_tmp, out) = converted(&fixture("encoder/h24"), &opts(3, OutDtype::F16));
    let w = Weights::open(&out.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(
        std::fs::read(out.join("model.safetensors")).unwrap()[..8]
            .try_into()
            .unwrap(),
    );
    assert_eq!(header_len % 8, 0);
    assert_eq!(w.len(), 4 + 3 * 32 + 1);
}

#[test]
fn converted_tensors_start_on_cache_lines() {
    // The data section starts 64-aligned and the tensors whose size is a multiple of 64 bytes come first, so
    // each of those (every projection weight) starts on a cache line: the bf16 kernels read it in place.
    for dtype in [OutDtype::Bf16, OutDtype::F32] {
        let (_tmp, out) = converted(&fixture("encoder/h24"), &opts(3, dtype));
        let w = Weights::open(&out.join("model.safetensors")).unwrap();
        let mut names = w.names();
        names.sort_by_key(|n| w.data_range(n).unwrap().start);
        let (mut ragged_seen, mut aligned) = (false, 0);
        for n in names {
            let r = w.data_range(n).unwrap();
            if r.len().is_multiple_of(64) {
                assert!(
                    !ragged_seen,
                    "{dtype:?}: {n} comes after a tensor whose size is not a multiple of 64"
                );
                assert_eq!(r.start % 64, 0, "{dtype:?}: {n} starts at byte {}", r.start);
                aligned += 1;
            } else {
                ragged_seen = true;
            }
        }
        // The fixture has both kinds (24-wide: a [24, 24] bf16 weight is 1152 bytes, a [24] bias 48).
        assert!(
            aligned > 0 && ragged_seen,
            "{dtype:?}: {aligned} 64-byte-multiple tensors"
        );
    }
}
