//! `w2vbert-infer`: audio in, Wav2Vec2-BERT hidden states / IndexTTS2 semantic features out.
//!
//! `--features-only` stops after the front end and writes the SeamlessM4T fbank features
//! (`DIR/<stem>.npy`, f32 `[T, 160]`) without loading a model. `--indextts2-speaker-prompt` reads the audio as
//! IndexTTS2 reads its speaker prompt (22.05 kHz, first 15 s, torchaudio's resampler to 16 kHz) instead of
//! `librosa.load(sr=16000)`. `w2vbert-infer convert ...` writes a trimmed / f16 / bf16 checkpoint (convert.rs).

use clap::Parser;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;
use w2vbert::pipeline::{Extractor, Output, Request, SEMANTIC_LAYER};
use w2vbert::{Error, Result};

#[path = "w2vbert-infer/convert.rs"]
mod convert;

#[derive(Parser, Debug)]
#[command(
    name = "w2vbert-infer",
    version,
    about = "Wav2Vec2-BERT 2.0 inference on CPU: audio in, hidden states or IndexTTS2 semantic features out",
    after_help = "Also: `w2vbert-infer convert --help` (a checkpoint trimmed to 17 layers, f32/f16/bf16, stats included)"
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
    #[arg(long, value_name = "K", default_value_t = 17, conflicts_with = "layers")]
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
    /// Read the audio as IndexTTS2 reads its speaker prompt (infer_v2.py): librosa.load at 22050 Hz (mean of
    /// channels), keep the first 15 s, then torchaudio.transforms.Resample(22050, 16000) (Hann-windowed sinc,
    /// lowpass_filter_width 6, rolloff 0.99). Without it, audio is read as librosa.load(sr=16000), as
    /// IndexTTS2's emotion prompt and MaskGCT do (one soxr-HQ-like resample, no cut).
    #[arg(long)]
    indextts2_speaker_prompt: bool,
    /// Print per-file shapes and timings to stderr.
    #[arg(long)]
    verbose: bool,
}

impl Args {
    fn preprocess(&self) -> w2vbert::audio::Preprocess {
        if self.indextts2_speaker_prompt {
            w2vbert::audio::Preprocess::Indextts2SpeakerPrompt
        } else {
            w2vbert::audio::Preprocess::Direct16k
        }
    }
}

/// `DIR/<stem>.<ext>` for every input; two inputs with the same stem are an error before any work.
fn output_paths(inputs: &[PathBuf], dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut seen: HashMap<OsString, &Path> = HashMap::new();
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let stem = input
            .file_stem()
            .ok_or_else(|| Error::Invalid(format!("{}: input has no file name", input.display())))?;
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
        let f = w2vbert::audio::features_from_file_with(input, args.preprocess())?;
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

/// What the encoder path computes and writes, decided from the flags before anything is loaded.
struct Plan {
    request: Request,
    /// `--layers`: one `.safetensors` per input; otherwise one `.npy`.
    multi: bool,
}

fn plan(args: &Args) -> Result<Plan> {
    if let Some(layers) = &args.layers {
        let mut ks: Vec<usize> = Vec::with_capacity(layers.len());
        for &k in layers {
            if !ks.contains(&k) {
                ks.push(k);
            }
        }
        if ks.is_empty() {
            return Err(Error::Invalid("--layers needs at least one hidden-state index".into()));
        }
        let normalized = (!args.no_normalize && ks.contains(&SEMANTIC_LAYER)).then_some(SEMANTIC_LAYER);
        return Ok(Plan {
            request: Request {
                hidden_states: ks,
                normalized,
            },
            multi: true,
        });
    }
    let k = args.layer;
    if args.no_normalize {
        return Ok(Plan {
            request: Request {
                hidden_states: vec![k],
                normalized: None,
            },
            multi: false,
        });
    }
    if k != SEMANTIC_LAYER && args.stats.is_none() {
        return Err(Error::Invalid(format!(
            "--layer {k}: the default stats are IndexTTS2's, made for hidden_states[{SEMANTIC_LAYER}]; pass \
             --no-normalize for raw hidden_states[{k}], or --stats FILE with statistics of layer {k}"
        )));
    }
    Ok(Plan {
        request: Request {
            hidden_states: vec![],
            normalized: Some(k),
        },
        multi: false,
    })
}

/// Write one utterance's results: `.npy` [T, hidden] for a single output; for `--layers`, one `.safetensors` with
/// `hidden_states.K` (raw, [T, hidden]) for each K, `semantic` ([T, hidden]) when layer 17 is normalized, and
/// `mask` ([T], 1.0 valid / 0.0 the padded last row of an odd frame count).
fn write_output(path: &Path, out: &Output, multi: bool) -> Result<()> {
    let shape = vec![out.t, out.hidden_size];
    if !multi {
        let data = out.semantic.as_ref().or(out.hidden_states.first().map(|(_, h)| h));
        let data = data.ok_or_else(|| Error::Invalid("nothing was computed".into()))?;
        return w2vbert::output::write_npy(path, data, &shape);
    }
    let mask: Vec<f32> = out.mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = out
        .hidden_states
        .iter()
        .map(|(k, h)| (format!("hidden_states.{k}"), shape.clone(), h.as_slice()))
        .collect();
    if let Some(s) = &out.semantic {
        tensors.push(("semantic".into(), shape.clone(), s.as_slice()));
    }
    tensors.push(("mask".into(), vec![out.t], mask.as_slice()));
    w2vbert::output::write_safetensors(path, &tensors)
}

/// The encoder path: checkpoint → hidden states → semantic normalization, one output file per input.
fn run_encoder(args: &Args) -> Result<()> {
    let plan = plan(args)?;
    let outputs = output_paths(
        &args.inputs,
        &args.output_dir,
        if plan.multi { "safetensors" } else { "npy" },
    )?;
    if let Some(bad) = args.inputs.iter().find(|p| !p.is_file()) {
        let why = if bad.exists() {
            "not a regular file"
        } else {
            "no such file"
        };
        return Err(Error::audio(bad, why));
    }
    let start = Instant::now();
    let ex = Extractor::load(&args.checkpoint, &plan.request, args.stats.as_deref())?;
    if args.verbose {
        let cfg = &ex.model.config;
        eprintln!(
            "{}: {} of {} layers loaded (hidden {}, {} heads), {:.0} ms",
            args.checkpoint.display(),
            ex.model.layers.len(),
            cfg.num_hidden_layers,
            cfg.hidden_size,
            cfg.num_attention_heads,
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    std::fs::create_dir_all(&args.output_dir).map_err(|e| Error::io(&args.output_dir, e))?;
    for (input, output) in args.inputs.iter().zip(&outputs) {
        let start = Instant::now();
        let out = ex.run_file_with(input, args.preprocess())?;
        write_output(output, &out, plan.multi)?;
        if args.verbose {
            eprintln!(
                "{} -> {}: [{}, {}], {:.1} ms",
                input.display(),
                output.display(),
                out.t,
                out.hidden_size,
                start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}

/// Peak resident memory of this process (Linux `VmHWM`), for `--verbose`.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(format!("{:.2} GB", kb * 1024.0 / 1e9))
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
    if std::env::args_os().nth(1).is_some_and(|a| a == "convert") {
        std::process::exit(convert::main(std::env::args_os().skip(1)));
    }
    let args = Args::parse();
    if args.verbose {
        eprintln!("{}", w2vbert::kernels::cpu::describe());
    }
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    if args.verbose {
        if let Some(p) = peak_rss() {
            eprintln!("peak RSS {p}");
        }
    }
}
