//! `w2vbert-infer convert`: a checkpoint trimmed to the encoder layers needed (17 for IndexTTS2), stored as f32,
//! f16 or bf16 (its projection matrices; the rest stays f32), with the IndexTTS2 stats beside the weights.
//!
//! The output directory is an ordinary Hugging Face checkpoint: `Wav2Vec2BertModel.from_pretrained(OUT)` loads
//! it (transformers 4.52.1) and so do this engine's CLI and library, with no option to say it was converted:
//! - `config.json`: the source's, with `num_hidden_layers` set to the layers kept (so HF builds exactly those
//!   layers instead of initializing the missing ones at random) and `torch_dtype` to the dtype written.
//! - `model.safetensors`: `feature_projection.*`, `encoder.layers.{0..layers}.*` and, when the source has it,
//!   `masked_spec_embed` (a `Wav2Vec2BertModel` parameter used only by training-time SpecAugment, kept so HF
//!   reports no newly initialized weights), under the bare model's names (a task head's `wav2vec2_bert.`
//!   prefix is removed). `__metadata__` holds `format = pt` (HF requires it) and `w2vbert.*` provenance:
//!   source, source dtype and layers, dtype, layers, stats, tool version.
//! - `wav2vec2bert_stats.safetensors`: the IndexTTS2 `mean` and `var` (or `std`) in f32, values unchanged. It is
//!   the file the CLI and [`crate::pipeline::Extractor`] read by default, and HF never sees it.
//!
//! The dtype applies to the encoder layers' projection matrices ([`LAYER_PROJECTIONS`], 99 % of the bytes);
//! every other tensor (LayerNorms, biases, the depthwise kernel, the distance embedding, the feature projection,
//! `masked_spec_embed`) is written in f32, as `--precision bf16` holds them: so a bf16 checkpoint run with
//! `--precision bf16` computes what its f32 source does in that precision, bit for bit, and a 16-bit checkpoint
//! loses nothing but the projections' low bits (~1 % of the file's size more than all-16-bit).
//!
//! Casting: f32 → f16 / bf16 rounds to nearest, ties to even (`half`); a finite value that would become ±inf is
//! an error naming the tensor. Widening (f16 / bf16 → f32) is exact; a tensor already in the target dtype is
//! copied byte for byte, so an f32 conversion of an f32 checkpoint computes bit-identical hidden states.
//!
//! Safety: the source (config, every tensor's name, shape and dtype, the stats) is validated before anything
//! is written; the output is assembled in a temporary sibling directory and renamed into place only when
//! complete, so an error or an interrupt never leaves a partial checkpoint at the output path. Tensors are
//! streamed one at a time (read, cast, write), so memory holds one tensor, not the checkpoint.

use crate::config::Wav2Vec2BertConfig;
use crate::error::{Error, Result};
#[cfg(doc)]
use crate::model::inventory::LAYER_PROJECTIONS;
use crate::model::inventory::{feature_projection_tensors, is_layer_projection, layer_tensors};
use crate::model::Checkpoint;
use crate::pipeline::{DEFAULT_STATS_FILE, SEMANTIC_LAYER};
use crate::stats::SemanticStats;
use crate::weights::Weights;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

mod cast;
mod out_dir;
mod safetensors_out;
use cast::cast;
use out_dir::{check_output, write_file_synced, TempDir};
use safetensors_out::{write_safetensors, OutTensor};

/// Storage dtype of the converted weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDtype {
    F32,
    F16,
    Bf16,
}

impl OutDtype {
    /// The safetensors dtype written.
    pub fn dtype(self) -> Dtype {
        match self {
            OutDtype::F32 => Dtype::F32,
            OutDtype::F16 => Dtype::F16,
            OutDtype::Bf16 => Dtype::BF16,
        }
    }

    /// `config.json`'s `torch_dtype` for this storage, as `save_pretrained` writes it.
    pub fn torch_dtype(self) -> &'static str {
        match self {
            OutDtype::F32 => "float32",
            OutDtype::F16 => "float16",
            OutDtype::Bf16 => "bfloat16",
        }
    }
}

impl std::fmt::Display for OutDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutDtype::F32 => "f32",
            OutDtype::F16 => "f16",
            OutDtype::Bf16 => "bf16",
        })
    }
}

impl std::str::FromStr for OutDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(OutDtype::F32),
            "f16" | "fp16" | "float16" => Ok(OutDtype::F16),
            "bf16" | "bfloat16" => Ok(OutDtype::Bf16),
            _ => Err(format!("unknown dtype `{s}`: expected f32, f16 or bf16")),
        }
    }
}

