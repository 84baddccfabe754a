//! `w2vbert-infer`: audio in, Wav2Vec2-BERT hidden states / IndexTTS2 semantic features out.
//!
//! `w2vbert-infer [OPTIONS] --output-dir DIR INPUT...` runs files, directories (recursive, mirrored under DIR)
//! and `--manifest` lists, optionally one shard of them (`--num-shards/--shard-index`), skipping complete outputs
//! (resumable), packing several utterances per encoder call (`--batch-frames`). `w2vbert-infer inspect DIR`
//! describes a checkpoint; `w2vbert-infer convert` writes one trimmed to the layers needed, in f32/f16/bf16. `--features-only` stops after the front end and writes the SeamlessM4T fbank features
//! (f32 `[T, 160]`) without loading a model. `--indextts2-speaker-prompt` reads the audio as IndexTTS2 reads its
//! speaker prompt (22.05 kHz, first 15 s, torchaudio's resampler to 16 kHz) instead of `librosa.load(sr=16000)`.
//!
//! The run itself is the library's (`w2vbert::corpus::RunOptions`); `w2vbert-infer index DIR` merges the shards'
//! indexes (`w2vbert::corpus::index::merge`).
//!
//! Exit codes: see [`EXIT_CODES`].

mod convert;
mod inspect;
mod report;
mod run;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit code: the run stopped on an error.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: the run finished, some inputs failed.
pub const EXIT_SOME_FAILED: i32 = 3;
/// Exit code: the inputs expand to no audio file.
pub const EXIT_NO_INPUTS: i32 = 4;
/// Exit code: a worker thread died (a bug); the run stopped cleanly.
pub const EXIT_INTERNAL: i32 = 5;

const EXIT_CODES: &str = "Exit codes: 0 all inputs done or skipped; 1 stopped on an error (setup, output \
directory, or the first bad input when failing fast); 2 bad command line; 3 finished, some inputs failed (each \
reported); 4 the inputs name no audio file (an empty directory or manifest, a typo); 5 internal error: a worker \
thread died (a bug: please report it), the run stopped and left no temporary file.";

