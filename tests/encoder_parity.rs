//! The encoder against Hugging Face transformers 4.52.1, hidden state by hidden state.
//!
//! Goldens: `scripts/make_encoder_goldens.py` (seeded random weights with non-trivial LayerNorms and distance
//! embeddings of std 1, real speech from tests/fixtures/audio). Each hidden state must be within relative L2
//! 1e-5 of HF; a failure names the first hidden state that diverges and prints the whole table.

mod common;

use common::*;
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::model::Wav2Vec2BertModel;

const TOL: f64 = 1e-5;

struct Row {
    case: String,
    k: usize,
    rel: f64,
    max_abs: f64,
}

fn load(dir: &str) -> (Wav2Vec2BertModel, w2vbert::weights::Weights) {
    let d = fixture(&format!("encoder/{dir}"));
    let cfg = Wav2Vec2BertConfig::load(&d.join("config.json")).unwrap();
    let n = cfg.num_hidden_layers;
    let w = open(&d.join("model.safetensors"));
    let model = Wav2Vec2BertModel::from_weights(cfg, &w, n).unwrap();
    (model, open(&d.join("golden.safetensors")))
}

fn ks_in(golden: &w2vbert::weights::Weights, case: &str, max_k: usize) -> Vec<usize> {
    (0..=max_k)
        .filter(|k| golden.contains(&format!("{case}.hidden_states.{k}")))
        .collect()
}

fn mask_of(golden: &w2vbert::weights::Weights, case: &str) -> Vec<bool> {
    golden_mask(&golden_tensor(golden, &format!("{case}.mask")).0)
}

fn golden_tensor(golden: &w2vbert::weights::Weights, name: &str) -> (Vec<f32>, Vec<usize>) {
    common::golden(golden, name)
}

fn golden_mask(m: &[f32]) -> Vec<bool> {
    m.iter().map(|&v| v != 0.0).collect()
}

/// Compare every hidden state of every case in a golden file; returns the table.
fn check_config(dir: &str) -> Vec<Row> {
    let (model, golden) = load(dir);
    let d = model.config.hidden_size;
    let mut rows = Vec::new();
    for case in ["single_even", "single_odd", "batch"] {
        if !golden.contains(&format!("{case}.input_features")) {
            continue;
        }
        let (feats, shape) = golden_tensor(&golden, &format!("{case}.input_features"));
        let mask = mask_of(&golden, case);
        let ks = ks_in(&golden, case, model.max_hidden_state());
        assert!(!ks.is_empty(), "{dir}/{case}: golden has no hidden states");
        let (b, t) = if shape.len() == 3 {
            (shape[0], shape[1])
        } else {
            (1, shape[0])
        };
        let ours = model.forward_batch(&feats, &mask, b, t, &ks).unwrap();
        for (j, &k) in ks.iter().enumerate() {
            let (want, wshape) = golden_tensor(&golden, &format!("{case}.hidden_states.{k}"));
            assert_eq!(
                wshape.iter().product::<usize>(),
                b * t * d,
                "{dir}/{case}: golden shape {wshape:?}"
            );
            let got: Vec<f32> = ours.iter().flat_map(|per_utt| per_utt[j].iter().copied()).collect();
            rows.push(Row {
                case: format!("{dir}/{case}"),
                k,
                rel: rel_l2(&got, &want),
                max_abs: max_abs(&got, &want),
            });
        }
    }
    rows
}

fn assert_rows(rows: &[Row]) {
    let table: String = rows
        .iter()
        .map(|r| {
            format!(
                "  {:<24} hidden_states[{:>2}]  rel L2 {:.2e}  max-abs {:.2e}\n",
                r.case, r.k, r.rel, r.max_abs
            )
        })
        .collect();
    println!("{table}");
    if let Some(first) = rows.iter().find(|r| r.rel.is_nan() || r.rel > TOL) {
        panic!(
            "{}: first divergence at hidden_states[{}] (the output of encoder.layers[{}]): rel L2 {:.3e} > {TOL:e}\n{table}",
            first.case,
            first.k,
            first.k as i64 - 1,
            first.rel
        );
    }
}

#[test]
fn head_size_64_three_layers_f32_matches_hf() {
    assert_rows(&check_config("h64"));
}

#[test]
fn head_size_24_custom_clamp_bf16_matches_hf() {
    assert_rows(&check_config("h24"));
}

