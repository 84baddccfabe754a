//! `Wav2Vec2BertModel` up to the encoder's hidden states: feature projection, masked_fill of padded rows, and
//! only as many conformer layers as the requested outputs need (`hidden_states[17]` runs 17 layers, never 24).
//! transformers v4.52.1 modeling_wav2vec2_bert.py#L465 (encoder) and #L997 (model forward).
//!
//! `hidden_states[0]` is the feature projection output (padded rows zeroed); `hidden_states[k]` is the output of
//! `encoder.layers[k-1]`. There is no encoder-level final LayerNorm. The adapter / intermediate_ffn only touch
//! `last_hidden_state` and are rejected by the config loader.

use super::feature_projection::FeatureProjection;
use super::layer::{EncoderLayer, Scratch};
use super::pack::Pack;
use super::primitives::zero_masked_cols;
use super::Precision;
use crate::config::Wav2Vec2BertConfig;
use crate::error::{Error, Result};
use crate::weights::Weights;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use w2vbert_kernels::attention::transpose_block;

/// The files of a Hugging Face checkpoint directory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub weights: PathBuf,
}

/// What to fetch, said wherever weights are missing.
pub const DOWNLOAD_HINT: &str = "download config.json and model.safetensors of facebook/w2v-bert-2.0 \
(https://huggingface.co/facebook/w2v-bert-2.0) into that directory (see checkpoints/README.md), or use the small \
random test checkpoint shipped with the repository, checkpoints/tiny-random";

impl Checkpoint {
    /// `dir/config.json` and `dir/model.safetensors`, both required.
    pub fn locate(dir: &Path) -> Result<Self> {
        let config = dir.join("config.json");
        let weights = dir.join("model.safetensors");
        for f in [&config, &weights] {
            if !f.is_file() {
                return Err(Error::not_found(
                    f,
                    format!("checkpoint {}: {DOWNLOAD_HINT}", dir.display()),
                ));
            }
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            config,
            weights,
        })
    }
}

pub struct Wav2Vec2BertModel {
    pub config: Wav2Vec2BertConfig,
    pub feature_projection: FeatureProjection,
    /// `encoder.layers[0..n]`, only as many as were asked for at load.
    pub layers: Vec<EncoderLayer>,
    precision: Precision,
}

impl Wav2Vec2BertModel {
    /// Load the config and the first `num_layers` encoder layers of a checkpoint directory.
    pub fn load(dir: &Path, num_layers: usize) -> Result<Self> {
        let ck = Checkpoint::locate(dir)?;
        let config = Wav2Vec2BertConfig::load(&ck.config)?;
        let weights = Weights::open(&ck.weights)?;
        Self::from_weights(config, &weights, num_layers)
    }

    /// Build from an already opened config and weights file. Accepts the bare model's names
    /// (`feature_projection.…`, `encoder.layers.…`) and those of a task head (`wav2vec2_bert.` prefix).
    pub fn from_weights(config: Wav2Vec2BertConfig, w: &Weights, num_layers: usize) -> Result<Self> {
        Self::from_weights_in(config, w, num_layers, Precision::F32)
    }

