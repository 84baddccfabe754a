//! Audio file → hidden states / IndexTTS2 semantic features: what the CLI does, as a library API.
//!
//! ```no_run
//! use w2vbert::pipeline::{Extractor, Request};
//! # fn main() -> w2vbert::Result<()> {
//! let ex = Extractor::load("checkpoints/w2v-bert-2.0".as_ref(), &Request::semantic(), None)?;
//! let out = ex.run_file("prompt.wav".as_ref())?;
//! let semantic = out.semantic.expect("requested"); // [out.t, 1024], (hidden_states[17] - mean) / sqrt(var)
//! # Ok(()) }
//! ```

use crate::audio::{self, Features};
use crate::config::Wav2Vec2BertConfig;
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Precision, Wav2Vec2BertModel};
use crate::stats::SemanticStats;
use crate::weights::Weights;
use std::path::Path;

mod pack;
pub use pack::Packed;

/// The hidden state IndexTTS2 and MaskGCT normalize into "semantic features": `hidden_states[17]`, the output
/// of `encoder.layers[16]`.
pub const SEMANTIC_LAYER: usize = 17;

pub use crate::stats::DEFAULT_STATS_FILE;

/// Frames (20 ms each) packed into one encoder call by default ([`Extractor::packed`]): 40 s of audio, wide
/// enough for the matmuls, small enough that a pack's activations stay ~0.5 GB at full size.
pub const DEFAULT_BATCH_FRAMES: usize = 2000;

/// Most worker threads a run may ask for (`--threads`, Python's `threads=`): more than any CPU this runs on has,
/// few enough that starting them stays quick (on a 2-vCPU VM, 1000 threads made a 4 s file with the tiny
/// checkpoint take 2.1 s instead of 0.04 s, and 100 000 had used 24 min of CPU time without finishing when stopped).
pub const MAX_THREADS: usize = 1024;

/// A worker thread count as asked for (any integer type), checked: 1 to [`MAX_THREADS`].
pub fn check_threads<N: Copy + std::fmt::Display + TryInto<usize>>(n: N) -> Result<usize> {
    match n.try_into() {
        Ok(k) if (1..=MAX_THREADS).contains(&k) => Ok(k),
        _ => Err(Error::Invalid(format!(
            "threads must be 1 to {MAX_THREADS} (this machine has {}); got {n}",
            std::thread::available_parallelism().map_or(1, |c| c.get())
        ))),
    }
}

/// What to compute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Raw hidden states to return, each in 0..=num_hidden_layers.
    pub hidden_states: Vec<usize>,
    /// Also return `(hidden_states[layer] - mean) / std` for this layer (17 for IndexTTS2 / MaskGCT).
    pub normalized: Option<usize>,
}

impl Request {
    /// IndexTTS2's semantic features only.
    pub fn semantic() -> Self {
        Request {
            hidden_states: vec![],
            normalized: Some(SEMANTIC_LAYER),
        }
    }

    /// Raw `layers` (repeats dropped, first occurrence kept), and the semantic features too when `normalize` and
    /// [`SEMANTIC_LAYER`] is among them.
    pub fn from_layers(layers: &[usize], normalize: bool) -> Result<Self> {
        let mut hidden_states: Vec<usize> = Vec::with_capacity(layers.len());
        for &k in layers {
            if !hidden_states.contains(&k) {
                hidden_states.push(k);
            }
        }
        if hidden_states.is_empty() {
            return Err(Error::Invalid("at least one hidden state must be requested".into()));
        }
        let normalized = (normalize && hidden_states.contains(&SEMANTIC_LAYER)).then_some(SEMANTIC_LAYER);
        Ok(Request {
            hidden_states,
            normalized,
        })
    }

    /// Encoder layers needed: the deepest hidden state asked for.
    pub fn layers_needed(&self) -> usize {
        self.hidden_states
            .iter()
            .copied()
            .chain(self.normalized)
            .max()
            .unwrap_or(0)
    }
}

/// One utterance's results. Every array has `t` rows (the masked last row of an odd fbank frame count included,
/// as IndexTTS2 keeps it).
pub struct Output {
    pub t: usize,
    pub hidden_size: usize,
    /// `[t]`, false for the padded row of an odd frame count.
    pub mask: Vec<bool>,
    /// `(k, [t, hidden])` in the order requested.
    pub hidden_states: Vec<(usize, Vec<f32>)>,
    /// `[t, hidden]` when `Request::normalized` was set.
    pub semantic: Option<Vec<f32>>,
}

pub struct Extractor {
    pub model: Wav2Vec2BertModel,
    stats: Option<SemanticStats>,
    request: Request,
}

impl Extractor {
    /// Load only the layers `request` needs, in f32. Stats are required when `request.normalized` is set:
    /// `stats`, or `<checkpoint>/wav2vec2bert_stats.safetensors`.
    pub fn load(checkpoint: &Path, request: &Request, stats: Option<&Path>) -> Result<Self> {
        Self::load_with(checkpoint, request, stats, Precision::F32)
    }

