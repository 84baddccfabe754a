//! End-to-end benches: one conformer layer at the real size (d = 1024, 16 heads, FFN 4096) on T = 500 frames
//! (10 s of audio), and the whole CLI pipeline (wav → semantic features) on the shipped tiny checkpoint.
//!
//! The real-size layers use seeded random weights written to a temporary safetensors file at start-up (timing
//! does not depend on the values). `cargo bench --bench encoder`.
//!
//! `W2VBERT_ENCODER_CPU=1 cargo bench --bench encoder -- cpu-only` first prints the *CPU* time (all threads)
//! of one forward at the real size, the minimum over rounds: on a machine shared with other jobs wall time
//! mostly measures the neighbours, CPU time much less so (`W2VBERT_ENCODER_T=250,500,2600` sets the lengths).
//! Then, per length, one layer's achieved GFLOP/s (the wall-time difference of the two forwards) against what the
//! gemm crate alone reaches on that layer's matmuls, same shapes and threads, in the same run.

use criterion::{criterion_group, Criterion, Throughput};
use std::path::Path;
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::model::inventory::{feature_projection_tensors, layer_tensors};
use w2vbert::model::Wav2Vec2BertModel;
use w2vbert::weights::Weights;

/// Names and shapes of the real checkpoint's first `layers` layers (SPEC §3).
fn tensor_list(cfg: &Wav2Vec2BertConfig, layers: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = feature_projection_tensors(cfg);
    for l in 0..layers {
        v.extend(layer_tensors(cfg, l));
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

/// Process CPU time (user + system, all threads) in seconds, from /proc/self/stat (10 ms ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" that closes the command name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// CPU and wall time per forward (feature projection + 1 or 2 real-size layers) at T = 250 and 500 (or the
/// `W2VBERT_ENCODER_T` list): the minimum over 5 rounds of 3 calls, configurations interleaved within a round.
fn cpu_time_report() {
    let dir = tempfile::tempdir().unwrap();
    let model = real_size_model(dir.path(), 2);
    // Frame counts from W2VBERT_ENCODER_T (comma-separated), default 250,500.
    let ts: Vec<usize> = std::env::var("W2VBERT_ENCODER_T")
        .unwrap_or_else(|_| "250,500".into())
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    let cases: Vec<(usize, usize)> = ts.iter().flat_map(|&t| [(t, 1), (t, 2)]).collect();
    let mut best = vec![(f64::INFINITY, f64::INFINITY); cases.len()];
    for _round in 0..5 {
        for (i, &(t, layers)) in cases.iter().enumerate() {
            let feats = fill(t * 160, 7, 2.0);
            let mask = vec![true; t];
            model.forward(&feats, &mask, t, &[layers]).unwrap();
            let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
            for _ in 0..3 {
                std::hint::black_box(model.forward(&feats, &mask, t, &[layers]).unwrap());
            }
            let (c, w) = ((cpu_seconds() - c0) / 3.0, w0.elapsed().as_secs_f64() / 3.0);
            best[i] = (best[i].0.min(c), best[i].1.min(w));
        }
    }
    for (&(t, layers), (c, w)) in cases.iter().zip(&best) {
        println!(
            "encoder cpu-time T={t} feature_projection + {layers} layer(s): {:.0} ms CPU, {:.0} ms wall ({} threads)",
            c * 1e3,
            w * 1e3,
            rayon::current_num_threads()
        );
    }
    // One layer = (feature projection + 2 layers) − (feature projection + 1 layer), against the gemm crate alone
    // (one call per matmul on its own threads) on that layer's matmuls, in the same run.
    let cfg = Wav2Vec2BertConfig::default();
    let linears = layer_linears(&cfg);
    for (i, &t) in ts.iter().enumerate() {
        let layer = best[2 * i + 1].1 - best[2 * i].1;
        let gemm = gemm_alone_seconds(&linears, t);
        let mm_flops: f64 = linears.iter().map(|&(n, k)| 2.0 * (n * k * t) as f64).sum();
        let layer_flops = mm_flops + 4.0 * (t * t * cfg.hidden_size) as f64; // + QKᵀ and AV
        println!(
            "layer efficiency T={t}: one layer {:.1} ms wall = {:.0} GFLOP/s ({:.1} GFLOP); the gemm crate alone on its \
             matmuls {:.1} ms = {:.0} GFLOP/s; layer / gemm GFLOP/s = {:.0} %",
            layer * 1e3,
            layer_flops / layer / 1e9,
            layer_flops / 1e9,
            gemm * 1e3,
            mm_flops / gemm / 1e9,
            100.0 * (layer_flops / layer) / (mm_flops / gemm)
        );
    }
}

/// `[out, in]` of one conformer layer's matmuls at the real size, from the checkpoint inventory: both FFNs' two
/// denses, q, k, v, out and the conv module's two pointwise convs (the projections `Linear` runs).
fn layer_linears(cfg: &Wav2Vec2BertConfig) -> Vec<(usize, usize)> {
    layer_tensors(cfg, 0)
        .into_iter()
        .filter(|(name, _)| {
            name.ends_with(".weight")
                && [".intermediate_dense.", ".output_dense.", ".linear_", ".pointwise_conv"]
                    .iter()
                    .any(|m| name.contains(m))
        })
        .map(|(_, shape)| (shape[0], shape[1]))
        .collect()
}

/// Wall time of the gemm crate alone (`gemm::matmul` on its own threads, one call per matmul) running one layer's
/// matmuls on T columns, rotating through two layers' worth of weights as the two-layer model above does (so both
/// see the same caches): the minimum over 5 rounds.
fn gemm_alone_seconds(linears: &[(usize, usize)], t: usize) -> f64 {
    use w2vbert_kernels::gemm::{matmul, Threads};
    let sets: Vec<Vec<Vec<f32>>> = (0..2)
        .map(|l| {
            linears
                .iter()
                .enumerate()
                .map(|(j, &(n, k))| fill(n * k, (l * 16 + j) as u64 + 99, 0.05))
                .collect()
        })
        .collect();
    let widest = linears.iter().map(|&(n, k)| n.max(k)).max().unwrap_or(0);
    let x = fill(widest * t, 5, 1.0);
    let mut y = vec![0f32; widest * t];
    let mut best = f64::INFINITY;
    for _round in 0..5 {
        for set in &sets {
            let s = std::time::Instant::now();
            for (&(n, k), w) in linears.iter().zip(set) {
                // y[n, t] = W[n, k] · x[k, t], as the encoder's channel-major linears.
                matmul(&mut y, t, w, k, 1, &x, t, 1, n, k, t, 1.0, false, Threads::Rayon(0));
            }
            best = best.min(s.elapsed().as_secs_f64());
        }
    }
    best
}

criterion_group!(benches, encoder);

fn main() {
    if std::env::var("W2VBERT_ENCODER_CPU").is_ok_and(|v| v == "1") {
        cpu_time_report();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