/// Which statistics go into the converted checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsChoice {
    /// The source checkpoint's `wav2vec2bert_stats.safetensors`: required when the conversion keeps
    /// hidden_states[17] (`layers >= 17`), left out (and said so in the summary) when it does not.
    FromSource,
    /// This file (validated like `--stats`), whatever the layer count.
    File(PathBuf),
    /// No stats: the converted checkpoint serves raw hidden states only (`--no-normalize`, or `--stats` later).
    Omit,
}

/// What to convert to; the CLI fills it from its flags.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Encoder layers kept: `encoder.layers.0..layers`, i.e. hidden states `0..=layers`.
    pub layers: usize,
    pub dtype: OutDtype,
    pub stats: StatsChoice,
    /// Replace an existing checkpoint at the output path.
    pub force: bool,
}

impl Default for ConvertOptions {
    /// IndexTTS2's needs: 17 layers, f32, the source's stats.
    fn default() -> Self {
        ConvertOptions {
            layers: SEMANTIC_LAYER,
            dtype: OutDtype::F32,
            stats: StatsChoice::FromSource,
            force: false,
        }
    }
}

/// What was written.
#[derive(Clone, Debug)]
pub struct Summary {
    pub out_dir: PathBuf,
    pub layers: usize,
    pub source_layers: usize,
    /// The dtype holding most of the source's bytes.
    pub source_dtype: Dtype,
    pub dtype: OutDtype,
    /// Tensors in the output `model.safetensors`.
    pub tensors: usize,
    /// Size of the output `model.safetensors`.
    pub model_bytes: u64,
    /// The stats file copied in, if any.
    pub stats_from: Option<PathBuf>,
    /// Why there are no stats, when there are none.
    pub stats_note: Option<String>,
    /// Non-zero source values that the cast rounded to zero (f16 underflow; 0 for f32 and bf16 in practice).
    pub flushed_to_zero: u64,
}

/// File names inside a checkpoint directory that `convert` writes.
pub const CHECKPOINT_FILES: [&str; 3] = ["config.json", "model.safetensors", DEFAULT_STATS_FILE];

/// The tensors of the bare `Wav2Vec2BertModel` (transformers 4.52.1 names and shapes) that the loaders read for
/// `layers` encoder layers: `model::inventory`'s lists (tests/convert.rs checks that a converted checkpoint, which
/// holds exactly these, loads, and that they are the HF-saved tiny-random checkpoint's names).
pub fn encoder_tensors(cfg: &Wav2Vec2BertConfig, layers: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = feature_projection_tensors(cfg);
    v.extend((0..layers).flat_map(|i| layer_tensors(cfg, i)));
    v
}

/// HF's SpecAugment parameter: not used at inference, kept when present so `from_pretrained` is complete.
const MASKED_SPEC_EMBED: &str = "masked_spec_embed";

/// One tensor to copy: where it comes from and what it becomes.
struct Item {
    src_name: String,
    src_dtype: Dtype,
    src_range: std::ops::Range<usize>,
    /// The dtype written: `--dtype` for the layers' projections, f32 for the rest.
    to: OutDtype,
    out: OutTensor,
}

/// Converts the checkpoint directory `src` into `out_dir` (see the module comment for what is written).
pub fn convert(src: &Path, out_dir: &Path, opts: &ConvertOptions) -> Result<Summary> {
    // 1. Validate the source completely before touching the output path.
    let ck = Checkpoint::locate(src)?;
    let config_text = std::fs::read_to_string(&ck.config).map_err(|e| Error::io(&ck.config, e))?;
    let cfg = Wav2Vec2BertConfig::from_json_str(&config_text, &ck.config)?;
    if opts.layers == 0 || opts.layers > cfg.num_hidden_layers {
        return Err(Error::Invalid(format!(
            "convert: --layers {} is out of range: {} has num_hidden_layers = {} (keep 1..={})",
            opts.layers,
            ck.config.display(),
            cfg.num_hidden_layers,
            cfg.num_hidden_layers
        )));
    }
    let w = Weights::open(&ck.weights)?;
    let items = plan_tensors(&cfg, &w, opts)?;
    let (stats_from, stats_note) = resolve_stats(src, opts)?;
    let stats_tensors = match &stats_from {
        Some(p) => Some(read_stats(p, cfg.hidden_size)?),
        None => None,
    };
    let out_config = rewrite_config(&config_text, &ck.config, opts)?;
    let existing = check_output(src, out_dir, opts.force)?;

    // 2. Assemble the checkpoint in a temporary sibling directory.
    let tmp = temp_sibling(out_dir)?;
    let source_dtype = w.storage_dtype().unwrap_or(Dtype::F32);
    let metadata = model_metadata(src, &cfg, opts, source_dtype, stats_from.is_some());
    let model_path = tmp.path().join("model.safetensors");
    let out_tensors: Vec<OutTensor> = items.iter().map(|i| i.out.clone()).collect();
    let (model_bytes, flushed_to_zero) = write_model(&ck.weights, &model_path, &metadata, &items, &out_tensors)?;
    if let (Some(from), Some(tensors)) = (&stats_from, &stats_tensors) {
        write_stats(&tmp.path().join(DEFAULT_STATS_FILE), from, tensors, cfg.hidden_size)?;
    }
    write_file_synced(&tmp.path().join("config.json"), out_config.as_bytes())?;

    // 3. Check what was written against the plan (header and tensor table; no tensor data is read).
    check_written(&model_path, &out_tensors)?;

    // 4. Move it into place.
    tmp.commit(out_dir, existing)?;
    Ok(Summary {
        out_dir: out_dir.to_path_buf(),
        layers: opts.layers,
        source_layers: cfg.num_hidden_layers,
        source_dtype,
        dtype: opts.dtype,
        tensors: out_tensors.len(),
        model_bytes,
        stats_from,
        stats_note,
        flushed_to_zero,
    })
}

