//! `w2vbert-infer inspect CHECKPOINT_DIR`: config, tensors found vs expected, layers available, stats summary.
//! Exit code 0 when the checkpoint can run all its layers (and its stats load), 1 otherwise.

use std::path::Path;
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::model::inventory::{feature_projection_tensors, layer_tensors};
use w2vbert::model::Checkpoint;
use w2vbert::pipeline::DEFAULT_STATS_FILE;
use w2vbert::stats::SemanticStats;
use w2vbert::weights::Weights;
use w2vbert::Result;

pub fn run(dir: &Path, stats: Option<&Path>) -> i32 {
    match inspect(dir, stats) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Problems with one tensor, as printed.
fn check(w: &Weights, prefix: &str, name: &str, shape: &[usize]) -> Option<String> {
    let full = format!("{prefix}{name}");
    match (w.shape(&full), w.dtype(&full)) {
        (None, _) => Some(format!("missing  {full} {shape:?}")),
        (Some(s), Some(dt)) => {
            let float = matches!(
                dt,
                safetensors::Dtype::F32 | safetensors::Dtype::F16 | safetensors::Dtype::BF16
            );
            if s != shape {
                Some(format!("shape    {full}: {s:?}, expected {shape:?}"))
            } else if !float {
                Some(format!("dtype    {full}: {dt:?}, expected F32, F16 or BF16"))
            } else {
                None
            }
        }
        (Some(_), None) => None,
    }
}

fn inspect(dir: &Path, stats: Option<&Path>) -> Result<bool> {
    let ck = Checkpoint::locate(dir)?;
    let cfg = Wav2Vec2BertConfig::load(&ck.config)?;
    println!("checkpoint {}", dir.display());
    println!(
        "config: hidden_size {}, num_hidden_layers {}, num_attention_heads {} (head_dim {}), intermediate_size {}, \
         feature_projection_input_dim {}, conv_depthwise_kernel_size {}, position_embeddings_type {}, \
         left/right_max_position_embeddings {}/{}, layer_norm_eps {:e}, hidden_act {}",
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.head_dim(),
        cfg.intermediate_size,
        cfg.feature_projection_input_dim,
        cfg.conv_depthwise_kernel_size,
        cfg.position_embeddings_type,
        cfg.left_max_position_embeddings,
        cfg.right_max_position_embeddings,
        cfg.layer_norm_eps,
        cfg.hidden_act,
    );
    let w = Weights::open(&ck.weights)?;
    let prefix = if !w.contains("feature_projection.projection.weight")
        && w.contains("wav2vec2_bert.feature_projection.projection.weight")
    {
        "wav2vec2_bert."
    } else {
        ""
    };
    println!(
        "weights {}: {} tensors, mostly {:?}{}",
        ck.weights.display(),
        w.len(),
        w.storage_dtype(),
        if prefix.is_empty() {
            String::new()
        } else {
            format!(", names under `{prefix}`")
        }
    );
    let mut expected: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for (n, s) in feature_projection_tensors(&cfg) {
        problems.extend(check(&w, prefix, &n, &s));
        expected.push(format!("{prefix}{n}"));
    }
    let fp_ok = problems.is_empty();
    let mut layers_ok = 0;
    let mut contiguous = fp_ok;
    for i in 0..cfg.num_hidden_layers {
        let before = problems.len();
        for (n, s) in layer_tensors(&cfg, i) {
            problems.extend(check(&w, prefix, &n, &s));
            expected.push(format!("{prefix}{n}"));
        }
        if contiguous && problems.len() == before {
            layers_ok += 1;
        } else {
            contiguous = false;
        }
    }
    let extra: Vec<&str> = w
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|e| e == n))
        .collect();
    let found = expected.len() - problems.iter().filter(|p| p.starts_with("missing")).count();
    println!(
        "tensors: {} expected, {found} found, {} missing, {} wrong shape/dtype, {} extra (not used)",
        expected.len(),
        problems.iter().filter(|p| p.starts_with("missing")).count(),
        problems.iter().filter(|p| !p.starts_with("missing")).count(),
        extra.len()
    );
    for p in &problems {
        println!("  {p}");
    }
    for e in &extra {
        println!("  extra    {e} {:?} {:?}", w.shape(e).unwrap_or(&[]), w.dtype(e));
    }
    println!(
        "layers: hidden_states 0..={layers_ok} available ({layers_ok} of {} encoder layers complete{})",
        cfg.num_hidden_layers,
        if fp_ok {
            ""
        } else {
            "; the feature projection is incomplete: nothing can run"
        }
    );
    let stats_path = stats
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(DEFAULT_STATS_FILE));
    let mut stats_ok = true;
    if stats_path.is_file() {
        match SemanticStats::load(&stats_path, cfg.hidden_size) {
            Ok(s) => {
                let (m, sd) = (s.mean(), s.std());
                let range = |v: &[f32]| {
                    let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
                    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let avg = v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
                    format!("min {lo:.4}, mean {avg:.4}, max {hi:.4}")
                };
                println!(
                    "stats {}: dim {}; mean: {}; std: {}",
                    stats_path.display(),
                    s.dim(),
                    range(m),
                    range(sd)
                );
            }
            Err(e) => {
                stats_ok = false;
                println!("stats {}: unusable: {e}", stats_path.display());
            }
        }
    } else {
        println!(
            "stats: {} not found (semantic features need it; raw hidden states with --no-normalize do not)",
            stats_path.display()
        );
        stats_ok = stats.is_none();
    }
    Ok(problems.is_empty() && fp_ok && stats_ok)
}
