//! `w2vbert-infer`: audio in, Wav2Vec2-BERT hidden states / IndexTTS2 semantic features out.
//!
//! `--features-only` stops after the front end and writes the SeamlessM4T fbank features
//! (`DIR/<stem>.npy`, f32 `[T, 160]`) without loading a model.

use clap::Parser;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;
use w2vbert::{Error, Result};

#[derive(Parser, Debug)]
#[command(
    name = "w2vbert-infer",
    version,
    about = "Wav2Vec2-BERT 2.0 inference on CPU: audio in, hidden states or IndexTTS2 semantic features out"
)]
struct Args {
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis; any rate and channel count).
    #[arg(value_name = "INPUT", required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,
    /// Where `<input stem>.npy` (or `.safetensors`) files go; created if missing.
    #[arg(long, value_name = "DIR")]
    output_dir: PathBuf,
    /// Only compute the fbank features (f32 [T, 160]); no model is loaded.
    #[arg(long)]
    features_only: bool,
    /// Directory with config.json and model.safetensors.
    #[arg(long, value_name = "DIR", default_value = "checkpoints/w2v-bert-2.0")]
    checkpoint: PathBuf,
    /// Semantic-normalization statistics (mean / var) for `(h - mean) / sqrt(var)`.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Hidden state to output (0 = feature projection, 24 = last layer).
    #[arg(long, value_name = "K", default_value_t = 17)]
    layer: usize,
    /// Several hidden states at once (written together as .safetensors).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    /// Write raw hidden states, without the semantic normalization.
    #[arg(long)]
    no_normalize: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print per-file shapes and timings to stderr.
    #[arg(long)]
    verbose: bool,
}

/// `DIR/<stem>.<ext>` for every input; two inputs with the same stem are an error before any work.
fn output_paths(inputs: &[PathBuf], dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut seen: HashMap<OsString, &Path> = HashMap::new();
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let stem = input.file_stem().ok_or_else(|| {
            Error::Invalid(format!("{}: input has no file name", input.display()))
        })?;
        if let Some(first) = seen.insert(stem.to_os_string(), input) {
            return Err(Error::Invalid(format!(
                "{} and {}: same file stem, both would write {}",
                first.display(),
                input.display(),
                dir.join(Path::new(stem).with_extension(ext)).display()
            )));
        }
        let mut name = stem.to_os_string();
        name.push(".");
        name.push(ext);
        out.push(dir.join(name));
    }
    Ok(out)
}

fn run_features_only(args: &Args) -> Result<()> {
    let outputs = output_paths(&args.inputs, &args.output_dir, "npy")?;
    std::fs::create_dir_all(&args.output_dir).map_err(|e| Error::io(&args.output_dir, e))?;
    for (input, output) in args.inputs.iter().zip(&outputs) {
        let start = Instant::now();
        let f = w2vbert::audio::features_from_file(input)?;
        w2vbert::output::write_npy(output, &f.data, &[f.t, w2vbert::audio::FEATURE_DIM])?;
        if args.verbose {
            eprintln!(
                "{} -> {}: F {} fbank frames, [{}, {}] ({} valid rows), {:.1} ms",
                input.display(),
                output.display(),
                f.fbank_frames,
                f.t,
                w2vbert::audio::FEATURE_DIM,
                f.mask.iter().filter(|&&m| m).count(),
                start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}

/// The encoder path (checkpoint → hidden states → semantic normalization). Replaced when the encoder lands.
fn run_encoder(args: &Args) -> Result<()> {
    output_paths(&args.inputs, &args.output_dir, "npy")?;
    Err(Error::Invalid("encoder path not merged yet".into()))
}

fn run(args: &Args) -> Result<()> {
    if let Some(n) = args.threads {
        if n == 0 {
            return Err(Error::Invalid("--threads must be at least 1".into()));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::Invalid(format!("cannot start {n} threads: {e}")))?;
    }
    if args.features_only {
        run_features_only(args)
    } else {
        run_encoder(args)
    }
}

fn main() {
    if let Err(msg) = w2vbert::kernels::cpu::check_baseline() {
        eprintln!("error: {msg}");
        std::process::exit(2);
    }
    let args = Args::parse();
    if args.verbose {
        eprintln!("{}", w2vbert::kernels::cpu::describe());
    }
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