    /// [`Extractor::load`] with the projections in `precision`. bf16 on a CPU without AMX or AVX512-BF16 runs
    /// f32: check [`Extractor::precision`] (the CLI says so on stderr).
    pub fn load_with(checkpoint: &Path, request: &Request, stats: Option<&Path>, precision: Precision) -> Result<Self> {
        let ck = Checkpoint::locate(checkpoint)?;
        let config = Wav2Vec2BertConfig::load(&ck.config)?;
        let n = config.num_hidden_layers;
        if let Some(k) = request
            .hidden_states
            .iter()
            .copied()
            .chain(request.normalized)
            .find(|&k| k > n)
        {
            return Err(Error::Invalid(format!(
                "hidden_states[{k}] requested, but {} has num_hidden_layers = {n} (hidden states 0..={n})",
                ck.config.display()
            )));
        }
        // Found before the weights are read, so a missing file costs no load.
        let stats_path = request
            .normalized
            .map(|_| crate::stats::locate(checkpoint, stats))
            .transpose()?;
        let weights = Weights::open(&ck.weights)?;
        let model = Wav2Vec2BertModel::from_weights_in(config, &weights, request.layers_needed(), precision)?;
        let stats = stats_path
            .map(|p| SemanticStats::load(&p, model.config.hidden_size))
            .transpose()?;
        Ok(Extractor {
            model,
            stats,
            request: request.clone(),
        })
    }

    /// The projections' arithmetic in force (bf16 asked on a CPU without a bf16 matmul gives f32).
    pub fn precision(&self) -> Precision {
        self.model.precision()
    }

    /// Run on fbank features of one utterance.
    pub fn run(&self, f: &Features) -> Result<Output> {
        let mut out = self.run_batch(std::slice::from_ref(f))?;
        Ok(out.pop().expect("one utterance in, one out"))
    }

    /// Run on several utterances at once, packed side by side into one `[hidden, ΣT]` block (no padding):
    /// LayerNorms, projections and FFNs run once over the pack, attention and the depthwise conv per utterance,
    /// so each result equals [`Extractor::run`] on that utterance alone (the tests check this bit for bit) while
    /// the matmuls are as wide as ΣT. Cost and memory grow with ΣT: callers cap it (the CLI's `--batch-frames`).
    pub fn run_batch(&self, items: &[Features]) -> Result<Vec<Output>> {
        let fin = self.model.config.feature_projection_input_dim;
        for f in items {
            if f.data.len() != f.t * fin {
                return Err(Error::Invalid(format!(
                    "features have {} values per frame but the checkpoint's feature_projection_input_dim is {fin}",
                    f.data.len() / f.t.max(1)
                )));
            }
        }
        let mut wanted = self.request.hidden_states.clone();
        wanted.extend(self.request.normalized);
        let utterances: Vec<(&[f32], &[bool])> = items.iter().map(|f| (&f.data[..], &f.mask[..])).collect();
        // On one of the pool's threads (called from elsewhere, rayon moves it there and this thread waits once):
        // the encoder's ~25 parallel steps per layer then fork from a worker, instead of each waking the pool
        // from outside and sleeping on it.
        let states = rayon::scope(|_| self.model.forward_packed(&utterances, &wanted))?;
        Ok(items
            .iter()
            .zip(states)
            .map(|(f, mut states)| {
                let semantic = match (self.request.normalized, &self.stats) {
                    (Some(_), Some(stats)) => {
                        let mut h = states.pop().expect("normalized layer was requested last");
                        stats.normalize_inplace(&mut h);
                        Some(h)
                    }
                    _ => None,
                };
                Output {
                    t: f.t,
                    hidden_size: self.model.config.hidden_size,
                    mask: f.mask.clone(),
                    hidden_states: self.request.hidden_states.iter().copied().zip(states).collect(),
                    semantic,
                }
            })
            .collect())
    }

    /// Decode, resample to 16 kHz (`librosa.load(sr=16000)`, [`audio::Preprocess::Direct16k`]), fbank, encoder.
    pub fn run_file(&self, path: &Path) -> Result<Output> {
        self.run_file_with(path, audio::Preprocess::Direct16k)
    }

    /// In-memory mono `samples` (nominal range ±1) at `sample_rate` Hz: resampled to 16 kHz exactly as
    /// [`Extractor::run_file`] resamples a decoded file, so a WAV file and its samples give the same output bit for
    /// bit. Errors name the input [`audio::IN_MEMORY`].
    pub fn run_samples(&self, samples: &[f32], sample_rate: u32) -> Result<Output> {
        self.run_interleaved(samples, 1, sample_rate)
    }

    /// [`Extractor::run_samples`] for several channels: `interleaved` is `[frames, channels]`; channels are
    /// averaged (librosa's `to_mono`) before resampling, as for a file.
    pub fn run_interleaved(&self, interleaved: &[f32], channels: usize, sample_rate: u32) -> Result<Output> {
        self.run(&audio::features_from_interleaved(interleaved, channels, sample_rate)?)
    }

    /// [`Extractor::run_file`] with the audio read as `pre` says (e.g. IndexTTS2's speaker-prompt path:
    /// 22.05 kHz, first 15 s, torchaudio resampler to 16 kHz).
    pub fn run_file_with(&self, path: &Path, pre: audio::Preprocess) -> Result<Output> {
        self.run(&audio::features_from_file_with(path, pre)?)
    }
}
