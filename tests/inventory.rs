//! `model::inventory` is the list `inspect` checks a checkpoint against: the shipped checkpoint holds every
//! tensor on it with the listed shape, a file holding exactly those tensors loads and runs, and a file missing
//! any one of them is refused naming it.

mod common;

use common::*;
use std::collections::BTreeMap;
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::model::inventory::{feature_projection_tensors, layer_tensors};
use w2vbert::pipeline::{Extractor, Request};

#[test]
fn a_file_with_exactly_the_inventory_loads_and_one_missing_tensor_is_named() {
    let tiny = repo().join("checkpoints/tiny-random");
    let cfg = Wav2Vec2BertConfig::load(&tiny.join("config.json")).unwrap();
    let mut listed: BTreeMap<String, Vec<usize>> = feature_projection_tensors(&cfg).into_iter().collect();
    for i in 0..cfg.num_hidden_layers {
        listed.extend(layer_tensors(&cfg, i));
    }
    let w = open(&tiny.join("model.safetensors"));
    for (name, shape) in &listed {
        assert_eq!(w.shape(name), Some(&shape[..]), "{name}");
    }
    let ck = tempfile::tempdir().unwrap();
    std::fs::copy(tiny.join("config.json"), ck.path().join("config.json")).unwrap();
    let weights = ck.path().join("model.safetensors");
    rewrite_weights(&tiny.join("model.safetensors"), &weights, |n, s| {
        listed.contains_key(n).then(|| s.to_vec())
    });
    assert_eq!(open(&weights).len(), listed.len());
    let all = Request::from_layers(&[cfg.num_hidden_layers], false).unwrap();
    let ex = Extractor::load(ck.path(), &all, None).unwrap();
    let out = ex.run_file(&fixture("audio/arctic_a0007.wav")).unwrap();
    assert_eq!(out.hidden_states[0].1.len(), out.t * cfg.hidden_size);
    // Every listed tensor is needed: drop one (the last layer's), and loading all layers names it.
    let dropped = layer_tensors(&cfg, cfg.num_hidden_layers - 1).pop().unwrap().0;
    rewrite_weights(&tiny.join("model.safetensors"), &weights, |n, s| {
        (listed.contains_key(n) && n != dropped).then(|| s.to_vec())
    });
    let e = Extractor::load(ck.path(), &all, None).err().unwrap().to_string();
    assert!(e.contains(&dropped) && e.contains("model.safetensors"), "{e}");
}