    /// [`Self::from_weights`] with the projections in `precision`, the one way to choose it (a model does not
    /// change precision once built). With bf16 each layer is converted as soon as it is loaded, so the f32
    /// weights of an f32 checkpoint are never all resident at once (peak RSS ≈ the bf16 weights plus a layer or
    /// two of f32, instead of all of them). bf16 needs a bf16 kernel on this CPU (`bf16::best_kernel`); without
    /// one the model stays f32 and [`Self::precision`] says so: the caller must tell the user.
    pub fn from_weights_in(
        config: Wav2Vec2BertConfig,
        w: &Weights,
        num_layers: usize,
        precision: Precision,
    ) -> Result<Self> {
        if num_layers > config.num_hidden_layers {
            return Err(Error::Invalid(format!(
                "{} layers requested but the checkpoint has num_hidden_layers = {}",
                num_layers, config.num_hidden_layers
            )));
        }
        let prefix = super::inventory::name_prefix(w);
        let feature_projection = FeatureProjection::load(&config, w, &format!("{prefix}feature_projection."))?;
        let kernel = match precision {
            Precision::F32 => None,
            Precision::Bf16 => w2vbert_kernels::bf16::best_kernel(),
        };
        // In parallel: loading maps each projection's pages (primitives::populated), kernel time per page.
        let layers = (0..num_layers)
            .into_par_iter()
            .map(|i| {
                let mut layer = EncoderLayer::load(&config, w, &format!("{prefix}encoder.layers.{i}"))?;
                if let Some(kernel) = kernel {
                    layer.to_bf16(kernel);
                }
                Ok(layer)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Wav2Vec2BertModel {
            config,
            feature_projection,
            layers,
            precision: if kernel.is_some() {
                Precision::Bf16
            } else {
                Precision::F32
            },
        })
    }

    /// The projections' arithmetic.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Deepest hidden state this instance can produce.
    pub fn max_hidden_state(&self) -> usize {
        self.layers.len()
    }

    /// Hidden states `wanted` (each k in 0..=loaded layers) of one utterance.
    /// `features` [t, feature_projection_input_dim], `mask` [t] (true = valid frame; padded rows are zeroed at the
    /// encoder entry, masked as attention keys and zeroed before the depthwise conv — they are still computed and
    /// returned, like HF). Returns one `[t, hidden]` array per entry of `wanted`, in that order.
    pub fn forward(&self, features: &[f32], mask: &[bool], t: usize, wanted: &[usize]) -> Result<Vec<Vec<f32>>> {
        let fin = self.config.feature_projection_input_dim;
        if features.len() != t * fin || mask.len() != t {
            return Err(Error::Invalid(format!(
                "input_features must be [{t}, {fin}] with a mask of {t} (got {} values and a mask of {})",
                features.len(),
                mask.len()
            )));
        }
        let mut out = self.forward_packed(&[(features, mask)], wanted)?;
        Ok(out.pop().expect("one utterance in, one out"))
    }

    /// [`Self::forward`] on several utterances at once, packed side by side into one `[hidden, ΣT]` block (see
    /// [`Pack`]): no padding, and each utterance's result is what `forward` gives it alone. `utterances` are
    /// `(features [t_i, in], mask [t_i])`; returns, per utterance, one `[t_i, hidden]` array per entry of `wanted`.
    pub fn forward_packed(&self, utterances: &[(&[f32], &[bool])], wanted: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        let cfg = &self.config;
        let (fin, d) = (cfg.feature_projection_input_dim, cfg.hidden_size);
        for (i, (f, m)) in utterances.iter().enumerate() {
            if m.is_empty() {
                return Err(Error::Invalid(format!("utterance {i}: no input frames")));
            }
            if f.len() != m.len() * fin {
                return Err(Error::Invalid(format!(
                    "utterance {i}: input_features must be [{t}, {fin}] for a mask of {t} (got {} values)",
                    f.len(),
                    t = m.len()
                )));
            }
        }
        if let Some(&k) = wanted.iter().find(|&&k| k > self.layers.len()) {
            return Err(Error::Invalid(format!(
                "hidden_states[{k}] requested but only {} layers are loaded (num_hidden_layers = {})",
                self.layers.len(),
                cfg.num_hidden_layers
            )));
        }
        if utterances.is_empty() {
            return Ok(Vec::new());
        }
        let pack = Pack::new(utterances.iter().map(|(_, m)| m.len()).collect());
        let t = pack.total();
        let mask: Vec<bool> = utterances.iter().flat_map(|(_, m)| m.iter().copied()).collect();
        let deepest = wanted.iter().copied().max().unwrap_or(0);
        let key_mask = if mask.iter().all(|&m| m) { None } else { Some(&mask[..]) };

        // Channel-major inside the encoder: h [d, T]. Each [t_i, fin] input is transposed into its columns.
        let mut h = vec![0.0f32; d * t];
        {
            let mut xt = vec![0.0f32; fin * t];
            for ((f, _), (s0, len)) in utterances.iter().zip(pack.ranges()) {
                transpose_block(&mut xt[s0..], t, f, fin, len, fin);
            }
            let mut normed = vec![0.0f32; fin * t];
            self.feature_projection.forward(&mut h, &mut normed, &xt, t);
        }
        zero_masked_cols(&mut h, &mask, t);

        // Requested hidden states go back to time-major [t_i, d] on the way out.
        let mut out: Vec<Vec<Option<Vec<f32>>>> = vec![vec![None; wanted.len()]; utterances.len()];
        let mut keep = |k: usize, h: &[f32]| {
            for (j, _) in wanted.iter().enumerate().filter(|(_, &w)| w == k) {
                for (slot, (s0, len)) in out.iter_mut().zip(pack.ranges()) {
                    let mut hs = vec![0.0f32; len * d];
                    transpose_block(&mut hs, d, &h[s0..], t, d, len);
                    slot[j] = Some(hs);
                }
            }
        };
        keep(0, &h);
        if deepest > 0 {
            let mut scratch = Scratch::new(cfg, t);
            for (i, layer) in self.layers[..deepest].iter().enumerate() {
                layer.forward(&mut h, &mut scratch, key_mask, &pack);
                keep(i + 1, &h);
            }
        }
        Ok(out
            .into_iter()
            .map(|per| {
                per.into_iter()
                    .map(|o| o.expect("every wanted k ≤ deepest was kept"))
                    .collect()
            })
            .collect())
    }

    /// A right-padded batch, as HF computes it: `features` [b, t, in], `mask` [b, t]. Each utterance runs at the
    /// padded length with its own mask; returns, per utterance, one `[t, hidden]` array per entry of `wanted`.
    pub fn forward_batch(
        &self,
        features: &[f32],
        mask: &[bool],
        b: usize,
        t: usize,
        wanted: &[usize],
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let fin = self.config.feature_projection_input_dim;
        if features.len() != b * t * fin || mask.len() != b * t {
            return Err(Error::Invalid(format!(
                "batch input_features must be [{b}, {t}, {fin}] with a mask of [{b}, {t}]"
            )));
        }
        (0..b)
            .map(|i| {
                self.forward(
                    &features[i * t * fin..(i + 1) * t * fin],
                    &mask[i * t..(i + 1) * t],
                    t,
                    wanted,
                )
            })
            .collect()
    }
}
