//! `Wav2Vec2BertFeatureProjection`: LayerNorm over the 160 stacked fbank values, then Linear 160 → hidden.
//! transformers v4.52.1 modeling_wav2vec2_bert.py#L118 (dropout is identity at inference).

use super::primitives::{LayerNorm, Linear};
use crate::config::Wav2Vec2BertConfig;
use crate::error::Result;
use crate::weights::Weights;

pub struct FeatureProjection {
    pub layer_norm: LayerNorm,
    pub projection: Linear,
}

impl FeatureProjection {
    pub fn load(cfg: &Wav2Vec2BertConfig, w: &Weights, prefix: &str) -> Result<Self> {
        let (i, d) = (cfg.feature_projection_input_dim, cfg.hidden_size);
        Ok(FeatureProjection {
            layer_norm: LayerNorm::load(w, &format!("{prefix}layer_norm"), i, cfg.layer_norm_eps as f32)?,
            projection: Linear::load(w, &format!("{prefix}projection"), i, d, true)?,
        })
    }

    /// Channel-major: h[hidden, t] = Linear(LN(x[in, t])); `normed` [in, t] is scratch.
    pub fn forward(&self, h: &mut [f32], normed: &mut [f32], x: &[f32], t: usize) {
        self.layer_norm.forward(normed, x, t);
        self.projection.forward(h, normed, t);
    }
}
