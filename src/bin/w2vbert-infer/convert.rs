//! `w2vbert-infer convert`: the flags of [`w2vbert::convert::convert`]; all the work is in the library.

use std::path::PathBuf;
use std::time::Instant;
use w2vbert::convert::{convert, ConvertOptions, OutDtype, StatsChoice};
use w2vbert::pipeline::SEMANTIC_LAYER;

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// Source checkpoint directory (config.json, model.safetensors).
    #[arg(long, value_name = "DIR", default_value = "checkpoints/w2v-bert-2.0")]
    checkpoint: PathBuf,
    /// Encoder layers to keep (hidden states 0..=N); IndexTTS2 uses hidden_states[17].
    #[arg(long, value_name = "N", default_value_t = SEMANTIC_LAYER)]
    layers: usize,
    /// Storage dtype: f32 (bit-identical outputs), f16 or bf16 (the projection matrices, rounded to nearest even:
    /// half the size; the rest stays f32, so bf16 under --precision bf16 gives the source's outputs bit for bit).
    #[arg(long, value_name = "f32|f16|bf16", default_value = "f32")]
    dtype: OutDtype,
    /// Stats (mean, var) to include; default: the source's wav2vec2bert_stats.safetensors.
    #[arg(long, value_name = "FILE", conflicts_with = "no_stats")]
    stats: Option<PathBuf>,
    /// Write no stats (the checkpoint then serves raw hidden states, or --stats at inference).
    #[arg(long)]
    no_stats: bool,
    /// Output directory (created; must not hold anything but a previous converted checkpoint).
    #[arg(long, value_name = "DIR")]
    output_dir: PathBuf,
    /// Replace a checkpoint already at --output-dir.
    #[arg(long)]
    force: bool,
}

/// Converts as `args` say, reporting to stderr; returns the process exit code (0, or 1 on an error).
pub fn run(args: &ConvertArgs) -> i32 {
    let opts = ConvertOptions {
        layers: args.layers,
        dtype: args.dtype,
        stats: match (&args.stats, args.no_stats) {
            (Some(p), _) => StatsChoice::File(p.clone()),
            (None, true) => StatsChoice::Omit,
            (None, false) => StatsChoice::FromSource,
        },
        force: args.force,
    };
    let start = Instant::now();
    match convert(&args.checkpoint, &args.output_dir, &opts) {
        Ok(s) => {
            eprintln!(
                "{} -> {}: {} of {} layers, {:?} -> {}, {} tensors, model.safetensors {:.1} MB{}, {:.1} s",
                args.checkpoint.display(),
                s.out_dir.display(),
                s.layers,
                s.source_layers,
                s.source_dtype,
                s.dtype,
                s.tensors,
                s.model_bytes as f64 / 1e6,
                if s.flushed_to_zero > 0 {
                    format!(" ({} non-zero values rounded to 0)", s.flushed_to_zero)
                } else {
                    String::new()
                },
                start.elapsed().as_secs_f64()
            );
            match (&s.stats_from, &s.stats_note) {
                (Some(p), _) => eprintln!(
                    "stats: {} copied from {}",
                    w2vbert::pipeline::DEFAULT_STATS_FILE,
                    p.display()
                ),
                (None, Some(note)) => eprintln!("stats: {note}"),
                (None, None) => {}
            }
            0
        }
        Err(e @ w2vbert::Error::NotFound { .. }) if matches!(opts.stats, StatsChoice::FromSource) => {
            eprintln!("error: {e}\n(or convert without stats: --no-stats)");
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
