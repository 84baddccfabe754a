//! Packed batches (`forward_packed` / `Extractor::run_batch`): several utterances side by side in one
//! `[hidden, ΣT]` block must give, bit for bit, what each utterance gives alone (which `encoder_parity.rs` checks
//! against HF). Utterances are the goldens' real-speech features and slices of them: odd frame counts (a masked
//! last row), 1-frame and sub-kernel-length segments, and segments longer than an attention query block.

mod common;

use common::*;
use w2vbert::audio::Features;
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::model::Wav2Vec2BertModel;
use w2vbert::pipeline::{Extractor, Request};

/// (features [t, 160], mask [t]) cut from a golden file's single-utterance cases.
fn utterances(g: &w2vbert::weights::Weights) -> Vec<(Vec<f32>, Vec<bool>)> {
    let fin = 160;
    let mut all = Vec::new();
    for case in ["single_even", "single_odd"] {
        let (f, _) = golden(g, &format!("{case}.input_features"));
        let (m, _) = golden(g, &format!("{case}.mask"));
        let mask: Vec<bool> = m.iter().map(|&v| v != 0.0).collect();
        all.push((f.clone(), mask.clone()));
        // Slices: [start, end) rows; the last row of a slice ending at the real end keeps its mask.
        for (a, b) in [
            (0usize, 1usize),
            (3, 10),
            (17, 57),
            (40, 173.min(mask.len())),
            (60, mask.len()),
        ] {
            all.push((f[a * fin..b * fin].to_vec(), mask[a..b].to_vec()));
        }
    }
    all
}

fn check_model(model: &Wav2Vec2BertModel, golden: &w2vbert::weights::Weights, name: &str) {
    let utts = utterances(golden);
    let wanted: Vec<usize> = (0..=model.max_hidden_state()).collect();
    let alone: Vec<Vec<Vec<f32>>> = utts
        .iter()
        .map(|(f, m)| model.forward(f, m, m.len(), &wanted).unwrap())
        .collect();
    // The whole set in one pack, and a few sub-packs in other orders.
    let orders: Vec<Vec<usize>> = vec![
        (0..utts.len()).collect(),
        (0..utts.len()).rev().collect(),
        vec![1, 7, 2],
        vec![5],
    ];
    for order in orders {
        let refs: Vec<(&[f32], &[bool])> = order.iter().map(|&i| (&utts[i].0[..], &utts[i].1[..])).collect();
        let packed = model.forward_packed(&refs, &wanted).unwrap();
        assert_eq!(packed.len(), order.len());
        for (p, &i) in packed.iter().zip(&order) {
            for (j, &k) in wanted.iter().enumerate() {
                let (got, want) = (&p[j], &alone[i][j]);
                if utts[i].1.len() == 1 {
                    // A 1-frame utterance alone makes every projection a matrix·vector product, which gemm 0.19
                    // computes on its n = 1 (gemv) path with another summation order than its n ≥ 2 kernels (see
                    // `gemm_columns_do_not_depend_on_width` below): not bitwise, within f32 rounding of a k-term sum.
                    let rel = rel_l2(got, want);
                    assert!(
                        rel < 1e-5,
                        "{name}: 1-frame utterance {i}, hidden_states[{k}]: rel L2 {rel:e}"
                    );
                    continue;
                }
                assert!(
                    got == want,
                    "{name}: utterance {i} (t = {}) in pack {order:?}, hidden_states[{k}] differs from alone: \
                     max |diff| {:e}",
                    utts[i].1.len(),
                    max_abs(got, want)
                );
            }
        }
    }
}

#[test]
fn packed_equals_one_at_a_time_bitwise_h64_h24() {
    for dir in ["h64", "h24"] {
        let d = fixture(&format!("encoder/{dir}"));
        let cfg = Wav2Vec2BertConfig::load(&d.join("config.json")).unwrap();
        let n = cfg.num_hidden_layers;
        let model = Wav2Vec2BertModel::from_weights(cfg, &open(&d.join("model.safetensors")), n).unwrap();
        check_model(&model, &open(&d.join("golden.safetensors")), dir);
    }
}

