//! `config.json` of a Wav2Vec2-BERT checkpoint, with the field names of transformers 4.52.1
//! `Wav2Vec2BertConfig` (models/wav2vec2_bert/configuration_wav2vec2_bert.py).
//!
//! Only the fields that change `hidden_states` at inference are read: the sizes, the activation, the
//! LayerNorm epsilon, the depthwise kernel size and the relative-key window. Dropouts, layerdrop and
//! SpecAugment are training-only; `rotary_embedding_base` / `max_source_positions` belong to position types
//! we reject. A field absent from the JSON takes the transformers default (as `from_pretrained` does), and
//! those defaults *are* facebook/w2v-bert-2.0. A field present with the wrong JSON type is an error naming
//! it; so is a setting we do not implement, rather than a silent wrong answer.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// Largest size we accept for any dimension: far past any real checkpoint, small enough that products of
/// two sizes and a frame count cannot overflow.
const MAX_DIM: usize = 1 << 24;

#[derive(Debug, Clone, PartialEq)]
pub struct Wav2Vec2BertConfig {
    /// Model width d (1024).
    pub hidden_size: usize,
    /// Conformer layers in the checkpoint (24); `hidden_states` has `num_hidden_layers + 1` entries.
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// FFN inner width (4096).
    pub intermediate_size: usize,
    /// fbank features per frame after stacking (160 = 2 × 80 mel bins).
    pub feature_projection_input_dim: usize,
    /// "swish" or "silu" (both are x·σ(x)); kept as written in the file.
    pub hidden_act: String,
    /// Epsilon of every LayerNorm (1e-5), as written; the f32 engine uses `layer_norm_eps as f32`.
    pub layer_norm_eps: f64,
    /// Causal depthwise conv kernel (31), odd.
    pub conv_depthwise_kernel_size: usize,
    /// Always "relative_key" after validation.
    pub position_embeddings_type: String,
    /// Shaw relative-key window: distances clamp to [-left, right] (64, 8).
    pub left_max_position_embeddings: usize,
    pub right_max_position_embeddings: usize,
    /// Always false after validation.
    pub add_adapter: bool,
    /// Always false after validation.
    pub use_intermediate_ffn_before_adapter: bool,
    /// "wav2vec2-bert" when present (for logging / sanity).
    pub model_type: Option<String>,
    /// Storage dtype recorded by the saver ("float32", "float16", ...), for logging only.
    pub torch_dtype: Option<String>,
}

impl Default for Wav2Vec2BertConfig {
    /// transformers 4.52.1 defaults, which are the facebook/w2v-bert-2.0 settings.
    fn default() -> Self {
        Wav2Vec2BertConfig {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            intermediate_size: 4096,
            feature_projection_input_dim: 160,
            hidden_act: "swish".into(),
            layer_norm_eps: 1e-5,
            conv_depthwise_kernel_size: 31,
            position_embeddings_type: "relative_key".into(),
            left_max_position_embeddings: 64,
            right_max_position_embeddings: 8,
            add_adapter: false,
            use_intermediate_ffn_before_adapter: false,
            model_type: None,
            torch_dtype: None,
        }
    }
}