#[derive(Parser, Debug)]
#[command(
    name = "w2vbert-infer",
    version,
    about = "Wav2Vec2-BERT 2.0 inference on CPU: audio in, hidden states or IndexTTS2 semantic features out",
    after_help = EXIT_CODES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Describe a checkpoint directory: config, tensors found vs expected (missing, extra, wrong shape or dtype),
    /// encoder layers available, and the semantic-normalization stats. Exit code 1 if anything is wrong.
    Inspect {
        /// Directory with config.json and model.safetensors (and usually wav2vec2bert_stats.safetensors).
        #[arg(value_name = "CHECKPOINT_DIR")]
        dir: PathBuf,
        /// Stats file to summarize instead of CHECKPOINT_DIR/wav2vec2bert_stats.safetensors.
        #[arg(long, value_name = "FILE")]
        stats: Option<PathBuf>,
    },
    /// Write a checkpoint trimmed to the layers needed (default 17), in f32, f16 or bf16, with the IndexTTS2
    /// stats beside it; the CLI, the library and transformers load it as they load the original.
    Convert(convert::ConvertArgs),
    /// Merge the index every shard of a corpus run wrote into OUTPUT_DIR (w2vbert-index.shard-<I>-of-<N>.jsonl)
    /// into OUTPUT_DIR/index.jsonl: one line per complete output ({"input", "output", "frames", "seconds",
    /// "status", and a JSONL manifest's keys}), sorted by output. Exit code 3 if some inputs still failed.
    Index {
        #[arg(value_name = "OUTPUT_DIR")]
        dir: PathBuf,
    },
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One f32 array per input (`<name>.npy`).
    Npy,
    /// Named f32 arrays plus `mask` (`<name>.safetensors`); the only format for `--layers`.
    Safetensors,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShardModeArg {
    /// fairseq's HuBERT dumper split: shard I gets round(n/N·I) .. round(n/N·(I+1)) of the sorted list.
    Contiguous,
    /// Shard I gets inputs I, I+N, I+2N, … (balances lengths that drift along the list).
    Strided,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis; any rate and channel count) and directories (every audio file
    /// below, sorted; outputs mirror the tree). A file named `inspect`, `convert` or `index` must be written `./inspect` etc.
    #[arg(value_name = "INPUT", num_args = 0..)]
    pub inputs: Vec<PathBuf>,
    /// A list of inputs: one path per line (relative to the manifest's folder), fairseq's TSV (root directory
    /// on the first line, then `relative/path<TAB>num_samples`), or JSONL (`.jsonl`, or a first line starting
    /// with `{`: one object per line, the path under --manifest-key, an `id` naming the output). Outputs mirror
    /// the paths below that root (or are `<id>.<ext>`).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Key of the audio path in a JSONL manifest's objects.
    #[arg(long, value_name = "KEY", default_value = w2vbert::corpus::DEFAULT_MANIFEST_KEY)]
    pub manifest_key: String,
    /// Where outputs go (created if missing): `<stem>.<ext>` for files named directly, the mirrored relative
    /// path for directory and manifest inputs.
    /// Required (checked after parsing so that `inspect` needs none of the run's arguments).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Output format (default npy; safetensors with --layers).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Only compute the fbank features (f32 [T, 160]); no model is loaded.
    #[arg(long)]
    pub features_only: bool,
    /// Directory with config.json and model.safetensors.
    #[arg(long, value_name = "DIR", default_value = "checkpoints/w2v-bert-2.0")]
    pub checkpoint: PathBuf,
    /// Semantic-normalization statistics (mean / var) for `(h - mean) / sqrt(var)`.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    /// Hidden state to output (0 = feature projection, 24 = last layer).
    #[arg(long, value_name = "K", default_value_t = 17, conflicts_with = "layers")]
    pub layer: usize,
    /// Several hidden states at once (written together as .safetensors).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Write raw hidden states, without the semantic normalization.
    #[arg(long)]
    pub no_normalize: bool,
    /// Arithmetic of the encoder's projections: fp32 (faithful to transformers fp32, the default) or bf16
    /// (weights held in bf16, matmul inputs rounded to bf16, f32 accumulation on AMX or AVX512-BF16; about
    /// 1e-2 relative L2 from fp32: for corpus dumps and training data, not where fp32 parity matters).
    #[arg(long, value_name = "P", default_value = "fp32")]
    pub precision: w2vbert::model::Precision,
    /// Worker threads, 1 to 1024 (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Read the audio as IndexTTS2 reads its speaker prompt (infer_v2.py): librosa.load at 22050 Hz (mean of
    /// channels), keep the first 15 s, then torchaudio.transforms.Resample(22050, 16000) (Hann-windowed sinc,
    /// lowpass_filter_width 6, rolloff 0.99). Without it, audio is read as librosa.load(sr=16000), as
    /// IndexTTS2's emotion prompt and MaskGCT do (one soxr-HQ-like resample, no cut).
    #[arg(long)]
    pub indextts2_speaker_prompt: bool,
    /// Keep only the first S seconds of each input (of the 16 kHz signal).
    #[arg(long, value_name = "S")]
    pub max_seconds: Option<f64>,
    /// Split the input list into N shards and run one of them (Slurm array / Kubernetes Indexed Job).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub num_shards: usize,
    /// The shard to run, 0-based ($SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "I", default_value_t = 0)]
    pub shard_index: usize,
    /// How the list is split.
    #[arg(long, value_enum, default_value_t = ShardModeArg::Contiguous)]
    pub shard_mode: ShardModeArg,
    /// Recompute outputs that already exist and are complete (by default they are skipped).
    #[arg(long)]
    pub force: bool,
    /// Cap on the frames (20 ms each) packed into one encoder call; a longer input runs alone.
    #[arg(long, value_name = "FRAMES", default_value_t = w2vbert::pipeline::DEFAULT_BATCH_FRAMES)]
    pub batch_frames: usize,
    /// Stop at the first input that fails (default when every input is a file named on the command line).
    #[arg(long, conflicts_with = "keep_going")]
    pub fail_fast: bool,
    /// Report a failing input and go on (default with directories or --manifest).
    #[arg(long)]
    pub keep_going: bool,
    /// List this shard's inputs and outputs and check the checkpoint, stats and output directory; compute
    /// nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON summary object on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// No progress and no final summary on stderr (errors are still printed).
    #[arg(long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print per-file shapes and timings to stderr.
    #[arg(long)]
    pub verbose: bool,
}

fn main() {
    if let Err(msg) = w2vbert::kernels::cpu::check_baseline() {
        eprintln!("error: {msg}");
        std::process::exit(EXIT_ERROR);
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Inspect { dir, stats }) => inspect::run(&dir, stats.as_deref()),
        Some(Command::Convert(args)) => convert::run(&args),
        Some(Command::Index { dir }) => index(&dir),
        None => {
            let missing = match (
                &cli.run.output_dir,
                cli.run.inputs.is_empty() && cli.run.manifest.is_none(),
            ) {
                (None, _) => Some("--output-dir <DIR>"),
                (_, true) => Some("<INPUT>... or --manifest <FILE>"),
                _ => None,
            };
            if let Some(what) = missing {
                Cli::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        format!("the following required argument was not provided: {what}"),
                    )
                    .exit();
            }
            run::main(&cli.run)
        }
    };
    std::process::exit(code);
}

/// `index DIR`: merge the shards' indexes.
fn index(dir: &std::path::Path) -> i32 {
    match w2vbert::corpus::index::merge(dir) {
        Ok(m) => {
            for (input, why) in &m.failed {
                eprintln!("failed: {input}: {why}");
            }
            if !m.missing_shards.is_empty() {
                eprintln!("warning: no index from shard(s) {}", m.missing_shards.join(", "));
            }
            eprintln!(
                "{}: {} output(s) from {} shard index(es), {} input(s) failed",
                m.path.display(),
                m.outputs,
                m.shard_files,
                m.failed.len()
            );
            if m.failed.is_empty() {
                0
            } else {
                EXIT_SOME_FAILED
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                w2vbert::Error::NoInputs(_) => EXIT_NO_INPUTS,
                _ => EXIT_ERROR,
            }
        }
    }
}
