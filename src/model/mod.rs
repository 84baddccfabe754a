//! The Wav2Vec2-BERT encoder, one struct per Hugging Face module, checkpoint names verbatim.
//!
//! Reference: transformers v4.52.1 `src/transformers/models/wav2vec2_bert/modeling_wav2vec2_bert.py`.
//! Inside the encoder, activations are channel-major `[channels, t]` for one utterance (row c = channel c over
//! time): every projection is then `W[out, in] · x[in, t]`, gemm's fastest layout with the weight read in place.
//! Inputs and returned hidden states are time-major `[t, channels]`, as in HF; the layout changes only at the
//! encoder's entry and exit. A padded batch is a loop over utterances (each one computed at the padded length
//! with its mask, exactly as HF computes padded batches); a [`Pack`] puts several utterances side by side in one
//! `[channels, ΣT]` block without padding (position-wise ops run once over the pack, attention and the depthwise
//! conv per segment).
//!
//! Each struct has `load(cfg, weights, prefix)` (every tensor checked for name, shape and dtype) and a
//! `forward` that writes into caller-provided buffers: nothing allocates inside the layer loop.

/// Arithmetic of the encoder's projections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 throughout: the faithful path (matches transformers fp32), the default.
    #[default]
    F32,
    /// Projection weights held in bf16, f32 accumulation (AMX or AVX512-BF16: activations rounded to bf16 at
    /// each matmul's input; or, where `vdpbf16ps` is slower than f32 FMAs, the bf16 weights widened per row
    /// block into the f32 gemm). LayerNorm, softmax, attention, the depthwise conv, the residual stream and the
    /// feature projection stay f32.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?} (expected fp32 or bf16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "fp32",
            Precision::Bf16 => "bf16",
        })
    }
}

mod attention;
mod conv_module;
mod encoder;
mod feature_projection;
mod feed_forward;
pub mod inventory;
mod layer;
mod pack;
mod primitives;

pub use attention::SelfAttention;
pub use conv_module::ConvolutionModule;
pub use encoder::{Checkpoint, Wav2Vec2BertModel};
pub use feature_projection::FeatureProjection;
pub use feed_forward::FeedForward;
pub use layer::{EncoderLayer, Scratch};
pub use pack::Pack;
pub use primitives::{LayerNorm, Linear};