/// A fresh temporary directory beside `out_dir` (same file system, so the final move is a rename).
fn temp_sibling(out_dir: &Path) -> Result<TempDir> {
    let parent = out_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out_dir
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("convert: {}: not a directory path", out_dir.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    TempDir::create(parent.join(format!(
        ".{}.convert-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// The converted model.safetensors' `__metadata__`: what it was made from and how.
fn model_metadata(
    src: &Path,
    cfg: &Wav2Vec2BertConfig,
    opts: &ConvertOptions,
    source_dtype: Dtype,
    has_stats: bool,
) -> BTreeMap<String, String> {
    let stats = if has_stats { DEFAULT_STATS_FILE } else { "none" };
    [
        ("format", "pt".to_string()),
        (
            "w2vbert.converted_by",
            format!("w2vbert-infer convert {}", env!("CARGO_PKG_VERSION")),
        ),
        ("w2vbert.source", src.display().to_string()),
        ("w2vbert.source_dtype", format!("{source_dtype:?}")),
        ("w2vbert.source_layers", cfg.num_hidden_layers.to_string()),
        ("w2vbert.dtype", format!("{:?}", opts.dtype.dtype())),
        ("w2vbert.layers", opts.layers.to_string()),
        ("w2vbert.stats", stats.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Writes the planned tensors, each read from `weights` and cast; returns the file's bytes and how many non-zero
/// values the casts flushed to zero.
fn write_model(
    weights: &Path,
    model_path: &Path,
    metadata: &BTreeMap<String, String>,
    items: &[Item],
    out_tensors: &[OutTensor],
) -> Result<(u64, u64)> {
    let mut reader = File::open(weights).map_err(|e| Error::io(weights, e))?;
    let mut raw = Vec::new();
    let mut flushed_to_zero = 0u64;
    let bytes = write_safetensors(model_path, metadata, out_tensors, |k, buf| {
        let it = &items[k];
        raw.resize(it.src_range.len(), 0);
        reader
            .seek(SeekFrom::Start(it.src_range.start as u64))
            .and_then(|_| reader.read_exact(&mut raw))
            .map_err(|e| Error::tensor(weights, &it.src_name, format!("cannot read: {e}")))?;
        flushed_to_zero +=
            cast(it.src_dtype, &raw, it.to, buf).map_err(|msg| Error::tensor(weights, &it.src_name, msg))?;
        Ok(())
    })?;
    Ok((bytes, flushed_to_zero))
}

/// The stats file beside the model: each tensor f32 `[d]`, with where it came from.
fn write_stats(path: &Path, from: &Path, tensors: &[(String, Vec<f32>)], d: usize) -> Result<()> {
    let mut meta = BTreeMap::new();
    meta.insert("w2vbert.source".to_string(), from.display().to_string());
    meta.insert("w2vbert.hidden_state".to_string(), SEMANTIC_LAYER.to_string());
    let specs: Vec<OutTensor> = tensors
        .iter()
        .map(|(n, _)| OutTensor {
            name: n.clone(),
            dtype: Dtype::F32,
            shape: vec![d],
        })
        .collect();
    write_safetensors(path, &meta, &specs, |k, buf| {
        buf.clear();
        buf.extend(tensors[k].1.iter().flat_map(|v| v.to_le_bytes()));
        Ok(())
    })?;
    Ok(())
}

/// The written model holds exactly the planned tensors, each with its shape and dtype (header only).
fn check_written(model_path: &Path, out_tensors: &[OutTensor]) -> Result<()> {
    let written = Weights::open(model_path)?;
    for t in out_tensors {
        if written.shape(&t.name) != Some(t.shape.as_slice()) || written.dtype(&t.name) != Some(t.dtype) {
            return Err(Error::tensor(
                model_path,
                &t.name,
                "written with the wrong shape or dtype",
            ));
        }
    }
    if written.len() != out_tensors.len() {
        return Err(Error::format(model_path, "written with unexpected extra tensors"));
    }
    Ok(())
}

/// Every tensor to copy, checked against the source's header: present, expected shape, a float dtype.
fn plan_tensors(cfg: &Wav2Vec2BertConfig, w: &Weights, opts: &ConvertOptions) -> Result<Vec<Item>> {
    let prefix = crate::model::inventory::name_prefix(w);
    let mut wanted = encoder_tensors(cfg, opts.layers);
    let masked = format!("{prefix}{MASKED_SPEC_EMBED}");
    if w.contains(&masked) {
        wanted.push((MASKED_SPEC_EMBED.to_string(), vec![cfg.hidden_size]));
    }
    let mut items = Vec::with_capacity(wanted.len());
    for (name, shape) in wanted {
        let src_name = format!("{prefix}{name}");
        let Some(found) = w.shape(&src_name) else {
            return Err(Error::tensor(
                w.path(),
                &src_name,
                format!(
                    "missing: a {}-layer conversion needs it (the file has {} tensors)",
                    opts.layers,
                    w.len()
                ),
            ));
        };
        let src_dtype = w.dtype(&src_name).expect("present");
        if found != shape.as_slice() {
            return Err(Error::tensor(
                w.path(),
                &src_name,
                format!("expected shape {shape:?} (from config.json), found {found:?}"),
            ));
        }
        if !matches!(src_dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(Error::tensor(
                w.path(),
                &src_name,
                format!("dtype {src_dtype:?} cannot be converted (expected F32, F16 or BF16)"),
            ));
        }
        let to = if is_layer_projection(&name) {
            opts.dtype
        } else {
            OutDtype::F32
        };
        items.push(Item {
            src_range: w.data_range(&src_name).expect("present"),
            src_name,
            src_dtype,
            to,
            out: OutTensor {
                dtype: to.dtype(),
                name,
                shape,
            },
        });
    }
    // Written in name order, as HF's safetensors files are (and so read nearly sequentially), except that
    // tensors whose size is not a multiple of 64 bytes go last: the data section starts on a cache line
    // (`write_safetensors`), so every other tensor, the projection weights among them, starts on one too, and
    // the bf16 kernels read them in place with every 32-value tile row on a single cache line.
    items.sort_by(|a, b| {
        let ragged = |i: &Item| !i.out.nbytes().is_multiple_of(safetensors_out::DATA_ALIGN);
        (ragged(a), &a.out.name).cmp(&(ragged(b), &b.out.name))
    });
    Ok(items)
}

/// The stats file to copy in, or why there is none.
fn resolve_stats(src: &Path, opts: &ConvertOptions) -> Result<(Option<PathBuf>, Option<String>)> {
    match &opts.stats {
        StatsChoice::File(p) => Ok((Some(p.clone()), None)),
        StatsChoice::Omit => Ok((None, Some("left out (--no-stats)".into()))),
        StatsChoice::FromSource => {
            if opts.layers < SEMANTIC_LAYER {
                let note = format!(
                    "left out: IndexTTS2's stats normalize hidden_states[{SEMANTIC_LAYER}], which a {}-layer \
                     checkpoint does not have (pass --stats FILE to include a file anyway)",
                    opts.layers
                );
                Ok((None, Some(note)))
            } else {
                Ok((Some(crate::stats::locate(src, None)?), None))
            }
        }
    }
}

/// The stats' tensors as f32, validated exactly as the pipeline validates them when it loads them.
fn read_stats(path: &Path, dim: usize) -> Result<Vec<(String, Vec<f32>)>> {
    SemanticStats::load(path, dim)?;
    let w = Weights::open(path)?;
    let second = if w.contains("var") { "var" } else { "std" };
    Ok(vec![
        ("mean".to_string(), w.get("mean", &[dim])?.into_vec()),
        (second.to_string(), w.get(second, &[dim])?.into_vec()),
    ])
}

/// The source `config.json` with `num_hidden_layers` and `torch_dtype` replaced; every other field kept.
fn rewrite_config(text: &str, path: &Path, opts: &ConvertOptions) -> Result<String> {
    let mut v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::format(path, format!("config is not valid JSON: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::format(path, "config is not a JSON object"))?;
    obj.insert("num_hidden_layers".into(), opts.layers.into());
    obj.insert("torch_dtype".into(), opts.dtype.torch_dtype().into());
    let mut out =
        serde_json::to_string_pretty(&v).map_err(|e| Error::format(path, format!("cannot write config: {e}")))?;
    out.push('\n');
    // What we write must load: the same validation as at inference.
    let back = Wav2Vec2BertConfig::from_json_str(&out, path)?;
    debug_assert_eq!(back.num_hidden_layers, opts.layers);
    Ok(out)
}
