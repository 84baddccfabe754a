//! `w2vbert-infer inspect CHECKPOINT_DIR`: config, tensors found vs expected, layers available, stats summary.
//! Exit code 0 when the checkpoint can run all its layers (and its stats load), 1 otherwise.

use std::path::Path;
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::model::inventory::diagnose;
use w2vbert::model::Checkpoint;
use w2vbert::stats::SemanticStats;
use w2vbert::stats::DEFAULT_STATS_FILE;
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
    let d = diagnose(&cfg, &w);
    println!(
        "weights {}: {} tensors, mostly {:?}{}",
        ck.weights.display(),
        w.len(),
        w.storage_dtype(),
        if d.prefix.is_empty() {
            String::new()
        } else {
            format!(", names under `{}`", d.prefix)
        }
    );
    println!(
        "tensors: {} expected, {} found, {} missing, {} wrong shape/dtype, {} extra (not used)",
        d.expected,
        d.expected - d.missing(),
        d.missing(),
        d.problems.len() - d.missing(),
        d.extra.len()
    );
    for p in &d.problems {
        println!("  {p}");
    }
    for e in &d.extra {
        println!("  extra    {e} {:?} {:?}", w.shape(e).unwrap_or(&[]), w.dtype(e));
    }
    let (fp_ok, layers_ok) = (d.feature_projection_ok, d.layers_ok);
    println!(
        "layers: hidden_states 0..={layers_ok} available ({layers_ok} of {} encoder layers complete{})",
        cfg.num_hidden_layers,
        if fp_ok {
            ""
        } else {
            "; the feature projection is incomplete: nothing can run"
        }
    );
    let stats_path = stats.map_or_else(|| dir.join(DEFAULT_STATS_FILE), Path::to_path_buf);
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
    Ok(d.problems.is_empty() && fp_ok && stats_ok)
}
