//! The Wav2Vec2-BERT encoder, one struct per Hugging Face module, checkpoint names verbatim.
//!
//! Reference: transformers v4.52.1 `src/transformers/models/wav2vec2_bert/modeling_wav2vec2_bert.py`.
//! Inside the encoder, activations are channel-major `[channels, t]` for one utterance (row c = channel c over
//! time): every projection is then `W[out, in] · x[in, t]`, gemm's fastest layout with the weight read in place.
//! Inputs and returned hidden states are time-major `[t, channels]`, as in HF; the layout changes only at the
//! encoder's entry and exit. A batch is a loop over utterances (each one computed at the padded length with its
//! mask, exactly as HF computes padded batches).
//!
//! Each struct has `load(cfg, weights, prefix)` (every tensor checked for name, shape and dtype) and a
//! `forward` that writes into caller-provided buffers: nothing allocates inside the layer loop.

mod attention;
mod conv_module;
mod encoder;
mod feature_projection;
mod feed_forward;
pub mod inventory;
mod layer;
mod primitives;

pub use attention::SelfAttention;
pub use conv_module::ConvolutionModule;
pub use encoder::{Checkpoint, Wav2Vec2BertModel};
pub use feature_projection::FeatureProjection;
pub use feed_forward::FeedForward;
pub use layer::{EncoderLayer, Scratch};
pub use primitives::{LayerNorm, Linear};
