//! `Wav2Vec2BertSelfAttention` with `position_embeddings_type = "relative_key"` (Shaw relative keys):
//! `score[i, j] = (q_i·k_j + q_i·E[clamp(j - i, -left, right) + left]) / sqrt(head_dim)`, masked keys get
//! finfo(f32).min, softmax, times V, then `linear_out`.
//! transformers v4.52.1 modeling_wav2vec2_bert.py#L228 (forward at #L262).
//!
//! The score/softmax/V part runs in the fused kernel (`w2vbert_kernels::attention`), which never builds the
//! `[T, T, head_dim]` tensor HF materializes: the 73-bucket product `q Eᵀ` gives every bias value.

use super::pack::Pack;
use super::primitives::{owned_param, Linear, LinearInput};
use crate::config::Wav2Vec2BertConfig;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::weights::Weights;
use w2vbert_kernels::attention::{relative_attention_cm, RelPosAttention, DEFAULT_BLOCKS};
use w2vbert_kernels::bf16::Bf16Kernel;

pub struct SelfAttention {
    pub linear_q: Linear,
    pub linear_k: Linear,
    pub linear_v: Linear,
    pub linear_out: Linear,
    distance_embedding: Tensor, // [left + right + 1, head_dim]
    kernel: RelPosAttention,
}

impl SelfAttention {
    #[cfg(test)]
    pub(crate) fn distance_embedding(&self) -> &Tensor {
        &self.distance_embedding
    }

    pub fn load(cfg: &Wav2Vec2BertConfig, w: &Weights, prefix: &str) -> Result<Self> {
        let d = cfg.hidden_size;
        let (left, right) = (cfg.left_max_position_embeddings, cfg.right_max_position_embeddings);
        let head_dim = cfg.head_dim();
        Ok(SelfAttention {
            linear_q: Linear::load(w, &format!("{prefix}.linear_q"), d, d, true)?,
            linear_k: Linear::load(w, &format!("{prefix}.linear_k"), d, d, true)?,
            linear_v: Linear::load(w, &format!("{prefix}.linear_v"), d, d, true)?,
            linear_out: Linear::load(w, &format!("{prefix}.linear_out"), d, d, true)?,
            distance_embedding: owned_param(
                w,
                &format!("{prefix}.distance_embedding.weight"),
                &[left + right + 1, head_dim],
            )?,
            kernel: RelPosAttention {
                n_heads: cfg.num_attention_heads,
                head_dim,
                left_max: left,
                right_max: right,
            },
        })
    }

    pub fn to_bf16(&mut self, kernel: Bf16Kernel) {
        for l in [
            &mut self.linear_q,
            &mut self.linear_k,
            &mut self.linear_v,
            &mut self.linear_out,
        ] {
            l.to_bf16(kernel);
        }
    }

    /// Whether q, k and v read their input packed (the bf16 tile kernels): then the caller's LayerNorm packs x
    /// ([`super::primitives::LayerNorm::forward_for`]), once for the three.
    pub fn reads_packed(&self) -> bool {
        [&self.linear_q, &self.linear_k, &self.linear_v]
            .iter()
            .all(|l| l.reads_packed())
    }

    /// h[d, T] += Attention(x[d, T]) (channel-major) with keys masked by `key_mask` [T] (true = valid), T the
    /// pack's total width: the projections run once over the pack, the attention itself within each segment
    /// (a column offset with row stride T). `q`, `k`, `v`, `ctx` are [d, T] scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_residual(
        &self,
        h: &mut [f32],
        q: &mut [f32],
        k: &mut [f32],
        v: &mut [f32],
        ctx: &mut [f32],
        x: LinearInput<'_>,
        key_mask: Option<&[bool]>,
        pack: &Pack,
    ) {
        let t = pack.total();
        match x {
            LinearInput::Packed(x) => {
                self.linear_q.forward_packed(q, x);
                self.linear_k.forward_packed(k, x);
                self.linear_v.forward_packed(v, x);
            }
            LinearInput::F32(x) => {
                self.linear_q.forward(q, x, t);
                self.linear_k.forward(k, x, t);
                self.linear_v.forward(v, x, t);
            }
        }
        for (s0, len) in pack.ranges() {
            relative_attention_cm(
                &self.kernel,
                DEFAULT_BLOCKS,
                &mut ctx[s0..],
                t,
                &q[s0..],
                t,
                &k[s0..],
                t,
                &v[s0..],
                t,
                self.distance_embedding.data(),
                key_mask.map(|m| &m[s0..s0 + len]),
                len,
            );
        }
        self.linear_out.forward_accumulate(h, ctx, t, 1.0);
    }
}