#[test]
fn packed_equals_one_at_a_time_bitwise_tiny_random() {
    let model = Wav2Vec2BertModel::load(&repo().join("checkpoints/tiny-random"), 24).unwrap();
    check_model(
        &model,
        &open(&fixture("encoder/tiny-random/golden.safetensors")),
        "tiny-random",
    );
}

/// Why packing is bitwise: gemm's result for a column does not depend on how many other columns the rhs has nor
/// where the column sits, for any width ≥ 2 (checked at the full model's shapes, 1024/4096 × 1024/4096/160);
/// width 1 is the one exception (gemm's matrix·vector path).
#[test]
fn gemm_columns_do_not_depend_on_width() {
    use w2vbert::kernels::gemm;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    for (n, k) in [
        (1024usize, 160usize),
        (1024, 1024),
        (4096, 1024),
        (1024, 4096),
        (128, 160),
    ] {
        let w: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
        let cols = |x: &[f32], width: usize, off: usize, t: usize| -> Vec<f32> {
            let mut y = vec![0f32; n * width];
            let out = gemm::Epilogue::Accumulate { h: &mut y, scale: 0.5 };
            gemm::linear_cm(out, x, &w, None, n, k, width, gemm::Threads::Rayon(0));
            (0..n)
                .flat_map(|r| y[r * width + off..r * width + off + t].to_vec())
                .collect()
        };
        for (t, width, off) in [
            (2usize, 3usize, 1usize),
            (7, 250, 13),
            (199, 700, 301),
            (33, 1500, 1467),
        ] {
            let alone_x: Vec<f32> = (0..k * t).map(|_| rnd()).collect();
            let mut packed_x: Vec<f32> = (0..k * width).map(|_| rnd()).collect();
            for r in 0..k {
                packed_x[r * width + off..r * width + off + t].copy_from_slice(&alone_x[r * t..(r + 1) * t]);
            }
            assert!(
                cols(&packed_x, width, off, t) == cols(&alone_x, t, 0, t),
                "W [{n}, {k}]: {t} columns at offset {off} of {width} differ from the same columns alone"
            );
        }
    }
}

#[test]
fn run_batch_equals_run_with_normalization() {
    let ck = repo().join("checkpoints/tiny-random");
    let req = Request {
        hidden_states: vec![3, 17],
        normalized: Some(17),
    };
    // Stats: checkpoints/tiny-random/wav2vec2bert_stats.safetensors, found next to the weights.
    let ex = Extractor::load(&ck, &req, None).unwrap_or_else(|e| panic!("{e}"));
    let utts = utterances(&open(&fixture("encoder/tiny-random/golden.safetensors")));
    let feats: Vec<Features> = utts
        .iter()
        .map(|(f, m)| Features {
            data: f.clone(),
            t: m.len(),
            mask: m.clone(),
            fbank_frames: 2 * m.len(),
        })
        .collect();
    let batch = ex.run_batch(&feats).unwrap();
    assert_eq!(batch.len(), feats.len());
    for (i, (b, f)) in batch.iter().zip(&feats).enumerate() {
        let one = ex.run(f).unwrap();
        assert_eq!(b.t, one.t);
        assert_eq!(b.mask, one.mask);
        assert!(b.semantic.is_some());
        if f.t == 1 {
            continue; // gemm's n = 1 path: see packed_equals_one_at_a_time_bitwise_*
        }
        assert!(b.semantic == one.semantic, "utterance {i}: semantic differs");
        assert!(
            b.hidden_states == one.hidden_states,
            "utterance {i}: hidden states differ"
        );
    }
    assert!(ex.run_batch(&[]).unwrap().is_empty());
}
