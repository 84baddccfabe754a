//! The fuzz entry points, one per input format. Shared by the cargo-fuzz targets (`fuzz_targets/*.rs`,
//! nightly) and the corpus replay test (`tests/fuzz_corpus.rs`, stable CI): the same code reads the same bytes.
//!
//! Each entry must return normally for every input: an `Err` is the expected answer to bad bytes, and a panic,
//! hang or allocation out of proportion to the input is a bug. Where an input is accepted, the entry also
//! checks the invariants the rest of the engine relies on (shapes agree with data, masks with rows).

#![allow(dead_code)]

use std::path::Path;
use w2vbert::audio::{self, Preprocess, FEATURE_DIM};
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::stats::SemanticStats;
use w2vbert::weights::Weights;

/// Every message is rendered too: formatting an error must not panic either.
fn render<T>(r: w2vbert::Result<T>) -> Option<T> {
    r.map_err(|e| e.to_string()).ok()
}

/// A safetensors file: header validation, then every tensor through both accessors, then a miss (the
/// closest-name hint).
pub fn weights(data: &[u8]) {
    let Some(w) = render(Weights::from_bytes(Path::new("fuzz.safetensors"), data)) else {
        return;
    };
    let _ = w.storage_dtype();
    let _ = w.metadata();
    let names: Vec<String> = w.names().iter().map(|s| s.to_string()).collect();
    for name in &names {
        let shape = w.shape(name).expect("listed name has a shape").to_vec();
        if let Some(t) = render(w.get(name, &shape)) {
            assert_eq!(t.shape(), &shape[..]);
            assert_eq!(t.data().len(), shape.iter().product::<usize>());
        }
        if let Some(t) = render(w.get_any_shape(name)) {
            assert_eq!(t.data().len(), t.len());
        }
        let mut wrong = shape.clone();
        wrong.push(1);
        assert!(w.get(name, &wrong).is_err());
    }
    assert!(render(w.get_any_shape("encoder.layers.0.ffn1.intermediate_dense.weight_x")).is_none());
}

/// `config.json` text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(cfg) = render(Wav2Vec2BertConfig::from_json_str(text, Path::new("config.json"))) {
        assert!(cfg.head_dim() * cfg.num_attention_heads == cfg.hidden_size);
        let _ = cfg.num_relative_positions();
    }
}

/// A stats safetensors file, loaded at the dimension its `mean` claims (or 4), then applied to two rows.
pub fn stats(data: &[u8]) {
    let Some(w) = render(Weights::from_bytes(Path::new("stats.safetensors"), data)) else {
        return;
    };
    let dim = match w.shape("mean") {
        Some([d]) => *d,
        _ => 4,
    };
    if let Some(s) = render(SemanticStats::from_weights(&w, dim)) {
        assert_eq!((s.mean().len(), s.std().len()), (dim, dim));
        assert!(s.std().iter().all(|&v| v.is_finite() && v > 0.0));
        // Bounded by the file's own size (the tensors are in it): 2 rows.
        let mut h = vec![0.5f32; 2 * dim];
        s.normalize_inplace(&mut h);
    }
}

/// An audio file up to the fbank. The first byte chooses the name's extension (the format hint) and the
/// preprocessing; the rest is the file.
pub fn audio(data: &[u8]) {
    let Some((&sel, file)) = data.split_first() else {
        return;
    };
    let ext = ["wav", "flac", "mp3", "ogg"][(sel & 3) as usize];
    let pre = if sel & 4 == 0 {
        Preprocess::Direct16k
    } else {
        Preprocess::Indextts2SpeakerPrompt
    };
    let name = format!("fuzz.{ext}");
    if let Some(f) = render(audio::features_from_bytes(file.to_vec(), Path::new(&name), pre)) {
        assert_eq!(f.data.len(), f.t * FEATURE_DIM);
        assert_eq!(f.mask.len(), f.t);
        assert_eq!(f.t, f.fbank_frames.div_ceil(2));
        assert!(f.data.iter().all(|v| v.is_finite()));
    }
}