impl Wav2Vec2BertConfig {
    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates JSON text; `path` is only used to name the source in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::format(path, format!("config is not valid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(Error::format(path, "config is not a JSON object"));
        };
        let f = Fields { path, obj: &obj };
        let d = Wav2Vec2BertConfig::default();
        let cfg = Wav2Vec2BertConfig {
            hidden_size: f.usize("hidden_size", d.hidden_size)?,
            num_hidden_layers: f.usize("num_hidden_layers", d.num_hidden_layers)?,
            num_attention_heads: f.usize("num_attention_heads", d.num_attention_heads)?,
            intermediate_size: f.usize("intermediate_size", d.intermediate_size)?,
            feature_projection_input_dim: f.usize("feature_projection_input_dim", d.feature_projection_input_dim)?,
            hidden_act: f.string("hidden_act", &d.hidden_act)?,
            layer_norm_eps: f.f64("layer_norm_eps", d.layer_norm_eps)?,
            conv_depthwise_kernel_size: f.usize("conv_depthwise_kernel_size", d.conv_depthwise_kernel_size)?,
            // `null` is legal in transformers (no position embeddings) but not implemented here.
            position_embeddings_type: f
                .opt_string("position_embeddings_type", Some(&d.position_embeddings_type))?
                .ok_or_else(|| {
                    Error::config(
                        path,
                        "position_embeddings_type",
                        "null (no position embeddings) is not implemented (only \"relative_key\")",
                    )
                })?,
            left_max_position_embeddings: f.usize("left_max_position_embeddings", d.left_max_position_embeddings)?,
            right_max_position_embeddings: f.usize("right_max_position_embeddings", d.right_max_position_embeddings)?,
            add_adapter: f.bool("add_adapter", d.add_adapter)?,
            use_intermediate_ffn_before_adapter: f.bool(
                "use_intermediate_ffn_before_adapter",
                d.use_intermediate_ffn_before_adapter,
            )?,
            model_type: f.opt_string("model_type", None)?,
            torch_dtype: f.opt_string("torch_dtype", None)?,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Per-head width (64 for the real model).
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Rows of each layer's `self_attn.distance_embedding.weight` (73 = 64 + 8 + 1).
    pub fn num_relative_positions(&self) -> usize {
        self.left_max_position_embeddings + self.right_max_position_embeddings + 1
    }

    /// Checks what the engine relies on; every error names the offending field.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(path, field, msg));
        if let Some(t) = &self.model_type {
            if t != "wav2vec2-bert" {
                return err("model_type", format!("is {t:?}, expected \"wav2vec2-bert\""));
            }
        }
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("feature_projection_input_dim", self.feature_projection_input_dim),
            ("conv_depthwise_kernel_size", self.conv_depthwise_kernel_size),
        ] {
            if v == 0 {
                return err(field, "must be > 0".into());
            }
        }
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("feature_projection_input_dim", self.feature_projection_input_dim),
            ("conv_depthwise_kernel_size", self.conv_depthwise_kernel_size),
            ("left_max_position_embeddings", self.left_max_position_embeddings),
            ("right_max_position_embeddings", self.right_max_position_embeddings),
        ] {
            if v > MAX_DIM {
                return err(field, format!("{v} is absurdly large (> {MAX_DIM})"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return err(
                "num_attention_heads",
                format!(
                    "hidden_size {} is not divisible by {} heads",
                    self.hidden_size, self.num_attention_heads
                ),
            );
        }
        // transformers raises the same ValueError: the conv module assumes an odd kernel.
        if self.conv_depthwise_kernel_size.is_multiple_of(2) {
            return err(
                "conv_depthwise_kernel_size",
                format!("{} must be odd", self.conv_depthwise_kernel_size),
            );
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return err(
                "layer_norm_eps",
                format!("{} must be finite and >= 0", self.layer_norm_eps),
            );
        }
        if !matches!(self.hidden_act.as_str(), "swish" | "silu") {
            return err(
                "hidden_act",
                format!("{:?} is not implemented (only \"swish\" / \"silu\")", self.hidden_act),
            );
        }
        match self.position_embeddings_type.as_str() {
            "relative_key" => {}
            t @ ("rotary" | "relative") => {
                return err(
                    "position_embeddings_type",
                    format!("{t:?} is not implemented (only \"relative_key\", the w2v-bert-2.0 setting)"),
                );
            }
            other => {
                return err(
                    "position_embeddings_type",
                    format!("{other:?} is not a valid value (transformers accepts rotary, relative, relative_key)"),
                )
            }
        }
        if self.add_adapter {
            return err(
                "add_adapter",
                "true is not implemented (adapter layers after the encoder)".into(),
            );
        }
        if self.use_intermediate_ffn_before_adapter {
            return err("use_intermediate_ffn_before_adapter", "true is not implemented".into());
        }
        Ok(())
    }
}

/// Typed access to the top-level JSON object: absent → default, present with the wrong type → error.
struct Fields<'a> {
    path: &'a Path,
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn wrong(&self, key: &str, want: &str, v: &Value) -> Error {
        let mut shown = v.to_string();
        if shown.len() > 60 {
            let cut = (0..=60).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
            shown.truncate(cut);
            shown.push('…');
        }
        Error::config(self.path, key, format!("expected {want}, found {shown}"))
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.obj.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| self.wrong(key, "a non-negative integer", v)),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.obj.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.wrong(key, "a number", v)),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.obj.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.wrong(key, "true or false", v)),
        }
    }

    fn string(&self, key: &str, default: &str) -> Result<String> {
        match self.obj.get(key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    /// A string that may also be JSON `null`.
    fn opt_string(&self, key: &str, default: Option<&str>) -> Result<Option<String>> {
        match self.obj.get(key) {
            None => Ok(default.map(str::to_string)),
            Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "a string or null", v)),
        }
    }
}
