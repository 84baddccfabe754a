//! End-to-end benches: one conformer layer at the real size (d = 1024, 16 heads, FFN 4096) on T = 500 frames
//! (10 s of audio), and the whole CLI pipeline (wav → semantic features) on the shipped tiny checkpoint.
//!
//! The real-size layers use seeded random weights written to a temporary safetensors file at start-up (timing
//! does not depend on the values). `cargo bench --bench encoder`.
//!
//! `W2VBERT_ENCODER_CPU=1 cargo bench --bench encoder -- cpu-only` first prints the *CPU* time (all threads)
//! of one forward at the real size, the minimum over rounds: on a machine shared with other jobs wall time
//! mostly measures the neighbours, CPU time much less so (`W2VBERT_ENCODER_T=250,500,2600` sets the lengths).
//! Then, per length, the encoder's achieved GFLOP/s (feature projection + 2 layers) against what the gemm crate
//! alone reaches on the same matmuls, same shapes and threads, in paired rounds of the same run (issue 8's
//! "≥ 90 % of the gemm crate" target).

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
    // The encoder (feature projection + both layers) against the gemm crate alone on the same matmuls, in
    // paired rounds: each round times one forward and one pass of gemm calls back to back (which goes first
    // alternates), so both see the same host; the figure is the median over rounds of the per-round ratio.
    let cfg = Wav2Vec2BertConfig::default();
    let linears = encoder_linears(&cfg, 2);
    let rounds = 15;
    for &t in &ts {
        let feats = fill(t * 160, 7, 2.0);
        let mask = vec![true; t];
        let mut gemm = GemmAlone::new(&linears, t);
        let mm_flops: f64 = linears.iter().map(|&(n, k)| 2.0 * (n * k * t) as f64).sum();
        let enc_flops = mm_flops + 2.0 * 4.0 * (t * t * cfg.hidden_size) as f64; // + QKᵀ and AV in each layer
        model.forward(&feats, &mask, t, &[2]).unwrap();
        gemm.run();
        let mut pairs = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let time_enc = || {
                let s = std::time::Instant::now();
                std::hint::black_box(model.forward(&feats, &mask, t, &[2]).unwrap());
                s.elapsed().as_secs_f64()
            };
            let (e, g) = if round % 2 == 0 {
                let e = time_enc();
                (e, gemm.run())
            } else {
                let g = gemm.run();
                (time_enc(), g)
            };
            pairs.push((enc_flops / e / 1e9, mm_flops / g / 1e9));
        }
        let sorted = |f: fn(&(f64, f64)) -> f64| {
            let mut v: Vec<f64> = pairs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (enc, alone, ratios) = (sorted(|p| p.0), sorted(|p| p.1), sorted(|p| p.0 / p.1));
        println!(
            "encoder efficiency T={t} (feature projection + 2 layers, {rounds} paired rounds): encoder {:.0} GFLOP/s, \
             the gemm crate alone on the same matmuls {:.0} GFLOP/s (medians); encoder / gemm per round: median \
             {:.0} %, range {:.0}-{:.0} %",
            enc[rounds / 2],
            alone[rounds / 2],
            100.0 * ratios[rounds / 2],
            100.0 * ratios[0],
            100.0 * ratios[rounds - 1]
        );
    }
}

/// `[out, in]` of the encoder's matmuls at the real size for `layers` layers, from the checkpoint inventory: the
/// feature projection, then per layer both FFNs' two denses, q, k, v, out and the conv module's two pointwise
/// convs (the projections `Linear` runs).
fn encoder_linears(cfg: &Wav2Vec2BertConfig, layers: usize) -> Vec<(usize, usize)> {
    feature_projection_tensors(cfg)
        .into_iter()
        .chain((0..layers).flat_map(|l| layer_tensors(cfg, l)))
        .filter(|(name, shape)| {
            shape.len() >= 2
                && name.ends_with(".weight")
                && [
                    ".projection.",
                    ".intermediate_dense.",
                    ".output_dense.",
                    ".linear_",
                    ".pointwise_conv",
                ]
                .iter()
                .any(|m| name.contains(m))
        })
        .map(|(_, shape)| (shape[0], shape[1]))
        .collect()
}

/// The gemm crate alone (`gemm::matmul` on its own threads, one call per matmul) on the encoder's matmuls with
/// T columns, each on its own weights as in the model.
struct GemmAlone<'a> {
    linears: &'a [(usize, usize)],
    weights: Vec<Vec<f32>>,
    x: Vec<f32>,
    y: Vec<f32>,
    t: usize,
}

impl<'a> GemmAlone<'a> {
    fn new(linears: &'a [(usize, usize)], t: usize) -> Self {
        let weights = linears
            .iter()
            .enumerate()
            .map(|(j, &(n, k))| fill(n * k, j as u64 + 99, 0.05))
            .collect();
        let widest = linears.iter().map(|&(n, k)| n.max(k)).max().unwrap_or(0);
        GemmAlone {
            linears,
            weights,
            x: fill(widest * t, 5, 1.0),
            y: vec![0f32; widest * t],
            t,
        }
    }

    /// Wall seconds of one pass over every matmul.
    fn run(&mut self) -> f64 {
        use w2vbert_kernels::gemm::{matmul, Threads};
        let t = self.t;
        let s = std::time::Instant::now();
        for (&(n, k), w) in self.linears.iter().zip(&self.weights) {
            // y[n, t] = W[n, k] · x[k, t], as the encoder's channel-major linears.
            matmul(
                &mut self.y,
                t,
                w,
                k,
                1,
                &self.x,
                t,
                1,
                n,
                k,
                t,
                1.0,
                false,
                Threads::Rayon(0),
            );
        }
        s.elapsed().as_secs_f64()
    }
}

criterion_group!(benches, encoder);

fn main() {
    if std::env::var("W2VBERT_ENCODER_CPU").is_ok_and(|v| v == "1") {
        cpu_time_report();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
