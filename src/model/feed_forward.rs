//! `Wav2Vec2BertFeedForward`: Linear hidden → intermediate, SiLU ("swish"), Linear intermediate → hidden.
//! transformers v4.52.1 modeling_wav2vec2_bert.py#L133 (dropouts are identity at inference).

use super::primitives::{Linear, LinearInput};
use crate::config::Wav2Vec2BertConfig;
use crate::error::Result;
use crate::weights::Weights;
use w2vbert_kernels::bf16::{Bf16Kernel, PackedX};

pub struct FeedForward {
    pub intermediate_dense: Linear,
    pub output_dense: Linear,
}

impl FeedForward {
    pub fn load(cfg: &Wav2Vec2BertConfig, w: &Weights, prefix: &str) -> Result<Self> {
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(FeedForward {
            intermediate_dense: Linear::load(w, &format!("{prefix}.intermediate_dense"), d, f, true)?,
            output_dense: Linear::load(w, &format!("{prefix}.output_dense"), f, d, true)?,
        })
    }

    pub fn to_bf16(&mut self, kernel: Bf16Kernel) {
        self.intermediate_dense.to_bf16(kernel);
        self.output_dense.to_bf16(kernel);
    }

    /// Whether both projections read their input packed (the bf16 tile kernels): then the caller's LayerNorm
    /// packs x ([`super::primitives::LayerNorm::forward_for`]).
    pub fn reads_packed(&self) -> bool {
        self.intermediate_dense.reads_packed() && self.output_dense.reads_packed()
    }

    /// h[d, t] += scale · FFN(x[d, t]) (channel-major) — the conformer's half-step residual (scale 0.5).
    /// `inter` [intermediate, t] and `packed` are scratch: on the bf16 tile kernels (x packed) the intermediate
    /// goes straight into the second linear's input layout, row block by row block, without an f32 copy in
    /// `inter` (the bits packing that copy would give).
    pub fn forward_residual(
        &self,
        h: &mut [f32],
        inter: &mut [f32],
        packed: &mut PackedX,
        x: LinearInput<'_>,
        t: usize,
        scale: f32,
    ) {
        match x {
            LinearInput::Packed(x) => {
                self.intermediate_dense.forward_silu_packed_into(packed, x);
                self.output_dense.forward_accumulate_packed(h, packed, scale);
            }
            LinearInput::F32(x) => {
                self.intermediate_dense.forward_silu(inter, x, t);
                self.output_dense.forward_accumulate(h, inter, t, scale);
            }
        }
    }
}