#[test]
fn shipped_tiny_random_24_layers_f16_matches_hf() {
    // The checkpoint the README's run command uses (checkpoints/tiny-random); its golden sits in the fixtures.
    let ck = repo().join("checkpoints/tiny-random");
    let cfg = Wav2Vec2BertConfig::load(&ck.join("config.json")).unwrap();
    let w = open(&ck.join("model.safetensors"));
    let model = Wav2Vec2BertModel::from_weights(cfg, &w, 24).unwrap();
    let golden = open(&fixture("encoder/tiny-random/golden.safetensors"));
    let mut rows = Vec::new();
    for case in ["single_even", "single_odd"] {
        let (feats, shape) = golden_tensor(&golden, &format!("{case}.input_features"));
        let mask = mask_of(&golden, case);
        let ks = ks_in(&golden, case, 24);
        let ours = model.forward(&feats, &mask, shape[0], &ks).unwrap();
        for (j, &k) in ks.iter().enumerate() {
            let (want, _) = golden_tensor(&golden, &format!("{case}.hidden_states.{k}"));
            rows.push(Row {
                case: format!("tiny-random/{case}"),
                k,
                rel: rel_l2(&ours[j], &want),
                max_abs: max_abs(&ours[j], &want),
            });
        }
    }
    assert_rows(&rows);
}

#[test]
fn odd_frame_count_has_a_masked_last_row_that_is_still_output() {
    let (model, golden) = load("h64");
    let mask = mask_of(&golden, "single_odd");
    assert!(!mask[mask.len() - 1] && mask[..mask.len() - 1].iter().all(|&m| m));
    let (feats, shape) = golden_tensor(&golden, "single_odd.input_features");
    let out = model.forward(&feats, &mask, shape[0], &[3]).unwrap();
    assert_eq!(out[0].len(), shape[0] * model.config.hidden_size);
}

#[test]
fn padded_batch_rows_equal_each_utterance_alone() {
    let (model, golden) = load("h64");
    let d = model.config.hidden_size;
    let fin = model.config.feature_projection_input_dim;
    let (feats, shape) = golden_tensor(&golden, "batch.input_features");
    let mask = mask_of(&golden, "batch");
    let (b, t) = (shape[0], shape[1]);
    let batch = model.forward_batch(&feats, &mask, b, t, &[3]).unwrap();
    let mut saw_padding = false;
    for i in 0..b {
        let m = &mask[i * t..(i + 1) * t];
        let valid = m.iter().take_while(|&&x| x).count();
        saw_padding |= valid < t;
        let alone = model
            .forward(&feats[i * t * fin..(i * t + valid) * fin], &m[..valid], valid, &[3])
            .unwrap();
        let rel = rel_l2(&batch[i][0][..valid * d], &alone[0]);
        assert!(
            rel <= TOL,
            "utterance {i}: padded-batch rows differ from alone by rel L2 {rel:.2e}"
        );
    }
    assert!(saw_padding, "the batch golden must contain padding");
}

#[test]
fn only_the_requested_layers_are_needed() {
    // hidden_states[2] from a model holding 2 layers equals hidden_states[2] of the full model, and asking for a
    // deeper state than loaded is an error, not a silent shorter run.
    let d = fixture("encoder/h64");
    let cfg = Wav2Vec2BertConfig::load(&d.join("config.json")).unwrap();
    let w = open(&d.join("model.safetensors"));
    let two = Wav2Vec2BertModel::from_weights(cfg.clone(), &w, 2).unwrap();
    let all = Wav2Vec2BertModel::from_weights(cfg, &w, 3).unwrap();
    assert_eq!(two.layers.len(), 2);
    let golden = open(&d.join("golden.safetensors"));
    let (feats, shape) = golden_tensor(&golden, "single_even.input_features");
    let mask = mask_of(&golden, "single_even");
    let a = two.forward(&feats, &mask, shape[0], &[2]).unwrap();
    let b = all.forward(&feats, &mask, shape[0], &[2]).unwrap();
    assert_eq!(a, b);
    let err = two.forward(&feats, &mask, shape[0], &[3]).unwrap_err().to_string();
    assert!(err.contains("hidden_states[3]"), "{err}");
}

#[test]
fn output_is_identical_for_any_thread_count() {
    // 2100 frames (the utterance repeated) so that every kernel takes its parallel path: LayerNorm and the
    // depthwise conv split rows/time across threads above their size thresholds, gemm splits its blocks.
    let (model, golden) = load("h64");
    let (feats, shape) = golden_tensor(&golden, "single_even.input_features");
    let t = 2100;
    let feats: Vec<f32> = feats.iter().copied().cycle().take(t * shape[1]).collect();
    let mask = vec![true; t];
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| model.forward(&feats, &mask, t, &[3]).unwrap())
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(
            one == run(threads),
            "hidden_states[3] differs between 1 and {threads} threads"
        );
    }
}
