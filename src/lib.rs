//! `w2vbert`: CPU inference for Wav2Vec2-BERT 2.0 (facebook/w2v-bert-2.0) and the IndexTTS2 / MaskGCT
//! "semantic features" (`(hidden_states[17] - mean) / sqrt(var)`).
//!
//! Reading order: `tensor` → `weights` → `config` → `audio` (wav → fbank) → `model` (encoder) →
//! `stats` (semantic normalization) → `output` (.npy / .safetensors writers) → `pipeline` (file → features →
//! outputs, packed batches) → `corpus` (inputs, output tree, shards); `convert` writes trimmed / f16 / bf16
//! checkpoints.

pub mod audio;
pub mod config;
pub mod convert;
pub mod corpus;
pub mod error;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod stats;
pub mod tensor;
pub mod weights;

pub use error::{Error, Result};
pub use w2vbert_kernels as kernels;
