//! End-to-end benches: one conformer layer at the real size (d = 1024, 16 heads, FFN 4096) on T = 500 frames
//! (10 s of audio), and the whole CLI pipeline (wav → semantic features) on the shipped tiny checkpoint.
//!
//! The real-size layers use seeded random weights written to a temporary safetensors file at start-up (timing
//! does not depend on the values). `cargo bench --bench encoder`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::model::Wav2Vec2BertModel;
use w2vbert::weights::Weights;

/// Names and shapes of the real checkpoint's first `layers` layers (SPEC §3).
fn tensor_list(cfg: &Wav2Vec2BertConfig, layers: usize) -> Vec<(String, Vec<usize>)> {
    let (d, f, i, k) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.feature_projection_input_dim,
        cfg.conv_depthwise_kernel_size,
    );
    let mut v = vec![
        ("feature_projection.layer_norm.weight".to_string(), vec![i]),
        ("feature_projection.layer_norm.bias".to_string(), vec![i]),
        ("feature_projection.projection.weight".to_string(), vec![d, i]),
        ("feature_projection.projection.bias".to_string(), vec![d]),
    ];
    for l in 0..layers {
        let p = format!("encoder.layers.{l}.");
        for ln in [
            "ffn1_layer_norm",
            "self_attn_layer_norm",
            "conv_module.layer_norm",
            "conv_module.depthwise_layer_norm",
            "ffn2_layer_norm",
            "final_layer_norm",
        ] {
            v.push((format!("{p}{ln}.weight"), vec![d]));
            v.push((format!("{p}{ln}.bias"), vec![d]));
        }
        for ffn in ["ffn1", "ffn2"] {
            v.push((format!("{p}{ffn}.intermediate_dense.weight"), vec![f, d]));
            v.push((format!("{p}{ffn}.intermediate_dense.bias"), vec![f]));
            v.push((format!("{p}{ffn}.output_dense.weight"), vec![d, f]));
            v.push((format!("{p}{ffn}.output_dense.bias"), vec![d]));
        }
        for lin in ["linear_q", "linear_k", "linear_v", "linear_out"] {
            v.push((format!("{p}self_attn.{lin}.weight"), vec![d, d]));
            v.push((format!("{p}self_attn.{lin}.bias"), vec![d]));
        }
        v.push((
            format!("{p}self_attn.distance_embedding.weight"),
            vec![cfg.num_relative_positions(), cfg.head_dim()],
        ));
        v.push((format!("{p}conv_module.pointwise_conv1.weight"), vec![2 * d, d, 1]));
        v.push((format!("{p}conv_module.depthwise_conv.weight"), vec![d, 1, k]));
        v.push((format!("{p}conv_module.pointwise_conv2.weight"), vec![d, d, 1]));
    }
    v
}

/// Deterministic values in [-0.5, 0.5) · scale (xorshift), scaled by 1/sqrt(fan-in) for matrices.
fn fill(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect()
}

fn real_size_model(dir: &Path, layers: usize) -> Wav2Vec2BertModel {
    let cfg = Wav2Vec2BertConfig::default();
    let list = tensor_list(&cfg, layers);
    let data: Vec<Vec<f32>> = list
        .iter()
        .enumerate()
        .map(|(j, (name, shape))| {
            let n = shape.iter().product();
            if name.contains("layer_norm.weight") {
                vec![1.0; n]
            } else {
                fill(
                    n,
                    j as u64 + 1,
                    2.0 / (shape[1..].iter().product::<usize>() as f32).sqrt(),
                )
            }
        })
        .collect();
    let views: Vec<(String, Vec<usize>, &[f32])> = list
        .iter()
        .zip(&data)
        .map(|((n, s), d)| (n.clone(), s.clone(), &d[..]))
        .collect();
    let path = dir.join("model.safetensors");
    w2vbert::output::write_safetensors(&path, &views).unwrap();
    let w = Weights::open(&path).unwrap();
    Wav2Vec2BertModel::from_weights(cfg, &w, layers).unwrap()
}

fn encoder(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let model = real_size_model(dir.path(), 2);
    let mut g = c.benchmark_group("encoder_real_size");
    g.sample_size(10);
    for t in [250usize, 500] {
        let feats = fill(t * 160, 7, 2.0);
        let mask = vec![true; t];
        g.throughput(Throughput::Elements(t as u64));
        g.bench_function(format!("feature_projection_plus_1_layer_t{t}"), |b| {
            b.iter(|| model.forward(&feats, &mask, t, &[1]).unwrap())
        });
        g.bench_function(format!("feature_projection_plus_2_layers_t{t}"), |b| {
            b.iter(|| model.forward(&feats, &mask, t, &[2]).unwrap())
        });
    }
    g.finish();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ex = w2vbert::pipeline::Extractor::load(
        &root.join("checkpoints/tiny-random"),
        &w2vbert::pipeline::Request::semantic(),
        None,
    )
    .unwrap();
    let wav = root.join("tests/fixtures/audio/arctic_a0007.wav");
    c.bench_function("pipeline_tiny_random_arctic_4s", |b| {
        b.iter(|| ex.run_file(&wav).unwrap())
    });
}

criterion_group!(benches, encoder);
criterion_main!(benches);
